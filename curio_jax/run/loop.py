"""The host loop of `curio-jax train` (the one impure part of a run; never called under jit).

It drives the jitted, seed-vmapped chunk ``Train.run_chunk`` (``cfg.log_every`` updates per
call, compiled ahead of time so compilation is timed apart from training), and between chunks
does all I/O: one `metrics.csv` row per seed, TensorBoard scalars, a progress line, and every
``checkpoint_every`` chunks (and at the end) an atomic checkpoint of the full learner state.
Memory does not grow with run length: per-update metrics leave the device once per chunk and
only the logged rows are kept (on disk).

Run directory (see shared/docs/interface.md):
  config.json    the TrainConfig
  run.json       seeds, base seed, chunk size, checkpoint settings
  metrics.csv    one row per logged update (end of a chunk) per seed: avg_return_last100 and
                 episodes at that update; loss terms, reward_int_mean and gradient norms are
                 means over the chunk's updates
  summary.json   per seed: frames_to_solve (or null), final avg_return_last100; run totals
  checkpoints/   ckpt_<update>.npz, the full seed-batched LearnerState (curio_jax.run.checkpoint)
  curves.png     average score vs frames (mean and 95% band over seeds)
  tb/seed_<i>/   TensorBoard event files, when tensorboardX (or torch + tensorboard) is installed
  .lock          held (flock) while a process trains into the directory

Resuming (``resume=True``): the newest readable checkpoint is restored (unreadable newer ones are
renamed to ``*.corrupt`` and reported; nothing is deleted), metrics.csv is cut back to the
checkpoint's update, TensorBoard events after it are purged, and the run continues. Because
every chunk boundary and every compiled program is the same, a killed and resumed run ends
bit-identical (on CPU) to the uninterrupted run: same final state, same metrics.csv, same
per-seed summary. Resuming a run that is already complete only rewrites summary.json and
curves.png. A config (or seed count / base seed) that differs from the saved one is refused,
naming the differing fields.

Timing in summary.json after a resume: ``seconds``, ``compile_seconds`` and ``frames_per_sec``
add up the segments (sessions) of the run as recorded in the checkpoint they continued from;
work done after the last checkpoint of a killed session is not counted (it is redone), each
segment pays its own compilation, and ``segments`` says how many sessions contributed.

Failures: a non-finite loss term (per update) or parameter (at the end of each chunk) stops the
run with :class:`NonFiniteError` naming the update, the term and the seed, before anything of
that chunk is written, so the last checkpoint is the last good state.

Test-only hooks (environment variables, read by :func:`train_run`; never set them otherwise):
  CURIO_JAX_TEST_POISON_UPDATE=N       set one parameter to NaN at the end of the chunk that
                                       contains update N (exercises the non-finite path)
  CURIO_JAX_TEST_PAUSE_AFTER_UPDATE=N  after the chunk ending at update N is fully written,
                                       print a marker line and sleep (a test then kills it)
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from curio_jax.config import TrainConfig, diff_configs, seed_batch_size
from curio_jax.parallel.sharding import is_primary as shd_is_primary
from curio_jax.run import checkpoint as ckpt

TEST_POISON_ENV = "CURIO_JAX_TEST_POISON_UPDATE"
TEST_PAUSE_ENV = "CURIO_JAX_TEST_PAUSE_AFTER_UPDATE"

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

TENSORBOARD_NAMES = {
    "avg_return_last100": "episode/avg_return_last100",
    "episodes": "episode/count",
    "loss_total": "loss/total",
    "loss_policy": "loss/policy",
    "loss_value_ext": "loss/value_ext",
    "loss_value_int": "loss/value_int",
    "entropy": "loss/entropy",
    "loss_rnd": "rnd/loss",
    "reward_int_mean": "rnd/reward_int_mean",
    "grad_norm_ac": "grad/norm_ac",
    "grad_norm_rnd": "grad/norm_rnd",
}
_RND_ONLY = ("loss_value_int", "loss_rnd", "reward_int_mean", "grad_norm_rnd")


class RunError(Exception):
    """A request that cannot be carried out as asked (existing directory, config mismatch, ...);
    the CLI reports it as one line with exit status 2."""


class RunFailure(Exception):
    """The run could not go on (unreadable checkpoints, non-finite values); exit status 1."""


class NonFiniteError(RunFailure):
    """A loss term or parameter became NaN/inf; the last good checkpoint is kept."""


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
    """How many of the newest checkpoints to keep (older ones are deleted once a kept one reads
    back intact)."""
    tensorboard: bool = True
    """Write TensorBoard event files when a writer is installed."""
    devices: int | None = None
    """Devices the batch is spread over (default: every visible device, over all processes)."""
    env_shards: int = 1
    """Devices per agent: each seed's envs are split over this many devices
    (curio_jax.parallel.sharding)."""

    def __post_init__(self) -> None:
        for name in ("seeds", "checkpoint_every", "keep_checkpoints", "env_shards"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        d = self.devices
        if d is not None and (not isinstance(d, int) or isinstance(d, bool) or d < 1):
            raise ValueError(f"devices must be a positive integer, got {d!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")


# --------------------------------------------------------------------------- console


class Progress:
    """Console output of a run: on a terminal the per-chunk progress is one line rewritten in
    place; otherwise (a log file, a pipe) every update of it is a plain line."""

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None):
        self.stream = stream if stream is not None else sys.stdout
        if tty is None:
            try:
                tty = self.stream.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = bool(tty)
        self._open = False

    def update(self, text: str) -> None:
        if self.tty:
            width = max(20, shutil.get_terminal_size().columns - 1)
            self.stream.write("\r" + text[:width] + "\x1b[K")
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def info(self, text: str) -> None:
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Finish the in-place line (if any) so the next output starts on a fresh line."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def _fmt_time(s: float) -> str:
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"


def progress_line(
    update: int,
    total: int,
    frames_per_update: int,
    frames_per_sec: float,
    score: float,
    reward_int: float,
    eta_seconds: float,
    checkpointed: bool = False,
) -> str:
    """One progress line: frames (per seed), throughput (all seeds), ETA, average score over
    seeds, intrinsic reward (most important first: a terminal cuts the line at its width)."""
    score_s = f"{score:.3f}" if math.isfinite(score) else "n/a"
    return (
        f"[{100 * update / total:5.1f}%] frames {update * frames_per_update:,}/"
        f"{total * frames_per_update:,} | {frames_per_sec:,.0f} frames/s | ETA "
        f"{_fmt_time(eta_seconds)} | avg score {score_s} | r_int {reward_int:.2e} | update "
        f"{update}/{total}" + (" | checkpoint" if checkpointed else "")
    )


# --------------------------------------------------------------------------- run directory


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _Lock:
    """An exclusive flock on DIR/.lock for the lifetime of a run (released by the kernel when
    the process dies, so a killed run never leaves a stale lock)."""

    def __init__(self, directory: Path):
        self.file = None
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            return
        f = open(directory / ".lock", "a+")  # noqa: SIM115 - kept open while the run lasts
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise RunError(f"run directory {directory} is in use by another process") from None
        self.file = f

    def release(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def read_saved_run(out: Path) -> tuple[TrainConfig, dict]:
    """The saved TrainConfig and run.json of an existing run directory (RunError if absent or
    unreadable)."""
    out = Path(out)
    if not out.is_dir():
        raise RunError(f"cannot resume: there is no run directory {out}")
    if not (out / "config.json").is_file():
        raise RunError(f"cannot resume: {out} has no config.json (not a run directory)")
    try:
        cfg = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
        run = json.loads((out / "run.json").read_text())
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise RunError(f"cannot resume: unreadable run files in {out}: {e}") from None
    ok = isinstance(run, dict) and all(
        isinstance(run.get(k), int) and run[k] >= 0 for k in ("seeds", "seed")
    )
    if not ok:
        raise RunError(f"cannot resume: {out / 'run.json'} lacks integer seeds and seed")
    return cfg, run


def _dotted(d: dict, name: str) -> Any:
    for part in name.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def claim_directory(
    out: Path, marker: str, what: str, overwrite: bool, error: type[Exception]
) -> _Lock:
    """Create `out` (a fresh run or sweep directory) and lock it. An existing non-empty one is
    replaced only with `overwrite`, only if it holds `marker` (it is one of ours) and only when
    no other process holds its lock; otherwise `error` is raised and nothing is touched."""
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise error(
                f"{what} {out} exists; continue it with --resume or replace it with --overwrite"
            )
        if not (out / marker).is_file():
            raise error(f"refusing to overwrite {out}: it does not look like a {what}")
        _Lock(out).release()  # refuses while another process uses it
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"cannot create {what} {out}: {e.strerror or e}") from None
    return _Lock(out)


def prepare_run_dir(
    out: Path, cfg: TrainConfig, settings: RunSettings, resume: bool, overwrite: bool
) -> _Lock:
    """Create (fresh), check (resume) or replace (overwrite) the run directory and lock it.
    Raises RunError, leaving everything untouched, when the request cannot be honoured."""
    out = Path(out)
    if resume and overwrite:
        raise RunError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a directory")
    if resume:
        saved, saved_run = read_saved_run(out)
        diffs = [
            f"{n} (saved {_dotted(saved.to_dict(), n)!r}, given {_dotted(cfg.to_dict(), n)!r})"
            for n in diff_configs(saved, cfg)
        ]
        for name in ("seeds", "seed"):
            if saved_run.get(name) != getattr(settings, name):
                diffs.append(
                    f"run.{name} (saved {saved_run.get(name)!r}, given {getattr(settings, name)!r})"
                )
        if diffs:
            raise RunError(
                f"cannot resume {out}: the config differs from the saved one in "
                f"{'; '.join(diffs)}; pass the original options, or only --resume --out DIR"
            )
        return _Lock(out)
    lock = claim_directory(out, "config.json", "run directory", overwrite, RunError)
    _atomic_write(out / "config.json", cfg.to_json())
    run = {
        "seeds": settings.seeds,
        "seed": settings.seed,
        "chunk_updates": cfg.log_every,
        "checkpoint_every": settings.checkpoint_every,
        "keep_checkpoints": settings.keep_checkpoints,
    }
    _atomic_write(out / "run.json", json.dumps(run, indent=2))
    _write_rows(out / "metrics.csv", [])
    return lock


# --------------------------------------------------------------------------- metrics.csv


def _write_rows(path: Path, rows: list[list[str]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(METRIC_COLUMNS)
        w.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def logged_updates(total: int, chunk: int) -> list[int]:
    """The updates that get a metrics row: the end of every chunk."""
    return [*range(chunk, total, chunk), total]


def truncate_metrics(
    path: Path, up_to: int, seeds: int, expected: list[int], log=print
) -> list[list[str]]:
    """Cut metrics.csv back to the rows of updates <= `up_to` (the checkpoint a run resumes
    from), dropping rows that are incomplete (a write cut short) or duplicated; the kept rows
    are rewritten verbatim, ordered by (update, seed). Warns about missing rows."""
    kept: dict[tuple[int, int], list[str]] = {}
    if path.is_file():
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is not None and tuple(header) != METRIC_COLUMNS:
                raise RunError(f"cannot resume: {path} does not have the expected columns")
            for rec in reader:
                if len(rec) != len(METRIC_COLUMNS):
                    continue
                try:
                    seed, update = int(rec[0]), int(rec[1])
                    [float(v) for v in rec[2:]]
                except ValueError:
                    continue
                if 0 <= seed < seeds and update <= up_to:
                    kept.setdefault((update, seed), rec)
    else:
        log(f"warning: {path} was missing; recreated it")
    missing = [(u, s) for u in expected if u <= up_to for s in range(seeds) if (u, s) not in kept]
    if missing:
        u, s = missing[0]
        log(
            f"warning: {path.name} lacks {len(missing)} row(s) up to update {up_to} (first: "
            f"update {u}, seed {s}); they cannot be recomputed"
        )
    rows = [kept[k] for k in sorted(kept)]
    _write_rows(path, rows)
    return rows


def read_rows(path: Path) -> list[dict]:
    """The rows of metrics.csv as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


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


