"""MiniGrid-faithful DoorKey on navix, layout injection and in-jit episode statistics.

The DoorKey ids of `NAVIX_IDS` are in navix's registry
(`navix.make("curio_jax/MiniGrid-DoorKey-8x8-v0")`) from `import curio_jax` on (lazily, see
`curio_jax.navix_ids`); importing this package registers their full constructors.
`make("MiniGrid-DoorKey-8x8-v0")` builds the same environment directly.
`curio_jax.envs.gymnax` is the gymnax-style functional API."""

from curio_jax.envs.doorkey import (
    ACTION_NAMES,
    NUM_ACTIONS,
    DoorKey,
    DoorKeyLayout,
    DoorKeyTimestep,
    layout_of,
    make_doorkey,
    max_steps,
    minigrid_observation,
)
from curio_jax.envs.registration import ENV_IDS, NAVIX_IDS, make, register
from curio_jax.envs.stats import EpisodeStats

register()

__all__ = [
    "ACTION_NAMES",
    "ENV_IDS",
    "NAVIX_IDS",
    "NUM_ACTIONS",
    "DoorKey",
    "DoorKeyLayout",
    "DoorKeyTimestep",
    "EpisodeStats",
    "layout_of",
    "make",
    "make_doorkey",
    "max_steps",
    "minigrid_observation",
    "register",
]
