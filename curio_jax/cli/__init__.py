"""The `curio-jax` command line (also `python -m curio_jax`): parse, call, print.

Invalid arguments exit with status 2 and a one-line message on stderr, never a traceback; a
failure during a run exits 1. Each command lives in its own module; heavy imports (JAX, navix,
2 s) happen inside the commands, so `--help` and argument errors are fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from curio_jax.argparsing import OneLineParser, one_line
from curio_jax.cli import bench, compare, eval, export, presets, study, sweep, train
from curio_jax.cli.common import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="curio-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in (train, sweep, study, presets, compare, eval, export, bench):
        command.register(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    callbacks: Sequence = (),
    state_hook=None,
) -> int:
    """Run the command line. ``callbacks`` and ``state_hook`` are passed to the run loop of
    `train` and `sweep` (curio_jax.run.loop: called after every chunk; tests use them)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.callbacks, args.state_hook = tuple(callbacks), state_hook
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"curio-jax: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("curio-jax: interrupted", file=sys.stderr)
        return 130
