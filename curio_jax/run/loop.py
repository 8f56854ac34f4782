"""The host run loop of `curio-jax train` and `curio-jax sweep` (never called under jit).

It drives the compiled, seed-batched chunk program (:class:`curio_jax.parallel.program.
SeedProgram`, ``cfg.log_every`` updates per call, compiled ahead of time so compilation is
timed apart) and between chunks does all I/O through small parts: the metrics rows
(:class:`curio_jax.run.rundir.MetricsCSV`), a checkpoint every ``checkpoint_every`` chunks and
at the end (:mod:`curio_jax.run.checkpoint`), then the callbacks (TensorBoard, the progress
line and whatever the caller passes, :mod:`curio_jax.run.loggers`). Memory does not grow with
run length: per-update metrics leave the device once per chunk and only the logged rows are
kept (on disk). The run-directory format is in docs/rundir.md.

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

Extension points (tests use them to inject faults and pauses): ``callbacks`` run after every
chunk (:class:`curio_jax.run.loggers.Callback`); ``state_hook(update, states) -> states`` may
replace the device states right after a chunk, before they are checked and saved.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from curio_jax.config import TrainConfig, seed_batch_size
from curio_jax.core.metrics import averaged_names, chunk_rows
from curio_jax.parallel import sharding as shd
from curio_jax.parallel.program import SeedProgram, seed_keys, stacked_hparams
from curio_jax.run import checkpoint as ckpt
from curio_jax.run.errors import NonFiniteError, RunError, RunFailure
from curio_jax.run.loggers import (
    Callback,
    Chunk,
    CSVLogger,
    GroupTensorBoard,
    Progress,
    ProgressLogger,
    open_tensorboard,
)
from curio_jax.run.params import (
    AgentWeights,
    ParamsError,
    check_weights,
    has_rnd_networks,
    with_weights,
)
from curio_jax.run.rundir import (
    MetricsCSV,
    RunSettings,
    logged_updates,
    prepare_run_dir,
    read_rows,
)
from curio_jax.run.summary import RunClock, frames_to_solve, write_summary

StateHook = Callable[[int, list[Any]], list[Any]]


@dataclass(frozen=True)
class RunGroup:
    """The seeds of one configuration inside a program that may hold several (a sweep), and the
    run directory their metrics rows, summary.json and curves.png go to. Every group of a
    program shares the compiled code; only its traced ``Hyperparams`` differ."""

    out: Path
    cfg: TrainConfig
    label: str = ""
    """How errors and progress name the group ("" for a plain run)."""


def train_run(
    cfg: TrainConfig,
    out: Path,
    settings: RunSettings,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    plot: bool = True,
    callbacks: Sequence[Callback] = (),
    state_hook: StateHook | None = None,
    init_from: AgentWeights | None = None,
    extend: bool = False,
) -> dict:
    """Run (or resume) a seed-parallel training run into `out`; returns the summary dict.
    ``init_from``: every seed of a fresh run starts from these networks (optimiser and the
    rest fresh); a resumed run continues from its checkpoint and ignores it. ``extend`` (with
    ``resume``): `cfg` has a larger budget than the saved run, which goes on to it.

    Raises RunError (nothing changed) for requests that cannot be honoured, RunFailure /
    NonFiniteError when the run cannot go on (the last good checkpoint is kept)."""
    progress = progress if progress is not None else Progress()
    out = Path(out)
    check_layout(cfg, settings.seeds, settings)
    extra = {}
    if init_from is not None and not resume:
        try:
            check_weights(cfg, init_from)
        except ParamsError as e:
            raise RunError(f"--init-from: {e}") from None
        extra["init_from"] = init_from.description
    primary = shd.is_primary()
    lock = (
        prepare_run_dir(out, cfg, settings, resume, overwrite, extra, extend) if primary else None
    )
    try:
        groups = [RunGroup(out, cfg)]
        return run_groups(
            cfg,
            out,
            settings,
            groups,
            resume,
            progress,
            plot,
            False,
            callbacks,
            state_hook,
            None if resume else init_from,
        )[0]
    finally:
        progress.end()
        if lock is not None:
            lock.release()


def check_layout(cfg: TrainConfig, batch: int, settings: RunSettings) -> None:
    """RunError, before anything is written, when the ``batch`` learner states one program
    runs do not fit the devices or ``cfg.train.seed_batch`` cannot split them."""

    try:
        layout = shd.make_layout(batch, cfg.train.num_envs, settings.devices, settings.env_shards)
        seed_batch_size(cfg.train, batch, jax.default_backend(), layout.devices)
    except (shd.ShardingError, ValueError) as e:
        raise RunError(str(e)) from None


def check_finite(
    metrics: Any, params: Any, first_update: int, context: str = "", label: Any = None
) -> None:
    """Raise NonFiniteError at the first non-finite averaged metric (``metrics``: per-update
    arrays ``[seeds, n]`` for updates ``first_update + 1 ..``) or, if those are finite, at the
    first non-finite parameter of ``params`` (leaves ``[seeds, ...]``; NaN parameters would
    have made the next loss NaN, so they appeared at the chunk's last update). ``label(i)``
    names batch entry ``i`` (default ``"seed i"``)."""
    label = label if label is not None else (lambda i: f"seed {i}")
    terms = averaged_names()
    bad = np.stack([~np.isfinite(np.asarray(getattr(metrics, t))) for t in terms])
    if bad.any():  # [terms, seeds, n]: earliest update, then term order, then seed
        hits = zip(*(ix.tolist() for ix in np.nonzero(bad)), strict=True)
        t, s, i = min(hits, key=lambda tsi: (tsi[2], tsi[0], tsi[1]))
        value = np.asarray(getattr(metrics, terms[t]))[s, i]
        raise NonFiniteError(
            f"non-finite {terms[t]} ({value}) at update {first_update + i + 1} "
            f"({label(s)}); the run stopped{context}"
        )
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


def _seed_label(groups: list[RunGroup], seeds: int, index: int) -> str:
    g, s = divmod(index, seeds)
    label = groups[g].label
    return f"{label}, seed {s}" if label else f"seed {s}"


def _concat(*xs: Any) -> Any:
    """Host arrays of the parts, joined along the batch axis (typed PRNG keys included)."""
    if jax.dtypes.issubdtype(xs[0].dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(xs[0])
        data = np.concatenate([np.asarray(jax.random.key_data(x)) for x in xs])
        return jax.random.wrap_key_data(data, impl=impl)
    return np.concatenate([np.asarray(x) for x in xs])


@dataclass(frozen=True)
class _Batch:
    """The learner states of one program (groups x seeds, group-major) and how they are held:
    ``parts`` pieces of ``part_size`` states, each of which the compiled program takes whole
    (one piece per group unless the groups are vmapped together, or there is one group)."""

    program: SeedProgram
    parts: int
    part_size: int
    keys: Any  # PRNG key data [batch, ...]: every group gets the same seed keys
    hparams: Any  # stacked Hyperparams [batch]

    def part(self, tree: Any, p: int) -> Any:
        """Piece ``p`` of a batch-leading tree."""
        return jax.tree.map(lambda x: x[p * self.part_size : (p + 1) * self.part_size], tree)

    def to_host(self, states: list[Any]) -> Any:
        """The pieces' states (or any per-piece trees) as one host tree of the whole batch."""
        hosts = [shd.to_host(s) for s in states]  # collective in a multi-process run
        return hosts[0] if self.parts == 1 else jax.tree.map(_concat, *hosts)

    def place(self, host: Any) -> list[Any]:
        """A whole-batch host state split into device pieces."""
        return [
            self.program.place(
                self.part(host, p), self.part(self.keys, p), self.part(self.hparams, p)
            )
            for p in range(self.parts)
        ]

    def init(self) -> list[Any]:
        """Fresh learner states, one per piece."""
        return [
            self.program.init(self.part(self.keys, p), self.part(self.hparams, p))
            for p in range(self.parts)
        ]


def _build_batch(
    cfg: TrainConfig, settings: RunSettings, groups: list[RunGroup], vmap_groups: bool
) -> _Batch:
    """The program and the layout of its learner states (RunError when the devices cannot
    hold them)."""
    seeds = settings.seeds
    batch = len(groups) * seeds
    parts = 1 if len(groups) == 1 or vmap_groups else len(groups)
    key_data, key_impl = seed_keys(settings.seed, seeds)
    try:
        program = SeedProgram(
            cfg,
            batch // parts,
            devices=settings.devices,
            env_shards=settings.env_shards,
            key_impl=key_impl,
        )
    except (shd.ShardingError, ValueError) as e:
        raise RunError(str(e)) from None
    return _Batch(
        program=program,
        parts=parts,
        part_size=batch // parts,
        keys=np.concatenate([key_data] * len(groups)),
        hparams=stacked_hparams([g.cfg for g in groups for _ in range(seeds)]),
    )


def _resume_state(
    b: _Batch,
    out: Path,
    groups: list[RunGroup],
    seeds: int,
    cfg: TrainConfig,
    progress: Progress,
    primary: bool,
) -> tuple[int, RunClock, list[Any] | None]:
    """Where a resumed run goes on from: (update, clock, device states) of its newest good
    checkpoint, or (0, a fresh clock, None) without one; every group's metrics.csv is cut back
    to that update. RunFailure for a checkpoint of another run."""
    start, clock, states = 0, RunClock(), None
    template = b.program.abstract_state(b.keys, b.hparams)  # the whole batch (checkpoint layout)
    restored = _restore(out / "checkpoints", template, cfg.num_updates, out, progress)
    if restored is not None:
        start, clock = restored.update, RunClock.from_meta(restored.meta)
        _check_hparams(restored.state.hparams, b.hparams, groups, seeds)
        states = b.place(restored.state)
    if primary:
        for g in groups:
            MetricsCSV(g.out / "metrics.csv").truncate(
                start, seeds, logged_updates(cfg.num_updates, cfg.log_every), progress.info
            )
    return start, clock, states


def _fresh_states(
    b: _Batch, cfg: TrainConfig, init_from: AgentWeights | None, progress: Progress
) -> list[Any]:
    """Initial learner states; with ``init_from`` every seed's networks are those weights."""
    states = b.init()
    if init_from is not None:
        host = with_weights(b.to_host(states), init_from, has_rnd_networks(cfg), progress.info)
        states = b.place(host)
        progress.info(f"starting every seed from {init_from.description}")
    return states


def _open_loggers(
    groups: list[RunGroup],
    settings: RunSettings,
    purge: int | None,
    progress: Progress,
    primary: bool,
) -> tuple[CSVLogger | None, GroupTensorBoard]:
    """The metrics.csv writer (process 0 only) and TensorBoard writers of every group
    (``purge``: events from this frame count on are dropped, those of a resumed run's redone
    chunks)."""
    csv_log = CSVLogger([g.out / "metrics.csv" for g in groups]) if primary else None
    tb = GroupTensorBoard(
        [
            open_tensorboard(
                settings.tensorboard,
                g.out,
                settings.seeds,
                purge,
                g.cfg.bonus.enabled,
                progress.info,
            )
            if primary
            else None
            for g in groups
        ]
    )
    return csv_log, tb


def _train_chunk(b: _Batch, states: list[Any], n: int, clock: RunClock, base_compile: float):
    """Run ``n`` updates on every piece (the program compiled ahead of time, so compilation is
    timed apart): (states, host metrics of the whole batch, steady seconds)."""
    compiled = b.program.chunk(states[0], n)
    clock.compile_seconds = base_compile + b.program.compile_seconds
    t0 = time.perf_counter()
    part_metrics = []
    for p in range(b.parts):
        states[p], m = compiled(states[p])
        part_metrics.append(m)
    metrics = b.to_host(part_metrics)
    return states, metrics, time.perf_counter() - t0


def _save_checkpoint(
    ckpt_dir: Path,
    update: int,
    host_state: Any,
    clock: RunClock,
    csv_log: CSVLogger,
    keep: int,
    last_ckpt: str,
) -> None:
    """Write the checkpoint of ``update`` after making the rows up to it durable, then prune
    old ones; RunFailure (the earlier checkpoints kept) when it cannot be written."""
    csv_log.sync()  # rows up to the checkpoint survive a power cut
    try:
        ckpt.save(ckpt_dir, update, host_state, meta=clock.meta())
    except OSError as e:
        raise RunFailure(
            f"cannot write the checkpoint of update {update}: "
            f"{e.strerror or e}; the last good state is {last_ckpt} in "
            f"{ckpt_dir}; free space, then continue with --resume"
        ) from None
    ckpt.prune(ckpt_dir, keep)


def _is_checkpoint_chunk(update: int, cfg: TrainConfig, settings: RunSettings, stopping: bool):
    """Every checkpoint_every-th chunk of the run (not of this session), the last, and a stop."""
    return (
        (update // cfg.log_every) % settings.checkpoint_every == 0
        or update >= cfg.num_updates
        or stopping
    )


def run_groups(
    cfg: TrainConfig,
    out: Path,
    settings: RunSettings,
    groups: list[RunGroup],
    resume: bool,
    progress: Progress,
    plot: bool = True,
    vmap_groups: bool = False,
    callbacks: Sequence[Callback] = (),
    state_hook: StateHook | None = None,
    init_from: AgentWeights | None = None,
) -> list[dict]:
    """The chunk loop. ``out`` holds the checkpoints (and, for a plain run, everything else);
    ``groups`` are laid out group-major along the batch axis of the state, ``settings.seeds``
    each, every group with the same seed keys. The directories must be prepared (and locked)
    by the caller.

    Several groups share one compiled program, either (default) called once per group on that
    group's seed-vmapped state, so every group computes with exactly the program and shapes of
    a plain run of its seeds and is bit-identical to it on CPU, or, with ``vmap_groups``, as one
    vmapped batch of groups x seeds (more parallel work per call, e.g. for a GPU; XLA's CPU
    reductions depend on the batch size, so the results then equal a plain run only to float
    rounding). Returns each group's summary dict.

    The parts: the program and its state layout (`_build_batch`), the resumed state
    (`_resume_state`) or fresh one (`_fresh_states`, with ``init_from``), stop-at-solve
    (`_solved_so_far`, `_solved_in`), the loggers (`_open_loggers`), each chunk
    (`_train_chunk`, then `check_finite`), checkpoints (`_is_checkpoint_chunk`,
    `_save_checkpoint`), and on an interrupt the command that continues the run."""
    t_segment = time.perf_counter()
    primary = shd.is_primary()
    if not primary:  # only process 0 writes files or prints
        plot, progress = False, Progress(stream=open(os.devnull, "w"), tty=False)  # noqa: SIM115
    total, chunk, fpu, seeds = cfg.num_updates, cfg.log_every, cfg.frames_per_update, settings.seeds
    batch = len(groups) * seeds
    b = _build_batch(cfg, settings, groups, vmap_groups)
    what = f"{seeds} seed(s)" if len(groups) == 1 else f"{len(groups)} configs x {seeds} seed(s)"
    progress.info(
        f"{cfg.name}: {what} x {cfg.train.num_envs} envs, {total} updates of {fpu} "
        f"frames in chunks of {chunk} on {b.program.layout.describe()} -> {out}"
    )
    ckpt_dir = out / "checkpoints"

    clock, states, start = RunClock(), None, 0
    if resume:
        start, clock, states = _resume_state(b, out, groups, seeds, cfg, progress, primary)
    extra = {
        "devices": b.program.layout.devices,
        "env_shards": b.program.layout.env_shards,
        "micro_batch": b.program.train.update_micro_batch(),  # as resolved on this backend
        "seed_batch": b.program.seed_batch,
    }
    stop = settings.stop_when_solved
    solved = _solved_so_far(groups, seeds, start) if stop and start > 0 else np.zeros(batch, bool)
    if stop:
        extra["stops_at_solve"] = bool(solved.all()) and start < total
        extra["updates_done"] = start
    if start >= total or (stop and solved.all()):
        # already complete: only summary.json and curves.png are rewritten
        return _summaries(groups, seeds, clock, progress, plot, primary, extra)

    last_ckpt = f"checkpoint update {start}" if states is not None else "no checkpoint yet"
    clock.segments += 1
    base_seconds, base_compile = clock.seconds, clock.compile_seconds
    if states is None:
        states = _fresh_states(b, cfg, init_from, progress)
    purge = start * fpu + 1 if resume else None
    csv_log, tb = _open_loggers(groups, settings, purge, progress, primary)
    after_chunk: list[Callback] = [tb, ProgressLogger(progress), *callbacks]
    update, seg_frames, seg_seconds = start, 0, 0.0
    try:
        while update < total:
            # to the next multiple of the chunk: a run extended from a budget that was not one
            # gets back on the grid of a run started with the larger budget
            n = min(chunk - update % chunk, total - update)
            states, metrics, seconds = _train_chunk(b, states, n, clock, base_compile)
            seg_seconds += seconds
            seg_frames += n * fpu * batch
            if state_hook is not None:
                states = state_hook(update + n, states)
            where = f"; the last good state is kept ({last_ckpt}) in {ckpt_dir}"
            check_finite(
                metrics,
                b.to_host([s.params for s in states]),
                update,
                where,
                label=lambda i: _seed_label(groups, seeds, i),
            )
            update += n

            rows = chunk_rows(metrics, batch)
            by_group = [rows[g * seeds : (g + 1) * seeds] for g in range(len(groups))]
            event = Chunk(update, total, fpu, by_group, False, 0.0, 0.0, last_ckpt)
            if csv_log is not None:
                csv_log.write(event)
            stopping = False
            if stop:
                solved |= _solved_in(rows, groups, seeds)
                stopping = bool(solved.all()) and update < total
                extra["stops_at_solve"] = stopping
                extra["updates_done"] = update

            saved = _is_checkpoint_chunk(update, cfg, settings, stopping)
            if saved:
                host_state = b.to_host(states)
                clock.seconds = base_seconds + time.perf_counter() - t_segment
                clock.steady_seconds += seg_seconds
                clock.steady_frames += seg_frames
                seg_seconds, seg_frames = 0.0, 0
                if primary:
                    _save_checkpoint(
                        ckpt_dir,
                        update,
                        host_state,
                        clock,
                        csv_log,
                        settings.keep_checkpoints,
                        last_ckpt,
                    )
                del host_state
                last_ckpt = f"checkpoint update {update}"

            fps = (clock.steady_frames + seg_frames) / max(clock.steady_seconds + seg_seconds, 1e-9)
            event.checkpointed, event.last_checkpoint = saved, last_ckpt
            event.frames_per_sec = fps
            event.eta_seconds = (total - update) * fpu * batch / fps
            for cb in after_chunk:
                cb.on_chunk(event)
            if stopping:
                progress.end()
                progress.info(
                    f"every seed has solved (average score above its solved threshold) by "
                    f"update {update}/{total}: stopping (stop_when_solved)"
                )
                break
    except KeyboardInterrupt:
        again = "sweep" if len(groups) > 1 else "train"
        progress.info(
            f"interrupted at update {update}; the last good state is {last_ckpt}; continue with: "
            f"curio-jax {again} --resume --out {out}"
        )
        raise
    finally:
        if csv_log is not None:
            csv_log.close()
        tb.close()
    progress.end()
    return _summaries(groups, seeds, clock, progress, plot, primary, extra)


def _solved_in(rows: list[dict], groups: list[RunGroup], seeds: int) -> np.ndarray:
    """Per learner state (group-major): its logged row's average score is above its group's
    solved threshold."""
    out = np.zeros(len(rows), bool)
    for i, row in enumerate(rows):
        v = float(row["avg_return_last100"])
        out[i] = np.isfinite(v) and v > groups[i // seeds].cfg.solved_threshold
    return out


def _solved_so_far(groups: list[RunGroup], seeds: int, start: int) -> np.ndarray:
    """Per learner state: solved at a logged update <= ``start`` (a resumed run that stops when
    solved), from the groups' metrics.csv (every process reads it: the run directory must be
    on a filesystem all processes see)."""
    out = []
    for g in groups:
        rows = [r for r in read_rows(g.out / "metrics.csv") if int(r["update"]) <= start]
        solves = frames_to_solve(rows, seeds, g.cfg.solved_threshold)
        out.extend(s is not None for s in solves)
    return np.asarray(out, bool)


def _summaries(
    groups: list[RunGroup],
    seeds: int,
    clock: RunClock,
    progress: Progress,
    plot: bool,
    primary: bool,
    extra: dict,
) -> list[dict]:
    """Each group's summary.json (written by process 0 only; other processes get {})."""
    if not primary:
        return [{} for _ in groups]
    return [write_summary(g.cfg, g.out, seeds, clock, progress.info, plot, extra) for g in groups]


def _check_hparams(saved: Any, expected: Any, groups: list[RunGroup], seeds: int) -> None:
    """A restored state must carry the hyperparameters its groups' configs give (a checkpoint
    copied between runs would otherwise continue under the wrong values)."""
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
