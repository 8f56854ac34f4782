"""`curio-jax presets`: the presets, one line each (`--fields`: every config field and its
value in a preset, the names `train --set` takes)."""

from __future__ import annotations

import argparse

from curio_jax.cli.common import UsageError, one_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list the presets, one line each")
    p.add_argument(
        "--fields",
        metavar="PRESET",
        default=None,
        help="instead, list every config field of PRESET with its value (the KEY of --set)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curio_jax import config

    if args.fields is not None:
        try:
            cfg = config.preset(args.fields)
        except ValueError as e:
            raise UsageError(one_line(e)) from None
        for name, field in config.config_fields().items():
            value = config.config_value(cfg, name)
            print(f"{name:<28} {value!r:<14} {field.type}")
        return 0
    names = config.preset_names()
    width = max(map(len, names))
    for name in names:
        cfg = config.preset(name)
        print(f"{name:<{width}}  {cfg.total_frames:>10,} frames  {config.preset_description(name)}")
    return 0
