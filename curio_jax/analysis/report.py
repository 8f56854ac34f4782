"""The report of `curio-jax compare`: the text table and the figure of a compare result (the
dict `curio_jax.analysis.compare.compare_runs` returns, or one read back from its JSON)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def _fmt_frames(f: float | None) -> str:
    if f is None or not math.isfinite(f):
        return "not reached"
    if abs(f) >= 1e6:
        return f"{f / 1e6:.2f}M"
    if abs(f) >= 1e4:
        return f"{f / 1e3:.0f}k"
    if abs(f) >= 1e3:
        return f"{f / 1e3:.1f}k"
    return f"{f:.0f}"


def _fmt_num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _fmt_est(e: dict[str, float | None], fmt: Any = _fmt_num) -> str:
    return f"{fmt(e['value'])} [{fmt(e['low'])}, {fmt(e['high'])}]"


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return lines


def format_table(result: dict[str, Any]) -> str:
    """A plain-text report of `compare_runs`' result: one table of runs, one of pairs, then the
    warnings and each pair's config differences."""
    level = round(100 * (1 - result["settings"]["alpha"]))
    run_rows = []
    for r in result["runs"]:
        med = r["frames_to_solve_median"]
        med_text = (
            f"not reached within {_fmt_frames(r['budget'])}"
            if med["value"] is None
            else _fmt_est(med, _fmt_frames)
        )
        run_rows.append(
            [
                r["label"],
                r["preset"],
                r["impl"],
                f"{r['size']}x{r['size']}",
                str(r["n_seeds"]),
                _fmt_frames(r["budget"]),
                _fmt_est(r["final_mean"]),
                _fmt_est(r["final_iqm"]),
                f"{r['n_solved']}/{r['n_seeds']}",
                med_text,
            ]
        )
    lines = [f"Runs (final score = last average of 100 episode returns; [{level}% bootstrap CI])"]
    thr = result["settings"].get("threshold")
    if thr is not None:
        owns = ", ".join(f"{r['label']} {r['own_solved_threshold']:g}" for r in result["runs"])
        lines.append(f"frames-to-solve at the common threshold {thr:g} (own thresholds: {owns})")
    lines += _table(
        [
            "run",
            "preset",
            "impl",
            "size",
            "seeds",
            "budget",
            "final mean",
            "final IQM",
            "solved",
            "median frames-to-solve (Kaplan-Meier)",
        ],
        run_rows,
    )
    comparable = [p for p in result["pairs"] if p["comparable"]]
    if comparable:
        lines += ["", "Pairs (A vs B)"]
        lines += _table(
            ["A", "B", f"P(A > B) final [{level}% CI]", "Mann-Whitney p", "log-rank p"],
            [
                [
                    p["a"],
                    p["b"],
                    _fmt_est(p["probability_of_improvement"], lambda v: _fmt_num(v, 2)),
                    _fmt_p(p["mann_whitney_p"]),
                    _fmt_p(p["logrank_p"]),
                ]
                for p in comparable
            ],
        )
        if any(p["logrank_p"] is None for p in comparable):
            lines.append("log-rank n/a: no seed solved while both runs had unsolved seeds.")
    diffs = [p for p in result["pairs"] if p["comparable"] and p["config_differences"]]
    if diffs:
        lines += ["", "Config differences"]
        for p in diffs:
            lines.append(f"  {p['a']} vs {p['b']}: " + "; ".join(p["config_differences"]))
    if result["warnings"]:
        lines.append("")
        lines += [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)


def _fmt_tick(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def _nan_array(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], float)


def plot(result: dict[str, Any], path: str | Path) -> None:
    """Write a two-panel PNG (or any format matplotlib infers from the suffix): the mean score
    over seeds vs frames with its bootstrap band, and the Kaplan-Meier solved-fraction curves.

    Needs matplotlib (the `plot` extra); uses the Agg canvas directly, never pyplot."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError as e:
        raise ImportError("plotting needs matplotlib: pip install 'curio_jax[plot]'") from e
    out = Path(path)
    if not out.parent.exists():
        raise ValueError(f"directory {str(out.parent)!r} does not exist")
    level = round(100 * (1 - result["settings"]["alpha"]))
    extra = list(result["settings"].get("metrics", []))
    height = 5.5 + 0.2 * len(result["runs"])
    fig = Figure(figsize=(7 * (2 + len(extra)), height), layout="constrained")
    FigureCanvasAgg(fig)
    ax_score, ax_km, *ax_extra = fig.subplots(1, 2 + len(extra))
    frames_fmt = FuncFormatter(lambda v, _pos: _fmt_tick(v))
    colors = [f"C{k % 10}" for k in range(len(result["runs"]))]
    for r, c in zip(result["runs"], colors, strict=True):
        cur = r["curve"]
        x = np.asarray(cur["frames"], float)
        label = f"{r['label']} ({r['size']}x{r['size']}, n={r['n_seeds']})"
        ax_score.plot(x, _nan_array(cur["mean"]), color=c, lw=1.8, label=label)
        ax_score.fill_between(
            x, _nan_array(cur["low"]), _nan_array(cur["high"]), color=c, alpha=0.2, lw=0
        )
        km = r["km_curve"]
        med = r["frames_to_solve_median"]["value"]
        ax_km.step(
            km["frames"],
            km["solved_fraction"],
            where="post",
            color=c,
            lw=1.8,
            label=f"{r['label']}: {r['n_solved']}/{r['n_seeds']} solved, median {_fmt_frames(med)}",
        )
        ax_km.plot(km["frames"][-1], km["solved_fraction"][-1], "|", color=c, ms=12, mew=2)
        for ax, name in zip(ax_extra, extra, strict=True):
            cur = r["metric_curves"][name]  # every run has them (compare_runs checks)
            x = np.asarray(cur["frames"], float)
            ax.plot(x, _nan_array(cur["mean"]), color=c, lw=1.8, label=label)
            ax.fill_between(
                x, _nan_array(cur["low"]), _nan_array(cur["high"]), color=c, alpha=0.2, lw=0
            )
    for thr in sorted({r["solved_threshold"] for r in result["runs"]}):
        ax_score.axhline(thr, color="0.4", ls="--", lw=1)
        ax_score.annotate(
            f"solved threshold {thr:g}",
            (0.01, thr),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=9,
            color="0.3",
        )
    ax_km.axhline(0.5, color="0.4", ls=":", lw=1)
    ax_score.set_title(f"Average score (mean over seeds, {level}% bootstrap band)")
    ax_score.set_xlabel("frames (environment steps)")
    ax_score.set_ylabel("average return of the last 100 episodes")
    ax_km.set_title("Seeds solved by f frames (Kaplan-Meier; | = frame budget)")
    ax_km.set_xlabel("frames (environment steps)")
    ax_km.set_ylabel("fraction of seeds solved")
    ax_km.set_ylim(-0.02, 1.02)
    for ax, name in zip(ax_extra, extra, strict=True):
        ax.set_title(f"{name} (mean over seeds, {level}% bootstrap band)")
        ax.set_xlabel("frames (environment steps)")
        ax.set_ylabel(name)
    for ax in (ax_score, ax_km, *ax_extra):
        ax.xaxis.set_major_formatter(frames_fmt)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
        # below the panel, so that the curves stay visible however many runs there are
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.13), fontsize=9, frameon=False)
    fig.savefig(out, dpi=110)
