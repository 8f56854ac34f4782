"""The notebook's training loop on the PyTorch reference, driven by a curio_jax preset.

    python -m curio_jax.reference.train --preset notebook-rnd-5x5 --seed 10 \
        [--total-frames N] [--num-envs N] [--log-every N] [--solved-threshold X] \
        [--threads 2] [--out DIR [--checkpoint-every K] [--resume]] [--init-from FILE.pth] \
        [--quiet]

Seeds every generator like the notebook's `init_random(env)` (python, numpy, torch, the env's
generator and `env.reset(seed=seed)`), then runs the notebook's `train` loop: `env.reset()`,
collect a segment, learn, every `log_every` updates print
``Global step: <updates * rollout_size>, Average Score: <mean of the last 100 returns>`` and stop
at the first logged update whose average is above the preset's threshold, or at the frame budget.

`--seed` takes one seed or a comma-separated list (run one after the other). With `--out DIR`
it writes DIR/config.json, DIR/summary.json and DIR/metrics.csv (a run directory for
`curio-jax compare`; one row per logged update per seed, columns named as in `curio-jax
train`'s metrics.csv, loss terms averaged over the updates since the previous logged one).
While it runs, DIR/checkpoints/seed_S.pt holds the current seed's whole loop (env, agent,
optimiser, RNG states; every `--checkpoint-every` logged updates), seed_S.rows.json beside it
the rows logged so far (what `curio-jax compare --unfinished` reads, without torch) and
DIR/seeds/seed_S.json each finished seed (layout: curio_jax.analysis.reference_runs), so
`--resume` with the same arguments continues an interrupted run and ends with the same numbers
as an uninterrupted one. `--init-from FILE.pth` loads the notebook's checkpoint format into the
networks (actor-critic, RND predictor and target) before training; the optimiser starts fresh.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import pickle
import random
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from curio_jax.analysis.reference_runs import (
    RUN_FILE,
    checkpoint_path,
    checkpoint_rows_path,
    seed_result_path,
)
from curio_jax.argparsing import OneLineParser, positive_int
from curio_jax.config import TrainConfig, preset, preset_names
from curio_jax.core.metrics import metric_columns
from curio_jax.reference.agents import (
    AgentA2C,
    init_random,
    make_agent,
    make_minigrid_env,
    unsupported_settings,
)
from curio_jax.reference.rl_algos import collect_trajectory_segment
from curio_jax.run.files import atomic_file, atomic_write

METRIC_FIELDS = metric_columns()
"""Columns of metrics.csv, named as in `curio-jax train`'s metrics.csv. Each loss column is the
mean over the updates since the previous logged one."""

# metrics.csv column <- key of the stats dict that `AgentA2C.learn` returns
_STAT_OF_COLUMN = {
    "loss_total": "loss",
    "loss_policy": "policy_loss",
    "loss_value_ext": "value_loss_ext",
    "loss_value_int": "value_loss_int",
    "entropy": "entropy",
    "loss_rnd": "rnd_loss",
    "reward_int_mean": "rnd_reward_avg",
    "grad_norm_ac": "grad_norm_ac",
    "grad_norm_rnd": "grad_norm_rnd",
}
CHECKPOINT_VERSION = 1


class RunError(Exception):
    """A reference run that cannot start or continue (message for the user, exit 1)."""


def average_score(env) -> float:
    """Mean of the env's last (up to) 100 episode returns; nan before the first episode."""
    q = env.return_queue
    return float(np.mean(q)) if len(q) else float("nan")


@dataclass
class SeedResult:
    """Outcome of one seed's run."""

    seed: int
    updates: int
    frames: int
    seconds: float
    frames_to_solve: int | None
    final_avg_return_last100: float | None
    metrics: list[dict] = field(default_factory=list)


@dataclass
class LoopState:
    """Where `train_loop` is: everything besides the env, the agent and the RNGs that a resumed
    loop needs to continue exactly."""

    updates: int = 0
    seconds: float = 0.0
    frames_to_solve: int | None = None
    metrics: list[dict] = field(default_factory=list)
    window: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in _STAT_OF_COLUMN})


