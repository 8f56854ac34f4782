"""Throughput benchmarks (host side). Figures are printed and returned as records, never
asserted in tests.

Counting convention: one frame = one environment step of one environment.
"""

from __future__ import annotations

import itertools
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import navix as nx
import numpy as np

from curio_jax.config import preset as get_preset
from curio_jax.core.train import make_train
from curio_jax.envs import make_doorkey
from curio_jax.parallel.program import SeedProgram, device_description, seed_keys, stacked_hparams


def time_jitted(
    fn: Callable[[Any], Any], make_arg: Callable[[int], Any], repeats: int
) -> tuple[float, float]:
    """(compile_seconds, best steady-state seconds) of a jitted fn; each call gets a new arg."""

    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(make_arg(0)).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(make_arg(0)))  # warm-up (allocations, thread pools)
    best = float("inf")
    for i in range(repeats):
        arg = make_arg(i + 1)
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(arg))
        best = min(best, time.perf_counter() - t0)
    return compile_s, best


def _random_rollout(env: Any, num_envs: int, steps: int) -> Callable[[Any], Any]:
    """Reset `num_envs` envs and scan `steps` random actions; consumes every observation and
    reward so that nothing is dead-code eliminated."""

    def run(key):
        k_reset, k_act = jax.random.split(key)
        ts = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))

        def body(ts, k):
            a = jax.random.randint(k, (num_envs,), 0, 7)
            ts = jax.vmap(env.step)(ts, a)
            checksum = jnp.sum(ts.observation, dtype=jnp.int32) + jnp.sum(ts.reward).astype(
                jnp.int32
            )
            return ts, checksum

        _, sums = jax.lax.scan(body, ts, jax.random.split(k_act, steps))
        return jnp.sum(sums)

    return run


def bench_jax_env(impl: str, size: int, num_envs: int, steps: int = 128, repeats: int = 3) -> dict:
    """Steps/s of a jitted random-action rollout (reset outside the timed region is not
    possible in one program, so the timed program includes one reset of every env)."""

    if impl == "curio_jax":
        env = make_doorkey(size, rgb_cache=False)
    elif impl == "navix_symbolic_first_person":
        env = nx.make(
            f"Navix-DoorKey-{size}x{size}-v0", observation_fn=nx.observations.symbolic_first_person
        )
    else:
        raise ValueError(f"unknown jax env impl {impl!r}")
    fn = _random_rollout(env, num_envs, steps)
    compile_s, best = time_jitted(fn, lambda i: jax.random.key(i), repeats)
    return {
        "impl": impl,
        "size": size,
        "num_envs": num_envs,
        "seeds": 1,
        "steps_per_sec": num_envs * steps / best,
        "compile_seconds": compile_s,
        "device": device_description(),
    }


def _host_vector_loop(env: Any, num_envs: int, seconds: float) -> tuple[int, float]:
    """(env steps, seconds) of stepping a reset gymnasium vector env with random numpy actions
    drawn on the host, 16 steps between clock reads, for about `seconds`; closes the env."""
    rng = np.random.default_rng(0)
    steps = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(16):
            env.step(rng.integers(0, 7, size=num_envs))
        steps += 16 * num_envs
    elapsed = time.perf_counter() - t0
    env.close()
    return steps, elapsed


def bench_minigrid(size: int, num_envs: int, seconds: float = 2.0) -> dict:
    """Steps/s of gymnasium MiniGrid DoorKey + ImgObsWrapper with random actions: one env
    (`num_envs == 1`, plain env with manual reset) or `gym.make_vec(..., "sync")`."""
    import gymnasium as gym
    from minigrid.wrappers import ImgObsWrapper

    env_id = f"MiniGrid-DoorKey-{size}x{size}-v0"
    rng = np.random.default_rng(0)
    steps = 0
    if num_envs == 1:
        env = ImgObsWrapper(gym.make(env_id))
        env.reset(seed=0)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for a in rng.integers(0, 7, size=256):
                _, _, term, trunc, _ = env.step(int(a))
                if term or trunc:
                    env.reset()
            steps += 256
        elapsed = time.perf_counter() - t0
        env.close()
    else:
        env = gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="sync", wrappers=[ImgObsWrapper]
        )
        env.reset(seed=0)
        steps, elapsed = _host_vector_loop(env, num_envs, seconds)
    return {
        "impl": "minigrid",
        "size": size,
        "num_envs": num_envs,
        "seeds": 1,
        "steps_per_sec": steps / elapsed,
        "compile_seconds": 0.0,
        "device": f"cpu ({platform.processor() or platform.machine()}), python loop",
    }


