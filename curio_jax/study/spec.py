"""A study spec: a comparison described as a whole, in TOML (docs/studies.md).

    [study]
    name = "ppo-8x8"
    total_frames = 4_096_000       # frames per seed (default: each preset's budget)
    stop_when_solved = true
    solved_threshold = 0.95        # every arm's solved threshold (default: its preset's)
    thresholds = [0.95]            # the report's compare thresholds (default: solved_threshold)
    metrics = ["entropy"]          # more curves in the report
    seeds = 8                      # per arm (default for the arms)
    slice_seeds = 2                # seeds per slice: one program, one record each
    base_seed = 0

    [[arms]]
    name = "ppo-rnd"
    preset = "ppo-rnd-8x8"
    set = { "rnd.adv_coef_int" = 0.5 }   # any config field, as `train --set`

    [[arms]]
    name = "rnd8-16"
    recorded = "../../docs/results/8x8/ablations_8x8.json:rnd8-16"   # a stand-in, not run

Slice ``k`` of an arm runs ``slice_seeds`` seeds with base seed ``base_seed + k``, as
`curio-jax train --seeds slice_seeds --seed base_seed+k` would, into its own run directory,
and is kept as the record ``records/<arm>/s<k>.json`` next to the spec. Arms of different
``group``s (a tuning sweep and the final arms) must not share base seeds. Every problem is a
`SpecError` whose one-line message names the field.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curio_jax.config import TrainConfig, parse_overrides, preset
from curio_jax.core.metrics import metric_names

STUDY_FIELDS = {
    "name": "the study's name (letters, digits, '.', '_', '-')",
    "description": "one line on what the study asks",
    "total_frames": "frames per seed of every arm (default: each preset's budget)",
    "stop_when_solved": "end each slice once all its seeds have solved (default false)",
    "solved_threshold": "every arm's solved threshold, in [0, 1] (default: its preset's)",
    "thresholds": "the report's compare thresholds, each in [0, 1]",
    "metrics": "metrics.csv columns whose mean curves the report adds",
    "seeds": "seeds per arm",
    "slice_seeds": "seeds per slice (one program, one record)",
    "base_seed": "the base seed of an arm's first slice",
    "group": "the arms' group (arms of different groups must not share seeds)",
    "frames_per_sec": "an estimated rate per slice, before any slice is measured",
    "checkpoint_every": "chunks between checkpoints of a slice's run",
    "n_boot": "bootstrap resamples of the report",
    "set": "config overrides of every arm, {dotted.name = value}",
    "records": "where the records go, relative to the spec (default records)",
    "baseline": "the arm every other arm of its group is tested against (Holm-corrected)",
}
ARM_FIELDS = {
    "name": "the arm's name",
    "preset": "the preset it trains",
    "set": "config overrides, {dotted.name = value}, after the study's",
    "recorded": "FILE.json:LABEL: a run recorded in a compare JSON, reported as a stand-in",
    "tunes": "the arm of another group whose weight this tuning arm is a candidate for",
    **{
        k: STUDY_FIELDS[k]
        for k in (
            "total_frames",
            "solved_threshold",
            "seeds",
            "slice_seeds",
            "base_seed",
            "group",
            "frames_per_sec",
            "checkpoint_every",
            "stop_when_solved",
        )
    },
}
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


class SpecError(ValueError):
    """A study spec that cannot be used (the message is one line and names the field)."""


@dataclass(frozen=True)
class Slice:
    """One program of an arm: ``seeds`` seeds from base seed ``seed``, one record."""

    arm: Arm
    index: int
    seed: int  # base seed

    @property
    def name(self) -> str:
        return f"s{self.index}"

    @property
    def id(self) -> str:
        return f"{self.arm.name}/{self.name}"

    @property
    def seeds(self) -> int:
        return self.arm.slice_seeds


@dataclass(frozen=True)
class Arm:
    name: str
    cfg: TrainConfig | None  # None: a recorded stand-in
    seeds: int = 0
    slice_seeds: int = 0
    base_seed: int = 0
    group: str = "main"
    stop_when_solved: bool = False
    checkpoint_every: int = 10
    frames_per_sec: float | None = None
    recorded: str | None = None  # FILE.json:LABEL, the file resolved against the spec
    recorded_as: str | None = None  # FILE.json:LABEL as the spec writes it
    tunes: str | None = None  # the arm (of another group) this tuning arm is a candidate for

    @property
    def slices(self) -> list[Slice]:
        if self.cfg is None:
            return []
        return [Slice(self, k, self.base_seed + k) for k in range(self.seeds // self.slice_seeds)]

    @property
    def seed_range(self) -> range:
        """The base seeds of its slices."""
        return range(self.base_seed, self.base_seed + len(self.slices))


@dataclass(frozen=True)
class StudySpec:
    path: Path
    name: str
    arms: tuple[Arm, ...]
    description: str = ""
    thresholds: tuple[float | None, ...] = (None,)
    metrics: tuple[str, ...] = ()
    n_boot: int = 2000
    records_dir: Path = field(default=Path("records"))
    baseline: str | None = None  # the arm its group's other arms are tested against

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    @property
    def dir(self) -> Path:
        return self.path.parent

    @property
    def slices(self) -> list[Slice]:
        return [s for a in self.arms for s in a.slices]

    def record_path(self, s: Slice) -> Path:
        return self.records_dir / s.arm.name / f"{s.name}.json"

    def find_slice(self, name: str) -> Slice:
        """A slice by ``ARM/SLICE`` or by its index among all slices (a job array's task id)."""
        slices = self.slices
        if name.isdigit():
            k = int(name)
            if k >= len(slices):
                raise SpecError(f"--slice {name}: the study has {len(slices)} slices (0..)")
            return slices[k]
        for s in slices:
            if s.id == name:
                return s
        raise SpecError(
            f"--slice {name}: no such slice; slices: {', '.join(s.id for s in slices[:6])}"
            + (", ..." if len(slices) > 6 else "")
        )


def _int(where: str, v: Any, low: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise SpecError(f"{where} must be an integer >= {low}, got {v!r}")
    return v


def _bool(where: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise SpecError(f"{where} must be true or false, got {v!r}")
    return v


def _unit(where: str, v: Any) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
        raise SpecError(f"{where} must be a number in [0, 1], got {v!r}")
    return float(v)


def _name(where: str, v: Any) -> str:
    if not isinstance(v, str) or not NAME.match(v):
        raise SpecError(
            f"{where} must be a name of letters, digits, '.', '_' and '-' (it names folders), "
            f"got {v!r}"
        )
    return v


def _overrides(where: str, table: Any) -> dict[str, Any]:
    """A TOML table of overrides, parsed as `train --set KEY=VALUE` parses them."""
    if not isinstance(table, dict):
        raise SpecError(f"{where} must be a table of config fields, {{name = value}}")
    items = []
    for k, v in table.items():
        if isinstance(v, dict):
            raise SpecError(f'{where}: {k} must be a value; write a nested field as "{k}.name"')
        text = ("true" if v else "false") if isinstance(v, bool) else str(v)
        items.append(f"{k}={text}")
    try:
        return parse_overrides(items)
    except ValueError as e:
        raise SpecError(f"{where}: {e}") from None


def _unknown(where: str, table: dict, known: dict) -> None:
    for k in table:
        if k not in known:
            raise SpecError(f"{where}: unknown field {k!r} (fields: {', '.join(known)})")


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec (TOML). SpecError names the first problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SpecError(f"{p}: no such study spec") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{p}: unreadable ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{p}: not valid TOML ({e})") from None
    return parse_spec(data, p)


def parse_spec(data: dict[str, Any], path: Path) -> StudySpec:
    """A study spec from its parsed TOML (``path``: where it is, for relative paths)."""
    w = str(path)
    _unknown(w, data, {"study": 0, "arms": 0})
    study = data.get("study")
    if not isinstance(study, dict):
        raise SpecError(f"{w}: a [study] table is required")
    _unknown(f"{w}: [study]", study, STUDY_FIELDS)
    name = _name(f"{w}: study.name", study.get("name"))
    arms_in = data.get("arms")
    if not isinstance(arms_in, list) or not arms_in:
        raise SpecError(f"{w}: at least one [[arms]] table is required")
    defaults = dict(study)
    thresholds: tuple[float | None, ...]
    if "thresholds" in study:
        t = study["thresholds"]
        if not isinstance(t, list) or not t:
            raise SpecError(f"{w}: study.thresholds must be a non-empty list of numbers")
        thresholds = tuple(_unit(f"{w}: study.thresholds[{i}]", x) for i, x in enumerate(t))
    elif "solved_threshold" in study:
        thresholds = (_unit(f"{w}: study.solved_threshold", study["solved_threshold"]),)
    else:
        thresholds = (None,)
    metrics = study.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise SpecError(f"{w}: study.metrics must be a list of metric names")
    for m in metrics:
        if m not in metric_names():
            raise SpecError(
                f"{w}: study.metrics: unknown metric {m!r} (one of {', '.join(metric_names())})"
            )
    if len(set(metrics)) != len(metrics):
        raise SpecError(f"{w}: study.metrics names a metric twice")
    n_boot = _int(f"{w}: study.n_boot", study.get("n_boot", 2000), 1)
    study_set = _overrides(f"{w}: study.set", study.get("set", {}))
    records = study.get("records", "records")
    if not isinstance(records, str) or not records:
        raise SpecError(f"{w}: study.records must be a folder name")
    if "description" in study and not isinstance(study["description"], str):
        raise SpecError(f"{w}: study.description must be a string")

    arms: list[Arm] = []
    for i, a in enumerate(arms_in):
        where = f"{w}: arms[{i}]"
        if not isinstance(a, dict):
            raise SpecError(f"{where} must be a table")
        arm_name = _name(f"{where}.name", a.get("name"))
        where = f"{w}: arm {arm_name!r}"
        _unknown(where, a, ARM_FIELDS)
        if any(b.name == arm_name for b in arms):
            raise SpecError(f"{where}: two arms are named {arm_name!r}")
        arms.append(_arm(where, arm_name, a, defaults, study_set, path))
    _check_seed_ranges(w, arms)
    names = {a.name: a for a in arms}
    baseline = study.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or baseline not in names):
        raise SpecError(
            f"{w}: study.baseline must name an arm ({', '.join(names)}), got {baseline!r}"
        )
    for a in arms:
        if a.tunes is None:
            continue
        target = names.get(a.tunes)
        if target is None or target.cfg is None:
            raise SpecError(
                f"{w}: arm {a.name!r}.tunes must name an arm that runs, got {a.tunes!r}"
            )
        if target.group == a.group:
            raise SpecError(
                f"{w}: arm {a.name!r}.tunes names {a.tunes!r} of its own group ({a.group}); "
                "a tuning arm chooses for an arm of another group (fresh seeds)"
            )
    if all(a.cfg is None for a in arms):
        raise SpecError(f"{w}: every arm is recorded; a study needs an arm to run")
    return StudySpec(
        path=path,
        name=name,
        arms=tuple(arms),
        description=study.get("description", ""),
        thresholds=thresholds,
        metrics=tuple(metrics),
        n_boot=n_boot,
        records_dir=path.parent / records,
        baseline=baseline,
    )


def _arm(
    where: str,
    name: str,
    a: dict[str, Any],
    defaults: dict[str, Any],
    study_set: dict[str, Any],
    path: Path,
) -> Arm:
    if "recorded" in a:
        rec = a["recorded"]
        file, sep, label = rec.rpartition(":") if isinstance(rec, str) else ("", "", "")
        if not (sep and file and label):
            raise SpecError(f"{where}.recorded must be FILE.json:LABEL, got {rec!r}")
        others = sorted(set(a) - {"name", "recorded", "group"})
        if others:
            raise SpecError(f"{where}: a recorded arm is not run; drop {', '.join(others)}")
        full = path.parent / file
        if not full.is_file():
            raise SpecError(f"{where}.recorded: no such file {full}")
        return Arm(
            name,
            None,
            recorded=f"{full}:{label}",
            recorded_as=rec,
            group=a.get("group", "main"),
        )

    def get(key: str, default: Any = None) -> Any:
        return a.get(key, defaults.get(key, default))

    if "preset" not in a:
        raise SpecError(f"{where}: 'preset' is required (or 'recorded')")
    try:
        cfg = preset(a["preset"]) if isinstance(a["preset"], str) else None
    except ValueError as e:
        raise SpecError(f"{where}.preset: {e}") from None
    if cfg is None:
        raise SpecError(f"{where}.preset must be a preset name")
    changes: dict[str, Any] = {}
    if get("total_frames") is not None:
        changes["total_frames"] = _int(f"{where}.total_frames", get("total_frames"), 1)
    if get("solved_threshold") is not None:
        changes["solved_threshold"] = _unit(f"{where}.solved_threshold", get("solved_threshold"))
    changes.update(study_set)
    changes.update(_overrides(f"{where}.set", a.get("set", {})))
    try:
        cfg = cfg.with_overrides(changes)
    except (ValueError, TypeError) as e:
        raise SpecError(f"{where}: {e}") from None
    seeds = _int(f"{where}.seeds", get("seeds", 1), 1)
    per = _int(f"{where}.slice_seeds", get("slice_seeds", seeds), 1)
    if seeds % per:
        raise SpecError(
            f"{where}: seeds ({seeds}) is not a multiple of slice_seeds ({per}): every slice "
            "runs the same number of seeds"
        )
    fps = get("frames_per_sec")
    if fps is not None and (
        not isinstance(fps, (int, float)) or isinstance(fps, bool) or not math.isfinite(fps)
    ):
        raise SpecError(f"{where}.frames_per_sec must be a number, got {fps!r}")
    if fps is not None and fps <= 0:
        raise SpecError(f"{where}.frames_per_sec must be positive, got {fps!r}")
    group = get("group", "main")
    if not isinstance(group, str) or not group:
        raise SpecError(f"{where}.group must be a name")
    tunes = a.get("tunes")
    if tunes is not None and not isinstance(tunes, str):
        raise SpecError(f"{where}.tunes must be an arm's name, got {tunes!r}")
    return Arm(
        name=name,
        cfg=cfg,
        seeds=seeds,
        slice_seeds=per,
        base_seed=_int(f"{where}.base_seed", get("base_seed", 0), 0),
        group=group,
        stop_when_solved=_bool(f"{where}: stop_when_solved", get("stop_when_solved", False)),
        checkpoint_every=_int(f"{where}.checkpoint_every", get("checkpoint_every", 10), 1),
        frames_per_sec=None if fps is None else float(fps),
        tunes=tunes,
    )


def _check_seed_ranges(w: str, arms: list[Arm]) -> None:
    """Arms of different groups (a tuning sweep, the final comparison) must not share a base
    seed: the final arms' seeds must be fresh ones."""
    run = [a for a in arms if a.cfg is not None]
    for i, a in enumerate(run):
        for b in run[i + 1 :]:
            if a.group == b.group:
                continue
            shared = set(a.seed_range) & set(b.seed_range)
            if shared:
                raise SpecError(
                    f"{w}: arm {a.name!r} (group {a.group}) and arm {b.name!r} (group {b.group}) "
                    f"share base seed(s) {min(shared)}..{max(shared)}; arms of different groups "
                    "need disjoint seeds (set base_seed)"
                )
