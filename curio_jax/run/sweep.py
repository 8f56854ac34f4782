"""Hyperparameter sweeps in one compiled program (`curio-jax sweep`).

A grid over the traced coefficients of :class:`curio_jax.core.train.Hyperparams` times N seeds runs
as one compiled program: the coefficients are leaves of the learner state, so every grid point
shares the code and the whole sweep compiles once. Grid point ``g`` with seed ``s`` uses the
same PRNG key as seed ``s`` of ``curio-jax train --seed BASE --seeds N`` on that point's
configuration.

Two batchings, both compiled once:
- default: one compiled program for a batch of N seeds, called once per grid point per chunk
  on that point's state (the coefficients are inputs, not constants). Each point runs exactly
  the program and shapes of a plain N-seed run, so its results are bit-identical to that run
  on CPU. (A ``lax.map`` over grid points inside one program would be bit-identical too, but
  it made XLA's CPU compile 5x slower: 105 s against 20 s for a 2-point RND sweep.)
- ``--vmap-grid``: grid points and seeds form one ``vmap``-ed batch (grid-major): more parallel
  work per call, for accelerators. On CPU the results then equal the single runs only to float
  rounding: XLA's CPU reductions are not invariant to the batch size (a row sum of a
  ``[8, 64, 7]`` array differs in the last bit from the same rows inside ``[24, 64, 7]``), so
  no batching that changes the batch size can be bit-identical.

Sweepable names (short or dotted spelling): the fields of
:class:`curio_jax.core.hparams.Hyperparams` (`curio_jax.core.hparams.describe()` lists them).

Everything else (num_envs, rollout_size, network sizes, RND on/off, the correction switches,
the env size) changes array shapes or the program itself; sweeping it is refused with a message
that says to run separate ``curio-jax train`` calls (one program each).

Output, under DIR::

    sweep.json        the base config, the grid, seeds, base seed and each point's directory
    checkpoints/      the whole sweep's learner state (one batch: grid points x seeds)
    .lock             held while a process runs the sweep
    <point>/          one run directory per grid point (config.json with the point's values,
                      run.json, metrics.csv, summary.json, curves.png, tb/), readable by
                      ``curio-jax compare``; <point> is e.g. ``adv_coef_ext=1.0,lr=0.001``
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curio_jax.config import RENAMED, TrainConfig, diff_configs
from curio_jax.core.hparams import Hyperparams, applies, sweepable
from curio_jax.parallel.sharding import is_primary
from curio_jax.run.errors import RunError
from curio_jax.run.loggers import Callback, Progress
from curio_jax.run.loop import RunGroup, StateHook, check_layout, run_groups
from curio_jax.run.rundir import (
    DirLock,
    RunSettings,
    atomic_write,
    claim_directory,
    write_run_files,
)


def _by_dotted() -> dict[str, str]:
    """Dotted config field -> short name of every sweepable coefficient."""
    return {v: k for k, v in sweepable().items()}


class SweepError(RunError):
    """A sweep request that cannot be honoured (exit status 2)."""


@dataclass(frozen=True)
class Axis:
    """One swept name and its values, in the order given."""

    name: str  # short name (a field of curio_jax.core.hparams.Hyperparams)
    values: tuple[float, ...]


def _untraceable_message(name: str, cfg: TrainConfig) -> str:
    if name in _flat_names(cfg.to_dict(complete=True)):
        why = (
            "it is not a traced value (it changes array shapes or the program itself), so the "
            "grid could not share one compiled program; run one `curio-jax train` per value "
            "instead"
        )
    else:
        why = "it is not a config field"
    return f"cannot sweep {name!r}: {why}. Sweepable: {', '.join(sweepable())}"


def _flat_names(d: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in d.items():
        name = f"{prefix}{k}"
        out.add(name)
        if isinstance(v, dict):
            out |= _flat_names(v, name + ".")
    return out


def parse_set(text: str, cfg: TrainConfig) -> Axis:
    """``NAME=V1,V2,...`` -> Axis (SweepError naming the problem)."""
    if "=" not in text:
        raise SweepError(f"--set expects NAME=V1,V2,..., got {text!r}")
    raw_name, raw_values = text.split("=", 1)
    raw_name = raw_name.strip()
    name = (
        raw_name if raw_name in sweepable() else _by_dotted().get(RENAMED.get(raw_name, raw_name))
    )
    if name is None:
        raise SweepError(_untraceable_message(raw_name, cfg))
    if not applies(name, cfg):
        meta = Hyperparams.__dataclass_fields__[name].metadata
        if meta["algorithm"] not in (None, cfg.algorithm):
            raise SweepError(
                f"cannot sweep {raw_name!r}: only algorithm={meta['algorithm']} uses it, and "
                f"this config's algorithm is {cfg.algorithm}"
            )
        raise SweepError(
            f"cannot sweep {raw_name!r}: only bonus.kind={'/'.join(meta['bonus'])} uses it, "
            f"and this config's bonus.kind is {cfg.bonus.kind}"
        )
    if name == "update_proportion" and cfg.ppo.bonus_sample == "subset":
        raise SweepError(
            f"cannot sweep {raw_name!r} with ppo.bonus_sample=subset: there it fixes how many "
            "samples of each minibatch the predictor trains on, an array size one program "
            "cannot vary; sweep it with ppo.bonus_sample=mask (the Bernoulli draw, the same "
            "expected gradient), or run one config per value"
        )
    values: list[float] = []
    for part in raw_values.split(","):
        try:
            v = float(part)
        except ValueError:
            raise SweepError(f"--set {raw_name}: {part.strip()!r} is not a number") from None
        if not math.isfinite(v):
            raise SweepError(f"--set {raw_name}: values must be finite, got {part.strip()!r}")
        values.append(v)
    if len(set(values)) != len(values):
        raise SweepError(f"--set {raw_name}: repeated value in {raw_values!r}")
    return Axis(name=name, values=tuple(values))


def grid(axes: list[Axis]) -> list[dict[str, float]]:
    """The cartesian product of the axes, first axis slowest: [{short name: value}, ...]."""
    if not axes:
        raise SweepError("a sweep needs at least one --set NAME=V1,V2,...")
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SweepError(f"--set {dup} is given more than once")
    return [
        dict(zip(names, vals, strict=True)) for vals in itertools.product(*(a.values for a in axes))
    ]


def point_dir_name(point: dict[str, float]) -> str:
    """Directory name of a grid point: ``name=value`` joined by commas, in axis order."""
    return ",".join(f"{k}={v!r}" for k, v in point.items())


def point_config(cfg: TrainConfig, point: dict[str, float]) -> TrainConfig:
    """The base config with a grid point's values (validated; SweepError naming the field)."""
    try:
        fields = sweepable()
        return cfg.with_overrides({fields[k]: v for k, v in point.items()})
    except ValueError as e:
        raise SweepError(f"grid point {point_dir_name(point)}: {e}") from None


