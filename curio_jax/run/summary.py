"""What a finished run (or chunk of one) reports: frames-to-solve, final scores, the run
totals carried across sessions, summary.json and curves.png."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

from curio_jax.config import TrainConfig
from curio_jax.parallel.program import device_description
from curio_jax.run.rundir import atomic_write, read_rows


def frames_to_solve(rows: list[dict], seeds: int, threshold: float) -> list[int | None]:
    """Per seed: frames of the first logged update whose average score > threshold."""
    out: list[int | None] = [None] * seeds
    for r in sorted(rows, key=lambda r: int(r["update"])):
        s = int(r["seed"])
        v = float(r["avg_return_last100"])
        if out[s] is None and math.isfinite(v) and v > threshold:
            out[s] = int(r["frames"])
    return out


def final_scores(rows: list[dict], seeds: int) -> list[float | None]:
    """Per seed: avg_return_last100 at its last logged update (None if NaN or absent)."""
    last: dict[int, tuple[int, float]] = {}
    for r in rows:
        s, u = int(r["seed"]), int(r["update"])
        if s not in last or u > last[s][0]:
            last[s] = (u, float(r["avg_return_last100"]))
    out: list[float | None] = []
    for s in range(seeds):
        v = last.get(s, (0, float("nan")))[1]
        out.append(v if math.isfinite(v) else None)
    return out


def plot_curves(rows: list[dict], seeds: int, title: str, path: Path) -> None:
    """Average score vs frames: every seed, the mean over seeds and a 95% band of the mean
    (Student t)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_update: dict[int, dict[int, float]] = {}
    frames: dict[int, int] = {}
    for r in rows:
        u = int(r["update"])
        by_update.setdefault(u, {})[int(r["seed"])] = float(r["avg_return_last100"])
        frames[u] = int(r["frames"])
    updates = sorted(by_update)
    x = np.array([frames[u] for u in updates], dtype=float)
    vals = np.array([[by_update[u].get(s, np.nan) for s in range(seeds)] for u in updates])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    if updates:
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows before any episode
            n = np.sum(np.isfinite(vals), axis=1)
            mean = np.nanmean(vals, axis=1)
            sd = np.nanstd(vals, axis=1, ddof=1) if seeds > 1 else np.zeros_like(mean)
            half = np.where(n > 1, sps.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n), 0.0)
        for s in range(seeds):
            ax.plot(x, vals[:, s], color="tab:blue", alpha=0.15, lw=0.8)
        ax.plot(x, mean, color="tab:blue", lw=2, label=f"mean of {seeds} seed(s)")
        if seeds > 1:
            ax.fill_between(
                x, mean - half, mean + half, color="tab:blue", alpha=0.25, label="95% CI of mean"
            )
    ax.set_xlabel("frames per seed (env steps, all envs)")
    ax.set_ylabel("average return of last 100 episodes")
    ax.set_title(title)
    ax.set_ylim(-0.02, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


@dataclass
class RunClock:
    """Run totals carried across segments in the checkpoint metadata."""

    seconds: float = 0.0
    compile_seconds: float = 0.0
    steady_seconds: float = 0.0
    steady_frames: int = 0
    segments: int = 0

    @classmethod
    def from_meta(cls, meta: dict) -> RunClock:
        c = cls()
        for name in ("seconds", "compile_seconds", "steady_seconds", "steady_frames", "segments"):
            v = meta.get(name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                setattr(c, name, type(getattr(c, name))(v))
        return c

    def meta(self) -> dict:
        return {
            "seconds": self.seconds,
            "compile_seconds": self.compile_seconds,
            "steady_seconds": self.steady_seconds,
            "steady_frames": self.steady_frames,
            "segments": self.segments,
        }


def write_summary(
    cfg: TrainConfig,
    out: Path,
    seeds: int,
    clock: RunClock,
    info: Callable[[str], None],
    plot: bool,
    extra: dict | None = None,
) -> dict:
    """summary.json (and curves.png) from metrics.csv and the run totals of the final
    checkpoint. ``extra`` adds fields; its ``updates_done`` (a run that stopped when solved)
    replaces the config's number of updates in ``updates`` and ``frames`` (frames run, all
    seeds); ``frames_per_seed`` stays the budget (where compare censors unsolved seeds)."""
    extra = dict(extra or {})
    updates = int(extra.pop("updates_done", cfg.num_updates))
    rows = read_rows(out / "metrics.csv")
    solved = frames_to_solve(rows, seeds, cfg.solved_threshold)
    finals = final_scores(rows, seeds)
    frames = updates * cfg.frames_per_update * seeds
    summary = {
        "preset": cfg.name,
        "impl": "curio_jax",
        "device": device_description(),
        "solved_threshold": cfg.solved_threshold,
        "seeds": [
            {"seed": s, "frames_to_solve": solved[s], "final_avg_return_last100": finals[s]}
            for s in range(seeds)
        ],
        "frames": frames,
        "frames_per_seed": cfg.num_updates * cfg.frames_per_update,
        "updates": updates,
        "seconds": clock.seconds,
        "frames_per_sec": (
            clock.steady_frames / clock.steady_seconds
            if clock.steady_seconds > 0
            else frames / max(clock.seconds, 1e-9)
        ),
        "compile_seconds": clock.compile_seconds,
        "segments": clock.segments,
        **extra,
    }
    atomic_write(out / "summary.json", json.dumps(summary, indent=2))
    if plot:
        try:
            plot_curves(rows, seeds, f"{cfg.name} ({seeds} seeds)", out / "curves.png")
        except ImportError:
            info("matplotlib is not installed: skipped curves.png (pip install 'curio_jax[plot]')")
    return summary
