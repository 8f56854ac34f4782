"""`curio-jax study run`: the slices of a study that have no record yet, one program each.

Each slice trains into its own run directory under the work folder (outside the repository,
``runs/studies/<study>/<arm>/<slice>`` by default), resuming from its checkpoints when that
directory is still there, as `curio-jax train --resume` would (`curio_jax.run.rundir.
resolve_settings`); when it ends, its record goes into the study's folder
(`curio_jax.analysis.records`). With a time limit, a slice whose measured (earlier records of
its arm) or estimated (the spec's ``frames_per_sec``) rate says it cannot finish in the time
left is not started.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from curio_jax.analysis import records
from curio_jax.run import loop, rundir
from curio_jax.run.errors import RunError
from curio_jax.run.files import atomic_write
from curio_jax.run.loggers import Callback, Progress
from curio_jax.study.spec import Slice, StudySpec


@dataclass
class Outcome:
    """What `run_study` did with one slice."""

    slice: Slice
    status: str  # "recorded" (already), "ran", "same" (rerun, same record), "skipped" (time)
    message: str = ""


def work_dir_of(spec: StudySpec, work: str | Path | None) -> Path:
    return Path(work) if work is not None else Path("runs") / "studies" / spec.name


def slice_dir(spec: StudySpec, work: Path, s: Slice, again: bool = False) -> Path:
    """The slice's run directory (``again``: the one of a rerun that checks a record)."""
    return work / s.arm.name / (f"{s.name}-again" if again else s.name)


def measured_rate(spec: StudySpec, s: Slice) -> tuple[float, float] | None:
    """(frames per second, compile seconds) of the slice's arm, from its records (medians),
    or None when none is recorded yet."""
    rates, compiles = [], []
    for other in s.arm.slices:
        p = spec.record_path(other)
        if not p.is_file():
            continue
        try:
            prov = records.read_record(p).get("provenance", {})
        except records.RecordError:
            continue
        fps = prov.get("frames_per_sec")
        if isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0:
            rates.append(float(fps))
            c = prov.get("compile_seconds")
            compiles.append(float(c) if isinstance(c, (int, float)) else 0.0)
    if not rates:
        return None
    return statistics.median(rates), statistics.median(compiles)


def frames_left(s: Slice, out: Path) -> int:
    """Frames the slice still has to train (all its seeds): its budget less what its run
    directory has logged (a resumed run goes on from its last checkpoint, at or before that)."""
    cfg = s.arm.cfg
    per_seed = cfg.num_updates * cfg.frames_per_update
    done = 0
    try:
        rows = rundir.read_rows(out / "metrics.csv")
        last: dict[str, int] = {}
        for r in rows:
            last[r["seed"]] = max(last.get(r["seed"], 0), int(r["frames"]))
        if len(last) == s.seeds:
            done = min(last.values())
    except (OSError, KeyError, ValueError):
        done = 0
    return max(per_seed - done, 0) * s.seeds


def estimate_seconds(spec: StudySpec, s: Slice, out: Path) -> tuple[float, str] | None:
    """Seconds the slice needs and how that was found, or None when nothing says."""
    frames = frames_left(s, out)
    measured = measured_rate(spec, s)
    if measured is not None:
        fps, compile_s = measured
        return frames / fps + compile_s, f"{fps:,.0f} frames/s measured on its arm's records"
    if s.arm.frames_per_sec is not None:
        fps = s.arm.frames_per_sec
        return frames / fps, f"{fps:,.0f} frames/s estimated in the spec"
    return None


def _train_slice(
    spec: StudySpec,
    s: Slice,
    out: Path,
    progress: Progress,
    callbacks: Sequence[Callback],
    tensorboard: bool,
) -> dict:
    """Train (or resume) the slice's run directory to its end; its summary."""
    cfg = s.arm.cfg
    resume = (out / "config.json").is_file()
    saved_run = None
    if resume:
        _, saved_run = rundir.read_saved_run(out)
    settings = rundir.resolve_settings(
        saved_run,
        seeds=s.seeds,
        seed=s.seed,
        checkpoint_every=s.arm.checkpoint_every,
        stop_when_solved=s.arm.stop_when_solved,
        tensorboard=tensorboard,
    )
    try:
        return loop.train_run(
            cfg,
            out,
            settings,
            resume=resume,
            progress=progress,
            plot=False,
            callbacks=callbacks,
        )
    except RunError as e:
        if resume:
            raise RunError(
                f"{s.id}: its run directory {out} cannot be resumed as the spec says ({e}); "
                "remove it to start the slice again"
            ) from None
        raise


