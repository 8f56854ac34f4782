"""The `curio-jax` command line (host side only).

Invalid arguments exit with status 2 and a one-line message on stderr, never a traceback.
Heavy imports (JAX, navix) happen inside the commands so `--help` and argument errors are fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn


class UsageError(Exception):
    """Bad user input discovered after parsing; reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def int_list(text: str) -> list[int]:
    """'5,8,16' -> [5, 8, 16]; every item a positive integer."""
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def size_list(text: str) -> list[int]:
    vals = int_list(text)
    bad = [v for v in vals if v < 5]
    if bad:
        raise argparse.ArgumentTypeError(f"DoorKey sizes must be >= 5, got {bad[0]}")
    return vals


def out_path(text: str) -> Path:
    p = Path(text)
    if p.exists() and p.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file path")
    if not p.parent.exists():
        raise argparse.ArgumentTypeError(f"directory {str(p.parent)!r} does not exist")
    return p


def _write_json(path: Path | None, obj: object) -> None:
    if path is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)
    print(f"wrote {path}")


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _config_from_args(args: argparse.Namespace):
    from curio_jax import config

    try:
        cfg = config.preset(args.preset)
        overrides: dict[str, object] = {}
        if args.num_envs is not None:
            overrides["a2c.num_envs"] = args.num_envs
        if args.total_frames is not None:
            overrides["total_frames"] = args.total_frames
        return cfg.with_overrides(overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from curio_jax import runner

    cfg = _config_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    try:
        settings = runner.RunSettings(
            seeds=args.seeds, seed=args.seed, checkpoint_every=args.checkpoint_every
        )
        print(
            f"{cfg.name}: {args.seeds} seed(s) x {cfg.a2c.num_envs} envs, "
            f"{cfg.num_updates} updates of {cfg.frames_per_update} frames -> {out}"
        )
        summary = runner.train_run(cfg, out, settings, resume=args.resume, overwrite=args.overwrite)
    except runner.NonFiniteError as e:
        print(f"curio-jax: error: {e}", file=sys.stderr)
        return 1
    except (runner.RunError, ValueError) as e:
        raise UsageError(str(e)) from None
    solved = [s["frames_to_solve"] for s in summary["seeds"]]
    n_solved = sum(x is not None for x in solved)
    print(
        f"done: {summary['frames']:,} frames in {summary['seconds']:.1f}s "
        f"({summary['frames_per_sec']:,.0f} frames/s steady, "
        f"compile {summary['compile_seconds']:.1f}s); "
        f"solved (avg > {cfg.solved_threshold}) by {n_solved}/{len(solved)} seeds"
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from curio_jax import compare

    try:
        result = compare.compare_runs(args.run_dirs, n_boot=args.n_boot, seed=args.seed)
    except compare.RunDirError as e:
        raise UsageError(str(e)) from None
    print(compare.format_table(result))
    if args.json is not None:
        _write_json(args.json, result)
    if args.plot is not None:
        compare.plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def cmd_bench_env(args: argparse.Namespace) -> int:
    from curio_jax import bench

    print(f"device: {bench.device_description()}")
    records = bench.bench_env(
        args.sizes,
        args.num_envs,
        impls=tuple(args.impls),
        steps=args.steps,
        repeats=args.repeats,
    )
    print()
    print(bench.format_env_table(records))
    _write_json(args.json, records)
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from curio_jax import bench, config

    try:
        config.preset(args.preset).with_overrides({"a2c.num_envs": max(args.num_envs)})
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"device: {bench.device_description()}")
    records = bench.bench_train(
        args.preset,
        args.num_envs,
        args.seeds,
        updates=args.updates,
        with_reference=args.with_reference,
        reference_frames=args.reference_frames,
    )
    _write_json(args.json, records)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="curio-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tr = sub.add_parser("train", help="train N seeds of a preset in one program")
    tr.add_argument("--preset", required=True, help="e.g. notebook-rnd-5x5 (see curio_jax.config)")
    tr.add_argument("--seeds", type=positive_int, default=1)
    tr.add_argument("--seed", type=nonneg_int, default=0, help="base seed")
    tr.add_argument("--num-envs", type=positive_int, default=None)
    tr.add_argument("--total-frames", type=positive_int, default=None, help="frames per seed")
    tr.add_argument("--out", default=None, help="run directory (default runs/PRESET)")
    tr.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    tr.add_argument(
        "--checkpoint-every", type=positive_int, default=10, help="chunks between checkpoints"
    )
    tr.set_defaults(func=cmd_train)

    cp = sub.add_parser("compare", help="statistics over the seeds of finished runs")
    cp.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    cp.add_argument("--json", type=out_path, default=None)
    cp.add_argument("--plot", type=out_path, default=None, metavar="FILE.png")
    cp.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples")
    cp.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed")
    cp.set_defaults(func=cmd_compare)

    bench = sub.add_parser("bench", help="throughput benchmarks")
    bench_sub = bench.add_subparsers(dest="what", required=True, parser_class=_Parser)
    be = bench_sub.add_parser("env", help="environment steps/s: curio_jax vs navix vs MiniGrid")
    be.add_argument("--sizes", type=size_list, default=[5, 8, 16])
    be.add_argument("--num-envs", type=int_list, default=[1, 64, 1024, 4096])
    be.add_argument(
        "--impls",
        type=lambda s: s.split(","),
        default=["curio_jax", "navix_symbolic_first_person", "minigrid"],
        help="comma-separated subset of curio_jax,navix_symbolic_first_person,minigrid",
    )
    be.add_argument("--steps", type=int, default=128, help="scan length per timed program")
    be.add_argument("--repeats", type=int, default=3)
    be.add_argument("--json", type=out_path, default=None)
    be.set_defaults(func=cmd_bench_env)
    bt = bench_sub.add_parser("train", help="full-pipeline training frames/s (+ FLOP fraction)")
    bt.add_argument("--preset", default="notebook-rnd-8x8")
    bt.add_argument("--num-envs", type=int_list, default=[32, 512, 2048])
    bt.add_argument("--seeds", type=int_list, default=[1], help="comma-separated seed counts")
    bt.add_argument("--updates", type=positive_int, default=10, help="updates per timed chunk")
    bt.add_argument("--with-reference", action="store_true", help="also time the torch reference")
    bt.add_argument("--reference-frames", type=positive_int, default=51_200)
    bt.add_argument("--json", type=out_path, default=None)
    bt.set_defaults(func=cmd_bench_train)
    return parser


def _validate(args: argparse.Namespace) -> None:
    if getattr(args, "func", None) is cmd_bench_env:
        known = {"curio_jax", "navix_symbolic_first_person", "minigrid"}
        unknown = [i for i in args.impls if i not in known]
        if unknown:
            raise UsageError(f"unknown impl {unknown[0]!r}; choose from {', '.join(sorted(known))}")
        if args.steps < 1 or args.repeats < 1:
            raise UsageError("--steps and --repeats must be >= 1")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _validate(args)
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"curio-jax: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("curio-jax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
