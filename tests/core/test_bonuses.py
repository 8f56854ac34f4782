"""Bonuses as components (curio_jax.core.bonuses): a bonus defined here, outside the package,
trains through make_train with no edit to the learners or the loop; E3B and NovelD in the
training loop: their rewards are the primitives' on the rollout, deterministic, their traced
coefficients sweepable in one compiled program; the registry refuses what it cannot use."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_env import Corridor
from flax import struct
from helpers import assert_trees_equal

from curio_jax.config import BonusConfig, preset
from curio_jax.core.bonuses import BONUSES, Bonus, BonusMetrics, BonusReward, register
from curio_jax.core.e3b import E3BNetwork, EllipticalState, elliptical_bonus
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.noveld import EpisodicVisits, first_visits, noveld_reward, obs_hash
from curio_jax.core.train import make_train

NUM_ENVS, ROLLOUT = 4, 8
TINY = {
    "train.num_envs": NUM_ENVS,
    "train.rollout_size": ROLLOUT,
    "total_frames": NUM_ENVS * ROLLOUT * 3,
    "ppo.epochs": 2,
    "ppo.minibatches": 2,
    "bonus.obs_norm": False,
    "bonus.reward_norm": False,  # rewards as paid
}


# --------------------------------------------------------------------------- a toy bonus


class ToyState(struct.PyTreeNode):
    weight: jax.Array  # [] a learned scalar: the bonus pays weight * (pos cell of next_obs)
    steps: jax.Array  # int32 [] learning steps taken


@register
class ToyBonus(Bonus):
    """Pays ``weight * next_obs[..., 0, 0, 0]``-like features; learns ``weight`` towards 2 with
    an optimiser of its own (plain gradient descent on (weight - 2)^2)."""

    kind = "toy-test"

    def init(self, keys, hparams):
        return ToyState(weight=jnp.float32(0.5), steps=jnp.int32(0)), None

    def reward(self, state, params, traj, hparams, micro):
        feature = jnp.sum(traj.next_obs[..., 0].astype(jnp.float32), axis=(-1, -2))
        return BonusReward(state=state, reward=state.weight * feature)

    def learn(self, state, traj, key, hparams, micro=None):
        loss, grad = jax.value_and_grad(lambda w: jnp.square(w - 2.0))(state.weight)
        state = state.replace(weight=state.weight - 0.25 * grad, steps=state.steps + 1)
        return state, BonusMetrics(loss=loss, grad_norm=jnp.abs(grad))


@pytest.mark.parametrize("name", ["ppo-5x5", "notebook-a2c-5x5"])
def test_a_bonus_defined_outside_the_package_trains_through_make_train(name):
    cfg = preset(name).with_overrides(
        {**TINY, "bonus.kind": "toy-test", "bonus.episodic_int": True}
    )
    train = make_train(cfg, env=Corridor(length=3, max_steps=4))
    assert isinstance(train.bonus, ToyBonus)
    out = jax.jit(train)(jax.random.key(0))
    st = out.final_state.bonus
    assert int(st.steps) == cfg.num_updates
    np.testing.assert_allclose(float(st.weight), 2.0 - 1.5 * 0.5**3, rtol=1e-6)
    m = out.metrics
    # the intrinsic stream is on: rewards paid, the value_int head trained, the bonus's own
    # loss and gradient norm logged
    assert np.all(np.asarray(m.reward_int_mean) > 0)
    assert np.all(np.asarray(m.loss_value_int) > 0)
    np.testing.assert_allclose(np.asarray(m.loss_rnd), [2.25, 0.5625, 0.140625], rtol=1e-6)
    assert np.all(np.asarray(m.grad_norm_rnd) > 0)


def test_the_registry_refuses_a_second_class_for_a_kind_and_an_unknown_kind():
    class Other(Bonus):
        kind = "toy-test"

    with pytest.raises(ValueError, match="already ToyBonus"):
        register(Other)
    assert BONUSES["toy-test"] is ToyBonus
    with pytest.raises(ValueError, match="BonusConfig.kind must be one of"):
        BonusConfig(kind="no-such-bonus")


# --------------------------------------------------------------------------- E3B and NovelD


def _first_update(cfg, env=None):
    train = make_train(cfg, env=env)
    state = jax.jit(train.init)(jax.random.key(0))
    new, m = jax.jit(train.update)(state)
    return train, state, new, m


def _rollout_of(train, state):
    """The first update's rollout, rebuilt from the same key (as Train.update draws it)."""
    from curio_jax.core.rollout import collect_rollout

    _, k_roll, _, _ = jax.random.split(state.key, 4)
    _, _, traj = collect_rollout(
        train.env,
        lambda o: train.ac.apply({"params": state.params.ac}, o),
        state.timestep,
        state.episode_stats,
        k_roll,
        train.cfg.train.rollout_size,
        autoreset=train.cfg.env.autoreset,
    )
    return traj


