"""The run directory: its files, its lock, atomic writes and `metrics.csv` (see docs/rundir.md).

config.json    the TrainConfig
run.json       seeds, base seed, chunk size, checkpoint settings
metrics.csv    one row per logged update (end of a chunk) per seed, columns by name
               (curio_jax.core.metrics)
summary.json   per seed: frames_to_solve (or null), final avg_return_last100; run totals
checkpoints/   ckpt_<update>.npz, the full seed-batched learner state
curves.png     average score vs frames (mean and 95% band over seeds)
tb/seed_<i>/   TensorBoard event files (optional)
.lock          held (flock) while a process trains into the directory
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curio_jax.config import TrainConfig, diff_configs
from curio_jax.core.metrics import metric_columns
from curio_jax.run.errors import RunError
from curio_jax.run.files import atomic_file, atomic_write


class DirLock:
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
    stop_when_solved: bool = False
    """End the run at the first chunk after which every seed has logged an average score above
    its config's ``solved_threshold`` (the seeds share one program, so the run stops for all of
    them at once); summary.json then says ``stops_at_solve`` and the updates done."""

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
        if not isinstance(self.stop_when_solved, bool):
            raise ValueError(f"stop_when_solved must be a bool, got {self.stop_when_solved!r}")


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


RESUMED_SETTINGS = ("seeds", "seed", "checkpoint_every", "keep_checkpoints", "stop_when_solved")
"""The RunSettings fields a resumed run takes from its run.json unless they are given."""


def resolve_settings(saved_run: dict | None = None, **given: Any) -> RunSettings:
    """The RunSettings of a run from ``given`` (RunSettings fields by name). A field of
    RESUMED_SETTINGS given as None (or not given) is the saved run.json's when ``saved_run``
    (a run being resumed, `read_saved_run`) records it, else RunSettings' default; so
    `curio-jax train --resume`, `curio_jax.train_run(resume=True)` and `curio-jax study run`
    continue a run with the seeds, base seed, checkpoint cadence and stop-at-solve it started
    with. ValueError for an invalid value."""
    unknown = sorted(set(given) - set(RunSettings.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown run setting(s): {', '.join(unknown)}")
    saved = saved_run or {}
    values = {k: v for k, v in given.items() if v is not None}
    for name in RESUMED_SETTINGS:
        if name not in values and name in saved:
            values[name] = saved[name]
    if "stop_when_solved" in values:
        values["stop_when_solved"] = bool(values["stop_when_solved"])
    return RunSettings(**values)


def _dotted(d: dict, name: str) -> Any:
    for part in name.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def claim_directory(
    out: Path, marker: str, what: str, overwrite: bool, error: type[Exception]
) -> DirLock:
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
        DirLock(out).release()  # refuses while another process uses it
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"cannot create {what} {out}: {e.strerror or e}") from None
    return DirLock(out)


def run_record(cfg: TrainConfig, settings: RunSettings, **extra: Any) -> dict:
    """The contents of run.json."""
    return {
        "seeds": settings.seeds,
        "seed": settings.seed,
        "chunk_updates": cfg.log_every,
        "checkpoint_every": settings.checkpoint_every,
        "keep_checkpoints": settings.keep_checkpoints,
        # only when set, so run.json of other runs keeps its earlier contents
        **({"stop_when_solved": True} if settings.stop_when_solved else {}),
        **extra,
    }


def write_run_files(out: Path, cfg: TrainConfig, run: dict) -> None:
    """config.json, run.json and an empty metrics.csv of a new run directory."""
    atomic_write(out / "config.json", cfg.to_json())
    atomic_write(out / "run.json", json.dumps(run, indent=2))
    MetricsCSV(out / "metrics.csv").rewrite([])


def prepare_run_dir(
    out: Path,
    cfg: TrainConfig,
    settings: RunSettings,
    resume: bool,
    overwrite: bool,
    extra: dict | None = None,
    extend: bool = False,
) -> DirLock:
    """Create (fresh), check (resume) or replace (overwrite) the run directory and lock it;
    `extra` goes into a fresh run.json. ``extend`` (with resume): `cfg` may have a larger
    total_frames than the saved config, and the run goes on to it (`extend_run`). Raises
    RunError, leaving everything untouched, when the request cannot be honoured."""
    out = Path(out)
    if resume and overwrite:
        raise RunError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a directory")
    if extend and not resume:
        raise RunError("--extend continues a saved run: it needs --resume")
    if resume:
        saved, saved_run = read_saved_run(out)
        given = cfg
        if extend:
            _check_extension(out, saved, cfg)
            given = cfg.with_overrides({"total_frames": saved.total_frames})
        was, now = saved.to_dict(complete=True), given.to_dict(complete=True)
        diffs = [
            f"{n} (saved {_dotted(was, n)!r}, given {_dotted(now, n)!r})"
            for n in diff_configs(saved, given)
        ]
        for name in ("seeds", "seed"):
            if saved_run.get(name) != getattr(settings, name):
                diffs.append(
                    f"run.{name} (saved {saved_run.get(name)!r}, given {getattr(settings, name)!r})"
                )
        if diffs:
            more = ""
            if not extend and list(diff_configs(saved, cfg)) == ["total_frames"]:
                more = " (to train on past the saved budget, add --extend)"
            raise RunError(
                f"cannot resume {out}: the config differs from the saved one in "
                f"{'; '.join(diffs)}; pass the original options, or only --resume --out DIR" + more
            )
        lock = DirLock(out)
        if extend:
            try:
                extend_run(out, saved, cfg, saved_run)
            except BaseException:
                lock.release()
                raise
        return lock
    lock = claim_directory(out, "config.json", "run directory", overwrite, RunError)
    write_run_files(out, cfg, run_record(cfg, settings, **(extra or {})))
    return lock


def _check_extension(out: Path, saved: TrainConfig, cfg: TrainConfig) -> None:
    if cfg.num_updates <= saved.num_updates:
        raise RunError(
            f"cannot extend {out}: --extend needs a --total-frames above the saved budget "
            f"({saved.num_updates * saved.frames_per_update} frames per seed), got "
            f"{cfg.total_frames}"
        )
    if saved.budget_shapes_learning:
        raise RunError(
            f"cannot extend {out}: its learning rate is annealed over its budget (ppo.anneal_lr),"
            " so a longer budget would change every update already done; start a new run"
        )


def extend_run(out: Path, saved: TrainConfig, cfg: TrainConfig, saved_run: dict) -> None:
    """Give a saved run the larger budget of `cfg`: config.json gets it, run.json records the
    extension under "extended", and the summary.json of the budget reached so far is kept as
    summary_<frames per seed>.json (the run's new summary.json is written when it ends)."""
    done = saved.num_updates * saved.frames_per_update
    old = out / "summary.json"
    kept = out / f"summary_{done}.json"
    if old.is_file():
        if kept.exists():
            raise RunError(f"cannot extend {out}: {kept.name} is in the way")
        os.replace(old, kept)
    step = {"from_total_frames": saved.total_frames, "to_total_frames": cfg.total_frames}
    record = {**saved_run, "extended": [*saved_run.get("extended", []), step]}
    atomic_write(out / "run.json", json.dumps(record, indent=2))
    atomic_write(out / "config.json", cfg.to_json())


# --------------------------------------------------------------------------- metrics.csv


def logged_updates(total: int, chunk: int) -> list[int]:
    """The updates that get a metrics row: the end of every chunk."""
    return [*range(chunk, total, chunk), total]


class MetricsCSV:
    """metrics.csv: a header of :func:`curio_jax.core.metrics.metric_columns`, rows written by
    column name (a row missing a column is an error, never a shifted line)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.columns = metric_columns()
        self._file: Any = None
        self._writer: Any = None

    def _check(self, row: dict) -> None:
        if set(row) != set(self.columns):
            missing = sorted(set(self.columns) - set(row))
            extra = sorted(set(row) - set(self.columns))
            raise ValueError(
                f"metrics row does not fit the columns: missing {missing}, extra {extra}"
            )

    def rewrite(self, rows: list[dict]) -> None:
        """Replace the file with the header and `rows` (atomically)."""
        with atomic_file(self.path, newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            for row in rows:
                self._check(row)
                w.writerow(row)

    def open(self) -> MetricsCSV:
        """Open for appending rows (`append`), until `close`."""
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 - closed by close()
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
        return self

    def append(self, rows: list[dict]) -> None:
        for row in rows:
            self._check(row)
            self._writer.writerow(row)
        self._file.flush()

    def sync(self) -> None:
        """Make the rows written so far durable (before a checkpoint that refers to them)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def truncate(self, up_to: int, seeds: int, expected: list[int], log=print) -> None:
        """Cut the file back to the rows of updates <= `up_to` (the checkpoint a run resumes
        from), dropping rows that are incomplete (a write cut short) or duplicated; the kept
        rows are rewritten verbatim, ordered by (update, seed). Warns about missing rows."""
        kept: dict[tuple[int, int], dict] = {}
        if self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header is not None and tuple(header) != self.columns:
                    raise RunError(f"cannot resume: {self.path} does not have the expected columns")
                for rec in reader:
                    if len(rec) != len(self.columns):
                        continue
                    try:
                        seed, update = int(rec[0]), int(rec[1])
                        [float(v) for v in rec[2:]]
                    except ValueError:
                        continue
                    if 0 <= seed < seeds and update <= up_to:
                        kept.setdefault((update, seed), dict(zip(self.columns, rec, strict=True)))
        else:
            log(f"warning: {self.path} was missing; recreated it")
        missing = [
            (u, s) for u in expected if u <= up_to for s in range(seeds) if (u, s) not in kept
        ]
        if missing:
            u, s = missing[0]
            log(
                f"warning: {self.path.name} lacks {len(missing)} row(s) up to update {up_to} "
                f"(first: update {u}, seed {s}); they cannot be recomputed"
            )
        self.rewrite([kept[k] for k in sorted(kept)])


def read_rows(path: Path) -> list[dict]:
    """The rows of a metrics.csv as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
