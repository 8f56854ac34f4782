"""The count-based bonus as the intrinsic stream of make_train (``bonus.kind``): it replaces
RND's reward and networks and nothing else, for PPO and A2C, with global and episodic counts;
the configs and envs it refuses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_env import Corridor, CountingCorridor
from helpers import assert_trees_equal

from curio_jax.config import preset
from curio_jax.core.counts import VisitCounts, count_bonus
from curio_jax.core.rollout import collect_rollout
from curio_jax.core.train import make_train
from curio_jax.envs import EpisodeStats, make_doorkey
from curio_jax.envs.doorkey import num_visit_cells, visit_index

NUM_ENVS, ROLLOUT = 4, 8
TINY = {
    "train.num_envs": NUM_ENVS,
    "train.rollout_size": ROLLOUT,
    "total_frames": NUM_ENVS * ROLLOUT * 4,
    "bonus.obs_norm": False,
    "bonus.reward_norm": False,  # the bonus as paid (test_reward_norm_applies_to_the_bonus)
}
TINY_PPO = {"ppo.epochs": 2, "ppo.minibatches": 2}


def count_cfg(name="ppo-rnd-5x5", bonus="count", **extra):
    ppo = TINY_PPO if name.startswith("ppo") else {}
    return preset(name).with_overrides({**TINY, **ppo, "bonus.kind": bonus, **extra})


def _first_update(cfg, env):
    train = make_train(cfg, env=env)
    state = jax.jit(train.init)(jax.random.key(0))
    new, m = jax.jit(train.update)(state)
    return train, state, new, m


@pytest.mark.parametrize("bonus", ["count", "episodic_count"])
@pytest.mark.parametrize("name", ["ppo-rnd-5x5", "notebook-rnd-5x5"])
def test_bonus_is_the_intrinsic_reward_of_the_rollout(name, bonus):
    """The update's intrinsic reward is 1/sqrt(N) of the cells its rollout reached, counted as
    curio_jax.core.counts does (rebuilt here from the same key); no RND networks or loss."""
    cfg = count_cfg(name, bonus)
    env = CountingCorridor(length=3, max_steps=4)
    train, state, new, m = _first_update(cfg, env)
    assert train.bonus.kind == bonus and train.bonus.intrinsic and not train.bonus.joint
    assert state.params.bonus is None
    counts = state.bonus if bonus == "count" else state.bonus.per_env
    shape = (3,) if bonus == "count" else (NUM_ENVS, 3)
    assert counts.counts.shape == shape and int(counts.counts.sum()) == 0

    # the same rollout, by hand
    _, k_roll, _, _ = jax.random.split(state.key, 4)

    def policy(obs):
        return train.ac.apply({"params": state.params.ac}, obs)

    _, _, traj = collect_rollout(
        env, policy, state.timestep, state.episode_stats, k_roll, ROLLOUT,
        cell_fn=jax.vmap(env.visit_index),
    )  # fmt: skip
    want_visits, want = count_bonus(VisitCounts.create(bonus, 3, NUM_ENVS), traj.cell, traj.done)
    got = new.bonus if bonus == "count" else new.bonus.per_env
    assert_trees_equal(got, want_visits)
    if bonus == "count":
        assert int(got.counts.sum()) == NUM_ENVS * ROLLOUT
    np.testing.assert_allclose(float(m.reward_int_mean), float(jnp.mean(want)), rtol=1e-6)
    assert float(m.loss_value_int) > 0
    assert float(m.loss_rnd) == 0.0 and float(m.grad_norm_rnd) == 0.0


def test_cells_are_where_each_step_arrived():
    env = CountingCorridor(length=3, max_steps=4)

    def right(obs):
        b = obs.shape[0]
        return jnp.tile(jnp.array([-1e9, 0.0, -1e9]), (b, 1)), jnp.zeros(b), jnp.zeros(b)

    ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 2))
    _, _, traj = collect_rollout(
        env, right, ts, EpisodeStats.create(2), jax.random.key(1), 5,
        cell_fn=jax.vmap(env.visit_index),
    )  # fmt: skip
    # right, right (goal: terminated), the reset dummy (back at 0), right, right
    np.testing.assert_array_equal(traj.cell[:, 0], [1, 2, 0, 1, 2])
    assert traj.cell.dtype == jnp.int32
    _, _, plain = collect_rollout(env, right, ts, EpisodeStats.create(2), jax.random.key(1), 5)
    assert plain.cell is None


def test_the_bonus_changes_only_the_intrinsic_stream():
    """Global vs episodic counts from the same key: the same rollout (frames, episodes,
    score) and extrinsic loss at the first update; a different intrinsic reward."""
    env = CountingCorridor(length=3, max_steps=4)
    cfg = count_cfg(**{"ppo.epochs": 1, "ppo.minibatches": 1})
    _, _, _, m_count = _first_update(cfg, env)
    _, _, _, m_epi = _first_update(cfg.with_overrides({"bonus.kind": "episodic_count"}), env)
    for name in ("frames", "episodes", "avg_return_last100", "loss_value_ext", "entropy"):
        np.testing.assert_array_equal(getattr(m_count, name), getattr(m_epi, name), name)
    assert float(m_count.reward_int_mean) != float(m_epi.reward_int_mean)


def test_reward_norm_applies_to_the_bonus():
    env = CountingCorridor(length=3, max_steps=4)
    _, state, new, m = _first_update(count_cfg(**{"bonus.reward_norm": True}), env)
    assert state.reward_rms is not None and state.reward_filter.shape == (NUM_ENVS,)
    assert float(new.reward_rms.count) > float(state.reward_rms.count)
    _, _, _, raw = _first_update(count_cfg(), env)
    assert float(m.reward_int_mean) != float(raw.reward_int_mean)


def test_bad_bonus_settings_are_refused():
    with pytest.raises(ValueError, match="BonusConfig.kind must be one of none, rnd, count"):
        preset("ppo-rnd-5x5").with_overrides({"bonus.kind": "counts"})
    with pytest.raises(ValueError, match="obs_norm normalises the RND networks' input"):
        preset("ppo-rnd-5x5").with_overrides({"bonus.kind": "count"})  # the preset has obs_norm
    with pytest.raises(ValueError, match="needs a `visit_index"):
        make_train(count_cfg(), env=Corridor(length=3, max_steps=4))
    # with bonus.kind=none no bonus is built, whatever the rest of the bonus group says
    plain = count_cfg("ppo-5x5").with_overrides({"bonus.kind": "none"})
    train = make_train(plain, env=Corridor(length=3, max_steps=4))
    assert not train.bonus.intrinsic
    assert not count_cfg().is_notebook_faithful


def test_the_reference_refuses_a_count_bonus():
    agents = pytest.importorskip("curio_jax.reference.agents")
    assert "bonus.kind=count" in agents.unsupported_settings(count_cfg("notebook-rnd-5x5"))


def test_doorkey_has_the_visit_cells():
    env = make_doorkey(8)
    assert env.num_visit_cells == num_visit_cells(8) == 8 * 8 * 4 * 2 * 3
    ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 5))
    np.testing.assert_array_equal(env.visit_index(ts), visit_index(ts))
    cfg = count_cfg(**{"env.size": 8, "total_frames": NUM_ENVS * ROLLOUT})
    train = make_train(cfg)
    state = jax.jit(train.init)(jax.random.key(0))
    assert state.bonus.counts.shape == (num_visit_cells(8),)


def test_checkpoint_paths_of_runs_without_counts_have_no_count_leaves():
    """An RND run's state holds no count table: the bonus state is RND's alone."""
    cfg = preset("ppo-rnd-5x5").with_overrides({**TINY, **TINY_PPO, "bonus.obs_norm": True})
    train = make_train(cfg, env=Corridor(length=3, max_steps=4))
    state = jax.eval_shape(train.init, jax.random.key(0))
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    assert not any("counts" in p for p in paths)
    assert {p.split(".")[2].split("[")[0] for p in paths if p.startswith(".bonus.")} == {
        "target_params",
        "obs_rms",
    }
