"""`curio-jax study report`: every arm's records pooled, compared, written as JSON, figure and a
markdown table, with how complete the study is."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from curio_jax.analysis import compare, records, stats
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


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _pair_p(result: dict[str, Any], a: str, b: str) -> float | None:
    for p in result["pairs"]:
        if {p["a"], p["b"]} == {a, b}:
            return p.get("logrank_p") if p["comparable"] else None
    return None


def _holm_family(result: dict[str, Any], pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    ps = [_pair_p(result, a, b) for a, b in pairs]
    adjusted = stats.holm([_num(p) for p in ps]) if pairs else []
    return [
        {"a": a, "b": b, "logrank_p": p, "holm_p": compare.json_number(h)}
        for (a, b), p, h in zip(pairs, ps, adjusted, strict=True)
    ]


def _pick_key(run: dict[str, Any]) -> tuple[float, float, float]:
    """The tuning rule: most seeds solved, then the lowest median frames-to-solve, then the
    highest final mean."""
    med = run["frames_to_solve_median"]["value"]
    final = run["final_mean"]["value"]
    return (
        -run["n_solved"],
        math.inf if med is None else med,
        -(final if final is not None else -math.inf),
    )


def group_tests(spec: StudySpec, result: dict[str, Any], complete: set[str]) -> dict[str, Any]:
    """What the spec asks of one group's comparison beyond the pairs: with a ``baseline`` arm
    in the group, the log-rank test of every other arm against it and the pairwise tests among
    the other arms that solved a seed, each family Holm-corrected; with tuning arms
    (``tunes``), the candidate each final arm's tune picks (`_pick_key`)."""
    runs = {r["label"]: r for r in result["runs"]}
    out: dict[str, Any] = {}
    base = spec.baseline
    if base is not None and base in runs:
        others = [lab for lab in runs if lab != base]
        solving = [lab for lab in others if runs[lab]["n_solved"] > 0]
        out["baseline"] = base
        out["against_baseline"] = _holm_family(result, [(lab, base) for lab in others])
        out["among_solving"] = _holm_family(
            result, [(a, b) for i, a in enumerate(solving) for b in solving[i + 1 :]]
        )
    picks = []
    for target in dict.fromkeys(a.tunes for a in spec.arms if a.tunes is not None):
        candidates = [a.name for a in spec.arms if a.tunes == target]
        found = [c for c in candidates if c in runs]
        if not found:
            continue
        best = min(found, key=lambda c: _pick_key(runs[c]))
        picks.append(
            {
                "for": target,
                "pick": best,
                "candidates": candidates,
                "complete": all(c in complete for c in candidates),
                "any_solved": any(runs[c]["n_solved"] > 0 for c in found),
            }
        )
    if picks:
        out["picks"] = picks
    return out


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


def _informative(family: list[dict[str, Any]]) -> int:
    """How many tests of a family have a p-value (Holm's m: a test without one is left out)."""
    return sum(t["logrank_p"] is not None for t in family)


def _last(run: dict[str, Any], metric: str) -> str:
    """The last logged point of a metric's mean curve, with its band ("n/a" without one)."""
    curve = run.get("metric_curves", {}).get(metric)
    if not curve:
        return "n/a"
    for m, lo, hi in reversed(list(zip(curve["mean"], curve["low"], curve["high"], strict=True))):
        if m is not None:
            return _est({"value": m, "low": lo, "high": hi})
    return "n/a"


def markdown(spec: StudySpec, result: dict[str, Any], status: str) -> str:
    """A markdown table of the arms and one of the pairs (for docs/results/)."""
    thr = result["settings"].get("threshold")
    entropy = any("entropy" in r.get("metric_curves", {}) for r in result["runs"])
    lines = [
        f"### {spec.name}"
        + (f", {result['study']['group']}" if result.get("study", {}).get("group") else "")
        + (f" (threshold {thr:g})" if thr is not None else ""),
        "",
        *([spec.description, ""] if spec.description else []),
        f"Records: {status}.",
        "",
        "| arm | preset | seeds | frames per seed | final score mean [95% CI] | solved | "
        "median frames-to-solve [95% CI] |"
        + (" entropy at the end [95% CI] |" if entropy else "")
        + " frames/s |",
        "|---|---|---|---|---|---|---|" + ("---|" if entropy else "") + "---|",
    ]
    for r in result["runs"]:
        med = r["frames_to_solve_median"]
        fps = r.get("frames_per_sec")
        lines.append(
            f"| {r['label']} | {r['preset']} | {r['n_seeds']} | {_fmt_frames(r['budget'])} | "
            f"{_est(r['final_mean'])} | {r['n_solved']}/{r['n_seeds']} | "
            f"{_est(med, _fmt_frames) if med['value'] is not None else 'not reached'} |"
            + (f" {_last(r, 'entropy')} |" if entropy else "")
            + (f" {fps:,.0f} |" if fps is not None else " n/a |")
        )
    tests = result.get("study", {}).get("tests", {})
    if tests.get("against_baseline"):
        lines += [
            "",
            f"Log-rank tests of frames-to-solve against {tests['baseline']}, Holm-corrected over "
            f"the {_informative(tests['against_baseline'])} tests with a p-value:",
            "",
            "| arm | log-rank p | Holm p |",
            "|---|---|---|",
            *(f"| {t['a']} | {_p(t['logrank_p'])} | {_p(t['holm_p'])} |"
              for t in tests["against_baseline"]),
        ]  # fmt: skip
    if tests.get("among_solving"):
        lines += [
            "",
            "Pairwise log-rank tests among the other arms that solved a seed, Holm-corrected over "
            f"the {_informative(tests['among_solving'])} tests with a p-value:",
            "",
            "| A | B | log-rank p | Holm p |",
            "|---|---|---|---|",
            *(f"| {t['a']} | {t['b']} | {_p(t['logrank_p'])} | {_p(t['holm_p'])} |"
              for t in tests["among_solving"]),
        ]  # fmt: skip
    for pk in tests.get("picks", []):
        lines += [
            "",
            f"Tune for {pk['for']}: **{pk['pick']}** (most seeds solved, then the lowest median "
            "frames-to-solve, then the highest final mean; of "
            + ", ".join(pk["candidates"])
            + ")"
            + ("" if pk["any_solved"] else "; no candidate solved a seed")
            + ("" if pk["complete"] else "; **not final: the tune's records are incomplete**")
            + ".",
        ]
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
    complete = {f.arm.name for f in found if not f.missing}
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
                "tests": group_tests(spec, result, complete),
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
