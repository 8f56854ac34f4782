"""Learning parity of a PyTorch reference run against JAX seeds recorded in a committed
`curio-jax compare` JSON (docs/verification.md): frames-to-solve medians with bootstrap CIs
and the log-rank test, as `compare` computes them for two run directories.

    python scripts/parity_vs_recorded.py REF_RUN_DIR RECORDED.json LABEL [--threshold T]
        [--json OUT.json] [--plot OUT.png]

REF_RUN_DIR: `python -m curio_jax.reference.train ... --out DIR` (each seed stops when it
solves). RECORDED.json / LABEL: a compare JSON and the label of the JAX run in it (its
per-seed frames_to_solve and frame budget). With --threshold, the reference run is re-scored
at that threshold from its metrics.csv (the recorded JSON must use the same one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from curio_jax.analysis import stats
from curio_jax.analysis.compare import load_run, with_threshold


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ref", type=Path)
    p.add_argument("recorded", type=Path)
    p.add_argument("label")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None)
    args = p.parse_args(argv)

    ref = load_run(args.ref)
    if args.threshold is not None:
        ref = with_threshold(ref, args.threshold)
    recorded = json.loads(args.recorded.read_text())
    threshold = recorded["settings"].get("threshold")
    jax_run = next((r for r in recorded["runs"] if r["label"] == args.label), None)
    if jax_run is None:
        p.error(f"no run labelled {args.label!r} in {args.recorded}")
    if threshold != args.threshold:
        p.error(f"the recorded JSON used threshold {threshold}, not {args.threshold}")
    jax_times = np.array(
        [s["frames_to_solve"] or jax_run["budget"] for s in jax_run["seeds"]], float
    )
    jax_events = np.array([s["frames_to_solve"] is not None for s in jax_run["seeds"]])
    ref_times, ref_events = ref.solve_times()
    rng = np.random.default_rng(0)

    def arm(name, times, events, budget):
        med = stats.km_median_ci(times, events, args.n_boot, 0.05, rng)
        return {
            "name": name,
            "seeds": int(times.size),
            "solved": int(events.sum()),
            "budget": int(budget),
            "frames_to_solve": [int(t) if e else None for t, e in zip(times, events, strict=True)],
            "median": {
                k: (None if not np.isfinite(v) else float(v)) for k, v in med._asdict().items()
            },
        }

    out = {
        "threshold": args.threshold if args.threshold is not None else ref.solved_threshold,
        "jax": arm(f"{args.label} ({args.recorded})", jax_times, jax_events, jax_run["budget"]),
        "reference": arm(str(args.ref), ref_times, ref_events, ref.budget),
        "logrank_p": float(stats.logrank(jax_times, jax_events, ref_times, ref_events).pvalue),
        "reference_frames_per_sec": ref.summary.get("frames_per_sec"),
    }
    print(json.dumps(out, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    if args.plot is not None:
        _plot(out, jax_times, jax_events, ref_times, ref_events, args.plot)
    return 0


def _plot(out, jt, je, rt, re, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, t, e, c in (("JAX", jt, je, "C0"), ("PyTorch reference", rt, re, "C1")):
        km = stats.kaplan_meier(t, e)
        xs = [0.0, *km.times.tolist()]
        ys = [0.0, *km.solved_fraction.tolist()]
        ax.step(xs, ys, where="post", color=c, label=f"{name}: {int(e.sum())}/{t.size} solved")
    ax.set_xlabel("frames")
    ax.set_ylabel("fraction of seeds solved")
    ax.set_title(
        f"frames to an average above {out['threshold']} (log-rank p = {out['logrank_p']:.2f})"
    )
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
