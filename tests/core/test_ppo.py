"""PPO (curio_jax.core.ppo and its use in make_train): losses against hand-computed numpy, the
minibatch plumbing, determinism, vmapped seeds, chunking, compile-once, each switch and
coefficient changing exactly what it says, validation; and (slow) learning DoorKey-5x5."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_env import Corridor
from helpers import assert_trees_equal, tiny_program
from helpers import init_networks as _init
from helpers import make_networks as _nets

from curio_jax.config import preset
from curio_jax.core.agent import sum_over_pieces
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.metrics import metric_names
from curio_jax.core.ppo import (
    PPOBatch,
    UpdateKeys,
    annealed_lr,
    combined_advantage,
    flatten_rollout,
    minibatch_indices,
    ppo_loss,
    prepare_minibatch,
    proportion_mask,
    subset_bonus_grads,
    subset_indices,
    subset_size,
)
from curio_jax.core.train import make_train

# --------------------------------------------------------------------------- numpy helpers


COEFS = Hyperparams.from_config(preset("ppo-rnd-5x5"))  # ext 2, int 1, clip 0.2, prop 0.25
RATIOS = np.array([0.5, 0.85, 0.95, 1.0, 1.05, 1.15, 1.6, 0.7, 1.3, 1.0, 0.99, 1.25])
VALUE_SHIFT = np.array([0.5, -0.5, 0.1, -0.1, 0.3, -0.05, 0.0, 0.25, -0.3, 0.15, -0.2, 0.05])


def _minibatch(params, nets, key, m=12, weight=None, rnd=True):
    """A minibatch whose old log-probabilities and values are the current ones shifted by
    hand-chosen amounts: ratio = RATIOS, v - v_old = VALUE_SHIFT (both sides of the clip)."""
    ks = jax.random.split(jax.random.key(key), 8)
    obs = jax.random.randint(ks[0], (m, 7, 7, 3), 0, 11).astype(jnp.uint8)
    action = jax.random.randint(ks[1], (m,), 0, 7)
    logits, v_ext, _ = nets.ac.apply({"params": params.ac}, obs)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
    w = jnp.ones((m,)) if weight is None else jnp.asarray(weight, jnp.float32)
    mb = PPOBatch(
        obs=obs,
        action=action,
        logprob=logp - jnp.log(jnp.asarray(RATIOS[:m], jnp.float32)),
        value_ext=v_ext - jnp.asarray(VALUE_SHIFT[:m], jnp.float32),
        adv_ext=jax.random.normal(ks[2], (m,)),
        ret_ext=jax.random.normal(ks[3], (m,)),
        weight=w,
        adv_int=jax.random.normal(ks[4], (m,)) if rnd else None,
        ret_int=jax.random.normal(ks[5], (m,)) if rnd else None,
    )
    bonus_weight = None
    if rnd:
        bonus_weight = w * (jax.random.uniform(ks[6], (m,)) < 0.5).astype(jnp.float32)
    return mb.replace(adv=jax.random.normal(ks[7], (m,)), bonus_weight=bonus_weight)


def _numpy_loss(params, target, mb, dkey, nets, coefs, clip_value):
    f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
    logits, v_ext, v_int = (f64(x) for x in nets.ac.apply({"params": params.ac}, mb.obs))
    logp_all = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
    logp = logp_all[np.arange(len(logits)), np.asarray(mb.action)]
    w = f64(mb.weight)
    wmean = lambda x: np.sum(x * w) / max(np.sum(w), 1.0)  # noqa: E731
    eps = float(coefs.clip_eps)
    ratio = np.exp(logp - f64(mb.logprob))
    adv = f64(mb.adv)
    policy = wmean(np.maximum(-adv * ratio, -adv * np.clip(ratio, 1 - eps, 1 + eps)))
    err = (v_ext - f64(mb.ret_ext)) ** 2
    if clip_value:
        old = f64(mb.value_ext)
        err = np.maximum(err, (old + np.clip(v_ext - old, -eps, eps) - f64(mb.ret_ext)) ** 2)
    value_ext = wmean(err)
    entropy = wmean(-np.sum(np.exp(logp_all) * logp_all, -1))
    value_int = rnd_term = 0.0
    if nets.rnd:
        value_int = wmean((v_int - f64(mb.ret_int)) ** 2)
        t = f64(nets.target.apply({"params": target}, mb.obs))
        p = f64(
            nets.predictor.apply(
                {"params": params.bonus}, mb.obs, deterministic=False, rngs={"dropout": dkey}
            )
        )
        rw = f64(mb.bonus_weight)
        rnd_term = np.sum(np.mean((t - p) ** 2, -1) * rw) / max(np.sum(rw), 1.0)
    total = (
        policy
        + float(coefs.value_coef) * (value_ext + value_int)
        - float(coefs.entropy_coef) * entropy
        + rnd_term
    )
    return {
        "policy": policy,
        "value_ext": value_ext,
        "value_int": value_int,
        "entropy": entropy,
        "bonus": rnd_term,
        "total": total,
        "approx_kl": wmean((ratio - 1) - np.log(ratio)),
        "clip_fraction": wmean(np.abs(ratio - 1) > eps),
    }


# --------------------------------------------------------------------------- losses


@pytest.mark.parametrize("rnd", [False, True])
@pytest.mark.parametrize("clip_value", [False, True])
def test_loss_matches_numpy(rnd, clip_value):
    nets = _nets(rnd)
    params, target = _init(nets)
    weight = [1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1]
    mb = _minibatch(params, nets, 3, weight=weight, rnd=rnd)
    dkey = jax.random.key(7)
    total, terms = ppo_loss(
        params, mb, dkey, COEFS, nets.ac, nets.term(target), clip_value=clip_value
    )
    exp = _numpy_loss(params, target, mb, dkey, nets, COEFS, clip_value)
    assert 0 < exp["clip_fraction"] < 1  # both sides of the ratio clip occur
    for k, v in exp.items():
        got = float(total) if k == "total" else float(getattr(terms, k))
        np.testing.assert_allclose(got, v, rtol=2e-5, atol=1e-6, err_msg=k)
    assert float(terms.total) == float(total)


def test_value_clipping_acts_on_both_sides():
    """With clip_value the extrinsic value loss is larger or equal sample by sample, larger
    where |v - v_old| > clip_eps and the clipped prediction is further from the return."""
    nets = _nets(False)
    params, _ = _init(nets)
    mb = _minibatch(params, nets, 4, rnd=False)
    _, plain = ppo_loss(params, mb, jax.random.key(0), COEFS, nets.ac, clip_value=False)
    _, clipped = ppo_loss(params, mb, jax.random.key(0), COEFS, nets.ac, clip_value=True)
    assert float(clipped.value_ext) > float(plain.value_ext)
    for name in ("policy", "entropy", "approx_kl", "clip_fraction"):
        assert float(getattr(clipped, name)) == float(getattr(plain, name)), name


def test_loss_at_ratio_one_is_the_policy_gradient_loss():
    """At ratio 1 (the first minibatch step) the clipped surrogate is -mean(adv) and its
    gradient is A2C's -mean(adv * grad logprob): clip_eps does not matter there."""
    nets = _nets(False)
    params, _ = _init(nets)
    mb = _minibatch(params, nets, 5, rnd=False)
    logits, _, _ = nets.ac.apply({"params": params.ac}, mb.obs)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), mb.action[:, None], -1)[:, 0]
    mb = mb.replace(logprob=logp)
    grads = {}
    for eps in (0.1, 0.3):
        coefs = COEFS.replace(clip_eps=jnp.float32(eps))
        g, terms = jax.grad(ppo_loss, has_aux=True)(
            params, mb, jax.random.key(0), coefs, nets.ac, clip_value=False
        )
        np.testing.assert_allclose(float(terms.policy), -float(jnp.mean(mb.adv)), rtol=1e-5)
        assert float(terms.clip_fraction) == 0.0 and abs(float(terms.approx_kl)) < 1e-6
        grads[eps] = g
    for a, b in zip(jax.tree.leaves(grads[0.1]), jax.tree.leaves(grads[0.3]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_combined_advantage_and_its_normalisation():
    ext = jnp.array([1.0, -2.0, 0.5, 3.0, 7.0])
    int_ = jnp.array([0.1, 0.2, -0.3, 0.0, 100.0])
    w = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])  # the last sample is masked
    coefs = COEFS.replace(adv_coef_ext=jnp.float32(2.0), adv_coef_int=jnp.float32(0.5))
    raw = np.asarray(combined_advantage(ext, int_, w, coefs, normalize=False))
    np.testing.assert_allclose(raw, 2 * np.asarray(ext) + 0.5 * np.asarray(int_), rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(combined_advantage(ext, None, w, coefs, normalize=False)), 2 * np.asarray(ext)
    )
    got = np.asarray(combined_advantage(ext, int_, w, coefs, normalize=True))
    kept = raw[:4]
    exp = (raw - kept.mean()) / (kept.std() + 1e-8)  # population std of the weighted samples
    np.testing.assert_allclose(got, exp, rtol=1e-5)
    np.testing.assert_allclose(got[:4].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(got[:4].std(), 1.0, rtol=1e-5)


def test_minibatch_indices_are_one_permutation_per_epoch():
    idx = np.asarray(minibatch_indices(jax.random.key(0), 24, epochs=3, minibatches=4))
    assert idx.shape == (12, 6) and idx.dtype == np.int32
    epochs = idx.reshape(3, 24)
    for e in range(3):
        np.testing.assert_array_equal(np.sort(epochs[e]), np.arange(24))
    assert not np.array_equal(epochs[0], epochs[1])
    with pytest.raises(ValueError, match="does not divide"):
        minibatch_indices(jax.random.key(0), 24, epochs=1, minibatches=5)


def test_proportion_mask_fraction():
    m = np.asarray(proportion_mask(jax.random.key(1), 40_000, 0.25))
    assert set(np.unique(m)) == {0.0, 1.0}
    assert abs(m.mean() - 0.25) < 0.01
    np.testing.assert_array_equal(np.asarray(proportion_mask(jax.random.key(1), 100, 1.0)), 1.0)


def _four_samples(adv_int=None) -> PPOBatch:
    return PPOBatch(
        obs=jnp.zeros((4, 7, 7, 3), jnp.uint8),
        action=jnp.zeros(4, jnp.int32),
        logprob=jnp.zeros(4),
        value_ext=jnp.zeros(4),
        adv_ext=jnp.arange(4.0),
        ret_ext=jnp.zeros(4),
        weight=jnp.ones(4),
        adv_int=adv_int,
    )


def test_prepare_minibatch_without_rnd_has_no_mask():
    b = _four_samples()
    mb = prepare_minibatch(
        b.replace(adv_int=None), jax.random.key(0), COEFS, adv_norm=False, bonus_loss=False
    )
    assert mb.bonus_weight is None
    np.testing.assert_array_equal(np.asarray(mb.adv), 2.0 * np.arange(4.0))


def test_prepare_minibatch_intrinsic_and_rnd_loss_are_separate_switches():
    """A count bonus combines the intrinsic advantage without a predictor mask; RND does both."""
    b = _four_samples(adv_int=jnp.full(4, 3.0))
    key = jax.random.key(0)
    counts = prepare_minibatch(b, key, COEFS, adv_norm=False, bonus_loss=False)
    assert counts.bonus_weight is None
    np.testing.assert_array_equal(np.asarray(counts.adv), 2.0 * np.arange(4.0) + 3.0)
    rnd = prepare_minibatch(b, key, COEFS, adv_norm=False, bonus_loss=True)
    np.testing.assert_array_equal(np.asarray(rnd.adv), np.asarray(counts.adv))
    np.testing.assert_array_equal(
        np.asarray(rnd.bonus_weight), np.asarray(proportion_mask(key, 4, COEFS.update_proportion))
    )


def test_flatten_rollout_is_time_major_and_masks_dummies():
    t, b = 3, 2
    x = jnp.arange(t * b, dtype=jnp.float32).reshape(t, b)
    is_reset = jnp.array([[False, True], [False, False], [True, False]])
    batch = flatten_rollout(
        jnp.zeros((t, b, 7, 7, 3), jnp.uint8),
        x.astype(jnp.int32),
        x,
        x,
        x,
        x,
        is_reset=is_reset,
        mask_reset_transition=True,
    )
    np.testing.assert_array_equal(np.asarray(batch.adv_ext), np.arange(6.0))
    np.testing.assert_array_equal(np.asarray(batch.weight), [1, 0, 1, 1, 0, 1])
    assert batch.adv_int is None and batch.bonus_input is None
    unmasked = flatten_rollout(
        jnp.zeros((t, b, 7, 7, 3), jnp.uint8), x.astype(jnp.int32), x, x, x, x
    )
    np.testing.assert_array_equal(np.asarray(unmasked.weight), np.ones(6))


def test_micro_batches_add_up_to_the_minibatch():
    """Without dropout (RND off) the gradient of a minibatch in pieces equals the one-pass
    gradient up to float summation order, and so do the loss terms."""
    nets = _nets(False)
    params, _ = _init(nets)
    mb = _minibatch(params, nets, 6, rnd=False, weight=[1] * 10 + [0, 1])
    denom = jnp.sum(mb.weight)

    def grads_of(part, key):
        return jax.grad(ppo_loss, has_aux=True)(
            params, part, key, COEFS, nets.ac, clip_value=True, denom=denom
        )

    g1, t1 = sum_over_pieces(grads_of, mb, jax.random.key(0), None)
    g4, t4 = sum_over_pieces(grads_of, mb, jax.random.key(0), 3)
    for a, b in zip(jax.tree.leaves((g1, t1)), jax.tree.leaves((g4, t4)), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)
    with pytest.raises(ValueError, match="does not divide"):
        sum_over_pieces(grads_of, mb, jax.random.key(0), 5)


def test_annealed_lr():
    lr = jnp.float32(1e-3)
    got = [float(annealed_lr(lr, jnp.int32(u), 4)) for u in range(4)]
    np.testing.assert_allclose(got, [1e-3, 7.5e-4, 5e-4, 2.5e-4], rtol=1e-6)


def test_update_keys_shapes():
    k = UpdateKeys.draw(jax.random.key(0), jax.random.key(1), 32, epochs=2, minibatches=4)
    assert k.indices.shape == (8, 8) and k.dropout.shape == (8,) and k.proportion.shape == (8,)


# --------------------------------------------------------------------------- training runs

NUM_ENVS, ROLLOUT, UPDATES = 4, 8, 6
TINY = {
    "train.num_envs": NUM_ENVS,
    "train.rollout_size": ROLLOUT,
    "total_frames": NUM_ENVS * ROLLOUT * UPDATES,
    "ppo.epochs": 2,
    "ppo.minibatches": 2,
    "bonus.obs_norm_init_steps": 3,
}


def tiny(name: str, **extra):
    return preset(name).with_overrides({**TINY, **extra})


@pytest.fixture(scope="module")
def ppo_rnd():
    """PPO-RND on the corridor, micro-batches of 4 in minibatches of 16 (helpers.TINY_PROGRAMS;
    its determinism, vmap and chunking contract is in test_program_contract.py)."""
    train, run, updates = tiny_program("ppo-rnd")
    assert updates == UPDATES and train.cfg.train.rollout_size == ROLLOUT
    return train, run


def test_ppo_state_and_metrics(ppo_rnd):
    train, run = ppo_rnd
    assert train.update_micro_batch() == 4
    state, m = run(jax.random.key(0), Hyperparams.from_config(train.cfg))
    assert int(state.opt_state.count) == UPDATES * 2 * 2  # one Adam step per minibatch
    assert state.hparams.clip_eps is not None and state.hparams.update_proportion is not None
    np.testing.assert_array_equal(m.frames, NUM_ENVS * ROLLOUT * np.arange(1, UPDATES + 1))
    for name in ("loss_total", "loss_value_ext", "loss_value_int", "entropy", "loss_rnd"):
        v = np.asarray(getattr(m, name))
        assert np.all(np.isfinite(v)), name
    for name in ("loss_rnd", "loss_value_int", "reward_int_mean", "grad_norm_rnd", "grad_norm_ac"):
        assert np.all(np.asarray(getattr(m, name)) > 0), name
    n = NUM_ENVS * ROLLOUT
    np.testing.assert_allclose(float(state.bonus.obs_rms.count), 12 + UPDATES * n + 1e-4, rtol=1e-6)
    np.testing.assert_allclose(float(state.reward_rms.count), UPDATES * n + 1e-4, rtol=1e-6)


def test_plain_ppo_builds_no_rnd_and_ignores_the_rnd_group():
    """ppo-5x5 keeps ppo-rnd-5x5's (inert) rnd settings: no RND networks, statistics or
    intrinsic stream; the intrinsic value head gets no gradient."""
    train = make_train(tiny("ppo-5x5"), env=Corridor(length=3, max_steps=4))
    state = jax.jit(train.init)(jax.random.key(0))
    assert train.bonus.kind == "none" and state.params.bonus is None and state.bonus is None
    assert state.reward_rms is None and state.reward_filter is None
    new, m = jax.jit(train.update)(state)
    for name in ("loss_rnd", "loss_value_int", "reward_int_mean", "grad_norm_rnd"):
        assert float(getattr(m, name)) == 0.0, name
    for name in ("value_int_hidden", "value_int_out"):
        assert_trees_equal(new.params.ac[name], state.params.ac[name])
    assert not np.array_equal(
        np.asarray(new.params.ac["policy_out"]["bias"]),
        np.asarray(state.params.ac["policy_out"]["bias"]),
    )


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_lr_zero_leaves_params_and_a2c_state_has_no_ppo_leaves():
    train = make_train(tiny("ppo-rnd-5x5"), env=Corridor(length=3, max_steps=4))
    hp = Hyperparams.from_config(train.cfg).replace(lr=jnp.float32(0.0))
    state = jax.jit(train.init)(jax.random.key(0), hp)
    new, _ = jax.jit(train.update)(state)
    assert_trees_equal(new.params, state.params)
    a2c_hp = Hyperparams.from_config(tiny("notebook-rnd-5x5"))
    assert a2c_hp.clip_eps is None and a2c_hp.update_proportion is None
    assert len(jax.tree.leaves(a2c_hp)) == 8  # the eight coefficients A2C had before PPO


# --------------------------------------------------------------------------- switches

# One update from the same initial state and key, with one switch (static) or coefficient
# (traced Hyperparams) changed, against the ppo-rnd preset's update. One epoch of one
# minibatch: the update's loss terms are those of its only gradient step, taken at the initial
# parameters, so a switch that acts only through the gradient leaves every metric unchanged.
# The clip tests take two epochs: the clip can act only once the parameters have moved.
ONE_STEP = {"ppo.epochs": 1, "ppo.minibatches": 1}
ONE_STEP_MASK = {**ONE_STEP, "ppo.bonus_sample": "mask"}  # the proportion is traced with it
TWO_STEPS = {"ppo.epochs": 2, "ppo.minibatches": 1}
# the update's own metrics (the rollout's frames, episodes and score are checked apart)
METRICS = tuple(n for n in metric_names() if n not in ("avg_return_last100", "episodes"))
PARTS = {
    "params.ac": lambda s: s.params.ac,
    "params.predictor": lambda s: s.params.bonus,
    "obs_rms": lambda s: s.bonus.obs_rms,
    "reward_rms": lambda s: s.reward_rms,
}
NOT_ADVANTAGE = [  # what the policy's advantages cannot reach in one step
    "loss_value_ext",
    "loss_value_int",
    "entropy",
    "loss_rnd",
    "reward_int_mean",
    "grad_norm_rnd",
    "params.predictor",
    "obs_rms",
    "reward_rms",
]

# name: (base overrides, switch overrides, traced changes, at update, unchanged, changed)
CASES = {
    "adv_norm": (ONE_STEP, {"ppo.adv_norm": False}, {}, 0, NOT_ADVANTAGE,
                 ["loss_policy", "grad_norm_ac", "params.ac"]),
    "adv_coef_ext": (ONE_STEP, {}, {"adv_coef_ext": 0.5}, 0, NOT_ADVANTAGE,
                     ["grad_norm_ac", "params.ac"]),
    "adv_coef_int": (ONE_STEP, {}, {"adv_coef_int": 3.0}, 0, NOT_ADVANTAGE,
                     ["grad_norm_ac", "params.ac"]),
    "update_proportion": (
        ONE_STEP_MASK, {}, {"update_proportion": 0.75}, 0,
        ["loss_policy", "loss_value_ext", "loss_value_int", "entropy", "reward_int_mean",
         "grad_norm_ac", "params.ac", "obs_rms", "reward_rms"],
        ["loss_rnd", "grad_norm_rnd", "params.predictor"],
    ),
    # the predictor's samples drawn as a Bernoulli mask instead of a fixed-size subset: the
    # actor-critic's update is the same bits (its gradient never depended on them)
    "bonus_sample": (
        ONE_STEP, {"ppo.bonus_sample": "mask"}, {}, 0,
        ["loss_policy", "loss_value_ext", "loss_value_int", "entropy", "reward_int_mean",
         "grad_norm_ac", "params.ac", "obs_rms", "reward_rms"],
        ["loss_rnd", "grad_norm_rnd", "params.predictor"],
    ),
    "clip_eps": (
        TWO_STEPS, {}, {"clip_eps": 1e-4}, 0,
        ["entropy", "loss_value_int", "loss_rnd", "reward_int_mean", "grad_norm_rnd",
         "params.predictor", "obs_rms", "reward_rms"],
        ["loss_policy", "loss_value_ext", "grad_norm_ac", "params.ac"],
    ),
    "clip_value": (
        {**TWO_STEPS, "ppo.clip_eps": 1e-4}, {"ppo.clip_value": False}, {}, 0,
        ["loss_rnd", "reward_int_mean", "grad_norm_rnd", "params.predictor", "obs_rms"],
        ["loss_value_ext", "params.ac"],
    ),
    "anneal_lr": (ONE_STEP, {"ppo.anneal_lr": False}, {}, 3, list(METRICS) + ["obs_rms"],
                  ["params.ac", "params.predictor"]),
    "textbook_gae": (
        ONE_STEP, {"ppo.textbook_gae": False}, {}, 0,
        ["entropy", "loss_value_int", "loss_rnd", "reward_int_mean", "grad_norm_rnd",
         "params.predictor", "obs_rms", "reward_rms"],
        ["loss_value_ext", "grad_norm_ac", "params.ac"],
    ),
    "obs_norm": (ONE_STEP, {"bonus.obs_norm": False}, {}, 0, ["loss_value_ext", "entropy"],
                 ["loss_rnd", "reward_int_mean", "params.predictor"]),
    "reward_norm": (
        ONE_STEP, {"bonus.reward_norm": False}, {}, 0,
        ["loss_value_ext", "entropy", "loss_rnd", "grad_norm_rnd", "params.predictor",
         "obs_rms"],
        ["reward_int_mean", "loss_value_int"],
    ),
}  # fmt: skip

SLOW_CASES = ("obs_norm", "reward_norm")  # the RND normalisations: tests/core/test_rnd.py

_PROGRAMS: dict = {}


def _one_update(overrides: dict, traced: dict, at_update: int):
    key = tuple(sorted(overrides.items()))
    if key not in _PROGRAMS:
        train = make_train(tiny("ppo-rnd-5x5", **overrides), env=Corridor(length=3, max_steps=4))
        _PROGRAMS[key] = (train, jax.jit(train.init), jax.jit(train.update))
    train, init, update = _PROGRAMS[key]
    hp = Hyperparams.from_config(train.cfg)
    hp = hp.replace(**{k: jnp.float32(v) for k, v in traced.items()})
    state = init(jax.random.key(3), hp).replace(update=jnp.int32(at_update))
    new, metrics = update(state)
    return metrics, new


def _value(name, metrics, state):
    return getattr(metrics, name) if name in METRICS else PARTS[name](state)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in sorted(CASES)],
)
def test_switch_changes_exactly_what_it_says(name):
    base, switch, traced, at, unchanged, changed = CASES[name]
    m0, s0 = _one_update(base, {}, at)
    m1, s1 = _one_update({**base, **switch}, traced, at)
    for field in ("frames", "episodes", "avg_return_last100"):  # the rollout itself
        np.testing.assert_array_equal(getattr(m1, field), getattr(m0, field), err_msg=field)
    for what in unchanged:
        assert_trees_equal(_value(what, m1, s1), _value(what, m0, s0))
    for what in changed:
        a = jax.tree.leaves(_value(what, m1, s1))
        b = jax.tree.leaves(_value(what, m0, s0))
        assert any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True)), what


