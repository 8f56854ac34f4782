"""RND: running statistics, normalisations, intrinsic reward and loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from curio_jax.core.networks import RNDPredictor, RNDTarget, dummy_obs
from curio_jax.core.rnd import (
    RunningMeanStd,
    discounted_return_filter,
    init_obs_rms,
    intrinsic_reward,
    normalize_intrinsic_reward,
    normalize_obs,
    rnd_loss,
)


def test_running_mean_std_equals_pooled_moments():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 2, 3)).astype(np.float32) for n in (5, 17, 1, 40)]
    rms = RunningMeanStd.create((2, 3), epsilon=1e-4)
    for b in batches:
        rms = rms.update(jnp.asarray(b))
    pooled = np.concatenate(batches).astype(np.float64)
    # the epsilon-count prior (mean 0, var 1) weighs 1e-4 against 63 samples
    np.testing.assert_allclose(rms.mean, pooled.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rms.var, pooled.var(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(rms.count), 63 + 1e-4, rtol=1e-6)


def test_normalize_obs_whitens_and_clips():
    obs = jnp.asarray(np.random.default_rng(1).integers(0, 11, size=(300, 7, 7, 3)), jnp.uint8)
    rms = init_obs_rms(obs.reshape(3, 100, 7, 7, 3))  # leading axes pooled
    x = normalize_obs(obs, rms, 5.0)
    assert x.dtype == jnp.float32 and x.shape == obs.shape
    np.testing.assert_allclose(np.mean(x, 0), 0.0, atol=1e-3)
    np.testing.assert_allclose(np.std(x, 0), 1.0, atol=1e-3)
    tight = normalize_obs(obs, rms, 0.5)
    assert float(jnp.max(jnp.abs(tight))) == 0.5


def test_discounted_return_filter_matches_loop():
    rng = np.random.default_rng(2)
    rewards = rng.random((6, 3)).astype(np.float32)
    f0 = rng.random(3).astype(np.float32)
    f, filtered = discounted_return_filter(jnp.asarray(f0), jnp.asarray(rewards), 0.9)
    exp, ref = f0.astype(np.float64), []
    for r in rewards:  # never reset at episode ends (RND paper's RewardForwardFilter)
        exp = 0.9 * exp + r
        ref.append(exp)
    np.testing.assert_allclose(filtered, np.stack(ref), rtol=1e-6)
    np.testing.assert_allclose(f, exp, rtol=1e-6)


def test_normalize_intrinsic_reward_divides_by_return_std():
    rng = np.random.default_rng(3)
    rewards = jnp.asarray(rng.random((8, 4)), jnp.float32)
    rms0 = RunningMeanStd.create(())
    out, f, rms = normalize_intrinsic_reward(rewards, jnp.zeros(4), rms0, 0.99)
    _, filtered = discounted_return_filter(jnp.zeros(4), rewards, 0.99)
    exp_rms = rms0.update(filtered.reshape(-1))
    np.testing.assert_allclose(rms.var, exp_rms.var, rtol=1e-6)
    np.testing.assert_allclose(out, rewards / np.sqrt(float(exp_rms.var)), rtol=1e-5)
    np.testing.assert_allclose(f, filtered[-1], rtol=1e-6)


def _rnd(key=0):
    target, pred = RNDTarget(), RNDPredictor()
    k1, k2 = jax.random.split(jax.random.key(key))
    return (
        target,
        pred,
        target.init(k1, dummy_obs())["params"],
        pred.init(k2, dummy_obs())["params"],
    )


def test_intrinsic_reward_and_loss():
    target, pred, tp, pp = _rnd()
    obs = jax.random.randint(jax.random.key(5), (3, 2, 7, 7, 3), 0, 11).astype(jnp.uint8)
    r = intrinsic_reward(target, pred, tp, pp, obs)
    assert r.shape == (3, 2)
    t = target.apply({"params": tp}, obs)
    p = pred.apply({"params": pp}, obs)  # eval mode
    np.testing.assert_allclose(r, jnp.mean(jnp.square(t - p), -1), rtol=1e-6)
    assert float(jnp.min(r)) > 0
    # the loss: train mode (dropout), mean over the batch, gradient to the predictor only
    flat = obs.reshape(6, 7, 7, 3)
    dkey = jax.random.key(9)
    loss = rnd_loss(target, pred, tp, pp, flat, dkey)
    p_train = pred.apply({"params": pp}, flat, deterministic=False, rngs={"dropout": dkey})
    np.testing.assert_allclose(
        loss, jnp.mean(jnp.square(target.apply({"params": tp}, flat) - p_train)), rtol=1e-6
    )
    g_target = jax.grad(lambda q: rnd_loss(target, pred, q, pp, flat, dkey))(tp)
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(g_target))
    w = jnp.array([1, 0, 1, 1, 0, 1], jnp.float32)
    per = jnp.mean(jnp.square(target.apply({"params": tp}, flat) - p_train), -1)
    np.testing.assert_allclose(
        rnd_loss(target, pred, tp, pp, flat, dkey, w), jnp.sum(per * w) / 4, rtol=1e-6
    )
