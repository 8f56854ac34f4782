"""MiniGrid-faithful DoorKey on navix, layout injection and in-jit episode statistics."""

from curio_jax.envs.doorkey import (
    ACTION_NAMES,
    NUM_ACTIONS,
    DoorKey,
    DoorKeyLayout,
    DoorKeyTimestep,
    layout_of,
    make_doorkey,
    minigrid_observation,
)
from curio_jax.envs.stats import EpisodeStats

__all__ = [
    "ACTION_NAMES",
    "NUM_ACTIONS",
    "DoorKey",
    "DoorKeyLayout",
    "DoorKeyTimestep",
    "EpisodeStats",
    "layout_of",
    "make_doorkey",
    "minigrid_observation",
]
