"""`curio-jax bench env` and `curio-jax bench train`: throughput benchmarks."""

from __future__ import annotations

import argparse

from curio_jax.argparsing import (
    OneLineParser,
    int_list,
    micro_batch_list,
    out_path,
    positive_int,
    size_list,
)
from curio_jax.cli.common import UsageError, one_line, write_json

ENV_IMPLS = ("curio_jax", "navix_symbolic_first_person", "minigrid", "curio_jax_gym_vector")


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="throughput benchmarks")
    bench_sub = bench.add_subparsers(dest="what", required=True, parser_class=OneLineParser)
    be = bench_sub.add_parser("env", help="environment steps/s: curio_jax vs navix vs MiniGrid")
    be.add_argument("--sizes", type=size_list, default=[5, 8, 16])
    be.add_argument("--num-envs", type=int_list, default=[1, 64, 1024, 4096])
    be.add_argument(
        "--impls",
        type=lambda s: s.split(","),
        default=["curio_jax", "navix_symbolic_first_person", "minigrid"],
        help="comma-separated subset of curio_jax,navix_symbolic_first_person,minigrid,"
        "curio_jax_gym_vector (the gymnasium vector env, stepped from the host)",
    )
    be.add_argument(
        "--minigrid-envs",
        type=int_list,
        default=[1, 32],
        help="env counts for minigrid (1: plain env, more: make_vec sync; default 1,32)",
    )
    be.add_argument("--steps", type=int, default=128, help="scan length per timed program")
    be.add_argument("--repeats", type=int, default=3)
    be.add_argument("--json", type=out_path, default=None)
    be.set_defaults(func=run_env)
    bt = bench_sub.add_parser("train", help="full-pipeline training frames/s (+ FLOP fraction)")
    bt.add_argument(
        "--preset",
        default="notebook-rnd-8x8",
        help="a preset, or several comma-separated, timed side by side in the same rounds "
        "with each one's frames/s over the first's (e.g. ppo-16x16,ppo-rnd-16x16)",
    )
    bt.add_argument("--num-envs", type=int_list, default=[32, 512, 2048])
    bt.add_argument("--seeds", type=int_list, default=[1], help="comma-separated seed counts")
    bt.add_argument(
        "--micro-batch",
        type=micro_batch_list,
        default=[None],
        help="comma-separated micro-batch sizes per seed to time, 'auto' and/or integers (0: "
        "whole batch; default auto)",
    )
    bt.add_argument(
        "--seed-batch",
        type=micro_batch_list,
        default=[None],
        help="comma-separated seed-loop batch sizes to time (seeds vmapped together), 'auto' "
        "and/or integers (0: all seeds at once; default auto)",
    )
    bt.add_argument("--updates", type=positive_int, default=10, help="updates per timed chunk")
    bt.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="time every cell this many times, round-robin, and report the median (a shared "
        "machine's slow spells then hit all cells alike)",
    )
    bt.add_argument(
        "--no-flops",
        dest="flops",
        action="store_false",
        help="skip XLA's FLOP count and the fraction of the matmul rate (saves three "
        "compilations per cell, tens of seconds each on a GPU)",
    )
    bt.add_argument("--with-reference", action="store_true", help="also time the torch reference")
    bt.add_argument(
        "--anchor",
        choices=["navix-ppo"],
        default=None,
        help="PPO presets: also time navix's own PPO on navix DoorKey of the same size, per "
        "--num-envs, with the preset's rollout length, epochs and minibatches (compile apart), "
        "and print curio_jax's frames/s over navix's",
    )
    bt.add_argument("--reference-frames", type=positive_int, default=51_200)
    bt.add_argument(
        "--devices",
        type=int_list,
        default=[1],
        help="device counts to time, e.g. 1,4 (scaling efficiency against 1; default 1)",
    )
    bt.add_argument(
        "--env-shards", type=positive_int, default=1, help="devices per agent in multi-device cells"
    )
    bt.add_argument("--json", type=out_path, default=None)
    bt.set_defaults(func=run_train)


def run_env(args: argparse.Namespace) -> int:
    unknown = [i for i in args.impls if i not in ENV_IMPLS]
    if unknown:
        raise UsageError(f"unknown impl {unknown[0]!r}; choose from {', '.join(sorted(ENV_IMPLS))}")
    if args.steps < 1 or args.repeats < 1:
        raise UsageError("--steps and --repeats must be >= 1")
    from curio_jax.tools import bench

    print(f"device: {bench.device_description()}")
    records = bench.bench_env(
        args.sizes,
        args.num_envs,
        impls=tuple(args.impls),
        steps=args.steps,
        repeats=args.repeats,
        minigrid_envs=tuple(args.minigrid_envs),
    )
    print()
    print(bench.format_env_table(records))
    write_json(args.json, records)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from curio_jax import config
    from curio_jax.tools import bench

    try:
        presets = bench.preset_list(args.preset)
        if args.anchor:
            bench.anchor_kwargs(args.anchor, presets[0], 1, args.updates)
        for p in presets:
            for n in args.num_envs:
                for mb in args.micro_batch:
                    config.preset(p).with_overrides({"train.num_envs": n, "train.micro_batch": mb})
        for sb in args.seed_batch:
            settings = config.TrainSettings(seed_batch=sb)
            for d in args.devices:
                for s in args.seeds:
                    config.seed_batch_size(settings, s, "cpu", d)
    except ValueError as e:
        raise UsageError(one_line(e)) from None
    import jax

    from curio_jax.parallel import sharding

    visible = jax.device_count()
    for d in args.devices:
        for n in args.num_envs:
            for s in args.seeds:
                try:
                    sharding.make_layout(s, n, d, args.env_shards if d > 1 else 1)
                except sharding.ShardingError as e:
                    raise UsageError(f"cell devices={d} envs={n} seeds={s}: {e}") from None
    print(f"visible devices: {visible}")
    print(f"device: {bench.device_description()}")
    records = bench.bench_train(
        presets,
        args.num_envs,
        args.seeds,
        updates=args.updates,
        with_reference=args.with_reference,
        reference_frames=args.reference_frames,
        devices=tuple(args.devices),
        env_shards=args.env_shards,
        micro_batches=tuple(args.micro_batch),
        seed_batches=tuple(args.seed_batch),
        rounds=args.rounds,
        count_flops=args.flops,
        anchor=args.anchor,
    )
    write_json(args.json, records)
    return 0