def test_e3b_reward_is_the_elliptical_bonus_of_the_rollout_and_phi_learns():
    cfg = preset("ppo-e3b-5x5").with_overrides({**TINY, "bonus.e3b_dim": 8})
    train, state, new, m = _first_update(cfg, Corridor(length=3, max_steps=4))
    assert state.params.bonus is None  # its own optimiser: nothing in the learner's params
    assert state.bonus.per_env.cinv.shape == (NUM_ENVS, 8, 8)
    traj = _rollout_of(train, state)
    net = E3BNetwork(num_actions=3, embed_dim=8, hidden_dim=cfg.bonus.e3b_hidden)
    phi = net.apply({"params": state.bonus.params}, traj.next_obs, method=E3BNetwork.embed)
    lam = jnp.float32(cfg.bonus.e3b_lambda)
    want_state, want = elliptical_bonus(
        EllipticalState.create(NUM_ENVS, 8, lam), phi, traj.done, lam, traj.is_reset
    )
    np.testing.assert_allclose(float(m.reward_int_mean), float(jnp.mean(want)), rtol=1e-5)
    np.testing.assert_allclose(new.bonus.per_env.cinv, want_state.cinv, rtol=1e-5, atol=1e-6)
    moved = jax.tree.map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), state.bonus.params, new.bonus.params
    )
    assert max(jax.tree.leaves(moved)) > 0  # the embedding trained
    assert float(m.loss_rnd) > 0 and float(m.grad_norm_rnd) > 0


def test_noveld_reward_is_the_novelty_gain_on_first_visits():
    cfg = preset("ppo-noveld-5x5").with_overrides({**TINY, "bonus.feature_dim": 16})
    train, state, new, m = _first_update(cfg, Corridor(length=3, max_steps=4))
    traj = _rollout_of(train, state)
    b = train.bonus

    def novelty(o):
        err = jnp.mean(
            jnp.square(
                b.target.apply({"params": state.bonus.target_params}, o)
                - b.predictor.apply({"params": state.params.bonus}, o, deterministic=True)
            ),
            axis=-1,
        )
        return jnp.sqrt(err * 16)

    visits, first = first_visits(
        EpisodicVisits.create(NUM_ENVS, cfg.bonus.noveld_buckets),
        obs_hash(traj.next_obs),
        traj.done,
        traj.is_reset,
    )
    want = noveld_reward(novelty(traj.next_obs), novelty(traj.obs), first, 0.5)
    np.testing.assert_allclose(float(m.reward_int_mean), float(jnp.mean(want)), rtol=1e-4)
    assert_trees_equal(new.bonus.per_env, visits)
    # the corridor revisits cells within an episode: some steps are not first visits
    assert 0 < int(jnp.sum(first)) < first.size
    assert float(m.loss_rnd) > 0  # the predictor trains jointly (the learner's Adam)


@pytest.mark.parametrize(
    ("name", "coef", "values"),
    [
        ("ppo-e3b-5x5", "e3b_lambda", (0.1, 1.0)),
        pytest.param("ppo-noveld-5x5", "noveld_alpha", (0.0, 0.5), marks=pytest.mark.slow),
    ],
)
def test_the_new_bonuses_are_deterministic_and_their_coefficients_sweep_in_one_program(
    name, coef, values
):
    """One compiled program runs both values of the traced coefficient (one trace), and runs
    it again to the same bits (same keys, same results)."""
    cfg = preset(name).with_overrides(TINY)
    train = make_train(cfg)
    base = Hyperparams.from_config(cfg)
    assert getattr(base, coef) is not None
    grid = jax.tree.map(
        lambda *x: jnp.stack(x), *[base.replace(**{coef: jnp.float32(v)}) for v in values]
    )
    traces = []

    def init_run(key: Any, hp: Hyperparams):
        traces.append(1)
        return train.run_chunk(train.init(key, hp), 2)

    keys = jax.random.split(jax.random.key(0), len(values))
    program = jax.jit(jax.vmap(init_run))
    state, metrics = program(keys, grid)
    again_state, again = program(keys, grid)
    assert len(traces) == 1
    assert_trees_equal(metrics, again)
    assert_trees_equal(state.params, again_state.params)
    assert_trees_equal(state.bonus, again_state.bonus)
    r = np.asarray(metrics.reward_int_mean)
    assert r.shape == (len(values), 2) and not np.allclose(r[0], r[1])
    # a coefficient of another bonus is not part of the state
    other = "noveld_alpha" if coef == "e3b_lambda" else "e3b_lambda"
    assert getattr(base, other) is None
