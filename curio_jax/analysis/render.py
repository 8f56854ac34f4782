"""Host-side drawing of DoorKey frames and GIFs (never called under jit).

:func:`render_frame` draws one `curio_jax` DoorKey timestep as an RGB ``uint8 [H, W, 3]`` image
in MiniGrid's visual language, so frames read like `env.render()` of gymnasium MiniGrid:

- walls grey, floor black with grey grid lines on each cell's top and left edge, goal green;
- the door yellow: a dark-filled panel with a keyhole when locked, an outlined panel with a
  handle when closed (unlocked), a thin frame along one edge when open;
- the key yellow (ring, shaft, two teeth) while it lies on the floor;
- the agent a red triangle pointing in its direction (0 east, 1 south, 2 west, 3 north);
  a small yellow square in its cell's corner while it carries the key (``mark_carrying``);
- the cells the agent sees (its 7x7 view after MiniGrid's occlusion, read from the
  observation) blended 30 % towards white, as MiniGrid's ``highlight``.

Each cell is drawn at 3x resolution and averaged down (MiniGrid's anti-aliasing). Image row
``y`` and column ``x`` are MiniGrid's world coordinates (x = column, y = row). With
``mark_carrying=False`` a frame is pixel-identical to MiniGrid's ``render()`` (rgb_array,
32-pixel tiles) everywhere except inside a locked door, whose keyhole is drawn differently
(tests/analysis/test_evaluate_minigrid.py checks every frame of scripted episodes).

:func:`save_gif` writes frames with pillow (the ``plot`` extra); :func:`grid_frames` lays out
several episodes side by side for one GIF.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import jax
import numpy as np

from curio_jax.analysis import evaluate as ev
from curio_jax.envs import make_doorkey
from curio_jax.envs.doorkey import DONE
from curio_jax.envs.frames import render_frame, visible_cells  # noqa: F401 - re-exported


@functools.lru_cache(maxsize=8)
def _replay_program(size: int):
    """Jitted replay of a padded action sequence [max_steps] without autoreset."""

    env = make_doorkey(size, rgb_cache=False)

    def run(layout, actions):
        ts0 = env.reset_to(layout)

        def body(ts, a):
            nxt = env._step(ts, a)
            return nxt, nxt

        return ts0, jax.lax.scan(body, ts0, actions)[1]

    return jax.jit(run)


def episode_frames(
    layout: Any,
    actions: Sequence[int] | np.ndarray,
    tile_size: int = 32,
    mark_carrying: bool = True,
) -> list[np.ndarray]:
    """Frames of an episode replayed in the JAX DoorKey from start `layout` (a concrete
    DoorKeyLayout) with `actions` (no autoreset; at most max_steps = 10 * size**2 actions):
    the start frame, then one frame per action."""

    layout = layout.validate()
    size = int(layout.size)
    horizon = 10 * size * size
    acts = np.asarray(actions, np.int32).reshape(-1)
    if len(acts) > horizon:
        raise ValueError(f"{len(acts)} actions, more than the horizon {horizon}")
    padded = np.full(horizon, DONE, np.int32)  # one program per size, whatever the length
    padded[: len(acts)] = acts
    ts0, steps = jax.device_get(_replay_program(size)(layout, padded))
    frames = [render_frame(ts0, tile_size, mark_carrying=mark_carrying)]
    for i in range(len(acts)):
        ts_i = jax.tree.map(lambda x, i=i: x[i], steps)
        frames.append(render_frame(ts_i, tile_size, mark_carrying=mark_carrying))
    return frames


# --------------------------------------------------------------------------- GIFs


def _check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(frames) == 0:
        raise ValueError("no frames to write")
    out = [np.asarray(f) for f in frames]
    shape = out[0].shape
    for i, f in enumerate(out):
        if f.ndim != 3 or f.shape[-1] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frame {i}: expected uint8 [H, W, 3], got {f.dtype} {f.shape}")
        if f.shape != shape:
            raise ValueError(f"frame {i}: shape {f.shape} differs from frame 0's {shape}")
    return out


def save_gif(frames: Sequence[np.ndarray], path: str | PathLike, fps: float = 8.0) -> None:
    """Write RGB frames as a looping GIF (pillow). `fps` > 0; every frame the same shape."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("writing GIFs needs pillow: pip install 'curio_jax[plot]'") from None
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    images = [Image.fromarray(f, "RGB") for f in _check_frames(frames)]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(20, int(round(1000.0 / fps))),
        loop=0,
    )


