"""Drawing a DoorKey timestep as an RGB frame on the host, in MiniGrid's look (numpy only):
the full grid at `tile_size` pixels per cell, the agent's field of view highlighted.

Each cell is drawn at 3x resolution and averaged down (MiniGrid's anti-aliasing); the frames
are pixel-equal to MiniGrid's own `render()` except inside the locked door's keyhole
(`tests/analysis/test_evaluate_minigrid.py`). `curio_jax.analysis.render` builds episodes and
GIFs on top; the gymnasium vector env renders with it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from curio_jax.envs.doorkey import EMPTY_POCKET_ID, UNLOCKED

GREY = (100, 100, 100)
GREEN = (0, 255, 0)
YELLOW = (255, 255, 0)
RED = (255, 0, 0)
BLACK = (0, 0, 0)
_SUBDIV = 3
_HIGHLIGHT = 0.30
_VIEW = 7
# direction -> (dx, dy) in MiniGrid (x, y) coordinates
_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))


# --------------------------------------------------------------------------- cell drawing


class _Cell:
    """One supersampled cell: pixel-centre coordinates in [0, 1] and an RGB uint8 canvas
    (colours are truncated to integers when painted, as in MiniGrid)."""

    def __init__(self, tile: int):
        n = tile * _SUBDIV
        c = (np.arange(n) + 0.5) / n
        self.x = np.broadcast_to(c[None, :], (n, n))  # column coordinate
        self.y = np.broadcast_to(c[:, None], (n, n))  # row coordinate
        self.img = np.zeros((n, n, 3), np.uint8)

    def fill(self, mask: np.ndarray, colour: Sequence[float]) -> None:
        self.img[mask] = np.asarray(colour, np.float64).astype(np.uint8)

    def rect(self, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        return (self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1)

    def circle(self, cx: float, cy: float, r: float) -> np.ndarray:
        return (self.x - cx) ** 2 + (self.y - cy) ** 2 <= r * r

    def triangle(
        self, pts: Sequence[tuple[float, float]], turn: float = 0.0, centre: float = 0.5
    ) -> np.ndarray:
        """Inside the triangle with corners `pts` (x, y) turned by `turn` radians clockwise on
        screen about (centre, centre): the pixel is turned back and tested in barycentric
        coordinates (u, v >= 0, u + v < 1)."""
        cos, sin = math.cos(-turn), math.sin(-turn)
        dx, dy = self.x - centre, self.y - centre
        px, py = centre + dx * cos - dy * sin, centre + dy * cos + dx * sin
        a, b, c = (np.asarray(p, np.float32) for p in pts)
        v0, v1 = c - a, b - a
        qx, qy = px - a[0], py - a[1]
        d00, d01, d11 = float(v0 @ v0), float(v0 @ v1), float(v1 @ v1)
        d02, d12 = v0[0] * qx + v0[1] * qy, v1[0] * qx + v1[1] * qy
        inv = 1.0 / (d00 * d11 - d01 * d01)
        u = (d11 * d02 - d01 * d12) * inv
        v = (d00 * d12 - d01 * d02) * inv
        return (u >= 0) & (v >= 0) & (u + v < 1)

    def done(self, highlight: bool) -> np.ndarray:
        img = self.img
        if highlight:  # blend towards white, truncated to integers
            img = np.clip(img + _HIGHLIGHT * (255.0 - img), 0, 255).astype(np.uint8)
        n = img.shape[0] // _SUBDIV
        mean = img.reshape(n, _SUBDIV, n, _SUBDIV, 3).mean(axis=(1, 3))
        return mean.astype(np.uint8)


def _draw_floor(c: _Cell) -> None:
    c.fill(c.rect(0.0, 0.031, 0.0, 1.0), GREY)
    c.fill(c.rect(0.0, 1.0, 0.0, 0.031), GREY)


def _draw_door(c: _Cell, state: str) -> None:
    dark = tuple(0.45 * v for v in YELLOW)
    if state == "open":  # the door swung against the right edge of its cell
        c.fill(c.rect(0.88, 1.0, 0.0, 1.0), YELLOW)
        c.fill(c.rect(0.92, 0.96, 0.04, 0.96), BLACK)
    elif state == "locked":  # dark panel with a keyhole
        c.fill(c.rect(0.0, 1.0, 0.0, 1.0), YELLOW)
        c.fill(c.rect(0.06, 0.94, 0.06, 0.94), dark)
        c.fill(c.circle(0.64, 0.44, 0.07), YELLOW)
        c.fill(c.rect(0.61, 0.67, 0.44, 0.60), YELLOW)
    else:  # closed: outlined panel with a handle
        c.fill(c.rect(0.0, 1.0, 0.0, 1.0), YELLOW)
        c.fill(c.rect(0.04, 0.96, 0.04, 0.96), BLACK)
        c.fill(c.rect(0.08, 0.92, 0.08, 0.92), YELLOW)
        c.fill(c.rect(0.12, 0.88, 0.12, 0.88), BLACK)
        c.fill(c.circle(0.75, 0.50, 0.08), YELLOW)


def _draw_key(c: _Cell) -> None:
    c.fill(c.rect(0.50, 0.63, 0.31, 0.88), YELLOW)  # shaft
    c.fill(c.rect(0.38, 0.50, 0.59, 0.66), YELLOW)  # teeth
    c.fill(c.rect(0.38, 0.50, 0.81, 0.88), YELLOW)
    c.fill(c.circle(0.56, 0.28, 0.19), YELLOW)  # ring
    c.fill(c.circle(0.56, 0.28, 0.064), BLACK)


def _draw_agent(c: _Cell, direction: int, carrying: bool) -> None:
    # a triangle pointing east, turned clockwise on screen (image y grows downwards)
    tri = ((0.12, 0.19), (0.87, 0.50), (0.12, 0.81))
    c.fill(c.triangle(tri, turn=0.5 * math.pi * direction), RED)
    if carrying:
        c.fill(c.rect(0.78, 0.95, 0.05, 0.22), YELLOW)


@functools.lru_cache(maxsize=512)
def _tile(kind: str, tile: int, highlight: bool, agent_dir: int, carrying: bool) -> np.ndarray:
    """One cell [tile, tile, 3]. kind: floor, wall, goal, key, door_open, door_closed,
    door_locked; agent_dir -1 for no agent."""
    c = _Cell(tile)
    if kind == "wall":
        c.fill(c.rect(0.0, 1.0, 0.0, 1.0), GREY)
    elif kind == "goal":
        c.fill(c.rect(0.0, 1.0, 0.0, 1.0), GREEN)
    else:
        _draw_floor(c)
        if kind == "key":
            _draw_key(c)
        elif kind.startswith("door_"):
            _draw_door(c, kind[5:])
    if agent_dir >= 0:
        _draw_agent(c, agent_dir, carrying)
    out = c.done(highlight)
    out.flags.writeable = False
    return out


# --------------------------------------------------------------------------- frames


def _scene(timestep: Any) -> dict:
    """Host numpy description of one (unbatched) DoorKey timestep."""

    ts = jax.device_get(timestep)
    state = ts.state
    grid = np.asarray(state.grid)
    if grid.ndim != 2:
        raise ValueError(
            f"render_frame needs one unbatched timestep, got a grid of shape {grid.shape}"
        )
    ents = state.entities
    player, key, door = ents["player"], ents["key"], ents["door"]
    goal = ents["goal"]
    py, px = (int(v) for v in np.asarray(player.position).reshape(-1, 2)[0])
    ky, kx = (int(v) for v in np.asarray(key.position).reshape(-1, 2)[0])
    dy, dx = (int(v) for v in np.asarray(door.position).reshape(-1, 2)[0])
    gy, gx = (int(v) for v in np.asarray(goal.position).reshape(-1, 2)[0])
    is_open = bool(np.asarray(door.open).reshape(-1)[0])
    locked = int(np.asarray(door.requires).reshape(-1)[0]) != int(UNLOCKED)
    return {
        "walls": grid != 0,
        "agent": (px, py),
        "dir": int(np.asarray(player.direction).reshape(-1)[0]),
        "carrying": int(np.asarray(player.pocket).reshape(-1)[0]) != int(EMPTY_POCKET_ID),
        "key": (kx, ky),
        "door": (dx, dy),
        "door_state": "open" if is_open else ("locked" if locked else "closed"),
        "goal": (gx, gy),
        "obs": np.asarray(ts.observation),
    }


def visible_cells(agent: tuple[int, int], direction: int, obs: np.ndarray, size: int) -> np.ndarray:
    """bool [size, size] indexed [y, x]: world cells the observation shows (object id != 0,
    i.e. inside the 7x7 view and not occluded), as MiniGrid's render highlights them."""
    mask = np.zeros((size, size), bool)
    fx, fy = _DIRS[direction]
    rx, ry = -fy, fx  # the agent's right
    for vx in range(_VIEW):
        for vy in range(_VIEW):
            if obs[vx, vy, 0] == 0:
                continue
            ahead, lateral = (_VIEW - 1) - vy, vx - _VIEW // 2
            wx = agent[0] + fx * ahead + rx * lateral
            wy = agent[1] + fy * ahead + ry * lateral
            if 0 <= wx < size and 0 <= wy < size:
                mask[wy, wx] = True
    return mask


