"""Helpers for the lockstep tests, kept in the package (curio_jax.reference.crosscheck) so that
`curio-jax crosscheck` runs the same code: a scripted DoorKey policy on gymnasium MiniGrid and a
batched replay of action sequences in curio_jax."""

from __future__ import annotations

from curio_jax.envs.layouts import stack_layouts  # noqa: F401
from curio_jax.reference.crosscheck import (  # noqa: F401 - re-exported for the tests
    DIRS,
    DONE,
    DROP,
    FORWARD,
    LEFT,
    PICKUP,
    RIGHT,
    TOGGLE,
    ScriptedEpisode,
    plan_to_face,
    replay,
)