def bench_gym_vector(size: int, num_envs: int, seconds: float = 2.0) -> dict:
    """Steps/s of `curio_jax.gym.make_vec` (the gymnasium vector env on the JAX DoorKey) driven
    from the host exactly like `bench_minigrid`'s vector case: random numpy actions drawn on the
    host every step, numpy observations back. `compile_seconds`: the first reset and step."""
    from curio_jax.envs.gym_vector import make_vec

    rng = np.random.default_rng(0)
    env = make_vec(f"MiniGrid-DoorKey-{size}x{size}-v0", num_envs=num_envs)
    t0 = time.perf_counter()
    env.reset(seed=0)
    env.step(rng.integers(0, 7, size=num_envs))
    compile_s = time.perf_counter() - t0
    steps, elapsed = _host_vector_loop(env, num_envs, seconds)
    return {
        "impl": "curio_jax_gym_vector",
        "size": size,
        "num_envs": num_envs,
        "seeds": 1,
        "steps_per_sec": steps / elapsed,
        "compile_seconds": compile_s,
        "device": f"{device_description()}, host loop",
    }


def bench_env(
    sizes: list[int],
    num_envs: list[int],
    impls: tuple[str, ...] = ("curio_jax", "navix_symbolic_first_person", "minigrid"),
    steps: int = 128,
    repeats: int = 3,
    minigrid_envs: tuple[int, ...] = (1, 32),
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Every (impl, size, num_envs) cell; MiniGrid runs with `minigrid_envs` instead.
    `curio_jax_gym_vector` (`bench_gym_vector`) runs at `num_envs`; where MiniGrid ran at the
    same size and env count, its record gets `over_minigrid` (the ratio of this run)."""
    records = []
    for size in sizes:
        for impl in impls:
            counts = minigrid_envs if impl == "minigrid" else num_envs
            for n in counts:
                if impl == "minigrid":
                    rec = bench_minigrid(size, n)
                elif impl == "curio_jax_gym_vector":
                    rec = bench_gym_vector(size, n)
                else:
                    rec = bench_jax_env(impl, size, n, steps=steps, repeats=repeats)
                log(
                    f"{rec['impl']:>28}  {size:>2}x{size:<2}  envs {n:>5}  "
                    f"{rec['steps_per_sec']:>12,.0f} steps/s  compile {rec['compile_seconds']:.1f}s"
                )
                records.append(rec)
    for rec in records:  # host-driven vector envs side by side: the ratio of the same run
        if rec["impl"] == "curio_jax_gym_vector":
            ref = [
                r["steps_per_sec"]
                for r in records
                if r["impl"] == "minigrid"
                and (r["size"], r["num_envs"]) == (rec["size"], rec["num_envs"])
            ]
            if ref:
                rec["over_minigrid"] = rec["steps_per_sec"] / ref[0]
                log(
                    f"curio_jax_gym_vector / minigrid make_vec  {rec['size']:>2}x{rec['size']:<2}  "
                    f"envs {rec['num_envs']:>5}  {rec['over_minigrid']:.1f}x"
                )
    return records


def format_env_table(records: list[dict]) -> str:
    """Markdown table: one row per (impl, size), one column per num_envs."""
    counts = sorted({r["num_envs"] for r in records})
    rows = {}
    for r in records:
        rows.setdefault((r["impl"], r["size"]), {})[r["num_envs"]] = r["steps_per_sec"]
    head = "| impl | size | " + " | ".join(f"{n} envs" for n in counts) + " |"
    sep = "|---|---|" + "---|" * len(counts)
    lines = [head, sep]
    for (impl, size), cells in rows.items():
        vals = " | ".join(f"{cells[n]:,.0f}" if n in cells else "" for n in counts)
        lines.append(f"| {impl} | {size}x{size} | {vals} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- training


def matmul_gflops(n: int | None = None, repeats: int = 5) -> dict:
    """Measured dense float32 matmul rate of this machine: {"gflops": 2*n^3 / best time}, at
    JAX's default precision (what the training program's matmuls use; on recent NVIDIA GPUs
    that allows TF32). `n`: 2048 on CPU, 8192 on an accelerator (2048 cannot fill one)."""

    if n is None:
        n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    _, best = time_jitted(lambda x: x @ b, lambda i: a + i, repeats)
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "device": device_description()}


def compiled_flops(compiled: Any) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, list):  # older jax returns one dict per computation
        cost = cost[0] if cost else {}
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def update_flops(train: Any) -> float:
    """FLOPs of one update of one seed, from XLA's cost analysis of the compiled programs.

    XLA counts a loop body once whatever its trip count, so the cost of `Train.update` includes
    one rollout step; the other `rollout_size - 1` steps (policy forward pass + env step on
    `num_envs` envs) are added from their own compiled cost. For the same reason the update is
    counted as one pass over the whole batch (the same config with `micro_batch=0`): a
    micro-batched update does the same arithmetic in a loop XLA would count once."""

    cfg = train.cfg
    train = make_train(cfg.with_overrides({"train.micro_batch": 0}), train.env)
    state = jax.eval_shape(train.init, jax.random.key(0))
    upd = compiled_flops(jax.jit(train.update).lower(state).compile())
    obs = jax.ShapeDtypeStruct((cfg.train.num_envs, 7, 7, 3), jnp.uint8)
    policy = jax.jit(lambda p, o: train.ac.apply({"params": p}, o))
    pol = compiled_flops(policy.lower(state.params.ac, obs).compile())
    actions = jax.ShapeDtypeStruct((cfg.train.num_envs,), jnp.int32)
    env = compiled_flops(jax.jit(jax.vmap(train.env.step)).lower(state.timestep, actions).compile())
    return upd + (cfg.train.rollout_size - 1) * (pol + env)


def peak_device_mb() -> float | None:
    """Peak bytes the first device's allocator has held in this process, in MB (None on CPU,
    where `peak_rss_mb` is the figure, or where the backend keeps no statistics)."""

    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return None
    stats = dev.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def bench_train_cell(
    preset: str,
    num_envs: int,
    seeds: int,
    updates: int = 10,
    repeats: int = 2,
    devices: int = 1,
    env_shards: int = 1,
    micro_batch: int | None = None,
    seed_batch: int | None = None,
    count_flops: bool = True,
) -> dict:
    """Full-pipeline training throughput (env + rollout + update) of `seeds` seeds of
    `preset` with `num_envs` envs each in one program: a jitted chunk of `updates` updates,
    compile apart. `micro_batch`: TrainSettings.micro_batch per seed, `seed_batch`:
    TrainSettings.seed_batch (seeds vmapped together per step of the seed loop); None: automatic.
    Also reports XLA's FLOP count per frame of the compiled chunk, this process's peak RSS and,
    on an accelerator, the device's peak memory.
    `devices` > 1 spreads the batch with curio_jax.parallel.sharding (seeds over devices; each
    seed's envs over `env_shards` of them). `count_flops=False` skips the FLOP count (three more
    compilations, tens of seconds on a GPU); `flops_per_frame` is then None."""
    import resource

    cfg = get_preset(preset).with_overrides(
        {
            "train.num_envs": num_envs,
            "train.micro_batch": micro_batch,
            "train.seed_batch": seed_batch,
        }
    )
    program = SeedProgram(cfg, seeds, devices=devices, env_shards=env_shards)
    train, layout, sb = program.train, program.layout, program.seed_batch
    keys, _ = seed_keys(0, seeds)
    state = program.init(keys, stacked_hparams([cfg] * seeds))
    jax.block_until_ready(state)
    before = program.compile_seconds
    compiled = program.chunk(state, updates, donate=False)
    compile_s = program.compile_seconds - before
    flops = update_flops(train) * updates * seeds if count_flops else None
    state, _ = compiled(state)  # warm-up
    jax.block_until_ready(state)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = compiled(state)
        jax.block_until_ready((state, metrics))
        best = min(best, time.perf_counter() - t0)
    frames = updates * cfg.frames_per_update * seeds
    return {
        "impl": "curio_jax",
        "preset": preset,
        "size": cfg.env.size,
        "num_envs": num_envs,
        "seeds": seeds,
        "micro_batch": train.update_micro_batch(),  # as used (one pass when env-sharded)
        "seed_batch": sb,
        "frames_per_sec": frames / best,
        "compile_seconds": compile_s,
        "flops_per_frame": None if flops is None else flops / frames,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_device_mb": peak_device_mb(),
        "device": device_description(),
        "devices": layout.devices,
        "env_shards": layout.env_shards,
    }


def run_isolated(fn_name: str, **kwargs: Any) -> dict:
    """Run `curio_jax.tools.bench.<fn_name>(**kwargs)` in a fresh Python process (own peak memory,
    no compilation cache shared with other cells) and return its record."""

    code = (
        "import json, sys; from curio_jax.tools import bench; "
        f"rec = bench.{fn_name}(**json.loads(sys.argv[1])); print('RESULT ' + json.dumps(rec))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    raise RuntimeError(f"benchmark worker {fn_name}({kwargs}) failed: {tail[0]}")


def bench_reference_cell(preset: str, num_envs: int, frames: int, threads: int = 2) -> dict:
    """Training throughput of the PyTorch + gymnasium reference (`reference` extra) on the same
    preset: `frames` frames with the solved check disabled (threshold 2 > any return), `threads`
    torch threads."""
    import torch

    from curio_jax.reference.train import run_seed

    torch.set_num_threads(threads)
    cfg = get_preset(preset).with_overrides(
        {
            "train.num_envs": num_envs,
            "total_frames": frames,
            "solved_threshold": 2.0,
        }  # returns are <= 1: never "solved"
    )
    result = run_seed(cfg, seed=0, log=None)
    return {
        "impl": "torch_reference",
        "preset": preset,
        "size": cfg.env.size,
        "num_envs": num_envs,
        "seeds": 1,
        "frames_per_sec": result.frames / result.seconds,
        "compile_seconds": 0.0,
        "threads": threads,
        "device": f"cpu ({threads} torch threads)",
    }


def bench_train(
    preset: str | Sequence[str],
    num_envs: list[int],
    seeds: list[int],
    updates: int = 10,
    with_reference: bool = False,
    reference_frames: int = 51_200,
    log: Callable[[str], None] = print,
    devices: tuple[int, ...] = (1,),
    env_shards: int = 1,
    micro_batches: tuple[int | None, ...] = (None,),
    seed_batches: tuple[int | None, ...] = (None,),
    rounds: int = 1,
    count_flops: bool = True,
    anchor: str | None = None,
) -> list[dict]:
    """Every (preset, devices, num_envs, seeds, micro_batch, seed_batch) cell of curio_jax in
    its own process (`micro_batches`, `seed_batches`: TrainSettings.micro_batch / seed_batch
    values, None for automatic), the machine's matmul rate, and optionally the reference;
    records carry the fraction of the matmul rate achieved and, for more than one device, the
    scaling efficiency against the one-device cell of the same shape (frames/s per device over
    one device's frames/s). `rounds` > 1 times every cell that many times, round-robin (so a
    slow spell of a shared machine hits all cells alike), and reports each cell's median, with
    every round's figure in `frames_per_sec_rounds`. Each cell's figure is logged as soon as it
    is measured (a run cut short keeps what it printed). `count_flops=False`: no FLOP count, no
    fraction.

    Several presets (a list, or a comma-separated string) are timed side by side in the same
    rounds; every record of a later preset gets `over_baseline`, its frames/s over the first
    preset's cell of the same shape (``baseline``: that preset), and a table of the ratios
    closes the log.

    `anchor="navix-ppo"` (PPO presets only): in every round, after the curio_jax cells, navix's
    own PPO per `num_envs` in its own process, matched to the first preset (`anchor_kwargs`),
    once with the notebook's torso and once with navix's default `ConvEncoder`
    (`bench_navix_ppo`'s `encoder`); their records (impl "navix_ppo", the median over rounds as
    above) follow the curio_jax records, and every one-device one-seed curio_jax cell of the
    same `num_envs` gets `over_navix_ppo` (its frames/s over navix's with the notebook's torso)
    and `over_navix_ppo_conv` (over navix's with its ConvEncoder)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    presets = preset_list(preset)
    anchor_cells = (
        {
            (n, enc): {**anchor_kwargs(anchor, presets[0], n, updates), "encoder": enc}
            for n in num_envs
            for enc in NAVIX_ENCODERS
        }
        if anchor
        else {}
    )
    rate = run_isolated("matmul_gflops")
    log(f"dense float32 matmul rate: {rate['gflops']:,.1f} GFLOP/s")
    cells = list(itertools.product(presets, devices, seeds, num_envs, micro_batches, seed_batches))
    runs: list[list[dict]] = [[] for _ in cells]
    anchor_runs: dict[tuple[int, str], list[dict]] = {}
    for r in range(rounds):
        for i, (p, d, s, n, mb, sb) in enumerate(cells):
            rec = run_isolated(
                "bench_train_cell",
                preset=p,
                num_envs=n,
                seeds=s,
                updates=updates,
                devices=d,
                env_shards=env_shards if d > 1 else 1,
                micro_batch=mb,
                seed_batch=sb,
                count_flops=count_flops,
            )
            runs[i].append(rec)
            log(
                f"  round {r + 1}/{rounds}: {p} devices {d} envs {n} seeds {s} micro-batch "
                f"{rec['micro_batch']} seed-batch {rec['seed_batch']}: "
                f"{rec['frames_per_sec']:,.0f} frames/s, compile {rec['compile_seconds']:.1f} s"
            )
        for (n, enc), kwargs in anchor_cells.items():
            rec = run_isolated("bench_navix_ppo", **kwargs)
            anchor_runs.setdefault((n, enc), []).append(rec)
            log(
                f"  round {r + 1}/{rounds}: {anchor} ({enc} encoder) anchor envs {n}: "
                f"{rec['frames_per_sec']:,.0f} frames/s, compile {rec['compile_seconds']:.1f} s"
            )
    records = []
    one_device: dict[tuple[str, int, int], float] = {}
    for (p, d, s, n, _, _), cell_runs in zip(cells, runs, strict=True):
        rec = _median_record(cell_runs)
        rec["preset"] = p
        rec["matmul_gflops"] = rate["gflops"]
        rec["fraction_of_matmul_rate"] = (
            None
            if rec["flops_per_frame"] is None
            else rec["frames_per_sec"] * rec["flops_per_frame"] / (rate["gflops"] * 1e9)
        )
        if d == 1:
            one_device.setdefault((p, s, n), rec["frames_per_sec"])
        elif (p, s, n) in one_device:
            rec["scaling_efficiency"] = rec["frames_per_sec"] / (d * one_device[(p, s, n)])
        _log_cell(rec, p, d, n, s, rounds, log)
        records.append(rec)
    if len(presets) > 1:
        _ratios_to_baseline(records, cells, presets[0], log)
    if anchor:
        records += _anchor_records(presets[0], anchor, anchor_runs, records, log)
    if with_reference:
        n_ref = get_reference_envs(presets[0])
        rec = run_isolated(
            "bench_reference_cell", preset=presets[0], num_envs=n_ref, frames=reference_frames
        )
        log(
            f"torch_reference  {presets[0]}  envs {n_ref:>5}  "
            f"{rec['frames_per_sec']:>10,.0f} frames/s"
        )
        best = max(r["frames_per_sec"] for r in records if r["preset"] == presets[0])
        rec["curio_jax_best_over_reference"] = best / rec["frames_per_sec"]
        log(f"curio_jax (best cell) / reference: {rec['curio_jax_best_over_reference']:.1f}x")
        records.append(rec)
    return records


def preset_list(preset: str | Sequence[str]) -> list[str]:
    """The presets of `bench train --preset`: a list, or one comma-separated string; each
    must be a preset (ValueError otherwise) and appear once."""
    names = [p.strip() for p in preset.split(",")] if isinstance(preset, str) else list(preset)
    if not names or any(not p for p in names):
        raise ValueError(f"no preset in {preset!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"a preset is repeated in {preset!r}")
    for p in names:
        get_preset(p)  # ValueError naming an unknown preset
    return names


def _median_record(cell_runs: list[dict]) -> dict:
    """One cell's record over its rounds: the first round's, with the median frames/s and
    compile time, every round's frames/s, and the largest peak memories."""
    rec = dict(cell_runs[0])
    if len(cell_runs) > 1:
        fps = [x["frames_per_sec"] for x in cell_runs]
        rec["frames_per_sec"] = float(statistics.median(fps))
        rec["frames_per_sec_rounds"] = fps
        rec["compile_seconds"] = float(statistics.median(x["compile_seconds"] for x in cell_runs))
        if "peak_rss_mb" in rec:
            rec["peak_rss_mb"] = max(x["peak_rss_mb"] for x in cell_runs)
            dev_peaks = [x["peak_device_mb"] for x in cell_runs if x.get("peak_device_mb")]
            rec["peak_device_mb"] = max(dev_peaks) if dev_peaks else None
    return rec


def _log_cell(
    rec: dict, preset: str, d: int, n: int, s: int, rounds: int, log: Callable[[str], None]
) -> None:
    flop_text = (
        "FLOPs not counted"
        if rec["flops_per_frame"] is None
        else f"{rec['flops_per_frame'] / 1e6:.2f} MFLOP/frame  "
        f"{100 * rec['fraction_of_matmul_rate']:.0f}% of matmul"
    )
    scaling = (
        f"  scaling {100 * rec['scaling_efficiency']:.0f}%" if "scaling_efficiency" in rec else ""
    )
    dev_mem = (
        f"  peak device memory {rec['peak_device_mb']:,.0f} MB" if rec.get("peak_device_mb") else ""
    )
    spread = ""
    if rounds > 1:
        lo, hi = min(rec["frames_per_sec_rounds"]), max(rec["frames_per_sec_rounds"])
        spread = f" (median of {rounds}: {lo:,.0f}-{hi:,.0f})"
    log(
        f"curio_jax  {preset}  devices {d}  envs {n:>5}  seeds {s:>3}  "
        f"micro-batch {rec['micro_batch']:>5}  seed-batch {rec['seed_batch']:>3}  "
        f"{rec['frames_per_sec']:>10,.0f} frames/s{spread}  {flop_text}  "
        f"compile {rec['compile_seconds']:.1f}s  "
        f"peak RSS {rec['peak_rss_mb']:,.0f} MB{dev_mem}{scaling}"
    )


def _ratios_to_baseline(
    records: list[dict], cells: list[tuple], baseline: str, log: Callable[[str], None]
) -> None:
    """Set `baseline` and `over_baseline` on every record of a preset other than `baseline`
    (frames/s over the baseline's cell of the same devices, seeds, envs, micro-batch and
    seed-batch settings) and log them as a table."""
    base = {cell[1:]: rec for cell, rec in zip(cells, records, strict=True) if cell[0] == baseline}
    log(f"side by side (frames/s, and over {baseline}):")
    for cell, rec in zip(cells, records, strict=True):
        ref = base[cell[1:]]
        if cell[0] != baseline:
            rec["baseline"] = baseline
            rec["over_baseline"] = rec["frames_per_sec"] / ref["frames_per_sec"]
        ratio = f"{rec['over_baseline']:.2f}x" if cell[0] != baseline else "1 (baseline)"
        log(
            f"  {cell[0]:<20} devices {cell[1]}  seeds {cell[2]:>3}  envs {cell[3]:>5}  "
            f"{rec['frames_per_sec']:>10,.0f} frames/s  {ratio}"
        )


def get_reference_envs(preset: str) -> int:
    """The preset's own num_envs: the reference runs the notebook's setting."""

    return get_preset(preset).train.num_envs


ANCHORS = ("navix-ppo",)
"""Other projects' training loops `bench train --anchor` can time next to curio_jax's cells."""


def anchor_kwargs(anchor: str, preset: str, num_envs: int, updates: int) -> dict:
    """`bench_navix_ppo`'s arguments matched to a PPO preset's cell of `num_envs` envs: the
    grid size, rollout length (`num_steps`), epochs, minibatches and number of updates.
    Raises ValueError for an unknown anchor or a preset that is not PPO."""
    if anchor not in ANCHORS:
        raise ValueError(f"unknown anchor {anchor!r}; choose from {', '.join(ANCHORS)}")
    cfg = get_preset(preset)
    if cfg.algorithm != "ppo":
        raise ValueError(
            f"--anchor {anchor} needs a PPO preset (ppo-* or ppo-rnd-*) to time navix's PPO "
            f"next to; {preset} is algorithm={cfg.algorithm!r}"
        )
    return {
        "size": cfg.env.size,
        "num_envs": num_envs,
        "num_steps": cfg.train.rollout_size,
        "epochs": cfg.ppo.epochs,
        "minibatches": cfg.ppo.minibatches,
        "updates": updates,
    }


def _anchor_records(
    preset: str,
    anchor: str,
    anchor_runs: dict[tuple[int, str], list[dict]],
    records: list[dict],
    log: Callable[[str], None],
) -> list[dict]:
    """The anchor's records (median over rounds, tagged with `preset`), and `over_navix_ppo`
    (notebook torso) and `over_navix_ppo_conv` (navix's ConvEncoder) set on the one-device
    one-seed curio_jax `records` of `preset` with the same num_envs (logged)."""
    out = []
    rnd = get_preset(preset).bonus.enabled
    for (n, enc), cell_runs in anchor_runs.items():
        rec = dict(_median_record(cell_runs), preset=preset, anchor=anchor)
        log(
            f"navix_ppo  {preset}  {enc} encoder  envs {n:>5}  steps {rec['num_steps']}  "
            f"epochs {rec['epochs']}  minibatches {rec['minibatches']}  "
            f"{rec['frames_per_sec']:>10,.0f} frames/s  compile {rec['compile_seconds']:.1f}s"
        )
        key = "over_navix_ppo" if enc == "notebook" else f"over_navix_ppo_{enc}"
        for cj in records:
            if cj["preset"] != preset:
                continue
            if (cj["num_envs"], cj["seeds"], cj.get("devices", 1)) == (n, 1, 1):
                cj[key] = cj["frames_per_sec"] / rec["frames_per_sec"]
                log(
                    f"curio_jax / navix PPO ({enc} encoder)  envs {n:>5}  micro-batch "
                    f"{cj['micro_batch']}: {cj[key]:.2f}x"
                    + ("  (curio_jax with its bonus, navix without)" if rnd else "")
                )
        out.append(rec)
    return out


# --------------------------------------------------------------------------- navix's own PPO


NAVIX_ENCODERS = ("notebook", "conv")
"""The towers `bench_navix_ppo` times navix's PPO with: the notebook's torso, and navix's own
default `ConvEncoder`."""


def navix_ppo_agent(
    size: int,
    num_envs: int,
    num_steps: int,
    epochs: int,
    minibatches: int,
    updates: int,
    encoder: str = "notebook",
) -> tuple[Any, int]:
    """navix's own PPO agent (`navix.agents.PPO`) on navix's DoorKey of the same size
    (`Navix-DoorKey-SxS-v0`, egocentric 7x7x3 symbolic observations) for `updates` updates, and
    its frame budget. Each of its two towers (navix keeps actor and critic encoders separate)
    is, with ``encoder="notebook"``, the network matched to the notebook's as far as navix's
    agent allows: the notebook's torso (three 2x2 convolutions, 16-32-64 channels, stride 1)
    and a 64-unit tanh layer; with ``encoder="conv"``, navix's default `ConvEncoder` (the same
    channels with stride 2 and SAME padding, so 4x4, 2x2 and 1x1 maps instead of 6x6, 5x5 and
    4x4, and a 64-unit ReLU layer). navix applies its network to one sample at a time under
    `vmap` (`benchmarks/profile_navix.py` profiles both)."""
    if encoder not in NAVIX_ENCODERS:
        raise ValueError(f"encoder must be one of {NAVIX_ENCODERS}, got {encoder!r}")
    # navix.agents runs computations when imported, which initialises the XLA backend; a
    # module-level import would break jax.distributed.initialize in multi-process runs
    from navix.agents import PPO, ActorCritic, PPOHparams
    from navix.agents.models import ConvEncoder, Encoder

    class NotebookTorso(Encoder):
        @nn.compact
        def __call__(self, carry, x, is_first):
            h = jnp.asarray(x, jnp.float32)
            for c in (16, 32, 64):
                h = nn.relu(nn.Conv(c, kernel_size=(2, 2), padding="VALID")(h))
            return carry, nn.tanh(nn.Dense(64)(h.reshape(h.shape[:-3] + (-1,))))

    env = nx.make(
        f"Navix-DoorKey-{size}x{size}-v0",
        observation_fn=nx.observations.symbolic_first_person,
        max_steps=10 * size * size,
    )
    hp = PPOHparams(
        budget=updates * num_envs * num_steps,
        num_envs=num_envs,
        num_steps=num_steps,
        num_epochs=epochs,
        num_minibatches=minibatches,
    )
    tower = NotebookTorso if encoder == "notebook" else ConvEncoder
    net = ActorCritic(action_dim=len(env.action_set), actor_encoder=tower(), critic_encoder=tower())
    return PPO(hparams=hp, env=env, network=net), hp.budget


def bench_navix_ppo(
    size: int,
    num_envs: int,
    num_steps: int,
    epochs: int,
    minibatches: int,
    updates: int = 4,
    repeats: int = 2,
    encoder: str = "notebook",
) -> dict:
    """Training frames/s of navix's own PPO agent (`navix_ppo_agent`): the whole run of
    `updates` updates is one `jax.jit(agent.train)`, compiled apart and timed as the best of
    `repeats` calls."""
    agent, budget = navix_ppo_agent(
        size, num_envs, num_steps, epochs, minibatches, updates, encoder
    )
    t0 = time.perf_counter()
    compiled = jax.jit(agent.train).lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(jax.random.key(1)))  # warm-up
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(2 + r)))
        best = min(best, time.perf_counter() - t0)
    return {
        "impl": "navix_ppo",
        "size": size,
        "num_envs": num_envs,
        "seeds": 1,
        "num_steps": num_steps,
        "epochs": epochs,
        "minibatches": minibatches,
        "encoder": encoder,
        "frames_per_sec": budget / best,
        "compile_seconds": compile_s,
        "device": device_description(),
    }
