"""Golden outputs of every preset's core update, pinned before the core was reshaped around
learner x bonus (issue: exploration bonuses as components); the presets added with it
(``ppo-e3b-*``, ``ppo-noveld-*``) were recorded when they were added. With the cost work
(issue: curiosity at close to PPO's cost) the PPO cases keep the predictor's Bernoulli mask
they were recorded with, cases of the new subset draw were added, and the ``ppo-e3b-*`` cases
were recorded again: E3B's inverse dynamics now trains on groups of whole env trajectories
(one embedding per observation), a change of its minibatches. Cases recorded later carry
their own ``"machine"``.

Each case is a preset (plus a few code paths no preset takes: the episodic count, PPO-RND
without input normalisation, micro-batched A2C-RND) at a small size: ``CASE_OVERRIDES`` shrink
the batch, everything else is the preset's. ``make_train(cfg)`` runs ``UPDATES`` updates from
``jax.random.key(SEED)``; the record is every metric of every update (float32 values written
exactly), and a SHA-256 and the sum of each parameter group after the last update.
`tests/test_golden_presets.py` reruns the cases: bit-identical on the recording machine and JAX
release, within a tolerance elsewhere (see that test).

Regenerate (only for an intended change of behaviour, saying why in the commit):
    python tests/golden_presets.py tests/golden/presets.json
Add the cases that have no record yet (each with the machine it is recorded on):
    python tests/golden_presets.py tests/golden/presets.json --missing
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import jax
import numpy as np

GOLDEN_FILE = Path(__file__).parent / "golden" / "presets.json"
UPDATES = 3
SEED = 0

SMALL_A2C = {"train.num_envs": 4}
SMALL_PPO = {"train.num_envs": 2, "train.rollout_size": 32, "ppo.minibatches": 2}
EXTRA = {
    # code paths no preset takes
    "ppo-count-8x8+episodic": ("ppo-count-8x8", {"bonus.kind": "episodic_count"}),
    "ppo-rnd-8x8+no-obs-norm": ("ppo-rnd-8x8", {"bonus.obs_norm": False}),
    "notebook-rnd-8x8+micro": ("notebook-rnd-8x8", {"train.micro_batch": 16}),
    "ppo-rnd-5x5+micro": ("ppo-rnd-5x5", {"train.micro_batch": 8}),
    # the predictor trained on a subset of each minibatch (recorded with it)
    "ppo-rnd-5x5+subset": ("ppo-rnd-5x5", {"ppo.bonus_sample": "subset"}),
    "ppo-rnd-5x5+subset+micro": (
        "ppo-rnd-5x5",
        {"ppo.bonus_sample": "subset", "train.micro_batch": 4},
    ),
    "ppo-noveld-8x8+subset": ("ppo-noveld-8x8", {"ppo.bonus_sample": "subset"}),
}
SUBSET_CASES = ("ppo-rnd-5x5+subset", "ppo-rnd-5x5+subset+micro", "ppo-noveld-8x8+subset")
"""Cases recorded after ``ppo.bonus_sample`` existed, each with the machine it was recorded
on. Every other PPO case was recorded with the Bernoulli mask, which it keeps
(``ppo.bonus_sample="mask"``, whatever the preset's default)."""


def cases() -> dict[str, tuple[str, dict]]:
    """Case name -> (preset, overrides on top of the small size)."""
    from curio_jax.config import preset_names

    out = {name: (name, {}) for name in preset_names()}
    out.update(EXTRA)
    return out


def case_config(name: str):
    from curio_jax.config import preset

    base, extra = cases()[name]
    cfg = preset(base)
    small = SMALL_PPO if cfg.algorithm == "ppo" else SMALL_A2C
    overrides = {**small, **extra}
    if cfg.algorithm == "ppo" and name not in SUBSET_CASES:
        overrides.setdefault("ppo.bonus_sample", "mask")
    overrides.setdefault("bonus.obs_norm_init_steps", 4)
    return cfg.with_overrides(
        {**overrides, "total_frames": UPDATES * cfg.with_overrides(small).frames_per_update}
    )


def _params_record(tree) -> dict:
    leaves = jax.tree.leaves(tree)
    h = hashlib.sha256()
    total = 0.0
    for leaf in leaves:
        a = np.asarray(leaf)
        h.update(a.tobytes())
        total += float(np.sum(a, dtype=np.float64))
    return {"sha256": h.hexdigest(), "sum": total, "leaves": len(leaves)}


def run_case(name: str) -> dict:
    """The record of one case (see the module docstring)."""
    from curio_jax.core.train import make_train

    cfg = case_config(name)
    train = make_train(cfg)
    state, metrics = jax.jit(train.run_chunk, static_argnums=1)(
        jax.jit(train.init)(jax.random.key(SEED)), UPDATES
    )
    rec = {
        "metrics": {
            f.name: [float(x) for x in np.asarray(getattr(metrics, f.name)).tolist()]
            for f in dataclasses.fields(metrics)
        },
        "params": {group: _params_record(p) for group, p in _param_groups(state).items()},
    }
    return rec


def _param_groups(state) -> dict:
    """The optimised parameter groups of a learner state, by name (actor-critic, and the
    bonus's networks where it has them)."""
    params = state.params
    groups = {"ac": params.ac}
    if params.bonus is not None:
        groups["predictor"] = params.bonus
    return groups


def record(path: Path, missing_only: bool = False) -> None:
    """Record every case into ``path``; ``missing_only``: keep the cases already there and
    add the others, each with the machine it is recorded on (``"machine"`` of the case)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from golden_runs import machine

    if missing_only:
        out = json.loads(path.read_text())
    else:
        out = {"machine": machine(), "updates": UPDATES, "seed": SEED, "cases": {}}
    for name in cases():
        if missing_only and name in out["cases"]:
            continue
        out["cases"][name] = run_case(name)
        if missing_only:
            out["cases"][name]["machine"] = machine()
        print(name, flush=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--missing"]
    record(Path(args[0]) if args else GOLDEN_FILE, missing_only="--missing" in sys.argv)