def render_frame(
    timestep: Any, tile_size: int = 32, highlight: bool = True, mark_carrying: bool = True
) -> np.ndarray:
    """RGB ``uint8 [size * tile_size, size * tile_size, 3]`` image of one unbatched DoorKey
    timestep (`curio_jax.envs` DoorKey; any size). See the module docstring for the drawing."""
    if not isinstance(tile_size, int) or isinstance(tile_size, bool) or tile_size < 4:
        raise ValueError(f"tile_size must be an integer >= 4, got {tile_size!r}")
    s = _scene(timestep)
    size = s["walls"].shape[0]
    lit = (
        visible_cells(s["agent"], s["dir"], s["obs"], size)
        if highlight
        else np.zeros((size, size), bool)
    )
    img = np.zeros((size * tile_size, size * tile_size, 3), np.uint8)
    for y in range(size):
        for x in range(size):
            if s["walls"][y, x]:
                kind = "wall"
            elif (x, y) == s["goal"]:
                kind = "goal"
            elif (x, y) == s["door"]:
                kind = "door_" + s["door_state"]
            elif (x, y) == s["key"]:
                kind = "key"
            else:
                kind = "floor"
            here = (x, y) == s["agent"]
            tile = _tile(
                kind,
                tile_size,
                bool(lit[y, x]),
                s["dir"] if here else -1,
                here and s["carrying"] and mark_carrying,
            )
            img[y * tile_size : (y + 1) * tile_size, x * tile_size : (x + 1) * tile_size] = tile
    return img
