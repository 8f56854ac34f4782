"""The notebook author's trained DoorKey-16x16 agent (a notebook-format .pth) played in
gymnasium MiniGrid and in the JAX env on the same episodes (docs/verification.md).

    python scripts/eval_shipped_agent.py PATH.pth [--size 16] [--episodes 200] [--seed 1000]
        [--json FILE]

MiniGrid draws the start layouts (reset(seed=SEED), then unseeded resets); the JAX env replays
exactly those layouts with the same per-step random draws for the sampled actions, so a
faithful env and network give the same episodes step for step. Needs the reference extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from curio_jax.analysis import evaluate as ev
from curio_jax.analysis.evaluate import first_difference


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pth", type=Path)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    loaded = ev.load_torch_params(args.pth)
    uniforms = ev.uniform_stream(args.seed, args.episodes, args.size)
    mg_metrics, mg = ev.evaluate(
        loaded.params, args.size, args.episodes, "minigrid", args.seed, uniforms=uniforms
    )
    jax_metrics, jx = ev.evaluate(
        loaded.params, args.size, args.episodes, "jax", args.seed, list(mg.layouts), uniforms
    )
    diff = first_difference(mg, jx)
    out = {
        "weights": loaded.description,
        "size": args.size,
        "episodes": args.episodes,
        "seed": args.seed,
        "minigrid": mg_metrics,
        "jax": jax_metrics,
        "identical_episodes": diff is None,
        "first_difference": diff,
        "steps": int(np.sum(mg.lengths)),
    }
    print(json.dumps(out, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if diff is None else 1


if __name__ == "__main__":
    sys.exit(main())