def check_traced_only(base: TrainConfig, cfgs: list[TrainConfig]) -> None:
    """Every grid config must differ from the base only in sweepable fields (they share one
    compiled program)."""

    for c in cfgs:
        other = [n for n in diff_configs(base, c) if n not in _by_dotted()]
        if other:
            raise SweepError(f"grid configs differ in untraceable fields: {', '.join(other)}")


@dataclass(frozen=True)
class SweepPlan:
    cfg: TrainConfig  # base (program) config
    axes: tuple[Axis, ...]
    points: tuple[dict[str, float], ...]
    configs: tuple[TrainConfig, ...]

    @classmethod
    def build(cls, cfg: TrainConfig, axes: list[Axis]) -> SweepPlan:
        points = grid(axes)
        configs = [point_config(cfg, p) for p in points]
        check_traced_only(cfg, configs)
        return cls(cfg=cfg, axes=tuple(axes), points=tuple(points), configs=tuple(configs))

    def groups(self, out: Path) -> list[RunGroup]:
        return [
            RunGroup(out=out / point_dir_name(p), cfg=c, label=point_dir_name(p))
            for p, c in zip(self.points, self.configs, strict=True)
        ]

    def to_dict(self, settings: RunSettings, vmap_grid: bool) -> dict[str, Any]:
        return {
            "vmap_grid": vmap_grid,
            "config": self.cfg.to_dict(),
            "axes": [{"name": a.name, "values": list(a.values)} for a in self.axes],
            "points": [{"dir": point_dir_name(p), "values": p} for p in self.points],
            "seeds": settings.seeds,
            "seed": settings.seed,
            "checkpoint_every": settings.checkpoint_every,
            "keep_checkpoints": settings.keep_checkpoints,
            **({"stop_when_solved": True} if settings.stop_when_solved else {}),
        }


