"""The host loop of `curio-jax train` (the one impure part of a run; never called under jit).

It drives the jitted, seed-vmapped chunk `Train.run_chunk` (`log_every` updates per call), and
between chunks does all I/O: `metrics.csv` rows, progress lines, checkpoints, `summary.json`
and `curves.png`. Memory does not grow with run length: per-update metrics leave the device
once per chunk and only the logged rows are kept.

Run directory (see shared/docs/interface.md):
  config.json    the TrainConfig
  run.json       seeds, base seed, chunk size
  metrics.csv    one row per logged update per seed
  summary.json   per-seed frames_to_solve and final score; run totals
  checkpoints/   ckpt_<update>.npz, the full seed-batched LearnerState
  curves.png     average score vs frames (mean and 95% band over seeds)
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curio_jax import checkpoint as ckpt
from curio_jax.config import TrainConfig, diff_configs

METRIC_COLUMNS = (
    "seed",
    "update",
    "frames",
    "avg_return_last100",
    "episodes",
    "loss_total",
    "loss_policy",
    "loss_value_ext",
    "loss_value_int",
    "entropy",
    "loss_rnd",
    "reward_int_mean",
    "grad_norm_ac",
    "grad_norm_rnd",
)
LOSS_TERMS = METRIC_COLUMNS[5:]


class RunError(Exception):
    """A problem with the run directory or its contents; reported as one line."""


class NonFiniteError(RunError):
    """A loss or parameter became NaN/inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class RunSettings:
    """Host-loop settings that are not part of the learning problem."""

    seeds: int = 1
    """Seeds run in one program (vmapped)."""
    seed: int = 0
    """Base seed: seed i uses jax.random.split(jax.random.key(seed), seeds)[i]."""
    checkpoint_every: int = 10
    """Chunks (of log_every updates) between checkpoints; one is always written at the end."""
    keep_checkpoints: int = 3
    """How many checkpoints to keep."""

    def __post_init__(self) -> None:
        for name in ("seeds", "checkpoint_every", "keep_checkpoints"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def prepare_run_dir(
    out: Path, cfg: TrainConfig, settings: RunSettings, resume: bool, overwrite: bool
) -> None:
    """Create, check (resume) or replace (overwrite) the run directory."""
    out = Path(out)
    if resume and overwrite:
        raise RunError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a directory")
    existing = out.is_dir() and any(out.iterdir())
    if resume:
        if not (out / "config.json").is_file():
            raise RunError(f"cannot resume: {out} has no config.json")
        try:
            saved = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
            saved_run = json.loads((out / "run.json").read_text())
        except (OSError, ValueError) as e:
            raise RunError(f"cannot resume: unreadable run files in {out}: {e}") from None
        diffs = diff_configs(saved, cfg)
        for name in ("seeds", "seed"):
            if saved_run.get(name) != getattr(settings, name):
                diffs.append(f"run.{name}")
        if diffs:
            raise RunError(
                f"cannot resume {out}: the config differs from the saved one in {', '.join(diffs)}"
            )
        return
    if existing:
        if not overwrite:
            raise RunError(
                f"run directory {out} exists; pass --resume to continue it or --overwrite"
            )
        if not (out / "config.json").is_file():
            raise RunError(f"refusing to overwrite {out}: it does not look like a run directory")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "config.json", cfg.to_json())
    _atomic_write(
        out / "run.json",
        json.dumps(
            {"seeds": settings.seeds, "seed": settings.seed, "chunk_updates": cfg.log_every}
        ),
    )
    with open(out / "metrics.csv", "w", newline="") as f:
        csv.writer(f).writerow(METRIC_COLUMNS)


def _read_rows(path: Path, up_to_update: int) -> list[dict]:
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["update"]) <= up_to_update]
    return rows


def _rewrite_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, METRIC_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def frames_to_solve(rows: list[dict], seeds: int, threshold: float) -> list[int | None]:
    """Per seed: frames of the first logged update whose average score > threshold."""
    out: list[int | None] = [None] * seeds
    for r in sorted(rows, key=lambda r: int(r["update"])):
        s = int(r["seed"])
        v = float(r["avg_return_last100"])
        if out[s] is None and math.isfinite(v) and v > threshold:
            out[s] = int(r["frames"])
    return out