def test_coefficients_of_the_switch_tests_are_traced():
    """The coefficient cases above ran in the preset's program (no recompilation)."""
    _one_update(ONE_STEP_MASK, {"update_proportion": 0.5}, 0)
    train, _, update = _PROGRAMS[tuple(sorted(ONE_STEP_MASK.items()))]
    assert update._cache_size() == 1


# --------------------------------------------------------------------------- predictor samples


def test_subset_size_is_the_rounded_proportion_and_at_least_one():
    assert subset_size(4096, 0.25) == 1024
    assert subset_size(10, 0.25) == 2  # round(2.5) == 2 (round half to even)
    assert subset_size(3, 0.01) == 1
    assert subset_size(7, 1.0) == 7
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        subset_size(8, 0.0)


def test_subset_indices_are_distinct_and_uniform():
    idx = np.asarray(subset_indices(jax.random.key(0), 50, 20))
    assert idx.shape == (20,) and len(set(idx.tolist())) == 20 and idx.min() >= 0
    draws = np.stack(
        [np.asarray(subset_indices(k, 8, 2)) for k in jax.random.split(jax.random.key(1), 4000)]
    )
    hits = np.bincount(draws.ravel(), minlength=8) / draws.size
    # each position equally often: 8,000 picks, sd of a share about 0.004 (a draw that
    # favoured some positions, e.g. always the first k, would be off by 0.125)
    np.testing.assert_allclose(hits, 1 / 8, atol=0.016)