def read_saved_sweep(out: Path) -> dict[str, Any]:
    """sweep.json of an existing sweep directory (SweepError if absent or unreadable)."""
    path = Path(out) / "sweep.json"
    if not path.is_file():
        raise SweepError(f"cannot resume: {out} has no sweep.json (not a sweep directory)")
    try:
        saved = json.loads(path.read_text())
        saved_plan(saved)  # the config and axes parse
        int(saved["seeds"]), int(saved["seed"])
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise SweepError(f"cannot resume: unreadable {path}: {e}") from None
    return saved


def saved_plan(saved: dict[str, Any]) -> tuple[TrainConfig, list[Axis]]:
    """The base config and axes recorded in a sweep.json."""
    cfg = TrainConfig.from_dict(saved["config"])
    axes = [Axis(a["name"], tuple(float(v) for v in a["values"])) for a in saved["axes"]]
    return cfg, axes


def _prepare(
    out: Path,
    plan: SweepPlan,
    settings: RunSettings,
    resume: bool,
    overwrite: bool,
    vmap_grid: bool,
) -> DirLock:
    """Create (fresh), check (resume) or replace (overwrite) the sweep directory and lock it."""
    if resume and overwrite:
        raise SweepError("--resume and --overwrite exclude each other")
    if out.exists() and not out.is_dir():
        raise SweepError(f"{out} exists and is not a directory")
    record = plan.to_dict(settings, vmap_grid)
    if resume:
        saved = read_saved_sweep(out)
        keys = ("axes", "seeds", "seed", "vmap_grid")
        diffs = [k for k in keys if json.dumps(saved.get(k)) != json.dumps(record[k])]
        # the config by value: a sweep.json written before a config field existed lacks it
        # (its default applies) and still resumes
        changed = diff_configs(saved_plan(saved)[0], plan.cfg)
        if changed:
            diffs.insert(0, f"config ({', '.join(changed)})")
        if diffs:
            raise SweepError(
                f"cannot resume {out}: the sweep differs from the saved one in {', '.join(diffs)}; "
                "pass the original options, or only --resume --out DIR"
            )
        return DirLock(out)
    lock = claim_directory(out, "sweep.json", "sweep directory", overwrite, SweepError)
    for group in plan.groups(out):
        group.out.mkdir(exist_ok=True)
        run = {"seeds": settings.seeds, "seed": settings.seed, "sweep": str(out)}
        write_run_files(group.out, group.cfg, run)
    atomic_write(out / "sweep.json", json.dumps(record, indent=2))
    return lock


def sweep_run(
    cfg: TrainConfig,
    axes: list[Axis],
    out: Path,
    settings: RunSettings,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    plot: bool = True,
    vmap_grid: bool = False,
    callbacks: Sequence[Callback] = (),
    state_hook: StateHook | None = None,
) -> list[dict]:
    """Run (or resume) a sweep of ``axes`` x ``settings.seeds`` seeds of ``cfg`` as one program
    into ``out``; returns the summary dict of each grid point (grid order).

    ``vmap_grid=False`` (default): one compiled program for N seeds, called per grid point, so
    each point is bit-identical on CPU to ``curio-jax train`` of its config.
    ``vmap_grid=True``: grid points and seeds form one vmapped batch (more parallel work per
    step, for accelerators); equal to single runs only to float rounding, because XLA's CPU
    reductions are not invariant to the batch size."""
    progress = progress if progress is not None else Progress()
    plan = SweepPlan.build(cfg, axes)
    out = Path(out)
    primary = is_primary()
    n_points = len(plan.points)
    check_layout(cfg, settings.seeds * (n_points if vmap_grid and n_points > 1 else 1), settings)
    lock = _prepare(out, plan, settings, resume, overwrite, vmap_grid) if primary else None
    try:
        return run_groups(
            cfg,
            out,
            settings,
            plan.groups(out),
            resume,
            progress,
            plot,
            vmap_groups=vmap_grid,
            callbacks=callbacks,
            state_hook=state_hook,
        )
    finally:
        progress.end()
        if lock is not None:
            lock.release()
