"""Where navix's own PPO spends its time, per kind of XLA operation (jax.profiler trace, CPU),
with the notebook's torso in its towers and with navix's default ``ConvEncoder``: the anchor of
``curio-jax bench train --anchor navix-ppo`` (docs/performance.md).

Builds navix's agent exactly as the anchor does (``curio_jax.tools.bench.navix_ppo_agent``),
compiles its whole ``train`` for ``--updates`` updates, runs it once as warm-up, traces one
more call and sums the duration of every XLA:CPU thunk by HLO instruction, grouped by kind
(convolutions, dots, fusions, loops ...; ``benchmarks/profile_ops.py``'s accounting). Prints,
per encoder, the wall time of the traced call, frames/s, and the share of each kind, then the
top instructions with their shapes.

    python benchmarks/profile_navix.py --size 8 --num-envs 16 --updates 2

Thunk times are summed over threads; compare shares between encoders, not with wall time.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
from profile_ops import hlo_shapes, op_times  # noqa: E402

from curio_jax.tools.bench import NAVIX_ENCODERS, navix_ppo_agent  # noqa: E402


def kind_of(name: str, definition: str) -> str:
    """A coarse kind for an HLO instruction: its opcode family from the name, refined by what
    the optimised HLO says it computes (a fusion around a convolution counts as one)."""
    base = re.sub(r"[._]?\d+$", "", name)
    if "convolution" in base or " convolution(" in definition:
        return "convolution"
    if base.startswith("dot") or " dot(" in definition:
        return "dot"
    if "ynn" in base:
        return "ynn_fusion (matmul)"
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--num-steps", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minibatches", type=int, default=4)
    ap.add_argument("--updates", type=int, default=2)
    ap.add_argument("--encoders", default=",".join(NAVIX_ENCODERS))
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    for enc in args.encoders.split(","):
        agent, budget = navix_ppo_agent(
            args.size,
            args.num_envs,
            args.num_steps,
            args.epochs,
            args.minibatches,
            args.updates,
            enc,
        )
        compiled = jax.jit(agent.train).lower(jax.random.key(0)).compile()
        jax.block_until_ready(compiled(jax.random.key(1)))  # warm-up
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            with jax.profiler.trace(tmp):
                jax.block_until_ready(compiled(jax.random.key(2)))
            wall = time.perf_counter() - t0
            total, count = op_times(Path(tmp))
        shapes = hlo_shapes(compiled.as_text())
        kinds: collections.Counter = collections.Counter()
        for name, ns in total.items():
            kinds[kind_of(name, shapes.get(name, ""))] += ns
        all_ns = sum(total.values())
        print(
            f"navix PPO, {enc} encoder: DoorKey-{args.size}x{args.size}, {args.num_envs} envs, "
            f"{args.updates} updates = {budget:,} frames; traced call {wall:.2f} s wall "
            f"({budget / wall:,.0f} frames/s under the trace); thunk time {all_ns / 1e9:.2f} s"
        )
        print(
            "  by kind: "
            + ", ".join(f"{k} {100 * v / all_ns:.0f}%" for k, v in kinds.most_common(8))
        )
        for name, ns in total.most_common(args.top):
            print(
                f"  {ns / 1e6:9.1f} ms {count[name]:6d}x  {name:28s} {shapes.get(name, '?')[:100]}"
            )


if __name__ == "__main__":
    main()