def _predictor_grads(nets, params, target, mb, keys, draw):
    """The predictor's gradient on `mb` for each key of `keys` ([K, P] flattened): `draw`
    "mask" (a Bernoulli weight of the minibatch, as prepare_minibatch draws it), "subset"
    (subset_bonus_grads), or "subset/M" (a deliberately biased subset: divided by M)."""
    from jax.flatten_util import ravel_pytree

    from curio_jax.core.bonuses.rnd import predictor_loss_term

    term = predictor_loss_term(nets.target, nets.predictor, target, None, 5.0)
    m = mb.obs.shape[0]
    k = subset_size(m, COEFS.update_proportion)

    def one(key):
        if draw == "mask":
            w = mb.weight * proportion_mask(key, m, COEFS.update_proportion)
            denom = jnp.maximum(jnp.sum(w), 1.0)
            g = jax.grad(term)(params.bonus, mb.obs, None, key, w, denom)
        else:
            sel = subset_indices(key, m, k)
            _, g = subset_bonus_grads(
                params.bonus, mb.obs[sel], None, mb.weight[sel], key, term, None
            )
            if draw == "subset/M":
                g = jax.tree.map(lambda x: x * k / m, g)
        return ravel_pytree(g)[0]

    return np.asarray(jax.jit(jax.vmap(one))(keys), np.float64)


