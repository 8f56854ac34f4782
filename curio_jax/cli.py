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


def json_path(text: str) -> Path:
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="curio-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    be.add_argument("--json", type=json_path, default=None)
    be.set_defaults(func=cmd_bench_env)
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
