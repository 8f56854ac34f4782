"""Several evaluation episodes of one policy side by side in one GIF.

    python scripts/episode_grid.py (--checkpoint DIR | --torch-weights FILE.pth) --size S \\
        --out grid.gif [--episodes 6] [--cols 3] [--seed K] [--seed-index I] [--fps 8] \\
        [--tile 24] [--max-frames 400]

Episodes are played with `curio_jax.analysis.evaluate` (jax backend, the same layouts and action
sampling as `curio-jax eval --seed K`) and drawn with `curio_jax.analysis.render`. An episode
that has ended holds its last frame inside a green (goal reached) or red (time limit) border. Bad
arguments exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from curio_jax.argparsing import door_size, nonneg_int, out_path, positive_int
from curio_jax.cli.common import UsageError

GOAL_BORDER = (0, 170, 0)
TIMEOUT_BORDER = (200, 0, 0)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="episode_grid.py", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, metavar="DIR", help="a curio-jax train run")
    src.add_argument("--torch-weights", type=Path, metavar="FILE.pth", help="notebook .pth")
    p.add_argument("--size", type=door_size, required=True, help="DoorKey side (>= 5)")
    p.add_argument("--out", type=out_path, required=True, metavar="FILE.gif")
    p.add_argument("--episodes", type=positive_int, default=6)
    p.add_argument("--cols", type=positive_int, default=3)
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--seed-index", type=nonneg_int, default=0, help="which seed of the run")
    p.add_argument("--fps", type=positive_int, default=8)
    p.add_argument("--tile", type=positive_int, default=24, help="pixels per cell (>= 4)")
    p.add_argument(
        "--max-frames", type=positive_int, default=400, help="cut longer episodes to this"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as e:
        print(f"episode_grid.py: error: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    from curio_jax.analysis import evaluate as ev
    from curio_jax.analysis import render

    if args.tile < 4:
        raise UsageError(f"--tile must be >= 4, got {args.tile}")
    try:
        if args.checkpoint is not None:
            loaded = ev.load_run_params(args.checkpoint, args.seed_index)
        else:
            loaded = ev.load_torch_params(args.torch_weights)
    except ev.ParamsError as e:
        raise UsageError(str(e)) from None
    print(f"weights: {loaded.description}")
    metrics, eps = ev.evaluate(loaded.params, args.size, args.episodes, seed=args.seed)
    movies, borders = [], []
    for i in range(args.episodes):
        n = min(int(eps.lengths[i]), args.max_frames - 1)
        frames = render.episode_frames(eps.layouts[i], eps.actions[i, :n], tile_size=args.tile)
        movies.append(frames)
        cut = n < int(eps.lengths[i])
        borders.append(None if cut else GOAL_BORDER if eps.terminated[i] else TIMEOUT_BORDER)
    grid = render.grid_frames(movies, cols=args.cols, gap=6, borders=borders)
    render.save_gif(grid, args.out, fps=args.fps)
    print(
        f"wrote {args.out}: {args.episodes} episodes of DoorKey-{args.size}x{args.size}, "
        f"{len(grid)} frames; success rate {metrics['success_rate']:.3f}, mean length "
        f"{metrics['mean_length']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
