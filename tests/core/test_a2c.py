"""A2C losses and batch construction (permutation quirk, reset mask), and the gradient step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import init_networks as _init
from helpers import make_networks as _nets

from curio_jax.config import preset
from curio_jax.core.a2c import Batch, loss_fn, make_batch, update_step
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.optim import torch_rmsprop

# --------------------------------------------------------------------------- batch

T, B = 4, 4
N = T * B


def _indexed_segment():
    idx = jnp.arange(N, dtype=jnp.float32).reshape(T, B)
    obs = jnp.zeros((T, B, 7, 7, 3), jnp.uint8).at[..., 0, 0, 0].set(idx.astype(jnp.uint8))
    action = (jnp.arange(N) % 7).reshape(T, B).astype(jnp.int32)
    is_reset = (jnp.arange(N) % 5 == 2).reshape(T, B)
    return idx, obs, action, is_reset


@pytest.mark.parametrize("shared", [False, True])
def test_make_batch_permutations(shared):
    idx, obs, action, is_reset = _indexed_segment()
    batch = make_batch(
        obs,
        action,
        idx,
        idx + 100,
        jax.random.key(0),
        adv_int=idx + 1000,
        ret_int=idx + 2000,
        is_reset=is_reset,
        shared_permutation=shared,
        mask_reset_transition=True,
    )
    sample = np.asarray(batch.obs[:, 0, 0, 0], np.float32)  # index of each sample's obs
    # obs, action, adv_ext, ret_ext and the mask are always aligned
    np.testing.assert_array_equal(np.asarray(batch.adv_ext), sample)
    np.testing.assert_array_equal(np.asarray(batch.ret_ext), sample + 100)
    np.testing.assert_array_equal(np.asarray(batch.action), sample.astype(int) % 7)
    np.testing.assert_array_equal(np.asarray(batch.weight), (sample.astype(int) % 5 != 2) * 1.0)
    assert not np.array_equal(sample, np.arange(N))  # shuffled
    int_idx = np.asarray(batch.adv_int) - 1000
    np.testing.assert_array_equal(np.asarray(batch.ret_int) - 2000, int_idx)  # pair kept
    np.testing.assert_array_equal(np.sort(int_idx), np.arange(N))  # a permutation
    if shared:  # the intrinsic advantage is paired with its own observation
        np.testing.assert_array_equal(int_idx, sample)
    else:  # the notebook's second permutation: misaligned
        assert np.mean(int_idx == sample) < 0.5


def test_make_batch_without_mask_weights_one():
    idx, obs, action, is_reset = _indexed_segment()
    batch = make_batch(obs, action, idx, idx, jax.random.key(0), is_reset=is_reset)
    np.testing.assert_array_equal(np.asarray(batch.weight), np.ones(N))
    assert batch.adv_int is None and batch.ret_int is None
    with pytest.raises(ValueError, match="is_reset"):
        make_batch(obs, action, idx, idx, jax.random.key(0), mask_reset_transition=True)


# --------------------------------------------------------------------------- losses


def _random_batch(key, n=12, rnd=True, weight=None):
    ks = jax.random.split(jax.random.key(key), 6)
    return Batch(
        obs=jax.random.randint(ks[0], (n, 7, 7, 3), 0, 11).astype(jnp.uint8),
        action=jax.random.randint(ks[1], (n,), 0, 7),
        adv_ext=jax.random.normal(ks[2], (n,)),
        ret_ext=jax.random.normal(ks[3], (n,)),
        adv_int=jax.random.normal(ks[4], (n,)) if rnd else None,
        ret_int=jax.random.normal(ks[5], (n,)) if rnd else None,
        weight=jnp.ones((n,)) if weight is None else jnp.asarray(weight, jnp.float32),
    )


COEFS = Hyperparams.from_config(preset("notebook-rnd-5x5"))  # 100 / 10 / 0.5 / 0.01


@pytest.mark.parametrize("rnd", [False, True])
def test_loss_matches_numpy(rnd):
    nets = _nets(rnd)
    params, target = _init(nets)
    batch = _random_batch(3, rnd=rnd)
    dkey = jax.random.key(7)
    total, terms = loss_fn(params, batch, dkey, COEFS, nets.ac, nets.term(target))

    logits, v_ext, v_int = (
        np.asarray(x, np.float64) for x in nets.ac.apply({"params": params.ac}, batch.obs)
    )
    logp_all = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
    a = np.asarray(batch.action)
    logp = logp_all[np.arange(len(a)), a]
    entropy = np.mean(-np.sum(np.exp(logp_all) * logp_all, -1))
    adv = 100.0 * np.asarray(batch.adv_ext)
    value_ext = np.mean((v_ext - np.asarray(batch.ret_ext)) ** 2)
    value_int, rnd_loss = 0.0, 0.0
    if rnd:
        adv = adv + 10.0 * np.asarray(batch.adv_int)
        value_int = np.mean((v_int - np.asarray(batch.ret_int)) ** 2)
        t = nets.target.apply({"params": target}, batch.obs)
        p = nets.predictor.apply(
            {"params": params.bonus}, batch.obs, deterministic=False, rngs={"dropout": dkey}
        )
        rnd_loss = float(np.mean(np.mean((np.asarray(t) - np.asarray(p)) ** 2, -1)))
        eval_p = nets.predictor.apply({"params": params.bonus}, batch.obs)
        assert not np.isclose(rnd_loss, float(jnp.mean(jnp.square(t - eval_p))), rtol=1e-4)
    policy = -np.mean(logp * adv)
    exp_total = policy + 0.5 * (value_ext + value_int) - 0.01 * entropy + rnd_loss
    got = dict(
        policy=terms.policy,
        value_ext=terms.value_ext,
        value_int=terms.value_int,
        entropy=terms.entropy,
        rnd=terms.bonus,
        total=total,
    )
    exp = dict(
        policy=policy,
        value_ext=value_ext,
        value_int=value_int,
        entropy=entropy,
        rnd=rnd_loss,
        total=exp_total,
    )
    for k in exp:
        np.testing.assert_allclose(float(got[k]), exp[k], rtol=2e-5, atol=1e-6, err_msg=k)
    assert float(terms.total) == float(total)


def test_a2c_intrinsic_head_gets_no_gradient():
    nets = _nets(False)
    params, _ = _init(nets)
    grads, _ = jax.grad(loss_fn, has_aux=True)(
        params, _random_batch(1, rnd=False), jax.random.key(0), COEFS, nets.ac
    )
    for name in ("value_int_hidden", "value_int_out"):
        assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads.ac[name]))
    assert float(jnp.abs(grads.ac["policy_out"]["kernel"]).max()) > 0


@pytest.mark.parametrize("rnd", [False, True])
def test_masked_samples_get_zero_weight(rnd):
    """mask_reset_transition: a weight-0 sample changes neither loss nor gradient, and the
    loss is the plain mean over the unmasked samples."""
    nets = _nets(rnd)
    params, target = _init(nets)
    weight = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1], np.float32)
    batch = _random_batch(4, rnd=rnd, weight=weight)
    other = _random_batch(5, rnd=rnd)
    masked = weight == 0

    def swap(a, b):  # replace the masked samples' data
        m = masked.reshape((-1,) + (1,) * (a.ndim - 1))
        return jnp.where(m, b, a)

    fields = ["obs", "action", "adv_ext", "ret_ext"] + (["adv_int", "ret_int"] if rnd else [])
    changed = batch.replace(**{f: swap(getattr(batch, f), getattr(other, f)) for f in fields})
    grad_fn = jax.jit(jax.grad(loss_fn, has_aux=True), static_argnums=(4, 5))
    term = nets.term(target)
    dkey = jax.random.key(0)
    g1, t1 = grad_fn(params, batch, dkey, COEFS, nets.ac, term)
    g2, t2 = grad_fn(params, changed, dkey, COEFS, nets.ac, term)
    np.testing.assert_allclose(float(t1.total), float(t2.total), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # control: with all weights 1 the same change does alter loss and gradients
    ones = batch.replace(weight=jnp.ones_like(batch.weight))
    g3, t3 = grad_fn(params, ones, dkey, COEFS, nets.ac, term)
    g4, t4 = grad_fn(params, changed.replace(weight=ones.weight), dkey, COEFS, nets.ac, term)
    assert abs(float(t3.total) - float(t4.total)) > 1e-4
    if not rnd:  # no dropout: the weighted loss equals the unweighted loss on the kept samples
        keep = jax.tree.map(lambda x: x[~masked], batch)
        _, t5 = grad_fn(
            params, keep.replace(weight=jnp.ones(keep.action.shape)), dkey, COEFS, nets.ac, term
        )
        np.testing.assert_allclose(float(t5.total), float(t1.total), rtol=1e-5)


def test_update_step_trains_ac_and_predictor_only():
    nets = _nets(True)
    params, target = _init(nets)
    opt_state = torch_rmsprop(1e-3).init(params)
    new, new_state, m = update_step(
        params,
        opt_state,
        _random_batch(2),
        jax.random.key(0),
        COEFS,
        nets.ac,
        nets.term(target),
        lr=1e-3,
        decay=0.99,
        eps=1e-8,
        max_grad_norm_ac=0.5,
        max_grad_norm_bonus=0.01,
    )
    assert set(vars(new)) == {"ac", "bonus"}  # the target is not an optimised parameter
    for old, upd in ((params.ac, new.ac), (params.bonus, new.bonus)):
        diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), old, upd)
        assert max(jax.tree.leaves(diff)) > 0
    assert float(m.grad_norm_ac) > 0 and float(m.grad_norm_bonus) > 0
    assert jax.tree.structure(new_state.square_avg) == jax.tree.structure(new)
