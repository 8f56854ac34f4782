"""Compare finished runs: the statistics behind `curio-jax compare` (host side only).

Runs are read by `curio_jax.analysis.runs` (run directories, pools, recorded runs) and the
result is rendered by `curio_jax.analysis.report` (text table, figure); their public names are
importable from here too.

For every run: final score (the last average of the last 100 episode returns) as mean and IQM
with bootstrap intervals over seeds, solved fraction, and the Kaplan-Meier median
frames-to-solve with unsolved seeds censored at the run's frame budget. For every pair of
comparable runs: probability of improvement on the final score, a Mann-Whitney test on the final
scores and a log-rank test on frames-to-solve. Runs on different grid sizes are not comparable:
the pair gets a warning and no statistics. A seed that finished no episode within its budget
(summary final score null: a very short run) has no final score; it is left out of the
final-score statistics, with a warning, and counts as unsolved. Runs with different solved
thresholds (the notebook's own A2C and RND presets on 8x8 and 16x16) compare final scores only,
with a warning, unless ``threshold`` re-scores every run's frames-to-solve from metrics.csv at
one common threshold.

Runs of one config made in separate programs (two sessions, two processes, two machines) can
be pooled into one run, ``DIR+DIR`` (`pool_runs`).

`compare_runs` returns a JSON-serialisable dict (inf and NaN become null); `format_table` and
`plot` render it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curio_jax.analysis import stats
from curio_jax.analysis.inputs import load
from curio_jax.analysis.report import format_table, plot
from curio_jax.analysis.runs import (
    POOL_SEP,
    REFERENCE_RUN_FILE,
    Run,
    RunDirError,
    config_differences,
    is_int,
    is_number,
    json_number,
    load_recorded,
    load_run,
    load_unfinished,
    load_unfinished_reference,
    pool_runs,
    read_until,
    with_threshold,
)

__all__ = [
    "RunDirError",
    "Run",
    "load_run",
    "load",
    "load_recorded",
    "load_unfinished",
    "load_unfinished_reference",
    "pool_runs",
    "with_threshold",
    "read_until",
    "config_differences",
    "REFERENCE_RUN_FILE",
    "compare_runs",
    "format_table",
    "plot",
]

MAX_CURVE_POINTS = 300
CURVE_KEYS = ("frames", "mean", "low", "high")


def _estimate_dict(e: stats.Estimate) -> dict[str, float | None]:
    return {
        "value": json_number(e.value),
        "low": json_number(e.low),
        "high": json_number(e.high),
    }


def _rng(seed: int, stream: int) -> np.random.Generator:
    # One independent stream per quantity, so a run's intervals do not depend on which other
    # runs are compared with it or in which order.
    return np.random.default_rng([seed, stream])


def _mean_curve(
    run: Run,
    n_boot: int,
    alpha: float,
    seed: int,
    column: str = "avg_return_last100",
    stream: int = 10,
) -> dict[str, list[float | None] | list[int]]:
    """Mean over seeds of a metrics column (default avg_return_last100) at each logged frame
    count, with a percentile-bootstrap band over seeds (NaN entries, such as the score before a
    seed's first finished episode, are left out of the mean)."""
    if run.recorded is not None:
        recorded = run.recorded["curve"] if column == "avg_return_last100" else None
        if recorded is None:
            recorded = run.recorded.get("metric_curves", {}).get(column)
        if recorded is None:
            raise RunDirError(f"{run.path}: no recorded curve of {column!r}")
        return {k: list(recorded[k]) for k in CURVE_KEYS}
    frames, values = run.curve_matrix(column)  # [P], [n, P]
    if frames.size > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, frames.size - 1, MAX_CURVE_POINTS).round().astype(int))
        frames, values = frames[keep], values[:, keep]
    n = values.shape[0]
    mask = ~np.isnan(values)
    filled = np.where(mask, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(0) / mask.sum(0)
        weights = _rng(seed, stream).multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # [B, n]
        reps = (weights @ filled) / (weights @ mask)  # [B, P]
    low = np.full(frames.size, np.nan)
    high = np.full(frames.size, np.nan)
    for j in range(frames.size):
        col = reps[:, j][np.isfinite(reps[:, j])]
        if col.size:
            low[j], high[j] = stats.percentile_interval(col, alpha)
    return {
        "frames": [int(f) for f in frames],
        "mean": [json_number(v) for v in mean],
        "low": [json_number(v) for v in low],
        "high": [json_number(v) for v in high],
    }


def _km_curve(run: Run) -> dict[str, list]:
    """The Kaplan-Meier step function as points (0, 0), (t_1, F_1), ..., (budget, F_last)."""
    times, events = run.solve_times()
    km = stats.kaplan_meier(times, events)
    xs = [0] + [int(t) for t in km.times] + [run.budget]
    last = float(km.solved_fraction[-1]) if km.times.size else 0.0
    ys = [0.0] + [float(f) for f in km.solved_fraction] + [last]
    return {"frames": xs, "solved_fraction": ys}


def _scored(run: Run) -> np.ndarray:
    """The final scores of the seeds that finished at least one episode."""
    return run.final_scores[np.isfinite(run.final_scores)]


_NO_ESTIMATE = {"value": None, "low": None, "high": None}


def _final_estimate(run: Run, statistic, n_boot: int, alpha: float, rng) -> dict:
    scored = _scored(run)
    if scored.size == 0:
        return dict(_NO_ESTIMATE)
    return _estimate_dict(stats.bootstrap_ci(scored, statistic, n_boot, alpha, rng))


def _run_summary(run: Run, label: str, n_boot: int, alpha: float, seed: int) -> dict[str, Any]:
    times, events = run.solve_times()
    return {
        "label": label,
        "path": str(run.path),
        "preset": run.preset,
        "impl": run.impl,
        "size": run.size,
        "solved_threshold": run.solved_threshold,
        "budget": run.budget,
        "n_seeds": int(run.seeds.size),
        "final_mean": _final_estimate(run, np.mean, n_boot, alpha, _rng(seed, 1)),
        "final_iqm": _final_estimate(run, stats.iqm, n_boot, alpha, _rng(seed, 2)),
        "n_solved": int(events.sum()),
        "solved_fraction": float(events.mean()),
        # value / high null: the median was not reached within the budget (fewer than half
        # solved, in the data or in the bootstrap replicates)
        "frames_to_solve_median": _estimate_dict(
            stats.km_median_ci(times, events, n_boot, alpha, _rng(seed, 3))
        ),
        "frames_per_sec": json_number(run.summary.get("frames_per_sec", math.nan)),
        "seconds": json_number(run.summary.get("seconds", math.nan)),
        "stops_at_solve": run.stops_at_solve,
        "recorded": run.recorded is not None,
        **(
            {"unfinished": True, "planned_budget": run.summary.get("planned_frames_per_seed")}
            if run.summary.get("unfinished")
            else {}
        ),
        **(
            {"read_until": run.summary["read_until"], "full_budget": run.summary["full_budget"]}
            if "read_until" in run.summary
            else {}
        ),
        **(
            {"pooled_from": [{"path": str(p), "seeds": list(s)} for p, s in run.parts]}
            if run.parts
            else {}
        ),
        "seeds": [
            {"seed": int(s), "final": json_number(f), "frames_to_solve": fts}
            for s, f, fts in zip(run.seeds, run.final_scores, run.frames_to_solve, strict=True)
        ],
        "curve": _mean_curve(run, n_boot, alpha, seed),
        "km_curve": _km_curve(run),
    }


def _unknown_stop(run: Run) -> bool:
    """A recorded run whose JSON predates ``stops_at_solve`` (its final scores go unused)."""
    return run.recorded is not None and "stops_at_solve" not in run.recorded


def _labels(runs: list[Run]) -> list[str]:
    """The shortest trailing parts of the paths that tell the runs apart."""
    parts = [[p.resolve().parts for p, _ in r.parts] or [r.path.resolve().parts] for r in runs]
    for k in range(1, max(len(p) for pp in parts for p in pp) + 1):
        names = [POOL_SEP.join("/".join(p[-k:]) for p in pp) for pp in parts]
        if len(set(names)) == len(names):
            return names
    return [str(r.path) for r in runs]  # the same directory given twice


def compare_runs(
    paths: list[str | Path | Run],
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    threshold: float | None = None,
    metrics: Sequence[str] = (),
    unfinished: bool = False,
    until: int | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Statistics for every run and every pair of runs, in the order given. ``paths``: run
    directories, or ``FILE.json:LABEL`` for a run recorded in a compare JSON, or any other
    name `load` reads, or runs already read (`Run`).

    ``labels``: what the result calls the runs (default: the shortest trailing parts of their
    paths that tell them apart).

    ``metrics``: more metrics.csv columns (curio_jax.core.metrics; e.g. ``entropy``) whose mean
    curve over seeds, with its bootstrap band, each run gets under ``metric_curves``.

    ``threshold``: frames-to-solve of every run at this common threshold (`with_threshold`)
    instead of each run's own solved threshold, so runs whose presets differ in it (the
    notebook's A2C 0.91 and RND 0.95 on 8x8) get a log-rank test too.

    ``unfinished``: a run directory without summary.json is read as far as every running seed
    has logged (`load_run`), with a warning, instead of refused.

    ``until``: every run is read only up to this many frames per seed (`read_until`), with a
    warning, so that runs of different budgets are compared at one.

    Pair (a, b) reports P(a > b) on the final score. Returns a JSON-serialisable dict:
    {"settings", "runs": [...], "pairs": [...], "warnings": [str]}; numbers that are infinite
    or undefined are null. Raises RunDirError for a missing or corrupt run directory and
    ValueError for bad arguments."""
    if isinstance(paths, (str, Path)) or len(paths) == 0:
        raise ValueError("compare_runs needs a list of one or more runs")
    if not is_int(n_boot) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not is_number(alpha) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    metrics = list(metrics)
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"a metric is named twice in {metrics}")
    runs = [p if isinstance(p, Run) else load(p, unfinished) for p in paths]
    if until is not None:
        runs = [read_until(r, until) for r in runs]
    for name in metrics:
        for r in runs:
            if r.recorded is not None:
                if name not in r.recorded.get("metric_curves", {}):
                    raise RunDirError(f"{r.path}: no recorded curve of {name!r}")
            elif name not in r.metrics:
                raise RunDirError(f"{r.path / 'metrics.csv'}: no numeric column {name!r}")
    own = [r.own_solved_threshold for r in runs]
    if threshold is not None:
        runs = [with_threshold(r, threshold) for r in runs]
    if labels is None:
        labels = _labels(runs)
    elif len(labels) != len(runs) or len(set(labels)) != len(labels):
        raise ValueError(f"labels must name each run once, got {list(labels)}")
    labels = list(labels)
    result: dict[str, Any] = {
        "settings": {"n_boot": n_boot, "alpha": alpha, "seed": seed, "threshold": threshold},
        "runs": [
            _run_summary(r, lab, n_boot, alpha, seed) for r, lab in zip(runs, labels, strict=True)
        ],
        "pairs": [],
        "warnings": [],
    }
    for r, t in zip(result["runs"], own, strict=True):
        r["own_solved_threshold"] = t
    for r, lab in zip(runs, labels, strict=True):
        if r.recorded is not None:
            note = (
                f"{lab} is recorded (a compare JSON): its config is its preset's as this version "
                "defines it"
            )
            if "stops_at_solve" not in r.recorded:
                note += (
                    "; the JSON does not say whether it stopped at solve, so its final scores "
                    "are not compared"
                )
            result["warnings"].append(note)
        if r.summary.get("unfinished"):
            not_started = r.summary.get("seeds_not_started") or []
            result["warnings"].append(
                f"{lab} is unfinished: read up to {r.budget} of its "
                f"{r.summary.get('planned_frames_per_seed')} frames per seed (the last frame "
                "count every running seed has logged), where its unsolved seeds are censored"
                + (
                    f"; seed(s) {', '.join(map(str, not_started))} not started yet, left out"
                    if not_started
                    else ""
                )
            )
        if "read_until" in r.summary:
            result["warnings"].append(
                f"{lab} is read up to {r.budget} of the {r.summary['full_budget']} frames per "
                "seed it has (--until): what it logged after that is left out"
            )
        unscored = [int(x) for x in r.seeds[~np.isfinite(r.final_scores)]]
        if unscored:
            result["warnings"].append(
                f"{lab}: seed(s) {', '.join(map(str, unscored))} finished no episode within the "
                "budget, so they have no final score: they are left out of its final-score "
                "statistics (frames-to-solve counts them as unsolved)"
            )
    if metrics:
        result["settings"]["metrics"] = metrics
        for r, out in zip(runs, result["runs"], strict=True):
            out["metric_curves"] = {
                name: _mean_curve(r, n_boot, alpha, seed, name, stream=20 + k)
                for k, name in enumerate(metrics)
            }
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            a, b = runs[i], runs[j]
            diffs = config_differences(a, b)
            pair: dict[str, Any] = {
                "a": labels[i],
                "b": labels[j],
                "config_differences": diffs,
            }
            fields = {d.split(":")[0] for d in diffs}
            if "env.size" in fields:
                pair["comparable"] = False
                size_diff = next(d for d in diffs if d.startswith("env.size"))
                result["warnings"].append(
                    f"not comparing {labels[i]} with {labels[j]}: {size_diff} (scores on "
                    "different grids mean different things); pairwise statistics skipped"
                )
            else:
                pair["comparable"] = True
                both = ((labels[i], a), (labels[j], b))
                stopped = [lab for lab, r in both if r.stops_at_solve and not _unknown_stop(r)]
                if stopped:
                    result["warnings"].append(
                        f"{' and '.join(stopped)} stopped at solve (the notebook's loop stops "
                        "each seed; --stop-when-solved stops the run once every seed has), so "
                        f"its final scores are not scores at the budget: {labels[i]} vs "
                        f"{labels[j]} compares frames-to-solve (log-rank) only"
                    )
                scored_a, scored_b = _scored(a), _scored(b)
                if a.stops_at_solve or b.stops_at_solve or not (scored_a.size and scored_b.size):
                    # a score frozen at the solve point against one at the budget says nothing;
                    # neither does a run none of whose seeds finished an episode
                    pair["probability_of_improvement"] = dict(_NO_ESTIMATE)
                    pair["mann_whitney_p"] = None
                else:
                    poi = stats.probability_of_improvement(
                        scored_a, scored_b, n_boot, alpha, _rng(seed, 4)
                    )
                    pair["probability_of_improvement"] = _estimate_dict(poi)
                    pair["mann_whitney_p"] = json_number(
                        stats.mann_whitney(scored_a, scored_b).pvalue
                    )
                if "solved_threshold" in fields:
                    # "solved" means different things: compare final scores only
                    pair["logrank_p"] = None
                    result["warnings"].append(
                        f"{labels[i]} and {labels[j]} use different solved thresholds "
                        f"({a.solved_threshold:g} vs {b.solved_threshold:g}): final scores are "
                        "compared, frames-to-solve (log-rank) is not"
                    )
                else:
                    ta, ea = a.solve_times()
                    tb, eb = b.solve_times()
                    pair["logrank_p"] = json_number(stats.logrank(ta, ea, tb, eb).pvalue)
                if a.budget != b.budget:
                    result["warnings"].append(
                        f"{labels[i]} and {labels[j]} ran different budgets ({a.budget} vs "
                        f"{b.budget} frames per seed): final scores are taken at different "
                        "points; the log-rank test accounts for the censoring"
                    )
            result["pairs"].append(pair)
    return result