def run_slice(
    spec: StudySpec,
    s: Slice,
    work: Path,
    progress: Progress,
    callbacks: Sequence[Callback] = (),
    tensorboard: bool = False,
    again: bool = False,
) -> tuple[dict, bool]:
    """Run one slice and write its record: (the record, whether it was written; False: an
    identical record was there). RecordError when a different record is there (the new one
    is left in the run directory as record.json). ``again``: in a run directory of its own
    (`slice_dir`), so that a recorded slice is really trained again."""
    out = slice_dir(spec, work, s, again)
    out.parent.mkdir(parents=True, exist_ok=True)
    _train_slice(spec, s, out, progress, callbacks, tensorboard)
    rec = records.record_from_run_dir(out, spec.name, s.arm.name, s.name)
    atomic_write(out / "record.json", json.dumps(rec, indent=1) + "\n")
    try:
        written = records.write_record(spec.record_path(s), rec)
    except records.RecordError as e:
        raise records.RecordError(f"{e} (the new record: {out / 'record.json'})") from None
    return rec, written


def run_study(
    spec: StudySpec,
    work: str | Path | None = None,
    *,
    max_minutes: float | None = None,
    only: Slice | None = None,
    again: bool = False,
    progress: Progress | None = None,
    callbacks: Sequence[Callback] = (),
    tensorboard: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> list[Outcome]:
    """Run the study's slices that have no record (or just ``only``), in spec order, each as
    one program, and record each. ``again``: rerun recorded slices too and check that they
    give the same record (a different one is refused, the stored one kept). ``max_minutes``:
    start no slice that cannot finish in the time left (by its arm's measured rate or the
    spec's estimate; one with neither is started). Raises RecordError, RunError, RunFailure."""
    progress = progress if progress is not None else Progress()
    work = work_dir_of(spec, work)
    deadline = None if max_minutes is None else clock() + 60.0 * max_minutes
    outcomes: list[Outcome] = []
    for s in [only] if only is not None else spec.slices:
        recorded = spec.record_path(s).is_file()
        if recorded and not again:
            records.read_record(spec.record_path(s))  # a corrupt record is refused, not rerun
            outcomes.append(Outcome(s, "recorded"))
            continue
        out = slice_dir(spec, work, s, again and recorded)
        if deadline is not None:
            left = deadline - clock()
            need = estimate_seconds(spec, s, out)
            if need is not None and need[0] > left:
                msg = (
                    f"not starting {s.id}: it needs about {need[0] / 60:.1f} min ({need[1]}), "
                    f"{max(left, 0) / 60:.1f} min left"
                )
                progress.info(msg)
                outcomes.append(Outcome(s, "skipped", msg))
                continue
            if need is None:
                progress.info(f"{s.id}: no rate measured or estimated yet; starting it")
        progress.info(f"{spec.name}: slice {s.id} ({s.seeds} seed(s) from base seed {s.seed})")
        _, written = run_slice(
            spec, s, work, progress, callbacks, tensorboard, again=again and recorded
        )
        status = "ran" if written else "same"
        where = spec.record_path(s)
        progress.info(
            f"recorded {s.id} -> {where}"
            if written
            else f"{s.id}: the same record as the stored {where}"
        )
        outcomes.append(Outcome(s, status))
    return outcomes


def describe(outcomes: list[Outcome]) -> str:
    """One line: how many slices ran, were recorded already, were skipped."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    names = {
        "ran": "ran",
        "same": "reran with the same record",
        "recorded": "recorded before",
        "skipped": "not started (time)",
    }
    return ", ".join(f"{n} {names[k]}" for k, n in counts.items())
