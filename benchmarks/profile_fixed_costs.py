"""Why a 32-env seed trains slower per frame than a 512-env seed (CPU): per-update fixed costs.

For each ``--num-envs`` value (one seed of ``--preset``) this script measures

- the wall time per frame of the training chunk (``Train.run_chunk``, the program ``bench
  train`` times) and of a rollout-only program (the same ``collect_rollout`` of
  ``rollout_size`` steps, policy forward + sampling + env step, scanned over several rollouts),
  both untraced, best of ``--repeats`` calls;
- from one ``jax.profiler`` trace of each: XLA:CPU thunks (operations the runtime
  dispatches one by one) per update and per frame, those of the rollout alone, thunk time
  per frame (summed over the worker threads; tracing inflates it), and how much of it goes
  to thunks that average under 2 us (dispatch-sized work);
- thunk time per frame by source operation (the JAX op path in the HLO metadata, first two
  components), and, between the first and the last ``--num-envs``, the source operations whose
  cost per frame differs most.

    python benchmarks/profile_fixed_costs.py --num-envs 32,512

A frame is one env step of one env; an update is ``num_envs x rollout_size`` frames, so every
cost paid once per update (or once per rollout step) weighs ``512 / num_envs`` times more per
frame at ``num_envs`` than at 512.
"""

from __future__ import annotations

import argparse
import collections
import re
import tempfile
import time
from pathlib import Path

import jax

from curio_jax.config import preset as get_preset
from curio_jax.core.rollout import collect_rollout
from curio_jax.parallel.program import SeedProgram, seed_keys, stacked_hparams

try:  # run as a script from the repository root or from benchmarks/
    from profile_ops import op_times
except ImportError:  # pragma: no cover
    from benchmarks.profile_ops import op_times

_PREFIX = re.compile(
    r"jit\([^)]*\)/|vmap\(\)/|while/body/|while/cond/|eval_jaxpr/|checkpoint/|remat/|"
    r"closed_call/|pjit\([^)]*\)/"
)