def test_subset_and_mask_give_the_same_expected_predictor_gradient():
    """Over 200 keys, the mean predictor gradient of the subset draw and of the Bernoulli mask
    both sit on the whole minibatch's gradient within their sampling error (dropout off, so
    the draw is the only randomness): the squared distance of each mean from the full
    gradient, over its expected value for an unbiased draw (trace of the covariance / 200),
    is about 1; a biased draw (the subset divided by M instead of k) is far off."""
    from jax.flatten_util import ravel_pytree

    from curio_jax.core.networks import RNDPredictor, RNDTarget
    from curio_jax.core.rnd import rnd_loss

    # the notebook's networks with 32 features instead of 256 (fewer parameters to average)
    nets = dataclasses.replace(
        _nets(True),
        target=RNDTarget(feature_dim=32),
        predictor=RNDPredictor(feature_dim=32, dropout=0.0),
    )
    params, target = _init(nets)
    m = 64
    mb = PPOBatch(
        obs=jax.random.randint(jax.random.key(5), (m, 7, 7, 3), 0, 11).astype(jnp.uint8),
        action=jnp.zeros(m, jnp.int32),
        logprob=jnp.zeros(m),
        value_ext=jnp.zeros(m),
        adv_ext=jnp.zeros(m),
        ret_ext=jnp.zeros(m),
        weight=jnp.ones(m),
    )
    full = jax.grad(
        lambda p: rnd_loss(nets.target, nets.predictor, target, p, mb.obs, jax.random.key(0))
    )(params.bonus)
    full = np.asarray(ravel_pytree(full)[0], np.float64)
    keys = jax.random.split(jax.random.key(7), 200)

    def off(draw):
        g = _predictor_grads(nets, params, target, mb, keys, draw)
        expected = np.sum(np.var(g, axis=0, ddof=1)) / len(g)
        return np.sum(np.square(g.mean(axis=0) - full)) / expected

    subset, mask = off("subset"), off("mask")
    assert 0.5 < subset < 2.0, subset
    assert 0.5 < mask < 2.0, mask
    assert off("subset/M") > 20.0  # the check can fail
