"""`curio-jax study`: run a study's slices, report it, say how complete it is (docs/studies.md)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from curio_jax.argparsing import run_dir
from curio_jax.cli.common import UsageError, one_line, run_job


def _minutes(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a number of minutes >= 0, got {text!r}")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser(
        "study", help="run a study's slices, report it (a TOML spec: docs/studies.md)"
    )
    ssub = st.add_subparsers(dest="study_command", required=True, parser_class=type(st))
    r = ssub.add_parser(
        "run",
        help="run the slices that have no record yet, one program each, and record them",
    )
    r.add_argument("spec", type=Path, metavar="SPEC.toml")
    r.add_argument(
        "--work",
        type=run_dir,
        default=None,
        metavar="DIR",
        help="where the slices' run directories go (default runs/studies/<study>); an "
        "interrupted slice resumes from its checkpoints there",
    )
    r.add_argument(
        "--max-minutes",
        type=_minutes,
        default=None,
        metavar="M",
        help="start no slice that its arm's measured rate (or the spec's frames_per_sec) says "
        "cannot finish within M minutes of now",
    )
    r.add_argument(
        "--slice",
        default=None,
        metavar="NAME",
        help="run just this slice: ARM/sK, or its index among all slices (a job array's task "
        "id; `study status` lists them)",
    )
    r.add_argument(
        "--again",
        action="store_true",
        help="also rerun recorded slices (in DIR/ARM/sK-again) and check that they give the "
        "same record; a different one is refused, the stored one kept",
    )
    r.add_argument(
        "--tensorboard", action="store_true", help="write TensorBoard events into the run dirs"
    )
    r.set_defaults(func=run)
    rep = ssub.add_parser(
        "report", help="pool every arm's records, compare them, write JSON, figure, markdown"
    )
    rep.add_argument("spec", type=Path, metavar="SPEC.toml")
    rep.add_argument(
        "--out",
        type=run_dir,
        default=None,
        metavar="DIR",
        help="where the report goes (default: report/ next to the spec)",
    )
    rep.add_argument("--no-plot", action="store_true", help="no figure")
    rep.set_defaults(func=report)
    s = ssub.add_parser("status", help="list the slices and which are recorded")
    s.add_argument("spec", type=Path, metavar="SPEC.toml")
    s.set_defaults(func=status)


def _spec(path: Path):
    from curio_jax.study.spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as e:
        raise UsageError(one_line(e)) from None


def run(args: argparse.Namespace) -> int:
    from curio_jax.analysis.records import RecordError
    from curio_jax.study import runner
    from curio_jax.study.spec import SpecError

    spec = _spec(args.spec)
    only = None
    if args.slice is not None:
        try:
            only = spec.find_slice(args.slice)
        except SpecError as e:
            raise UsageError(one_line(e)) from None

    def job():
        try:
            return runner.run_study(
                spec,
                args.work,
                max_minutes=args.max_minutes,
                only=only,
                again=args.again,
                callbacks=args.callbacks,
                tensorboard=args.tensorboard,
            )
        except RecordError as e:
            raise _Refused(str(e)) from None

    try:
        outcomes = run_job(job)
    except _Refused as e:
        print(f"curio-jax: error: {one_line(e)}", file=sys.stderr)
        return 1
    if outcomes is None:
        return 1
    print(f"{spec.name}: {runner.describe(outcomes)}")
    from curio_jax.study import report as rep

    _print_status(spec, rep)
    return 0


class _Refused(Exception):
    pass


def _print_status(spec, rep) -> None:
    try:
        found = [rep.arm_records(spec, a) for a in spec.arms if a.cfg is not None]
    except rep.StudyError as e:
        print(f"records: {one_line(e)}")
        return
    print(f"records: {rep.completeness(spec, found)}")


def report(args: argparse.Namespace) -> int:
    from curio_jax.study import report as rep

    spec = _spec(args.spec)
    try:
        out = rep.report_study(spec, args.out, figure=not args.no_plot)
    except rep.StudyError as e:
        raise UsageError(one_line(e)) from None
    for f in out["files"]:
        print(f"wrote {f}")
    print(f"{spec.name}: {out['status']}")
    return 0


def status(args: argparse.Namespace) -> int:
    from curio_jax.study import report as rep

    spec = _spec(args.spec)
    for k, s in enumerate(spec.slices):
        mark = "recorded" if spec.record_path(s).is_file() else "missing"
        print(f"{k:4d}  {s.id:<30} {s.seeds} seed(s) from base seed {s.seed:<6} {mark}")
    _print_status(spec, rep)
    return 0