# --------------------------------------------------------------------------- plot


def plot_curves(rows: list[dict], seeds: int, title: str, path: Path) -> None:
    """Average score vs frames: every seed, the mean over seeds and a 95% band of the mean
    (Student t; normal approximation when scipy is absent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        from scipy import stats as sps

        t_quantile = lambda df: sps.t.ppf(0.975, df)  # noqa: E731
    except ImportError:
        t_quantile = lambda df: np.full_like(np.asarray(df, float), 1.96)  # noqa: E731

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
            half = np.where(n > 1, t_quantile(np.maximum(n - 1, 1)) * sd / np.sqrt(n), 0.0)
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


# --------------------------------------------------------------------------- TensorBoard


def _summary_writer() -> tuple[Any, str]:
    """(SummaryWriter class, its module) or (None, why not)."""
    try:
        from tensorboardX import SummaryWriter

        return SummaryWriter, "tensorboardX"
    except ImportError:
        pass
    except Exception as e:  # a broken install (e.g. protobuf mismatch)
        return None, f"tensorboardX failed to import ({type(e).__name__}: {e})"
    if importlib.util.find_spec("tensorboard") and importlib.util.find_spec("torch"):
        try:
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter, "torch.utils.tensorboard"
        except Exception as e:
            return None, f"torch.utils.tensorboard failed to import ({type(e).__name__}: {e})"
    return None, "neither tensorboardX nor tensorboard is installed"


class _TensorBoard:
    """One event-file writer per seed under DIR/tb/seed_<i>; scalars are stepped by frames per
    seed. On resume, events after the checkpoint (steps >= purge_step) are purged."""

    def __init__(self, writer_cls: Any, directory: Path, seeds: int, purge_step: int | None):
        self.writers = [
            writer_cls(str(directory / f"seed_{s}"), purge_step=purge_step) for s in range(seeds)
        ]

    def write(self, frames: int, per_seed: list[dict[str, float]]) -> None:
        for writer, values in zip(self.writers, per_seed, strict=True):
            for name, v in values.items():
                if math.isfinite(v):
                    writer.add_scalar(TENSORBOARD_NAMES[name], v, global_step=frames)
            writer.flush()

    def close(self) -> None:
        for w in self.writers:
            w.close()


# --------------------------------------------------------------------------- checks, hooks


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise RunError(f"{name} must be an integer, got {raw!r}") from None


def check_finite(
    metrics: Any, params: Any, first_update: int, context: str = "", label: Any = None
) -> None:
    """Raise NonFiniteError at the first non-finite loss term (``metrics``: per-update arrays
    ``[seeds, n]`` for updates ``first_update + 1 ..``) or, if the losses are finite, at the
    first non-finite parameter of ``params`` (leaves ``[seeds, ...]``; NaN parameters would
    have made the next loss NaN, so they appeared at the chunk's last update). ``label(i)``
    names batch entry ``i`` (default ``"seed i"``)."""
    label = label if label is not None else (lambda i: f"seed {i}")
    bad = np.stack([~np.isfinite(np.asarray(getattr(metrics, t))) for t in LOSS_TERMS])
    if bad.any():  # [terms, seeds, n]: earliest update, then term order, then seed
        hits = zip(*(ix.tolist() for ix in np.nonzero(bad)), strict=True)
        t, s, i = min(hits, key=lambda tsi: (tsi[2], tsi[0], tsi[1]))
        value = np.asarray(getattr(metrics, LOSS_TERMS[t]))[s, i]
        raise NonFiniteError(
            f"non-finite {LOSS_TERMS[t]} ({value}) at update {first_update + i + 1} "
            f"({label(s)}); the run stopped{context}"
        )
    import jax

    n = bad.shape[-1]
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        arr = np.asarray(leaf)
        finite = np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1)
        if not finite.all():
            seed = int(np.argmin(finite))
            raise NonFiniteError(
                f"non-finite parameter params{jax.tree_util.keystr(path)} after update "
                f"{first_update + n} ({label(seed)}); the run stopped{context}"
            )


def _poison(params: Any) -> Any:
    """Test hook: NaN into the first element of seed 0 of the first parameter leaf."""
    import jax

    leaves, treedef = jax.tree_util.tree_flatten(params)
    first = leaves[0]
    leaves[0] = first.at[(0,) * first.ndim].set(np.nan)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _strong(tree: Any) -> Any:
    """Drop weak typing from every leaf, so a fresh state and one restored from a checkpoint
    have identical avals (and therefore run the identical compiled program)."""
    import jax

    def f(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return x
        return jax.lax.convert_element_type(x, x.dtype)

    return jax.tree.map(f, tree)


@dataclass
class _Clock:
    """Run totals carried across segments in the checkpoint metadata."""

    seconds: float = 0.0
    compile_seconds: float = 0.0
    steady_seconds: float = 0.0
    steady_frames: int = 0
    segments: int = 0

    @classmethod
    def from_meta(cls, meta: dict) -> _Clock:
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


# --------------------------------------------------------------------------- the run


def train_run(
    cfg: TrainConfig,
    out: Path,
    settings: RunSettings,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    plot: bool = True,
) -> dict:
    """Run (or resume) a seed-parallel training run into `out`; returns the summary dict.

    Raises RunError (nothing changed) for requests that cannot be honoured, RunFailure /
    NonFiniteError when the run cannot go on (the last good checkpoint is kept)."""
    progress = progress if progress is not None else Progress()
    poison_at, pause_at = _env_int(TEST_POISON_ENV), _env_int(TEST_PAUSE_ENV)
    out = Path(out)
    primary = shd_is_primary()
    check_layout(cfg, settings.seeds, settings)
    lock = prepare_run_dir(out, cfg, settings, resume, overwrite) if primary else None
    try:
        return _train(cfg, out, settings, resume, progress, plot, poison_at, pause_at)[0]
    finally:
        progress.end()
        if lock is not None:
            lock.release()


def check_layout(cfg: TrainConfig, batch: int, settings: RunSettings) -> None:
    """RunError, before anything is written, when the ``batch`` learner states one program
    runs do not fit the devices (curio_jax.parallel.sharding) or ``cfg.a2c.seed_batch`` cannot split
    them; ``_train`` builds the same layout again."""
    import jax

    from curio_jax.parallel import sharding as shd

    try:
        layout = shd.make_layout(batch, cfg.a2c.num_envs, settings.devices, settings.env_shards)
        seed_batch_size(cfg.a2c, batch, jax.default_backend(), layout.devices)
    except (shd.ShardingError, ValueError) as e:
        raise RunError(str(e)) from None


@dataclass(frozen=True)
class RunGroup:
    """The seeds of one configuration inside a program that may hold several (a sweep), and the
    run directory their metrics rows, summary.json and curves.png go to. Every group of a
    program shares the compiled code; only its traced ``Hyperparams`` differ."""

    out: Path
    cfg: TrainConfig
    label: str = ""
    """How errors and progress name the group ("" for a plain run)."""


def _seed_label(groups: list[RunGroup], seeds: int, index: int) -> str:
    g, s = divmod(index, seeds)
    label = groups[g].label
    return f"{label}, seed {s}" if label else f"seed {s}"


def _train(
    cfg: TrainConfig,
    out: Path,
    settings: RunSettings,
    resume: bool,
    progress: Progress,
    plot: bool,
    poison_at: int | None,
    pause_at: int | None,
    groups: list[RunGroup] | None = None,
    vmap_groups: bool = False,
) -> list[dict]:
    """The host loop. ``out`` holds the checkpoints (and, for a plain run, everything else);
    ``groups`` (default: one group, ``cfg`` into ``out``) are laid out group-major along the
    batch axis of the state, ``settings.seeds`` each, every group with the same seed keys.

    Several groups share one compiled program, either (default) called once per group on that
    group's seed-vmapped state, so every group computes with exactly the program and shapes of
    a plain run of its seeds and is bit-identical to it on CPU, or, with ``vmap_groups``, as one
    vmapped batch of groups x seeds (more parallel work per call, e.g. for a GPU; XLA's CPU
    reductions depend on the batch size, so the results then equal a plain run only to float
    rounding)."""
    import jax

    from curio_jax.core.train import Hyperparams, make_train, seed_loop
    from curio_jax.parallel import sharding as shd

    t_segment = time.perf_counter()
    primary = shd.is_primary()
    if not primary:  # only process 0 writes files or prints
        plot, progress = False, Progress(stream=open(os.devnull, "w"), tty=False)  # noqa: SIM115
    groups = groups if groups is not None else [RunGroup(out, cfg)]
    total, chunk, fpu, seeds = cfg.num_updates, cfg.log_every, cfg.frames_per_update, settings.seeds
    batch = len(groups) * seeds
    # the state lives in `parts`, each a batch the compiled programs take whole
    parts = 1 if len(groups) == 1 or vmap_groups else len(groups)
    part_size = batch // parts
    try:
        layout = shd.make_layout(part_size, cfg.a2c.num_envs, settings.devices, settings.env_shards)
    except shd.ShardingError as e:
        raise RunError(str(e)) from None
    what = f"{seeds} seed(s)" if len(groups) == 1 else f"{len(groups)} configs x {seeds} seed(s)"
    progress.info(
        f"{cfg.name}: {what} x {cfg.a2c.num_envs} envs, {total} updates of {fpu} "
        f"frames in chunks of {chunk} on {layout.describe()} -> {out}"
    )
    train = make_train(cfg)
    train.sample_sharding = shd.sample_sharding(layout)
    try:
        seed_batch = seed_batch_size(cfg.a2c, part_size, jax.default_backend(), layout.devices)
    except ValueError as e:
        raise RunError(str(e)) from None
    # host-side inputs (identical on every process): raw key data and the coefficients
    seed_keys = jax.random.split(jax.random.key(settings.seed), seeds)
    key_impl = jax.random.key_impl(seed_keys)
    keys = np.concatenate([np.asarray(jax.random.key_data(seed_keys))] * len(groups))
    hparams = jax.device_get(
        jax.tree.map(
            lambda *xs: jax.numpy.stack(xs),
            *[Hyperparams.from_config(g.cfg) for g in groups for _ in range(seeds)],
        )
    )
    vmap = (lambda f: jax.vmap(f, spmd_axis_name=shd.SEED)) if layout.mesh else jax.vmap

    def init_fn(k: Any, h: Any) -> Any:
        return _strong(vmap(train.init)(jax.random.wrap_key_data(k, impl=key_impl), h))

    def part(tree: Any, p: int) -> Any:
        return jax.tree.map(lambda x: x[p * part_size : (p + 1) * part_size], tree)

    abstract = jax.eval_shape(init_fn, keys, hparams)  # the whole batch (checkpoint layout)
    abstract_part = jax.eval_shape(init_fn, part(keys, 0), part(hparams, 0))
    state_sh = shd.state_shardings(abstract_part, layout)
    init = jax.jit(init_fn) if state_sh is None else jax.jit(init_fn, out_shardings=state_sh)
    ckpt_dir = out / "checkpoints"

    def to_host(states: list[Any]) -> Any:
        hosts = [shd.to_host(s) for s in states]  # collective in a multi-process run
        return hosts[0] if parts == 1 else jax.tree.map(_concat, *hosts)

    clock, states, start = _Clock(), None, 0
    if resume:
        restored = _restore(ckpt_dir, abstract, total, out, progress)
        if restored is not None:
            start, clock = restored.update, _Clock.from_meta(restored.meta)
            _check_hparams(restored.state.hparams, hparams, groups, seeds)
            states = [shd.place(part(restored.state, p), state_sh) for p in range(parts)]
        if primary:
            for g in groups:
                truncate_metrics(
                    g.out / "metrics.csv", start, seeds, logged_updates(total, chunk), progress.info
                )
    extra = {
        "devices": layout.devices,
        "env_shards": layout.env_shards,
        "micro_batch": train.update_micro_batch(),  # as resolved on this backend
        "seed_batch": seed_batch,
    }
    if start >= total:  # already complete: only summary.json and curves.png are rewritten
        return _summaries(groups, seeds, clock, progress, plot, primary, extra)

    last_ckpt = f"checkpoint update {start}" if states is not None else "no checkpoint yet"
    clock.segments += 1
    base_seconds = clock.seconds
    purge = start * fpu + 1 if resume else None
    tbs = [_open_tensorboard(settings, g.out, purge, progress) if primary else None for g in groups]
    if states is None:
        t0 = time.perf_counter()
        compiled_init = init.lower(part(keys, 0), part(hparams, 0)).compile()
        clock.compile_seconds += time.perf_counter() - t0
        states = [compiled_init(part(keys, p), part(hparams, p)) for p in range(parts)]
    compiled: dict[int, Any] = {}
    update, seg_frames, seg_seconds = start, 0, 0.0
    if primary:
        csv_files = [open(g.out / "metrics.csv", "a", newline="") for g in groups]  # noqa: SIM115
    else:
        csv_files = [open(os.devnull, "w") for _ in groups]  # noqa: SIM115
    writers = [csv.writer(f) for f in csv_files]
    try:
        while update < total:
            n = min(chunk, total - update)
            if n not in compiled:  # ahead-of-time, so compilation is timed apart
                t0 = time.perf_counter()
                step = seed_loop(vmap(lambda s, n=n: train.run_chunk(s, n)), part_size, seed_batch)
                if state_sh is None:
                    jitted = jax.jit(step, donate_argnums=0)
                else:
                    metrics_abs = jax.eval_shape(step, abstract_part)[1]
                    jitted = jax.jit(
                        step,
                        donate_argnums=0,
                        in_shardings=(state_sh,),
                        out_shardings=(state_sh, shd.batch_shardings(metrics_abs, layout)),
                    )
                compiled[n] = jitted.lower(states[0]).compile()
                clock.compile_seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            part_metrics = []
            for p in range(parts):
                states[p], m = compiled[n](states[p])
                part_metrics.append(m)
            host = [shd.to_host(m) for m in part_metrics]
            metrics = host[0] if parts == 1 else jax.tree.map(_concat, *host)
            seg_seconds += time.perf_counter() - t0
            seg_frames += n * fpu * batch
            if poison_at is not None and update < poison_at <= update + n:
                states[0] = states[0].replace(params=_poison(states[0].params))
            where = f"; the last good state is kept ({last_ckpt}) in {ckpt_dir}"
            check_finite(
                metrics,
                to_host([s.params for s in states]),
                update,
                where,
                label=lambda i: _seed_label(groups, seeds, i),
            )
            update += n

            per_seed = _chunk_values(metrics, batch)
            for g, (group, writer) in enumerate(zip(groups, writers, strict=True)):
                mine = per_seed[g * seeds : (g + 1) * seeds]
                for s, values in enumerate(mine):
                    writer.writerow([s, update, update * fpu, *values.values()])
                csv_files[g].flush()
                if tbs[g] is not None:
                    drop = () if group.cfg.rnd.enabled else _RND_ONLY
                    tbs[g].write(
                        update * fpu, [{k: v for k, v in d.items() if k not in drop} for d in mine]
                    )

            # every checkpoint_every-th chunk of the run (not of this session) and the last
            saved = (update // chunk) % settings.checkpoint_every == 0 or update >= total
            if saved:
                host_state = to_host(states)
                clock.seconds = base_seconds + time.perf_counter() - t_segment
                clock.steady_seconds += seg_seconds
                clock.steady_frames += seg_frames
                seg_seconds, seg_frames = 0.0, 0
                if primary:
                    for f in csv_files:  # rows up to the checkpoint survive a power cut
                        os.fsync(f.fileno())
                    ckpt.save(ckpt_dir, update, host_state, meta=clock.meta())
                    ckpt.prune(ckpt_dir, settings.keep_checkpoints)
                del host_state
                last_ckpt = f"checkpoint update {update}"

            fps = (clock.steady_frames + seg_frames) / max(clock.steady_seconds + seg_seconds, 1e-9)
            scores = np.array([v["avg_return_last100"] for v in per_seed])
            progress.update(
                progress_line(
                    update,
                    total,
                    fpu,
                    fps,
                    float(np.mean(scores[np.isfinite(scores)]))
                    if np.isfinite(scores).any()
                    else math.nan,
                    float(np.mean(metrics.reward_int_mean[:, -1])),
                    (total - update) * fpu * batch / fps,
                    saved,
                )
            )
            if pause_at is not None and update == pause_at:
                progress.info(f"test hook: paused after update {update}")
                time.sleep(300)
    except KeyboardInterrupt:
        again = "sweep" if len(groups) > 1 else "train"
        progress.info(
            f"interrupted at update {update}; the last good state is {last_ckpt}; continue with: "
            f"curio-jax {again} --resume --out {out}"
        )
        raise
    finally:
        for f in csv_files:
            f.close()
        for tb in tbs:
            if tb is not None:
                tb.close()
    progress.end()
    return _summaries(groups, seeds, clock, progress, plot, primary, extra)


def _concat(*xs: Any) -> Any:
    """Host arrays of the parts, joined along the batch axis (typed PRNG keys included)."""
    import jax

    if jax.dtypes.issubdtype(xs[0].dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(xs[0])
        data = np.concatenate([np.asarray(jax.random.key_data(x)) for x in xs])
        return jax.random.wrap_key_data(data, impl=impl)
    return np.concatenate([np.asarray(x) for x in xs])


def _summaries(
    groups: list[RunGroup],
    seeds: int,
    clock: _Clock,
    progress: Progress,
    plot: bool,
    primary: bool,
    extra: dict,
) -> list[dict]:
    """Each group's summary.json (written by process 0 only; other processes get {})."""
    if not primary:
        return [{} for _ in groups]
    return [_write_summary(g.cfg, g.out, seeds, clock, progress, plot, extra) for g in groups]


def _check_hparams(saved: Any, expected: Any, groups: list[RunGroup], seeds: int) -> None:
    """A restored state must carry the hyperparameters its groups' configs give (a checkpoint
    copied between runs would otherwise continue under the wrong values)."""
    import jax

    for name in type(saved).__dataclass_fields__:
        a = np.asarray(jax.device_get(getattr(saved, name)))
        b = np.asarray(jax.device_get(getattr(expected, name)))
        if a.shape != b.shape or not np.array_equal(a, b):
            bad = int(np.argmax(a != b)) if a.shape == b.shape else 0
            raise RunFailure(
                f"the checkpoint's {name} ({a.reshape(-1)[bad]!r} for "
                f"{_seed_label(groups, seeds, bad)}) differs from the config's "
                f"({b.reshape(-1)[bad]!r}); it belongs to another run"
            )


def _restore(
    ckpt_dir: Path, template: Any, total: int, out: Path, progress: Progress
) -> ckpt.Restored | None:
    """The newest good checkpoint of a run being resumed (None: start from update 0)."""

    def same_update(r: ckpt.Restored) -> None:
        done = np.asarray(r.state.update)
        if r.update > total or not np.all(done == r.update):
            raise ckpt.CheckpointError(f"{r.path.name} holds update {done}, not {r.update}")

    try:
        restored = ckpt.restore_latest(ckpt_dir, template, log=progress.info, validate=same_update)
    except ckpt.CheckpointError as e:
        raise RunFailure(f"cannot resume {out}: {e}") from None
    if restored is None:
        progress.info(f"no checkpoint in {out} yet: starting from update 0")
    else:
        progress.info(f"resuming from {restored.path.name} (update {restored.update}/{total})")
    return restored


def _open_tensorboard(
    settings: RunSettings, out: Path, purge_step: int | None, progress: Progress
) -> _TensorBoard | None:
    if not settings.tensorboard:
        return None
    writer_cls, where = _summary_writer()
    if writer_cls is None:
        progress.info(f"TensorBoard logging off: {where} (pip install 'curio_jax[tensorboard]')")
        return None
    return _TensorBoard(writer_cls, out / "tb", settings.seeds, purge_step)


def _chunk_values(metrics: Any, seeds: int) -> list[dict[str, float]]:
    """Per seed, the logged values of a chunk (METRIC_COLUMNS order after seed/update/frames):
    the score and episode count at its last update, the other terms averaged over it."""
    out = []
    for s in range(seeds):
        values = {
            "avg_return_last100": float(metrics.avg_return_last100[s, -1]),
            "episodes": int(metrics.episodes[s, -1]),
        }
        values.update({k: float(np.mean(getattr(metrics, k)[s])) for k in LOSS_TERMS})
        out.append(values)
    return out


def _write_summary(
    cfg: TrainConfig,
    out: Path,
    seeds: int,
    clock: _Clock,
    progress: Progress,
    plot: bool,
    extra: dict | None = None,
) -> dict:
    """summary.json (and curves.png) from metrics.csv and the run totals of the final
    checkpoint."""
    rows = read_rows(out / "metrics.csv")
    solved = frames_to_solve(rows, seeds, cfg.solved_threshold)
    finals = final_scores(rows, seeds)
    frames = cfg.num_updates * cfg.frames_per_update * seeds
    summary = {
        "preset": cfg.name,
        "impl": "curio_jax",
        "device": _device(),
        "solved_threshold": cfg.solved_threshold,
        "seeds": [
            {"seed": s, "frames_to_solve": solved[s], "final_avg_return_last100": finals[s]}
            for s in range(seeds)
        ],
        "frames": frames,
        "frames_per_seed": cfg.num_updates * cfg.frames_per_update,
        "updates": cfg.num_updates,
        "seconds": clock.seconds,
        "frames_per_sec": (
            clock.steady_frames / clock.steady_seconds
            if clock.steady_seconds > 0
            else frames / max(clock.seconds, 1e-9)
        ),
        "compile_seconds": clock.compile_seconds,
        "segments": clock.segments,
        **(extra or {}),
    }
    _atomic_write(out / "summary.json", json.dumps(summary, indent=2))
    if plot:
        try:
            plot_curves(rows, seeds, f"{cfg.name} ({seeds} seeds)", out / "curves.png")
        except ImportError:
            progress.info(
                "matplotlib is not installed: skipped curves.png (pip install matplotlib)"
            )
    return summary


def _device() -> str:
    from curio_jax.tools.bench import device_description

    return device_description()