def plot_curves(rows: list[dict], seeds: int, title: str, path: Path) -> None:
    """Average score vs frames: mean over seeds and a 95% t-interval band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats as sps

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
    if len(updates):
        with np.errstate(invalid="ignore"):
            n = np.sum(np.isfinite(vals), axis=1)
            mean = np.nanmean(np.where(np.isfinite(vals), vals, np.nan), axis=1)
            sd = np.nanstd(vals, axis=1, ddof=1) if seeds > 1 else np.zeros_like(mean)
            half = np.where(
                n > 1, sps.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1)), 0
            )
        for s in range(seeds):
            ax.plot(x, vals[:, s], color="tab:blue", alpha=0.15, lw=0.8)
        ax.plot(x, mean, color="tab:blue", lw=2, label=f"mean of {seeds} seed(s)")
        if seeds > 1:
            ax.fill_between(
                x,
                mean - half,
                mean + half,
                color="tab:blue",
                alpha=0.25,
                label="95% CI of the mean",
            )
    ax.set_xlabel("frames (env steps, all envs)")
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


def train_run(
    cfg: TrainConfig,
    out: Path,
    settings: RunSettings,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    plot: bool = True,
) -> dict:
    """Run (or resume) a seed-parallel training run into `out`; returns the summary dict."""
    import jax

    from curio_jax.train import make_train

    out = Path(out)
    prepare_run_dir(out, cfg, settings, resume, overwrite)
    train = make_train(cfg)
    keys = jax.random.split(jax.random.key(settings.seed), settings.seeds)
    init = jax.jit(jax.vmap(train.init))
    chunk_len = cfg.log_every

    def chunk_fn(n: int):
        return jax.jit(jax.vmap(lambda s: train.run_chunk(s, n)), donate_argnums=0)

    compiled: dict[int, Any] = {}
    ckpt_dir = out / "checkpoints"
    state = None
    start_update = 0
    compile_s = 0.0
    if resume:
        template = jax.eval_shape(init, keys)
        try:
            found = ckpt.load_latest(ckpt_dir, template, warn=log)
        except ckpt.CheckpointError as e:
            raise RunError(str(e)) from None
        if found is not None:
            start_update, state = found
            log(f"resuming {out} from update {start_update}")
        else:
            log(f"no checkpoint in {out}; starting from scratch")
        rows = _read_rows(out / "metrics.csv", start_update)
        _rewrite_rows(out / "metrics.csv", rows)
    if state is None:
        t0 = time.perf_counter()
        state = init(keys)
        jax.block_until_ready(state)
        compile_s += time.perf_counter() - t0
        start_update = 0

    total = cfg.num_updates
    fpu = cfg.frames_per_update
    update = start_update
    t_start = time.perf_counter()
    steady_s, steady_frames = 0.0, 0
    chunks_done = 0
    csv_file = open(out / "metrics.csv", "a", newline="")  # noqa: SIM115 - closed in finally
    writer = csv.writer(csv_file)
    try:
        while update < total:
            n = min(chunk_len, total - update)
            first_call = n not in compiled
            if first_call:
                compiled[n] = chunk_fn(n)
            t0 = time.perf_counter()
            new_state, metrics = compiled[n](state)
            metrics = jax.device_get(metrics)
            elapsed = time.perf_counter() - t0
            if first_call:  # the first call of each chunk length includes its compilation
                compile_s += elapsed
            else:
                steady_s += elapsed
                steady_frames += n * fpu * settings.seeds
            _check_finite(metrics, new_state, update, log)
            state = new_state
            update += n
            # one logged row per seed at the end of the chunk; losses averaged over the chunk
            for s in range(settings.seeds):
                row = [s, update, update * fpu]
                row.append(float(metrics.avg_return_last100[s, -1]))
                row.append(int(metrics.episodes[s, -1]))
                row += [float(np.mean(getattr(metrics, k)[s])) for k in LOSS_TERMS]
                writer.writerow(row)
            csv_file.flush()
            chunks_done += 1
            if chunks_done % settings.checkpoint_every == 0 or update >= total:
                ckpt.save(ckpt_dir, update, state)
                ckpt.prune(ckpt_dir, settings.keep_checkpoints)
            scores = metrics.avg_return_last100[:, -1]
            fps = steady_frames / steady_s if steady_s > 0 else (n * fpu * settings.seeds) / elapsed
            eta = (total - update) * fpu * settings.seeds / fps if fps > 0 else float("nan")
            score = float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")
            log(
                f"[{100 * update / total:5.1f}%] update {update}/{total}  frames "
                f"{update * fpu:,}/{total * fpu:,}  {fps:,.0f} frames/s  avg score {score:.4f}  "
                f"r_int {float(np.mean(metrics.reward_int_mean[:, -1])):.2e}  ETA {_fmt_time(eta)}"
                + ("  (incl. compile)" if first_call else "")
            )
    finally:
        csv_file.close()
    wall = time.perf_counter() - t_start
    rows = _read_rows(out / "metrics.csv", total)
    solved = frames_to_solve(rows, settings.seeds, cfg.solved_threshold)
    final_scores = _final_scores(rows, settings.seeds)
    frames = total * fpu * settings.seeds
    summary = {
        "preset": cfg.name,
        "impl": "curio_jax",
        "device": _device(),
        "solved_threshold": cfg.solved_threshold,
        "seeds": [
            {"seed": s, "frames_to_solve": solved[s], "final_avg_return_last100": final_scores[s]}
            for s in range(settings.seeds)
        ],
        "frames": frames,
        "frames_per_seed": total * fpu,
        "seconds": wall,
        "frames_per_sec": (steady_frames / steady_s) if steady_s > 0 else frames / max(wall, 1e-9),
        "compile_seconds": compile_s,
    }
    _atomic_write(out / "summary.json", json.dumps(summary, indent=2))
    if plot:
        try:
            plot_curves(
                rows, settings.seeds, f"{cfg.name} ({settings.seeds} seeds)", out / "curves.png"
            )
        except ImportError:
            log("matplotlib not installed: skipped curves.png (pip install 'curio_jax[plot]')")
    return summary


def _device() -> str:
    from curio_jax.bench import device_description

    return device_description()


def _final_scores(rows: list[dict], seeds: int) -> list[float | None]:
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


def _check_finite(metrics: Any, state: Any, update: int, log: Callable[[str], None]) -> None:
    """Stop on a non-finite loss term or parameter, naming the first update and term."""
    for name in LOSS_TERMS:
        arr = np.asarray(getattr(metrics, name))  # [seeds, n]
        bad = ~np.isfinite(arr)
        if bad.any():
            seed, idx = (int(i[0]) for i in np.nonzero(bad))
            raise NonFiniteError(
                f"non-finite {name} at update {update + idx + 1} (seed {seed}); the run stopped, "
                "the last good checkpoint is kept"
            )
    import jax

    for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
        if not np.all(np.isfinite(np.asarray(leaf))):
            raise NonFiniteError(
                f"non-finite parameter {jax.tree_util.keystr(path)} after update "
                f"{update + 1}..{update + np.asarray(metrics.loss_total).shape[-1]}; the run "
                "stopped, the last good checkpoint is kept"
            )