def grid_frames(
    episodes: Sequence[Sequence[np.ndarray]],
    cols: int,
    gap: int = 4,
    borders: Sequence[tuple[int, int, int] | None] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> list[np.ndarray]:
    """Several episodes side by side, `cols` per row: one combined frame per time step. An
    episode that has ended holds its last frame; ``borders[i]`` (an RGB colour or None)
    frames episode i in a `gap` // 2 pixel border of that colour once it has ended."""
    if not episodes:
        raise ValueError("no episodes")
    if not isinstance(cols, int) or cols < 1:
        raise ValueError(f"cols must be a positive integer, got {cols!r}")
    eps = [_check_frames(e) for e in episodes]
    h, w, _ = eps[0][0].shape
    for i, e in enumerate(eps):
        if e[0].shape != (h, w, 3):
            raise ValueError(f"episode {i}: frames {e[0].shape} differ from episode 0's")
    if borders is not None and len(borders) != len(eps):
        raise ValueError(f"borders: {len(borders)} colours for {len(eps)} episodes")
    n = len(eps)
    rows = -(-n // cols)
    cols = min(cols, n)
    big_h, big_w = rows * (h + gap) + gap, cols * (w + gap) + gap
    t_max = max(len(e) for e in eps)
    out = []
    for t in range(t_max):
        canvas = np.empty((big_h, big_w, 3), np.uint8)
        canvas[:] = background
        for i, e in enumerate(eps):
            r, c = divmod(i, cols)
            y0, x0 = gap + r * (h + gap), gap + c * (w + gap)
            if borders is not None and borders[i] is not None and t >= len(e) - 1:
                b = max(1, gap // 2)
                canvas[y0 - b : y0 + h + b, x0 - b : x0 + w + b] = borders[i]
            canvas[y0 : y0 + h, x0 : x0 + w] = e[min(t, len(e) - 1)]
        out.append(canvas)
    return out


# --------------------------------------------------------------------------- a run's agent


def run_gif(
    run_dir: str | PathLike,
    path: str | PathLike,
    *,
    seed_index: int | None = None,
    episodes: int = 8,
    fps: float = 8.0,
    max_frames: int = 400,
) -> str:
    """Draw a trained agent of a run directory into a GIF: the seed with the best final score
    (summary.json) unless `seed_index` is given, playing `episodes` episodes (actions sampled
    as the notebook does, `eval --seed 0`) and drawing the first that reaches the goal (else
    the first). Returns a one-line description. ValueError when the episode is longer than
    `max_frames` (a 16x16 timeout would make a huge file)."""
    run_dir = Path(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    size = int(cfg["env"]["size"])
    if seed_index is None:
        seeds = json.loads((run_dir / "summary.json").read_text())["seeds"]
        finals = [s["final_avg_return_last100"] for s in seeds]
        seed_index = max(range(len(finals)), key=lambda i: -1.0 if finals[i] is None else finals[i])
    loaded = ev.load_run_params(run_dir, seed_index, warn=lambda _: None)
    _, played = ev.evaluate(loaded.params, size, episodes, backend="jax", seed=0)
    goals = np.flatnonzero(played.terminated)
    i = int(goals[0]) if goals.size else 0
    n = int(played.lengths[i])
    if n + 1 > max_frames:
        raise ValueError(f"episode of {n} steps is longer than {max_frames} frames")
    frames = episode_frames(played.layouts[i], played.actions[i, :n], 32 if size <= 8 else 16)
    save_gif(frames, path, fps=fps)
    outcome = "reaches the goal" if played.terminated[i] else "does not reach the goal"
    return f"seed {seed_index}, {n} steps, {outcome}"