def train_loop(
    env,
    agent: AgentA2C,
    *,
    rollout_size: int,
    log_every: int,
    solved_score: float,
    max_updates: int,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
    obs: torch.Tensor | None = None,
    state: LoopState | None = None,
    on_log: Callable[[torch.Tensor, LoopState], None] | None = None,
) -> SeedResult:
    """The notebook's `train(env, agent, rollout_size, log_every, solved_score)` with a budget of
    `max_updates` learning steps. The env must already be seeded (`init_random`).

    A fresh loop starts with `env.reset()`; a resumed one passes the `obs` and `state` it saved.
    `on_log(obs, state)` runs after every logged update that does not end the loop (the
    checkpoint hook)."""
    start = time.perf_counter()
    state = state or LoopState()
    elapsed = state.seconds
    frames_per_update = rollout_size * env.num_envs
    if obs is None:
        obs, _ = env.reset()
        obs = torch.as_tensor(np.asarray(obs, dtype=np.float32))
    while state.updates < max_updates and state.frames_to_solve is None:
        segment = collect_trajectory_segment(
            env, agent, obs, rollout_size, with_intrinsic_values=True
        )
        stats = agent.learn(segment)
        obs = segment.next_start_obs
        for column, values in state.window.items():
            values.append(stats.get(_STAT_OF_COLUMN[column], 0.0))
        state.updates += 1
        n_step = state.updates
        if n_step % log_every:
            continue
        avg_score = average_score(env)
        if log is not None:
            log(f"Global step: {n_step * rollout_size}, Average Score: {avg_score:.5f}")
        row = {
            "seed": seed,
            "update": n_step,
            "frames": n_step * frames_per_update,
            "avg_return_last100": avg_score,
            "episodes": int(env.episode_count),
        }
        row.update({c: float(np.mean(v)) for c, v in state.window.items()})
        state.metrics.append(row)
        for v in state.window.values():
            v.clear()
        # The notebook tests `avg_score > solved_score` after every update, but the score
        # only changes here (it starts at 0.0), so for thresholds >= 0 this is the same stop.
        if avg_score > solved_score:
            state.frames_to_solve = n_step * frames_per_update
            if log is not None:
                log(f"Environment solved with avg_score: {avg_score:.5f}")
        elif n_step < max_updates and on_log is not None:
            state.seconds = elapsed + time.perf_counter() - start
            on_log(obs, state)
    final = average_score(env)
    return SeedResult(
        seed=seed,
        updates=state.updates,
        frames=state.updates * frames_per_update,
        seconds=elapsed + time.perf_counter() - start,
        frames_to_solve=state.frames_to_solve,
        final_avg_return_last100=None if math.isnan(final) else final,
        metrics=state.metrics,
    )


# --------------------------------------------------------------------------- checkpoints


def save_loop_checkpoint(path: Path, env, agent: AgentA2C, obs, state: LoopState) -> None:
    """Pickle everything a loop needs to continue bit-identically (env and agent objects,
    optimiser, the python / numpy / torch global RNG states) to `path`, atomically; then the
    logged rows, as JSON, beside it (`checkpoint_rows_path`)."""
    vec = env.env  # RecordEpisodeStatistics -> SyncVectorEnv, whose env factories are closures
    env_fns = getattr(vec, "env_fns", None)
    if env_fns is not None:
        vec.env_fns = None
    try:
        with atomic_file(path, "wb") as f:
            torch.save(
                {
                    "version": CHECKPOINT_VERSION,
                    "env": env,
                    "agent": agent,
                    "obs": obs,
                    "state": state,
                    "rng": (random.getstate(), np.random.get_state(), torch.get_rng_state()),  # noqa: NPY002
                },
                f,
            )
    finally:
        if env_fns is not None:
            vec.env_fns = env_fns
    # the logged rows, for reading the run while it goes on without torch (`read_progress`)
    atomic_write(checkpoint_rows_path(path), json.dumps(state.metrics) + "\n")


class _CheckpointUnpickler(pickle.Unpickler):
    """Reads LoopState pickled as ``__main__.LoopState`` (how `python -m
    curio_jax.reference.train` saved it before its entry point ran the imported module) from
    any program, as this module's LoopState."""

    def find_class(self, module: str, name: str):
        if module == "__main__":
            module = "curio_jax.reference.train"
        return super().find_class(module, name)


# what torch.load needs of a pickle module, with the unpickler above
_CHECKPOINT_PICKLE = types.SimpleNamespace(
    __name__="curio_jax.reference.checkpoint_pickle",
    Unpickler=_CheckpointUnpickler,
    load=pickle.load,
)


def _read_checkpoint(path: Path) -> dict:
    try:
        d = torch.load(path, weights_only=False, pickle_module=_CHECKPOINT_PICKLE)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise RunError(f"cannot read reference checkpoint {path}: {e}") from None
    if not isinstance(d, dict) or d.get("version") != CHECKPOINT_VERSION:
        raise RunError(f"{path} is not a reference checkpoint of version {CHECKPOINT_VERSION}")
    return d


def load_loop_checkpoint(path: Path) -> tuple[object, AgentA2C, torch.Tensor, LoopState]:
    """(env, agent, obs, state) from `save_loop_checkpoint`; restores the global RNG states."""
    d = _read_checkpoint(path)
    random.setstate(d["rng"][0])
    np.random.set_state(d["rng"][1])  # noqa: NPY002 - the notebook uses numpy's global generator
    torch.set_rng_state(d["rng"][2])
    torch.use_deterministic_algorithms(True)
    return d["env"], d["agent"], d["obs"], d["state"]


