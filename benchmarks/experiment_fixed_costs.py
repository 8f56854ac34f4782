"""Experiments (c), (g) and (h) of benchmarks/NOTES.md: three ways to cut what a 32-env seed
pays per update, timed against the stock program at 16 seeds x 32 envs (the issue's cell).

Variants, each compiled once in this process and timed round-robin (one call per variant per
round, medians reported), with one seed of 512 envs as the ratio's denominator:

- ``stock``: the package as it is;
- ``rollout unroll 4``: ``collect_rollout(..., unroll=4)``, the 16-step rollout scan unrolled
  4x (change (c));
- ``BFS scheduler``: the same program compiled with XLA:CPU's concurrency-optimised
  (breadth-first) scheduler, ``xla_cpu_enable_concurrency_optimized_scheduler`` (change (g));
- ``flat RND passes``: the one-pass RND target and intrinsic-reward forward passes fed
  ``[T * B, ...]`` rows instead of ``[T, B, ...]`` (change (h); with micro-batching they already
  get flat pieces).

    python benchmarks/experiment_fixed_costs.py --rounds 7

All variants compute the same training step; only speed is compared. None is in the package's
defaults: none measured faster than the run-to-run noise (NOTES.md).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax

import curio_jax.core.train as train_mod
from curio_jax.config import preset as get_preset
from curio_jax.config import seed_batch_size
from curio_jax.core.a2c import map_rows as stock_map_rows
from curio_jax.core.rollout import collect_rollout
from curio_jax.core.train import make_train, seed_loop


def flat_map_rows(fn, xs, micro_batch):
    """`map_rows` whose one-pass case calls `fn` on ``[T * B, ...]`` rows."""
    leaves = jax.tree.leaves(xs)
    lead = leaves[0].shape[:2]
    n = lead[0] * lead[1]
    if micro_batch is not None and micro_batch < n:
        return stock_map_rows(fn, xs, micro_batch)
    flat = jax.tree.map(lambda x: x.reshape((n,) + x.shape[2:]), xs)
    return jax.tree.map(lambda y: y.reshape(lead + y.shape[1:]), fn(flat))


BFS = {"xla_cpu_enable_concurrency_optimized_scheduler": True}
VARIANTS = {  # tag -> (collect_rollout, map_rows, compiler options)
    "stock": (collect_rollout, stock_map_rows, None),
    "rollout unroll 4": (functools.partial(collect_rollout, unroll=4), stock_map_rows, None),
    "BFS scheduler": (collect_rollout, stock_map_rows, BFS),
    "flat RND passes": (collect_rollout, flat_map_rows, None),
}


def build(preset: str, num_envs: int, seeds: int, updates: int, variant: str):
    rollout, map_rows, options = VARIANTS[variant]
    train_mod.collect_rollout, train_mod.map_rows = rollout, map_rows  # read while tracing
    try:
        cfg = get_preset(preset).with_overrides({"a2c.num_envs": num_envs})
        train = make_train(cfg)
        sb = seed_batch_size(cfg.a2c, seeds, "cpu", 1)
        chunk = seed_loop(jax.vmap(lambda s: train.run_chunk(s, updates)), seeds, sb)
        state = jax.jit(jax.vmap(train.init))(jax.random.split(jax.random.key(0), seeds))
        lowered = jax.jit(chunk).lower(state)
        compiled = lowered.compile(options) if options else lowered.compile()
    finally:
        train_mod.collect_rollout, train_mod.map_rows = collect_rollout, stock_map_rows
    state, _ = compiled(state)  # warm-up
    jax.block_until_ready(state)
    return [compiled, state, updates * cfg.frames_per_update * seeds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="notebook-rnd-8x8")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--updates", type=int, default=10, help="updates per timed call")
    args = ap.parse_args()
    if args.rounds < 1 or args.updates < 1:
        ap.error("--rounds and --updates must be >= 1")
    progs = {("32 x 16", v): build(args.preset, 32, 16, args.updates, v) for v in VARIANTS}
    progs[("512 x 1", "stock")] = build(args.preset, 512, 1, args.updates, "stock")
    fps: dict = {k: [] for k in progs}
    for _ in range(args.rounds):
        for k, p in progs.items():
            t0 = time.perf_counter()
            p[1], _ = p[0](p[1])
            jax.block_until_ready(p[1])
            fps[k].append(p[2] / (time.perf_counter() - t0))
    base = statistics.median(fps[("512 x 1", "stock")])
    print(f"{args.preset}: frames/s, medians of {args.rounds} round-robin rounds")
    for (cell, tag), v in fps.items():
        med = statistics.median(v)
        print(
            f"  {cell:8s} {tag:18s} {med:9,.0f}  range {min(v):,.0f}-{max(v):,.0f}  "
            f"/ 512 x 1: {med / base:.3f}"
        )


if __name__ == "__main__":
    main()
