"""`curio-jax eval` (play episodes with a trained policy) and `curio-jax crosscheck`."""

from __future__ import annotations

import argparse
from pathlib import Path

from curio_jax.argparsing import door_size, nonneg_int, out_path, positive_int
from curio_jax.cli.common import UsageError, missing_modules, write_json


def register(sub: argparse._SubParsersAction) -> None:
    """The `eval` and `crosscheck` subcommands."""
    ev = sub.add_parser("eval", help="evaluate a policy: success rate, return, episode length")
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--checkpoint",
        type=Path,
        metavar="DIR",
        help="a curio-jax train run directory, its checkpoints/ directory or one ckpt file",
    )
    src.add_argument("--torch-weights", type=Path, metavar="FILE.pth", help="a notebook .pth")
    ev.add_argument("--size", type=door_size, required=True, help="DoorKey side (>= 5)")
    ev.add_argument("--episodes", type=positive_int, default=100)
    ev.add_argument("--backend", choices=("jax", "minigrid"), default="jax")
    ev.add_argument("--seed", type=nonneg_int, default=0, help="layouts and action sampling")
    ev.add_argument(
        "--seed-index", type=nonneg_int, default=None, help="which seed of the run (default 0)"
    )
    ev.add_argument("--gif", type=out_path, default=None, help="render episode 0 into a GIF")
    ev.add_argument("--fps", type=positive_int, default=8, help="GIF frames per second")
    ev.add_argument("--json", type=out_path, default=None)
    ev.set_defaults(func=run_eval)

    cc = sub.add_parser(
        "crosscheck", help="cross-checks against gymnasium MiniGrid and the PyTorch reference"
    )
    cc.add_argument("--quick", action="store_true", help="fewer steps and cases (~30 s)")
    cc.set_defaults(func=run_crosscheck)


def run_eval(args: argparse.Namespace) -> int:
    import importlib.util

    from curio_jax.analysis import evaluate as ev

    if args.backend == "minigrid":
        missing = [m for m in ("gymnasium", "minigrid") if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(
                f"--backend minigrid needs {', '.join(missing)}: pip install 'curio_jax[reference]'"
            )
    if args.gif is not None and importlib.util.find_spec("PIL") is None:
        raise UsageError("--gif needs pillow: pip install 'curio_jax[plot]'")
    if args.torch_weights is not None and args.seed_index is not None:
        raise UsageError("--seed-index applies to --checkpoint runs only")
    try:
        if args.checkpoint is not None:
            loaded = ev.load_run_params(args.checkpoint, args.seed_index or 0)
        else:
            loaded = ev.load_torch_params(args.torch_weights)
    except ev.ParamsError as e:
        raise UsageError(str(e)) from None
    print(f"weights: {loaded.description}")
    metrics, episodes = ev.evaluate(
        loaded.params, args.size, args.episodes, backend=args.backend, seed=args.seed
    )
    metrics = {**metrics, "size": args.size, "seed": args.seed}
    print(
        f"DoorKey-{args.size}x{args.size}, {metrics['episodes']} episodes ({args.backend} "
        f"backend, seed {args.seed}): success rate {metrics['success_rate']:.3f}, mean return "
        f"{metrics['mean_return']:.4f}, mean length {metrics['mean_length']:.1f}"
    )
    write_json(args.json, metrics)
    if args.gif is not None:
        from curio_jax.analysis import render

        n = int(episodes.lengths[0])
        tile = 32 if args.size <= 8 else 16
        frames = render.episode_frames(episodes.layouts[0], episodes.actions[0, :n], tile)
        render.save_gif(frames, args.gif, fps=args.fps)
        outcome = "reached the goal" if episodes.terminated[0] else "did not reach the goal"
        print(f"wrote {args.gif} (episode 0: {n} steps, {outcome})")
    return 0


def run_crosscheck(args: argparse.Namespace) -> int:
    missing = missing_modules()
    if missing:
        raise UsageError(
            f"crosscheck needs the reference extra (missing: {', '.join(missing)}): "
            "pip install 'curio_jax[reference]'"
        )
    from curio_jax.reference import crosscheck

    print(f"curio-jax crosscheck ({'quick' if args.quick else 'full'})")
    checks = crosscheck.run_checks(quick=args.quick, log=print)
    n_pass = sum(c.passed for c in checks)
    print(f"{n_pass}/{len(checks)} checks passed")
    return 0 if n_pass == len(checks) else 1