def source_ops(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> its JAX source op (metadata op_name without jit/vmap/while
    wrappers, first two path components)."""
    out: dict[str, str] = {}
    for line in hlo_text.splitlines():
        m = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]+)"', line)
        if m:
            path = _PREFIX.sub("", m.group(2))
            out.setdefault(m.group(1), "/".join(path.split("/")[:2]))
    return out


def best_wall(fn, arg, repeats: int):
    """(best seconds of `repeats` calls, last output); fn(arg) -> (arg', out)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        arg, _ = fn(arg)
        jax.block_until_ready(arg)
        best = min(best, time.perf_counter() - t0)
    return best, arg


def measure(preset: str, num_envs: int, updates: int, repeats: int) -> dict:
    cfg = get_preset(preset).with_overrides({"train.num_envs": num_envs})
    program = SeedProgram(cfg, 1)
    train = program.train
    fpu = cfg.frames_per_update
    keys, _ = seed_keys(0, 1)
    state = program.init(keys, stacked_hparams([cfg]))
    compiled = program.chunk(state, updates, donate=False)
    state, _ = compiled(state)  # warm-up
    chunk_s, state = best_wall(compiled, state, repeats)

    def rollouts(s):
        def body(s, _):
            key, k = jax.random.split(s.key)

            def policy(o):
                return train.ac.apply({"params": s.params.ac}, o)

            ts, stats, traj = collect_rollout(
                train.env,
                policy,
                s.timestep,
                s.episode_stats,
                k,
                cfg.train.rollout_size,
                autoreset=cfg.env.autoreset,
                cell_fn=train.bonus.cell_fn(),
            )
            return s.replace(timestep=ts, episode_stats=stats, key=key), traj.reward.sum()

        return jax.lax.scan(body, s, None, length=updates)

    single = jax.tree.map(lambda x: x[0], state)
    roll = jax.jit(rollouts).lower(single).compile()
    single, _ = roll(single)
    roll_s, _ = best_wall(roll, single, repeats)

    roll_dir = Path(tempfile.mkdtemp(prefix="curio_rollout_"))
    jax.profiler.start_trace(str(roll_dir))
    single, _ = roll(single)
    jax.block_until_ready(single)
    jax.profiler.stop_trace()
    roll_thunks = sum(op_times(roll_dir)[1].values()) / updates

    trace_dir = Path(tempfile.mkdtemp(prefix="curio_fixed_"))
    jax.profiler.start_trace(str(trace_dir))
    state, _ = compiled(state)
    jax.block_until_ready(state)
    jax.profiler.stop_trace()
    total, count = op_times(trace_dir)
    src = source_ops(compiled.as_text())
    by_src: collections.Counter = collections.Counter()
    for name, ns in total.items():
        by_src[src.get(name.replace("end: ", ""), "(no metadata)")] += ns
    frames = updates * fpu
    small = [k for k in total if total[k] / count[k] < 2000]
    return {
        "num_envs": num_envs,
        "frames_per_update": fpu,
        "chunk_us_per_frame": chunk_s / frames * 1e6,
        "rollout_us_per_frame": roll_s / frames * 1e6,
        "thunks_per_update": sum(count.values()) / updates,
        "rollout_thunks_per_update": roll_thunks,
        "thunk_us_per_frame": sum(total.values()) / frames / 1e3,
        "small_thunks_per_update": sum(count[k] for k in small) / updates,
        "small_thunk_us_per_frame": sum(total[k] for k in small) / frames / 1e3,
        "by_source_us_per_frame": {k: v / frames / 1e3 for k, v in by_src.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="notebook-rnd-8x8")
    ap.add_argument("--num-envs", default="32,512", help="comma-separated, one seed each")
    ap.add_argument(
        "--frames", type=int, default=8192, help="frames per timed call (rounded to updates)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top", type=int, default=12, help="source ops to list in the difference")
    args = ap.parse_args()
    counts = [int(x) for x in args.num_envs.split(",")]
    if any(n < 1 for n in counts) or args.frames < 1 or args.repeats < 1:
        ap.error("--num-envs, --frames and --repeats must be positive")
    recs = []
    for n in counts:
        fpu = get_preset(args.preset).with_overrides({"train.num_envs": n}).frames_per_update
        recs.append(measure(args.preset, n, max(2, args.frames // fpu), args.repeats))
    print(f"{args.preset}, one seed; us per frame (one frame = one env step of one env)")
    print(
        f"{'envs':>5} {'chunk':>8} {'rollout':>8} {'thunks/update':>14} {'of it rollout':>14} "
        f"{'thunks/frame':>13} {'thunk us/frame':>15} {'of it in <2us thunks':>21}"
    )
    for r in recs:
        per_frame = r["thunks_per_update"] / r["frames_per_update"]
        print(
            f"{r['num_envs']:>5} {r['chunk_us_per_frame']:>8.2f} {r['rollout_us_per_frame']:>8.2f}"
            f" {r['thunks_per_update']:>14,.0f} {r['rollout_thunks_per_update']:>14,.0f}"
            f" {per_frame:>13.2f}"
            f" {r['thunk_us_per_frame']:>15.2f} {r['small_thunk_us_per_frame']:>21.2f}"
        )
    if len(recs) > 1:
        a, b = recs[0], recs[-1]
        sa, sb = a["by_source_us_per_frame"], b["by_source_us_per_frame"]
        diff = sorted(set(sa) | set(sb), key=lambda k: -(sa.get(k, 0) - sb.get(k, 0)))
        print(
            f"\nthunk us/frame by source op, {a['num_envs']} envs minus {b['num_envs']} envs "
            f"(largest first):"
        )
        for k in diff[: args.top]:
            print(
                f"  {k[:58]:58s} {sa.get(k, 0):7.2f} {sb.get(k, 0):7.2f} "
                f"{sa.get(k, 0) - sb.get(k, 0):+7.2f}"
            )


if __name__ == "__main__":
    main()
