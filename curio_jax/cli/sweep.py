"""`curio-jax sweep`: a grid of traced coefficients x N seeds in one compiled program."""

from __future__ import annotations

import argparse

from curio_jax.argparsing import nonneg_int, positive_int, run_dir
from curio_jax.cli.common import (
    MICRO_BATCH_HELP,
    SEED_BATCH_HELP,
    UsageError,
    add_device_options,
    config_from_args,
    one_line,
    report_other_process,
    run_job,
    start_distributed,
)
from curio_jax.core.hparams import sweepable


def register(sub: argparse._SubParsersAction) -> None:
    sw = sub.add_parser(
        "sweep", help="a grid of traced hyperparameters x N seeds in one compiled program"
    )
    sw.add_argument("--preset", default=None, help="base preset (optional with --resume)")
    sw.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a swept coefficient and its values (repeat for a grid): " + ", ".join(sweepable()),
    )
    sw.add_argument("--seeds", type=positive_int, default=None, help="seeds per grid point (1)")
    sw.add_argument("--seed", type=nonneg_int, default=None, help="base seed (default 0)")
    sw.add_argument("--num-envs", type=positive_int, default=None)
    sw.add_argument("--micro-batch", type=nonneg_int, default=None, help=MICRO_BATCH_HELP)
    sw.add_argument("--seed-batch", type=nonneg_int, default=None, help=SEED_BATCH_HELP)
    sw.add_argument("--total-frames", type=positive_int, default=None, help="frames per seed")
    sw.add_argument("--log-every", type=positive_int, default=None, help="updates per chunk")
    sw.add_argument("--out", type=run_dir, required=True, help="sweep directory")
    again = sw.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue DIR from its checkpoint")
    again.add_argument("--overwrite", action="store_true", help="delete and replace DIR")
    sw.add_argument("--checkpoint-every", type=positive_int, default=None, help="chunks (10)")
    sw.add_argument("--keep-checkpoints", type=positive_int, default=None, help="kept (3)")
    sw.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    sw.add_argument(
        "--stop-when-solved",
        action="store_true",
        help="end the sweep once every seed of every grid point has solved (as train's option; "
        "kept by --resume)",
    )
    sw.add_argument(
        "--vmap-grid",
        action="store_true",
        help="vmap grid points together with seeds (more parallel work, e.g. on a GPU; equal "
        "to single runs only to float rounding) instead of calling one compiled program per grid "
        "point (bit-identical to single runs on CPU)",
    )
    add_device_options(sw)
    sw.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # before the run layer's imports: importing navix initialises the XLA backend, after
    # which jax.distributed.initialize refuses to run
    start_distributed(args)
    from curio_jax.run import rundir, sweep
    from curio_jax.run.errors import RunError

    saved: dict = {}
    try:
        if args.resume:
            saved = sweep.read_saved_sweep(args.out)
            saved_cfg, saved_axes = sweep.saved_plan(saved)
            if args.preset is not None:
                config_from_args(args)  # an unknown preset is reported as such
            cfg = config_from_args(args, base=saved_cfg)
            axes = [sweep.parse_set(t, cfg) for t in args.set] if args.set else saved_axes
        else:
            if args.preset is None:
                raise UsageError("the following argument is required: --preset")
            cfg = config_from_args(args)
            axes = [sweep.parse_set(t, cfg) for t in args.set]
        settings = rundir.RunSettings(
            seeds=args.seeds if args.seeds is not None else saved.get("seeds", 1),
            seed=args.seed if args.seed is not None else saved.get("seed", 0),
            checkpoint_every=args.checkpoint_every or saved.get("checkpoint_every", 10),
            keep_checkpoints=args.keep_checkpoints or saved.get("keep_checkpoints", 3),
            tensorboard=not args.no_tensorboard,
            devices=args.devices,
            env_shards=args.env_shards,
            stop_when_solved=bool(args.stop_when_solved or saved.get("stop_when_solved", False)),
        )
    except (RunError, ValueError) as e:
        raise UsageError(one_line(e)) from None
    vmap_grid = args.vmap_grid or bool(saved.get("vmap_grid", False))
    summaries = run_job(
        lambda: sweep.sweep_run(
            cfg,
            axes,
            args.out,
            settings,
            resume=args.resume,
            overwrite=args.overwrite,
            vmap_grid=vmap_grid,
            callbacks=args.callbacks,
            state_hook=args.state_hook,
        )
    )
    if summaries is None:
        return 1
    if report_other_process(summaries):
        return 0
    first = summaries[0]
    print(
        f"done: {len(summaries)} grid points x {len(first['seeds'])} seeds, "
        f"{sum(s['frames'] for s in summaries):,} frames in {first['seconds']:.1f}s "
        f"(compile {first['compile_seconds']:.1f}s) -> {args.out}"
    )
    for point, summary in zip(sweep.grid(axes), summaries, strict=True):
        solved = [s["frames_to_solve"] for s in summary["seeds"]]
        print(
            f"  {sweep.point_dir_name(point)}: solved (avg > {cfg.solved_threshold}) by "
            f"{sum(x is not None for x in solved)}/{len(solved)} seeds"
        )
    return 0
