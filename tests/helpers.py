"""Helpers shared by several test modules: running the CLI in-process and counting traces."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from fake_env import Corridor

from curio_jax import cli
from curio_jax.config import preset
from curio_jax.core.bonuses.rnd import predictor_loss_term
from curio_jax.core.networks import ActorCritic, RNDPredictor, RNDTarget, dummy_obs
from curio_jax.core.optim import AgentParams
from curio_jax.core.train import make_train

LOG_POINTS = 8


def run_cli(argv, capsys, **hooks):
    """`curio-jax ARGV` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(argv, **hooks)
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(argv, capsys, contains=None):
    """ARGV exits 2 with one line on stderr, no traceback, containing `contains`."""
    code, _, err = run_cli(argv, capsys)
    assert code == 2, (argv, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err
    if contains:
        assert contains in lines[0], lines[0]


def count_update_traces(train: Any) -> dict[str, int]:
    """Wrap ``train.update`` (on this instance) so every trace through it is counted in the
    returned dict's ``"n"``: ``run_chunk`` calls ``self.update`` once per trace of its scan
    body, so the count is the number of times XLA saw a new update program."""
    count = {"n": 0}
    original = train.update

    def counting(state):
        count["n"] += 1
        return original(state)

    train.update = counting
    return count


def write_run(
    root: Path,
    name: str,
    *,
    preset_name: str = "notebook-a2c-8x8",
    finals: list[float],
    solves: list[int | None],
    frames: int = 1_000_000,
    threshold: float | None = None,
    size: int | None = None,
    impl: str = "curio_jax",
    per_seed: bool = True,
    seed_numbers: list[int] | None = None,
    base_seed: int | None = None,
) -> Path:
    """A run directory as `curio-jax train` writes it (summary "frames" is the total over the
    seeds, "frames_per_seed" the budget of one; `per_seed=False` leaves the latter out, as an
    older or foreign writer might). Seed k's average score rises linearly to finals[k]; the
    first logged row has no finished episode yet (NaN). Seeds are numbered 0..n-1 unless
    ``seed_numbers`` says otherwise (as the reference numbers them); ``base_seed`` writes
    run.json as `curio-jax train` does (seed k of it: split(key(base_seed), n)[k])."""
    numbers = list(range(len(finals))) if seed_numbers is None else seed_numbers
    cfg = preset(preset_name).to_dict()
    cfg["total_frames"] = frames
    if threshold is not None:
        cfg["solved_threshold"] = threshold
    if size is not None:
        cfg["env"]["size"] = size
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg, indent=2))
    lines = [
        "seed,update,frames,avg_return_last100,episodes,loss_total,loss_policy,entropy,"
        "reward_int_mean,note"
    ]
    for seed, final in zip(numbers, finals, strict=True):
        for i in range(1, LOG_POINTS + 1):
            f = frames * i // LOG_POINTS
            avg = "nan" if i == 1 else f"{final * i / LOG_POINTS:.6f}"
            lines.append(f"{seed},{i * 10},{f},{avg},{i * 7},0.5,0.1,1.9,,text-{i}")
    (d / "metrics.csv").write_text("\n".join(lines) + "\n")
    summary = {
        "preset": preset_name,
        "impl": impl,
        "seeds": [
            {"seed": s, "frames_to_solve": fts, "final_avg_return_last100": fin}
            for s, fin, fts in zip(numbers, finals, solves, strict=True)
        ],
        "frames": frames * len(finals),
        "frames_per_seed": frames,
        "seconds": 12.5,
        "frames_per_sec": frames / 12.5,
        "compile_seconds": 3.0,
    }
    if not per_seed:
        del summary["frames_per_seed"]
    (d / "summary.json").write_text(json.dumps(summary))
    if base_seed is not None:
        (d / "run.json").write_text(json.dumps({"seeds": len(finals), "seed": base_seed}))
    return d


@dataclasses.dataclass(frozen=True)
class Networks:
    """The notebook's actor-critic and (``rnd``) the RND networks, for tests of the learners'
    losses: ``term(target_params, obs_rms)`` is the RND predictor's loss as the learners take
    it (the ``rnd`` bonus's term), None without RND."""

    ac: ActorCritic
    target: RNDTarget | None = None
    predictor: RNDPredictor | None = None

    @property
    def rnd(self) -> bool:
        return self.predictor is not None

    def term(self, target_params, obs_rms=None, obs_clip=5.0):
        if not self.rnd:
            return None
        return predictor_loss_term(self.target, self.predictor, target_params, obs_rms, obs_clip)


def make_networks(rnd: bool) -> Networks:
    """The notebook's actor-critic, with the RND networks when `rnd`."""
    if rnd:
        return Networks(ac=ActorCritic(), target=RNDTarget(), predictor=RNDPredictor())
    return Networks(ac=ActorCritic())


def init_networks(nets: Networks, key=0):
    """(params, target params) of `nets` from one key."""
    k1, k2, k3 = jax.random.split(jax.random.key(key), 3)
    obs = dummy_obs()
    params = AgentParams(ac=nets.ac.init(k1, obs)["params"])
    target = None
    if nets.rnd:
        params = params.replace(bonus=nets.predictor.init(k2, obs)["params"])
        target = nets.target.init(k3, obs)["params"]
    return params, target


def assert_trees_equal(a, b):
    """Same tree structure and bit-identical leaves (PRNG keys compared by their key data)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# The tiny training programs the core tests share: a preset shrunk to a few envs and updates
# on the corridor of fake_env.py (truncation after 4 steps, so both episode-end flags occur).
TINY_PROGRAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "a2c": ("notebook-a2c-5x5", {"train.num_envs": 4, "train.rollout_size": 4, "updates": 6}),
    "ppo-rnd": (  # micro-batches of 4 in minibatches of 16
        "ppo-rnd-5x5",
        {
            "train.num_envs": 4,
            "train.rollout_size": 8,
            "updates": 6,
            "ppo.epochs": 2,
            "ppo.minibatches": 2,
            "bonus.obs_norm_init_steps": 3,
            "train.micro_batch": 4,
        },
    ),
}


def tiny_program(name: str):
    """``(train, run, updates)`` for TINY_PROGRAMS[name]: ``train`` from ``make_train`` with its
    update traces counted in ``train.traces["n"]``; ``run(key, hparams)`` the jitted init plus
    ``updates`` updates, returning ``(state, metrics)``."""
    preset_name, overrides = TINY_PROGRAMS[name]
    overrides = dict(overrides)
    updates = overrides.pop("updates")
    frames = overrides["train.num_envs"] * overrides["train.rollout_size"] * updates
    cfg = preset(preset_name).with_overrides({**overrides, "total_frames": frames})
    train = make_train(cfg, env=Corridor(length=3, max_steps=4))
    train.traces = count_update_traces(train)

    def run(key, hparams):
        return train.run_chunk(train.init(key, hparams), updates)

    return train, jax.jit(run), updates
