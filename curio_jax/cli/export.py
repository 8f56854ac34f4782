"""`curio-jax export`: a trained agent's networks as one small file to hand on (`--pth`: in the
notebook's PyTorch format)."""

from __future__ import annotations

import argparse
from pathlib import Path

from curio_jax.argparsing import nonneg_int, out_path
from curio_jax.cli.common import UsageError, one_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a trained agent's networks to a small file (or a notebook .pth)"
    )
    p.add_argument(
        "source",
        type=Path,
        metavar="PATH",
        help="a run directory, its checkpoints/, one checkpoint, or an export",
    )
    p.add_argument("--seed-index", type=nonneg_int, default=0, help="which seed of a run (0)")
    p.add_argument("--out", type=out_path, required=True, metavar="FILE", help="FILE.npz or .pth")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curio_jax.run import convert
    from curio_jax.run.params import ParamsError, export, load_weights

    if args.out.exists():
        raise UsageError(f"{args.out} exists; choose another name or remove it first")
    try:
        weights = load_weights(args.source, args.seed_index)
        if args.out.suffix == ".pth":
            try:
                convert.save_torch_checkpoint(args.out, weights.networks)
            except ImportError:
                raise UsageError(
                    "writing .pth files needs torch: pip install 'curio_jax[reference]'"
                ) from None
        elif args.out.suffix == ".npz":
            export(weights, args.out)
        else:
            raise UsageError(f"--out {args.out}: expected a .npz (export) or .pth file")
    except ParamsError as e:
        raise UsageError(one_line(e)) from None
    nets = ", ".join(sorted(weights.networks))
    size = args.out.stat().st_size / 2**20
    print(f"wrote {args.out} ({size:.1f} MB: {nets}) from {weights.description}")
    return 0
