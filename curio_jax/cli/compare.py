"""`curio-jax compare`: statistics over the seeds of finished runs."""

from __future__ import annotations

import argparse

from curio_jax.argparsing import nonneg_int, out_path, positive_int, unit_float
from curio_jax.cli.common import UsageError, one_line, write_json
from curio_jax.core.metrics import metric_names


def register(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser("compare", help="statistics over the seeds of finished runs")
    cp.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN",
        help="a run directory; FILE.json:LABEL for the run labelled LABEL in a JSON that "
        "`compare --json` wrote (committed results); a study's slice record (RECORD.json) or an "
        "arm's records folder; or DIR+DIR[+...], runs (or records) of one config pooled into one "
        "(seeds run in separate programs; docs/cli.md, docs/studies.md)",
    )
    cp.add_argument("--json", type=out_path, default=None)
    cp.add_argument("--plot", type=out_path, default=None, metavar="FILE.png")
    cp.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples")
    cp.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed")
    cp.add_argument(
        "--threshold",
        type=unit_float,
        default=None,
        help="frames-to-solve of every run at this common average score (from metrics.csv) "
        "instead of each preset's own solved threshold",
    )
    cp.add_argument(
        "--metric",
        action="append",
        default=[],
        choices=metric_names(),
        metavar="NAME",
        help="also report (and plot) the mean curve of this metrics.csv column; repeatable; "
        "one of: " + ", ".join(metric_names()),
    )
    cp.add_argument(
        "--unfinished",
        action="store_true",
        help="read a run without summary.json (a `curio-jax train` or PyTorch reference run "
        "still going, or stopped early) as far as every running seed has logged, instead of "
        "refusing it",
    )
    cp.add_argument(
        "--until",
        type=positive_int,
        default=None,
        metavar="FRAMES",
        help="read every run only up to FRAMES frames per seed (runs of different budgets "
        "compared at one; frames-to-solve after it do not count)",
    )
    cp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curio_jax.analysis import compare

    try:
        result = compare.compare_runs(
            args.run_dirs,
            n_boot=args.n_boot,
            seed=args.seed,
            threshold=args.threshold,
            metrics=args.metric,
            unfinished=args.unfinished,
            until=args.until,
        )
    except (compare.RunDirError, ValueError) as e:
        raise UsageError(one_line(e)) from None
    print(compare.format_table(result))
    if args.json is not None:
        write_json(args.json, result)
    if args.plot is not None:
        compare.plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0
