"""Where the time of a training chunk goes, per XLA operation (jax.profiler trace, CPU).

Runs ``--updates`` updates of ``--seeds`` seeds x ``--num-envs`` envs of a preset as one jitted
program (the same chunk ``curio-jax train`` and ``bench train`` run, seed loop included),
traces one call with ``jax.profiler`` and sums the duration of every XLA:CPU thunk event by
HLO instruction name, over all threads of the intra-op pool. Prints the total, the time per
kind of instruction (``ynn_fusion``: matmuls run by YNNPACK; ``dot``: matmuls XLA gives to
Eigen; element-wise fusions; ``call``: the PRNG loops ...) and the top instructions with their
shapes from the optimised HLO.

    python benchmarks/profile_ops.py --preset notebook-rnd-8x8 --num-envs 32 --seeds 16
    python benchmarks/profile_ops.py --num-envs 32 --seeds 16 --seed-batch 0 --micro-batch 32

Thunk times are summed over threads, so they add up to about cores x wall time; compare
totals between configurations, not with wall-clock frames/s. The trace itself slows the run.
"""

from __future__ import annotations

import argparse
import collections
import re
import tempfile
import time
from pathlib import Path

import jax
from jax.profiler import ProfileData

from curio_jax.config import preset as get_preset
from curio_jax.parallel.program import SeedProgram, seed_keys, stacked_hparams

_SKIP = ("ThunkExecutor", "SlinkyThreadPool")


def op_times(trace_dir: Path) -> tuple[collections.Counter, collections.Counter]:
    """(total ns, event count) per HLO instruction name, from the XLA:CPU worker threads of
    the newest trace under ``trace_dir``."""
    path = sorted(trace_dir.glob("**/*.xplane.pb"))[-1]
    total: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for plane in ProfileData.from_file(str(path)).planes:
        for line in plane.lines:
            if "XLAEigen" not in line.name:  # the intra-op pool running the thunks
                continue
            for ev in line.events:
                if not ev.name.startswith(_SKIP):
                    total[ev.name] += ev.duration_ns
                    count[ev.name] += 1
    return total, count


def hlo_shapes(hlo_text: str) -> dict[str, str]:
    """Instruction name -> the start of its definition (shape and operands)."""
    out: dict[str, str] = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (.*)", line)
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="notebook-rnd-8x8")
    ap.add_argument("--num-envs", type=int, default=32)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--micro-batch", type=int, default=None, help="default: automatic")
    ap.add_argument("--seed-batch", type=int, default=None, help="default: automatic")
    ap.add_argument("--updates", type=int, default=5, help="updates in the traced call")
    ap.add_argument("--top", type=int, default=25, help="instructions to list")
    args = ap.parse_args()

    cfg = get_preset(args.preset).with_overrides(
        {
            "train.num_envs": args.num_envs,
            "train.micro_batch": args.micro_batch,
            "train.seed_batch": args.seed_batch,
        }
    )
    program = SeedProgram(cfg, args.seeds)
    train, sb = program.train, program.seed_batch
    keys, _ = seed_keys(0, args.seeds)
    state = program.init(keys, stacked_hparams([cfg] * args.seeds))
    compiled = program.chunk(state, args.updates, donate=False)
    state, _ = compiled(state)  # warm-up
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with jax.profiler.trace(tmp):
            jax.block_until_ready(compiled(state))
        wall = time.perf_counter() - t0
        total, count = op_times(Path(tmp))
    shapes = hlo_shapes(compiled.as_text())
    frames = args.updates * cfg.frames_per_update * args.seeds
    print(
        f"{cfg.name}: {args.seeds} seed(s) x {args.num_envs} envs, micro-batch "
        f"{train.update_micro_batch()}, seed-batch {sb}; {args.updates} updates = {frames:,} "
        f"frames; traced call {wall:.2f} s wall; thunk time {sum(total.values()) / 1e6:,.0f} ms "
        f"(all threads)"
    )
    kinds: collections.Counter = collections.Counter()
    for name, ns in total.items():
        kinds[re.sub(r"[._]?\d+$", "", name)] += ns
    print("by kind (ms): " + ", ".join(f"{k} {v / 1e6:,.0f}" for k, v in kinds.most_common(12)))
    for name, ns in total.most_common(args.top):
        print(f"{ns / 1e6:9.1f} ms {count[name]:6d}x  {name:24s} {shapes.get(name, '?')[:110]}")


if __name__ == "__main__":
    main()