def load_init_weights(agent: AgentA2C, path: str | Path) -> None:
    """Overwrite the agent's networks with a notebook-format `.pth` ({"a2c_params": ActorCritic
    state_dict, "rnd_params": RNDModule state_dict}): the actor-critic and, for an RND agent,
    predictor and target. The optimiser state stays fresh."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise RunError(f"cannot read --init-from {path}: {e}") from None
    if not isinstance(d, dict) or "a2c_params" not in d:
        raise RunError(f"--init-from {path} has no 'a2c_params' (not a notebook .pth)")
    try:
        agent.model.load_state_dict(d["a2c_params"])
        if agent.rnd_module is not None:
            if "rnd_params" not in d:
                raise RunError(f"--init-from {path} has no 'rnd_params' for the RND agent")
            agent.rnd_module.load_state_dict(d["rnd_params"])
    except RuntimeError as e:
        raise RunError(f"--init-from {path} does not fit the agent: {e}") from None


def run_seed(
    cfg: TrainConfig,
    seed: int,
    log: Callable[[str], None] | None = print,
    *,
    checkpoint: Path | None = None,
    checkpoint_every: int = 1,
    init_from: str | Path | None = None,
) -> SeedResult:
    """Build env and agent for `cfg` seeded like the notebook (then, with `init_from`, load a
    notebook `.pth` into the networks), and train. With `checkpoint`, the loop state is saved
    there every `checkpoint_every` logged updates and, if that file exists, the run continues
    from it."""
    bad = unsupported_settings(cfg)
    if bad:
        raise ValueError(f"the torch reference does not implement: {', '.join(bad)}")
    obs = state = None
    if checkpoint is not None and checkpoint.exists():
        env, agent, obs, state = load_loop_checkpoint(checkpoint)
        if log is not None:
            log(f"# seed {seed}: resumed at update {state.updates} from {checkpoint}")
    else:
        env = make_minigrid_env(cfg.env.size, cfg.train.num_envs)
    try:
        if state is None:
            init_random(env, seed)
            agent = make_agent(cfg, env)
            if init_from is not None:
                load_init_weights(agent, init_from)
        on_log = None
        if checkpoint is not None:

            def on_log(obs, st):
                if (st.updates // cfg.log_every) % checkpoint_every == 0:
                    save_loop_checkpoint(checkpoint, env, agent, obs, st)

        return train_loop(
            env,
            agent,
            rollout_size=cfg.train.rollout_size,
            log_every=cfg.log_every,
            solved_score=cfg.solved_threshold,
            max_updates=cfg.num_updates,
            seed=seed,
            log=log,
            obs=obs,
            state=state,
            on_log=on_log,
        )
    finally:
        env.close()


def _json_float(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def summary_dict(cfg: TrainConfig, results: list[SeedResult], threads: int) -> dict:
    frames = sum(r.frames for r in results)
    seconds = sum(r.seconds for r in results)
    return {
        "preset": cfg.name,
        "impl": "torch_reference",
        "seeds": [
            {
                "seed": r.seed,
                "frames_to_solve": r.frames_to_solve,
                "final_avg_return_last100": _json_float(r.final_avg_return_last100),
                "updates": r.updates,
                "frames": r.frames,
            }
            for r in results
        ],
        "frames": frames,
        "seconds": seconds,
        "frames_per_sec": frames / seconds if seconds > 0 else None,
        "num_envs": cfg.train.num_envs,
        "torch_threads": threads,
        "device": "cpu",
        # the notebook's loop stops a seed when it solves: its final score is then the score at
        # the solve point (not when the threshold cannot be reached, e.g. 2 for a warm start)
        "stops_at_solve": any(r.frames_to_solve is not None for r in results),
        "config": cfg.to_dict(),
    }


def write_outputs(out: Path, summary: dict, results: list[SeedResult]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        w.writeheader()
        for r in results:
            w.writerows(r.metrics)
    (out / "config.json").write_text(json.dumps(summary["config"], indent=2) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")


def save_seed_result(out: Path, result: SeedResult) -> None:
    path = seed_result_path(out, result.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(dataclasses.asdict(result)) + "\n")


def load_seed_result(out: Path, seed: int) -> SeedResult | None:
    path = seed_result_path(out, seed)
    if not path.exists():
        return None
    return SeedResult(**json.loads(path.read_text()))  # NaN averages round-trip as nan


def _claim_out(out: Path, settings: dict, resume: bool) -> None:
    """Create `out` for a new run, or check that `--resume` continues the run saved there with
    the same settings. Never replaces a run that is there."""
    saved_path = out / RUN_FILE
    if resume:
        if not saved_path.exists():
            raise RunError(f"--resume: {out} holds no reference run ({RUN_FILE} is missing)")
        saved = json.loads(saved_path.read_text())
        diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        if diff:
            name = diff[0]
            raise RunError(
                f"--resume: the run in {out} was started with other settings: {name} "
                f"(saved {saved.get(name)!r}, given {settings.get(name)!r})"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise RunError(f"--out {out} is not empty; pass --resume to continue the run there")
    out.mkdir(parents=True, exist_ok=True)
    saved_path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seed must be an integer or a comma-separated list of integers, got {text!r}"
        ) from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seed values must be distinct and >= 0, got {text!r}")
    return seeds


def _finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m curio_jax.reference.train",
        description="Train the PyTorch reference of the notebook on a curio_jax preset.",
    )
    p.add_argument("--preset", required=True, help=f"one of: {', '.join(preset_names())}")
    p.add_argument("--seed", type=_parse_seeds, default=[10], help="seed or list (default 10)")
    p.add_argument("--total-frames", type=positive_int, help="frame budget (default: preset)")
    p.add_argument("--num-envs", type=positive_int, help="parallel envs (default: preset)")
    p.add_argument("--log-every", type=positive_int, help="updates per log line (default: preset)")
    p.add_argument("--solved-threshold", type=_finite_float, help="solved when avg > this")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    p.add_argument("--out", type=Path, help="directory for summary.json and metrics.csv")
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=1,
        help="with --out: save each seed's loop every K logged updates (default 1)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (same arguments): finished seeds are kept, the "
        "unfinished one continues from its checkpoint",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        help="start every seed from a notebook-format .pth (a2c_params, rnd_params)",
    )
    p.add_argument("--quiet", action="store_true", help="no log lines")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = preset(args.preset)
        overrides = {}
        if args.num_envs is not None:
            overrides["train.num_envs"] = args.num_envs
        if args.total_frames is not None:
            overrides["total_frames"] = args.total_frames
        if args.log_every is not None:
            overrides["log_every"] = args.log_every
        if args.solved_threshold is not None:
            overrides["solved_threshold"] = args.solved_threshold
        cfg = cfg.with_overrides(overrides)
    except ValueError as e:
        parser.error(str(e))
    bad = unsupported_settings(cfg)
    if bad:
        parser.error(f"preset {cfg.name} needs what the torch reference lacks: {', '.join(bad)}")
    if cfg.env.size not in (5, 6, 8, 16):
        parser.error(
            f"gymnasium MiniGrid registers DoorKey 5, 6, 8 and 16 only, not {cfg.env.size}"
        )
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a directory")

    if args.resume and args.out is None:
        parser.error("--resume needs --out DIR")
    if args.init_from is not None and not args.init_from.is_file():
        parser.error(f"--init-from {args.init_from} is not a file")

    torch.set_num_threads(args.threads)
    log = None if args.quiet else (lambda line: print(line.ljust(100), flush=True))
    try:
        if args.out is not None:
            settings = {
                "preset": args.preset,
                "seeds": args.seed,
                "config": cfg.to_dict(),
                "threads": args.threads,
                "init_from": None if args.init_from is None else str(args.init_from),
            }
            _claim_out(args.out, settings, args.resume)
        results = []
        for seed in args.seed:
            done = None if args.out is None else load_seed_result(args.out, seed)
            if done is not None:
                if log is not None:
                    log(f"# {cfg.name} seed {seed}: finished earlier ({done.updates} updates)")
                results.append(done)
                continue
            if log is not None:
                log(f"# {cfg.name} seed {seed}: {cfg.num_updates} updates max")
            ckpt = None
            if args.out is not None:
                ckpt = checkpoint_path(args.out, seed)
                ckpt.parent.mkdir(exist_ok=True)
            result = run_seed(
                cfg,
                seed,
                log,
                checkpoint=ckpt,
                checkpoint_every=args.checkpoint_every,
                init_from=args.init_from,
            )
            if args.out is not None:
                save_seed_result(args.out, result)
                ckpt.unlink(missing_ok=True)
                checkpoint_rows_path(ckpt).unlink(missing_ok=True)
            results.append(result)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = summary_dict(cfg, results, args.threads)
    if args.init_from is not None:
        summary["init_from"] = str(args.init_from)
    if args.out is not None:
        write_outputs(args.out, summary, results)
    if log is not None:
        log(
            f"# {summary['frames']} frames in {summary['seconds']:.1f} s "
            f"({summary['frames_per_sec']:.0f} frames/s)"
        )
    return 0


if __name__ == "__main__":
    # run the imported module's main, so that what a checkpoint pickles (LoopState) is
    # curio_jax.reference.train's, readable from any program, not __main__'s
    from curio_jax.reference import train

    sys.exit(train.main())
