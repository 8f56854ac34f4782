"""`curio-jax train`: N seeds of a preset in one program, into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from curio_jax.argparsing import nonneg_int, positive_int, run_dir
from curio_jax.cli.common import (
    MICRO_BATCH_HELP,
    SEED_BATCH_HELP,
    UsageError,
    add_device_options,
    config_from_args,
    missing_modules,
    one_line,
    report_other_process,
    run_job,
    start_distributed,
)


def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="train N seeds of a preset in one program")
    base = tr.add_mutually_exclusive_group()
    base.add_argument(
        "--preset",
        default=None,
        help="the run to start from, e.g. notebook-rnd-5x5 (`curio-jax presets` lists them with "
        "a line each; optional with --resume)",
    )
    base.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="start from a config file instead of a preset (a run's own config.json replays it)",
    )
    tr.add_argument(
        "--set",
        dest="set_fields",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config field by its dotted name (train.lr=3e-4, bonus.kind=rnd, "
        "total_frames=2048000; `curio-jax presets --fields` lists them); repeatable, applied "
        "after the other options, recorded in config.json",
    )
    tr.add_argument("--seeds", type=positive_int, default=None, help="seeds (default 1)")
    tr.add_argument("--seed", type=nonneg_int, default=None, help="base seed (default 0)")
    tr.add_argument("--num-envs", type=positive_int, default=None)
    tr.add_argument("--micro-batch", type=nonneg_int, default=None, help=MICRO_BATCH_HELP)
    tr.add_argument("--seed-batch", type=nonneg_int, default=None, help=SEED_BATCH_HELP)
    tr.add_argument("--total-frames", type=positive_int, default=None, help="frames per seed")
    tr.add_argument(
        "--log-every",
        type=positive_int,
        default=None,
        help="updates per chunk: one metrics row and progress line each (default: the preset's)",
    )
    tr.add_argument("--out", type=run_dir, default=None, help="run directory (default runs/PRESET)")
    again = tr.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue DIR from its last good checkpoint (options default to the saved ones)",
    )
    again.add_argument(
        "--overwrite", action="store_true", help="delete and replace an existing run directory"
    )
    tr.add_argument(
        "--extend",
        action="store_true",
        help="with --resume and a --total-frames above the saved budget: train the run on to "
        "it (the same run as one started with that budget; the old summary.json is kept as "
        "summary_<frames>.json; refused where the budget shapes learning, PPO's anneal_lr)",
    )
    tr.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        help="chunks between checkpoints (10)",
    )
    tr.add_argument(
        "--keep-checkpoints", type=positive_int, default=None, help="newest checkpoints kept (3)"
    )
    tr.add_argument(
        "--stop-when-solved",
        action="store_true",
        default=None,
        help="end the run once every seed has logged an average score above the solved "
        "threshold (--set solved_threshold=...); frames-to-solve as in a full run, saves the "
        "rest of the budget; summary.json says stops_at_solve (compare then tests "
        "frames-to-solve only); kept by --resume",
    )
    tr.add_argument(
        "--no-tensorboard", action="store_true", help="do not write TensorBoard event files"
    )
    tr.add_argument(
        "--no-gif",
        dest="gif",
        action="store_false",
        help="do not draw the best seed's agent into DIR/agent.gif at the end",
    )
    tr.add_argument(
        "--wandb",
        default=None,
        metavar="PROJECT",
        help="also log to Weights & Biases (the wandb extra); --resume continues the same W&B run",
    )
    tr.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="PATH",
        help="start every seed from trained networks: a run directory, a checkpoint, an "
        "export (curio-jax export) or a notebook .pth; the optimiser starts fresh",
    )
    tr.add_argument(
        "--init-seed",
        type=nonneg_int,
        default=0,
        help="with --init-from a run: which of its seeds (default 0)",
    )
    add_device_options(tr)
    tr.set_defaults(func=run)


def _load_init(args: argparse.Namespace):
    from curio_jax.run.params import ParamsError, load_weights

    try:
        return load_weights(args.init_from, args.init_seed)
    except ParamsError as e:
        raise UsageError(f"--init-from: {one_line(e)}") from None


def _saved_wandb_project(out: Path) -> str | None:
    """The W&B project a run directory logs to, if any (wandb.json)."""
    from curio_jax.run.loggers import WandbLogger

    return WandbLogger.saved_project(Path(out))


def run(args: argparse.Namespace) -> int:
    # before the run layer's imports: importing navix initialises the XLA backend, after
    # which jax.distributed.initialize refuses to run
    start_distributed(args)
    from curio_jax.run import loop, rundir
    from curio_jax.run.errors import RunError

    if args.extend and not (args.resume and args.total_frames is not None):
        raise UsageError(
            "--extend trains a saved run on past its budget: it needs --resume and the new "
            "--total-frames"
        )
    saved_run: dict = {}
    if args.resume:
        out = args.out or (Path("runs") / args.preset if args.preset else None)
        if out is None:
            raise UsageError("--resume needs the run directory: --out DIR")
        if args.preset is not None or args.config is not None:
            config_from_args(args)  # an unknown preset or a bad file is reported as such
        try:
            saved_cfg, saved_run = rundir.read_saved_run(out)
        except RunError as e:
            raise UsageError(one_line(e)) from None
        cfg = config_from_args(args, base=saved_cfg)
    else:
        if args.preset is None and args.config is None:
            raise UsageError(
                "the following argument is required: --preset or --config (or --resume --out DIR)"
            )
        cfg = config_from_args(args)
        out = args.out or Path("runs") / cfg.name

    try:
        settings = rundir.resolve_settings(
            saved_run,
            seeds=args.seeds,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints,
            tensorboard=not args.no_tensorboard,
            devices=args.devices,
            env_shards=args.env_shards,
            stop_when_solved=args.stop_when_solved,
        )
    except ValueError as e:
        raise UsageError(one_line(e)) from None
    init_from = None
    if args.init_from is not None:
        if args.resume:
            raise UsageError("--init-from starts a new run; a resumed run continues its checkpoint")
        init_from = _load_init(args)
    callbacks = list(args.callbacks)
    project = args.wandb
    if args.resume and project is None:
        project = _saved_wandb_project(out)
    if project is not None:
        if missing_modules(("wandb",)):
            raise UsageError("--wandb needs the wandb extra: pip install 'curio_jax[wandb]'")

    def job():
        wandb = None
        if project is not None:
            from curio_jax.run.loggers import WandbLogger

            wandb = WandbLogger(project, Path(out), cfg, cfg.bonus.enabled)
        try:
            return loop.train_run(
                cfg,
                out,
                settings,
                resume=args.resume,
                overwrite=args.overwrite,
                callbacks=[wandb, *callbacks] if wandb else callbacks,
                state_hook=args.state_hook,
                init_from=init_from,
                extend=args.extend,
            )
        finally:
            if wandb is not None:
                wandb.close()

    summary = run_job(job)
    if summary is None:
        return 1
    if report_other_process([summary]):
        return 0
    solved = [s["frames_to_solve"] for s in summary["seeds"]]
    n_solved = sum(x is not None for x in solved)
    print(
        f"done: {summary['frames']:,} frames in {summary['seconds']:.1f}s "
        f"({summary['frames_per_sec']:,.0f} frames/s steady, "
        f"compile {summary['compile_seconds']:.1f}s"
        + (f", {summary['segments']} segments" if summary["segments"] > 1 else "")
        + f"); solved (avg > {cfg.solved_threshold}) by {n_solved}/{len(solved)} seeds -> {out}"
    )
    _show_results(Path(out), args.gif)
    return 0


def _show_results(out: Path, gif: bool) -> None:
    """Where to look: the curves and, unless --no-gif, a GIF of the best seed's agent."""
    shown = [f"curves: {out / 'curves.png'}"] if (out / "curves.png").is_file() else []
    if gif:
        if missing_modules(("PIL",)):
            shown.append("no GIF: pillow is not installed (pip install 'curio_jax[plot]')")
        else:
            from curio_jax.analysis import render

            try:
                what = render.run_gif(out, out / "agent.gif")
                shown.append(f"trained agent: {out / 'agent.gif'} ({what})")
            except ValueError as e:
                shown.append(f"no GIF: {one_line(e)}")
    if shown:
        print("; ".join(shown))
