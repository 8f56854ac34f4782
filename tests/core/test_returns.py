"""GAE against hand-computed arrays and the notebook's Python loop, and the correction switches."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from curio_jax.core.returns import gae, gae_general

GAMMA, LAM = 0.5, 0.5  # gamma * lam = 0.25: exact in binary floating point

# Column 0: an episode ends (done) at t=1. Column 1: no done.
REWARDS = np.array([[0, 1], [1, 0], [0, 0], [0, 1]], np.float32)
VALUES = np.array([[1, 0], [2, 0], [3, 0], [4, 0]], np.float32)
DONES = np.array([[0, 0], [1, 0], [0, 0], [0, 0]], bool)
LAST = np.array([8, 2], np.float32)
# By hand, following the notebook's recursion (docs/semantics.md):
#   col 0: t3 d=0+.5*8-4=0 a=0 | t2 d=0+.5*4-3=-1 a=-1 | t1 (done) d=1-2=-1 a=-1, last=0
#          | t0 d=0+.5*2-1=0 a=0+.25*0=0   (textbook GAE would give a0=-0.25)
#   col 1: t3 d=1+.5*2=2 a=2 | t2 a=.25*2=.5 | t1 a=.125 | t0 d=1 a=1+.03125
EXPECTED_ADV = np.array([[0, 1.03125], [-1, 0.125], [-1, 0.5], [0, 2]], np.float32)


def _maybe_jit(fn, jit: bool, **static):
    fn = functools.partial(fn, **static)
    return jax.jit(fn) if jit else fn


def seed_loop(rewards, dones, values, next_value, gamma, lam):
    """``util.rl_algos.compute_advantages_and_returns`` (GAE branch), transcribed in numpy."""
    advantages = np.zeros_like(rewards)
    last_gae_lambda = 0.0
    for t in reversed(range(len(rewards))):
        next_non_terminal = 1.0 - dones[t]
        td_error = rewards[t] + gamma * next_value * next_non_terminal - values[t]
        advantages[t] = td_error + gamma * lam * last_gae_lambda * next_non_terminal
        next_value = values[t]
        last_gae_lambda = advantages[t] * next_non_terminal
    return advantages, advantages + values


@pytest.mark.parametrize("jit", [False, True])
def test_gae_hand_computed(jit):
    adv, ret = _maybe_jit(gae, jit)(REWARDS, VALUES, DONES, LAST, GAMMA, LAM)
    np.testing.assert_array_equal(np.asarray(adv), EXPECTED_ADV)
    np.testing.assert_array_equal(np.asarray(ret), EXPECTED_ADV + VALUES)


@pytest.mark.parametrize("jit", [False, True])
def test_gae_matches_seed_loop_random(jit):
    rng = np.random.default_rng(0)
    t, b = 16, 5
    rewards = rng.normal(size=(t, b)).astype(np.float32)
    values = rng.normal(size=(t, b)).astype(np.float32)
    dones = rng.random((t, b)) < 0.2
    last = rng.normal(size=(b,)).astype(np.float32)
    gamma, lam = 0.99, 0.98
    exp_adv, exp_ret = seed_loop(rewards, dones.astype(np.float32), values, last, gamma, lam)
    adv, ret = _maybe_jit(gae, jit)(rewards, values, dones, last, gamma, lam)
    np.testing.assert_allclose(adv, exp_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, exp_ret, rtol=1e-5, atol=1e-5)


def test_gae_traced_coefficients():
    adv, _ = jax.jit(gae)(REWARDS, VALUES, DONES, LAST, jnp.float32(GAMMA), jnp.float32(LAM))
    np.testing.assert_array_equal(np.asarray(adv), EXPECTED_ADV)


def test_gae_seed_double_mask_quirk():
    """The advantage of the step that ends an episode is not carried to the step before it."""
    rewards = np.array([[0.0], [1.0]], np.float32)
    values = np.zeros((2, 1), np.float32)
    dones = np.array([[False], [True]])
    adv, _ = gae(rewards, values, dones, np.zeros(1, np.float32), 0.9, 0.5)
    # delta_1 = 1, delta_0 = 0.9 * v_1 - v_0 = 0; textbook GAE: a_0 = 0.45 * a_1 = 0.45
    np.testing.assert_array_equal(np.asarray(adv)[:, 0], [0.0, 1.0])


@pytest.mark.parametrize("jit", [False, True])
def test_gae_general_defaults_equal_seed(jit):
    rng = np.random.default_rng(1)
    t, b = 12, 4
    rewards = rng.normal(size=(t, b)).astype(np.float32)
    values = rng.normal(size=(t, b)).astype(np.float32)
    terminated = rng.random((t, b)) < 0.15
    truncated = rng.random((t, b)) < 0.15
    last = rng.normal(size=(b,)).astype(np.float32)
    ref = gae(rewards, values, terminated | truncated, last, 0.99, 0.95)
    out = _maybe_jit(gae_general, jit)(rewards, values, last, terminated, truncated, 0.99, 0.95)
    for a, r in zip(out, ref, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(r))


# Truncation (not termination) at t=1, rewards 0: only step 1's bootstrap may change.
_TRUNC_R = np.zeros((4, 1), np.float32)
_TRUNC_V = np.array([[1], [2], [3], [4]], np.float32)
_TRUNC = np.array([[0], [1], [0], [0]], bool)
_NO = np.zeros((4, 1), bool)
_TRUNC_LAST = np.array([8], np.float32)


def test_bootstrap_truncation_changes_only_truncated_step():
    args = (_TRUNC_R, _TRUNC_V, _TRUNC_LAST, _NO, _TRUNC, GAMMA, LAM)
    adv_off, _ = gae_general(*args)
    adv_on, ret_on = gae_general(*args, bootstrap_truncation=True)
    # off: t1 d = 0 - 2 = -2. on: t1 d = 0 + .5 * v_2 - 2 = -0.5 (trace still cut after t1)
    np.testing.assert_array_equal(np.asarray(adv_off)[:, 0], [0, -2, -1, 0])
    np.testing.assert_array_equal(np.asarray(adv_on)[:, 0], [0, -0.5, -1, 0])
    np.testing.assert_array_equal(np.asarray(ret_on), np.asarray(adv_on) + _TRUNC_V)


def test_bootstrap_truncation_leaves_termination_alone():
    args = (_TRUNC_R, _TRUNC_V, _TRUNC_LAST, _TRUNC, _TRUNC, GAMMA, LAM)  # terminated & truncated
    a = gae_general(*args)[0]
    b = gae_general(*args, bootstrap_truncation=True)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bootstrap_truncation_explicit_value():
    tv = np.full((4, 1), 10.0, np.float32)
    adv, _ = gae_general(
        _TRUNC_R,
        _TRUNC_V,
        _TRUNC_LAST,
        _NO,
        _TRUNC,
        GAMMA,
        LAM,
        bootstrap_truncation=True,
        truncation_value=tv,
    )
    # t1 d = 0 + .5 * 10 - 2 = 3; other steps do not use truncation_value
    np.testing.assert_array_equal(np.asarray(adv)[:, 0], [0, 3, -1, 0])


def test_non_episodic_ignores_dones():
    args = (REWARDS, VALUES, LAST, DONES, DONES, GAMMA, LAM)
    adv, ret = gae_general(*args, episodic=False)
    ref_adv, ref_ret = gae(REWARDS, VALUES, np.zeros_like(DONES), LAST, GAMMA, LAM)
    np.testing.assert_array_equal(np.asarray(adv), np.asarray(ref_adv))
    np.testing.assert_array_equal(np.asarray(ret), np.asarray(ref_ret))
    assert not np.array_equal(np.asarray(adv), EXPECTED_ADV)


def test_rank_checks():
    with pytest.raises(AssertionError):
        gae(REWARDS[:, 0], VALUES[:, 0], DONES[:, 0], LAST[0], 0.9, 0.9)
    with pytest.raises(AssertionError):
        gae(REWARDS, VALUES[:3], DONES, LAST, 0.9, 0.9)
    with pytest.raises(AssertionError):
        gae_general(REWARDS, VALUES, LAST[:1], DONES, DONES, 0.9, 0.9)
