"""`curio-jax study report`: every arm's records pooled, compared, written as JSON, figure and a
markdown table, with how complete the study is."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from curio_jax.analysis import compare, records
from curio_jax.analysis.report import format_table, plot
from curio_jax.analysis.runs import Run, load_recorded, pool_runs
from curio_jax.config import TrainConfig, diff_configs
from curio_jax.run.files import atomic_write
from curio_jax.study.spec import Arm, StudySpec


class StudyError(ValueError):
    """Records that cannot be pooled as the spec says (one line, naming the record)."""


@dataclass
class ArmRecords:
    """The records of one arm found in the study's folder."""

    arm: Arm
    done: list[str] = field(default_factory=list)  # slice names
    missing: list[str] = field(default_factory=list)
    run: Run | None = None


def _check_record(spec: StudySpec, arm: Arm, name: str, path: Path, rec: dict) -> None:
    """A record must be the one its place in the study's folder says, of the spec as it is."""
    where = path.relative_to(spec.dir) if path.is_relative_to(spec.dir) else path
    for key, want in (("study", spec.name), ("arm", arm.name), ("slice", name)):
        if rec[key] != want:
            raise StudyError(
                f"{where}: it is the record of {rec['study']}/{rec['arm']}/{rec['slice']}, stored "
                f"as {spec.name}/{arm.name}/{name} (a copied record would count seeds twice)"
            )
    s = next(x for x in arm.slices if x.name == name)
    run = rec["content"]["run"]
    if run.get("seeds") != s.seeds or run.get("seed") != s.seed:
        raise StudyError(
            f"{where}: {run.get('seeds')} seed(s) from base seed {run.get('seed')}, but the spec's "
            f"{s.id} is {s.seeds} from {s.seed}"
        )
    if bool(run.get("stop_when_solved")) != arm.stop_when_solved:
        raise StudyError(f"{where}: stop_when_solved differs from the spec's")
    try:
        cfg = TrainConfig.from_dict(rec["content"]["config"])
    except (ValueError, TypeError) as e:
        raise StudyError(f"{where}: its config does not load ({e})") from None
    diffs = diff_configs(cfg, arm.cfg)
    if diffs:
        raise StudyError(
            f"{where}: its config differs from the spec's in {', '.join(diffs)} (the spec "
            "changed since it ran: rerun the slice or restore the spec)"
        )


def arm_records(spec: StudySpec, arm: Arm) -> ArmRecords:
    """An arm's records, checked (digest, place, spec) and pooled; refuses a record that is
    not one of the arm's slices and a seed counted twice."""
    out = ArmRecords(arm)
    folder = spec.records_dir / arm.name
    names = {s.name for s in arm.slices}
    if folder.is_dir():
        for p in sorted(folder.glob("*.json")):
            if p.stem not in names:
                raise StudyError(
                    f"{p}: not a slice of arm {arm.name} (its slices: s0..s{len(names) - 1})"
                )
    runs = []
    for s in arm.slices:
        p = spec.record_path(s)
        if not p.is_file():
            out.missing.append(s.name)
            continue
        try:
            rec = records.read_record(p)
        except records.RecordError as e:
            raise StudyError(str(e)) from None
        _check_record(spec, arm, s.name, p, rec)
        rel = p.relative_to(spec.dir) if p.is_relative_to(spec.dir) else p
        runs.append(records.load_record(p, name=rel))
        out.done.append(s.name)
    if runs:
        try:
            name = "+".join(str(r.path) for r in runs)
            out.run = runs[0] if len(runs) == 1 else pool_runs(runs, name)
        except compare.RunDirError as e:
            raise StudyError(str(e)) from None
    return out


def completeness(spec: StudySpec, found: list[ArmRecords]) -> str:
    """ "12/16 slices; complete: a, b; c 1/4 (missing s1, s2, s3)"."""
    total = sum(len(f.arm.slices) for f in found)
    done = sum(len(f.done) for f in found)
    full = [f.arm.name for f in found if not f.missing]
    partial = [
        f"{f.arm.name} {len(f.done)}/{len(f.arm.slices)} (missing {', '.join(f.missing)})"
        for f in found
        if f.missing
    ]
    parts = [f"{done}/{total} slices"]
    if full:
        parts.append("complete: " + ", ".join(full))
    if partial:
        parts.append("; ".join(partial))
    return "; ".join(parts)


def _fmt_frames(f: float | None) -> str:
    if f is None or not math.isfinite(f):
        return "not reached"
    return f"{f / 1e6:.2f}M" if f >= 1e6 else f"{f / 1e3:.0f}k"


