"""Layout injection between gymnasium MiniGrid and curio_jax (host side, optional extra).

MiniGrid and curio_jax draw layouts with different PRNGs, so a lockstep comparison injects one
library's layout into the other. Needs the `reference` extra (gymnasium + minigrid); imported
lazily so the core never depends on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curio_jax.envs.doorkey import DoorKeyLayout


def make_minigrid_doorkey(size: int, render_mode: str | None = None) -> Any:
    """`MiniGrid-DoorKey-{size}x{size}-v0` wrapped in `ImgObsWrapper`, exactly as the notebook uses
    it. Sizes other than 5, 6, 8, 16 build `DoorKeyEnv(size=...)` directly."""
    import gymnasium as gym
    from minigrid.envs import DoorKeyEnv
    from minigrid.wrappers import ImgObsWrapper

    env_id = f"MiniGrid-DoorKey-{size}x{size}-v0"
    if env_id in gym.registry:
        env = gym.make(env_id, render_mode=render_mode)
    else:
        env = DoorKeyEnv(size=size, render_mode=render_mode)
    return ImgObsWrapper(env)


def minigrid_layout(env: Any) -> DoorKeyLayout:
    """The layout of a freshly reset MiniGrid DoorKey env (any wrapper depth)."""
    from minigrid.core.world_object import Door, Key

    u = env.unwrapped
    size = u.width
    door = key = None
    for x in range(u.width):
        for y in range(u.height):
            cell = u.grid.get(x, y)
            if isinstance(cell, Door):
                door = (x, y)
            elif isinstance(cell, Key):
                key = (x, y)
    if door is None or key is None:
        raise ValueError("not a DoorKey start state: door or key missing from the grid")
    ax, ay = (int(c) for c in u.agent_pos)
    return DoorKeyLayout(
        size=size,
        wall_x=door[0],
        door_y=door[1],
        agent_x=ax,
        agent_y=ay,
        agent_dir=int(u.agent_dir),
        key_x=key[0],
        key_y=key[1],
    )


def apply_layout(env: Any, layout: DoorKeyLayout) -> np.ndarray:
    """Put a MiniGrid DoorKey env (already reset once) into the start state of `layout`;
    returns the `ImgObsWrapper` observation. The episode's step count restarts at 0."""
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import Door, Goal, Key

    layout = layout.validate()
    u = env.unwrapped
    size = int(layout.size)
    if u.width != size or u.height != size:
        raise ValueError(f"layout is for size {size}, env is {u.width}x{u.height}")
    v = {
        k: int(np.asarray(getattr(layout, k)))
        for k in ("wall_x", "door_y", "agent_x", "agent_y", "agent_dir", "key_x", "key_y")
    }
    grid = Grid(size, size)
    grid.wall_rect(0, 0, size, size)
    grid.set(size - 2, size - 2, Goal())
    grid.vert_wall(v["wall_x"], 0)
    grid.set(v["wall_x"], v["door_y"], Door("yellow", is_locked=True))
    grid.set(v["key_x"], v["key_y"], Key("yellow"))
    u.grid = grid
    u.agent_pos = (v["agent_x"], v["agent_y"])
    u.agent_dir = v["agent_dir"]
    u.carrying = None
    u.step_count = 0
    return u.gen_obs()["image"]
