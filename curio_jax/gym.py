"""Gymnasium entry point of curio_jax (needs the `reference` extra: gymnasium).

    import curio_jax.gym
    envs = curio_jax.gym.make_vec("MiniGrid-DoorKey-8x8-v0", num_envs=64)
    # or, through gymnasium's registry (ids registered when this module is imported):
    envs = gymnasium.make_vec("curio_jax/MiniGrid-DoorKey-8x8-v0", num_envs=64)

A `gymnasium.vector.VectorEnv` whose environments are stepped by one compiled JAX program and
that emits exactly what MiniGrid's `gym.make_vec(..., wrappers=[ImgObsWrapper])` emits for the
same layouts and actions. See docs/gym_vector.md and `curio_jax.envs.gym_vector`.
"""

from __future__ import annotations

from curio_jax.envs.gym_vector import (
    NAMESPACE,
    REGISTERED_SIZES,
    DoorKeyVectorEnv,
    env_id,
    make_vec,
    register,
)

for _size in REGISTERED_SIZES:
    register(_size)
del _size

__all__ = ["NAMESPACE", "REGISTERED_SIZES", "DoorKeyVectorEnv", "env_id", "make_vec", "register"]