def _est(e: dict, fmt=lambda v: f"{v:.3f}") -> str:
    if e["value"] is None:
        return "n/a"
    lo = "?" if e["low"] is None else fmt(e["low"])
    hi = "?" if e["high"] is None else fmt(e["high"])
    return f"{fmt(e['value'])} [{lo}, {hi}]"


def _p(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def markdown(spec: StudySpec, result: dict[str, Any], status: str) -> str:
    """A markdown table of the arms and one of the pairs (for docs/results/)."""
    thr = result["settings"].get("threshold")
    lines = [
        f"### {spec.name}"
        + (f", {result['study']['group']}" if result.get("study", {}).get("group") else "")
        + (f" (threshold {thr:g})" if thr is not None else ""),
        "",
        *([spec.description, ""] if spec.description else []),
        f"Records: {status}.",
        "",
        "| arm | preset | seeds | frames per seed | final score mean [95% CI] | solved | "
        "median frames-to-solve [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        med = r["frames_to_solve_median"]
        lines.append(
            f"| {r['label']} | {r['preset']} | {r['n_seeds']} | {_fmt_frames(r['budget'])} | "
            f"{_est(r['final_mean'])} | {r['n_solved']}/{r['n_seeds']} | "
            f"{_est(med, _fmt_frames) if med['value'] is not None else 'not reached'} |"
        )
    pairs = [p for p in result["pairs"] if p["comparable"]]
    if pairs:
        lines += [
            "",
            "| A | B | P(A > B) final | Mann-Whitney p | log-rank p |",
            "|---|---|---|---|---|",
        ]
        for p in pairs:
            poi = _est(p["probability_of_improvement"], lambda v: f"{v:.2f}")
            lines.append(
                f"| {p['a']} | {p['b']} | {poi} | {_p(p['mann_whitney_p'])} | "
                f"{_p(p['logrank_p'])} |"
            )
    return "\n".join(lines) + "\n"


def report_study(
    spec: StudySpec, out: str | Path | None = None, *, figure: bool = True
) -> dict[str, Any]:
    """Pool every arm's records, compare the arms (at each of the spec's thresholds) and write
    ``<out>/<name>[_<group>][_<threshold>].json``, ``.md``, ``.txt`` and ``.png`` (one
    comparison per group of arms, e.g. a tuning sweep apart from the final arms; default out:
    the spec's folder's ``report/``). Returns {"status", "files", "results"}. StudyError for
    records that cannot be used; arms without any record are left out (and named)."""
    out = Path(out) if out is not None else spec.dir / "report"
    found = [arm_records(spec, a) for a in spec.arms if a.cfg is not None]
    status = completeness(spec, found)
    groups: dict[str, tuple[list[Run], list[str]]] = {}
    for a in spec.arms:
        runs, labels = groups.setdefault(a.group, ([], []))
        if a.recorded is not None:
            file, _, label = a.recorded.rpartition(":")
            try:
                # named as the spec names it, so the JSON does not depend on where the repo is
                runs.append(replace(load_recorded(file, label), path=Path(a.recorded_as)))
            except compare.RunDirError as e:
                raise StudyError(f"arm {a.name}: {e}") from None
            labels.append(a.name)
            continue
        f = next(x for x in found if x.arm is a)
        if f.run is not None:
            runs.append(f.run)
            labels.append(a.name)
    if not any(f.run is not None for f in found):
        raise StudyError(f"{spec.name}: no slice is recorded yet ({status})")
    out.mkdir(parents=True, exist_ok=True)
    files, results = [], []
    for group, (runs, labels) in groups.items():
        if not [r for r in runs if r.recorded is None]:
            continue  # nothing of this group recorded yet
        for t in spec.thresholds:
            stem = spec.name + (f"_{group}" if len(groups) > 1 else "")
            stem += f"_{t:g}" if len(spec.thresholds) > 1 else ""
            try:
                result = compare.compare_runs(
                    runs,
                    n_boot=spec.n_boot,
                    threshold=t,
                    metrics=spec.metrics,
                    labels=labels,
                )
            except (compare.RunDirError, ValueError) as e:
                raise StudyError(str(e)) from None
            result["study"] = {
                "name": spec.name,
                "spec": spec.path.name,
                "group": group if len(groups) > 1 else None,
                "status": status,
            }
            atomic_write(out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
            atomic_write(out / f"{stem}.md", markdown(spec, result, status))
            atomic_write(out / f"{stem}.txt", format_table(result) + "\n")
            files += [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.txt"]
            if figure:
                try:
                    plot(result, out / f"{stem}.png")
                    files.append(out / f"{stem}.png")
                except ImportError:
                    pass
            results.append(result)
    return {"status": status, "files": files, "results": results}
