"""Each correction switch changes exactly what it says: one update from the same initial state
and key, with only that switch on, against the notebook-faithful update. The metrics the switch
must not touch stay bit-identical; the ones it must change differ."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from fake_env import Corridor

from curio_jax.config import preset
from curio_jax.core.train import make_train

BASE = {"train.num_envs": 4, "train.rollout_size": 8, "total_frames": 32}

# switch overrides, metrics that must be unchanged, metrics that must change
SWITCHES = {
    "shared_permutation": (
        {"shared_permutation": True},
        ["loss_value_ext", "entropy", "loss_rnd", "reward_int_mean"],
        ["loss_value_int"],
    ),
    "mask_reset_transition": (
        {"mask_reset_transition": True},
        ["reward_int_mean"],
        ["loss_value_ext", "entropy", "loss_rnd"],
    ),
    "bootstrap_truncation": (
        {"bootstrap_truncation": True},
        ["loss_rnd", "reward_int_mean", "entropy"],
        ["loss_value_ext", "loss_value_int"],
    ),
    "episodic_int=False": (
        {"bonus.episodic_int": False},
        ["loss_value_ext", "loss_rnd", "reward_int_mean", "entropy"],
        ["loss_value_int"],
    ),
    "obs_norm": (
        {"bonus.obs_norm": True, "bonus.obs_norm_init_steps": 3},
        ["loss_value_ext", "entropy"],
        ["loss_rnd", "reward_int_mean"],
    ),
    "reward_norm": (
        {"bonus.reward_norm": True},
        ["loss_value_ext", "loss_rnd", "entropy"],
        ["reward_int_mean", "loss_value_int"],
    ),
}


def _one_update(overrides):
    cfg = preset("notebook-rnd-5x5").with_overrides({**BASE, **overrides})
    # corridor episodes end by reaching the end or by truncation after 4 steps
    train = make_train(cfg, env=Corridor(length=3, max_steps=4))
    state = train.init(jax.random.key(3))
    _, metrics = jax.jit(train.update)(state)
    return metrics


@pytest.fixture(scope="module")
def faithful():
    return _one_update({})


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_switch_changes_exactly_what_it_says(name, faithful):
    overrides, unchanged, changed = SWITCHES[name]
    m = _one_update(overrides)
    for field in ("frames", "episodes", "avg_return_last100"):  # the rollout itself
        np.testing.assert_array_equal(getattr(m, field), getattr(faithful, field), err_msg=field)
    for field in unchanged:
        np.testing.assert_array_equal(getattr(m, field), getattr(faithful, field), err_msg=field)
    for field in changed:
        a, b = float(getattr(m, field)), float(getattr(faithful, field))
        assert a != b, f"{name} should change {field} ({a})"
