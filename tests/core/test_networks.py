"""Networks: parameter names and shapes, PyTorch initialisation, layout, dropout."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from curio_jax.core.networks import ActorCritic, Conv2x2, RNDPredictor, RNDTarget, Torso, dummy_obs

CONV = {
    "conv0": {"kernel": (2, 2, 3, 16), "bias": (16,)},
    "conv1": {"kernel": (2, 2, 16, 32), "bias": (32,)},
    "conv2": {"kernel": (2, 2, 32, 64), "bias": (64,)},
}


def _dense(i, o):
    return {"kernel": (i, o), "bias": (o,)}


EXPECTED = {
    "ac": {
        "torso": CONV,
        "policy_hidden": _dense(1024, 64),
        "policy_out": _dense(64, 7),
        "value_ext_hidden": _dense(1024, 64),
        "value_ext_out": _dense(64, 1),
        "value_int_hidden": _dense(1024, 64),
        "value_int_out": _dense(64, 1),
    },
    "target": {"torso": CONV, "out": _dense(1024, 256)},
    "predictor": {
        "torso": CONV,
        "dense0": _dense(1024, 256),
        "dense1": _dense(256, 256),
        "dense2": _dense(256, 256),
    },
}
MODULES = {"ac": ActorCritic(), "target": RNDTarget(), "predictor": RNDPredictor()}


def _params(name, key):
    return MODULES[name].init(key, dummy_obs())["params"]


def _shapes(tree):
    return jax.tree.map(lambda x: tuple(x.shape), tree)


@pytest.mark.parametrize("name", list(MODULES))
def test_param_tree_names_and_shapes(name):
    params = _params(name, jax.random.key(0))
    assert _shapes(params) == EXPECTED[name]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))


@pytest.mark.parametrize("name", list(MODULES))
def test_pytorch_default_init(name):
    """Every weight and bias ~ U(+-1/sqrt(fan_in)): range, mean and std per layer, pooled over
    64 independent inits so that the 1-element biases are tested too."""
    stacked = jax.vmap(lambda k: _params(name, k))(jax.random.split(jax.random.key(1), 64))
    flat = jax.tree_util.tree_flatten_with_path(stacked)[0]
    assert flat
    for path, leaf in flat:
        layer = "/".join(p.key for p in path[:-1])
        kernel = stacked
        for p in path[:-1]:
            kernel = kernel[p.key]
        kshape = kernel["kernel"].shape[1:]
        fan_in = math.prod(kshape[:-1])  # Dense [in, out]: in; Conv [kh, kw, in, out]: kh*kw*in
        bound = 1.0 / math.sqrt(fan_in)
        x = np.asarray(leaf, np.float64).ravel()
        n = x.size
        std = bound / math.sqrt(3.0)
        assert np.all(np.abs(x) <= bound * (1 + 1e-6)), layer
        assert abs(x.mean()) < 5 * std / math.sqrt(n), (layer, x.mean())
        # std of the sample std of a uniform: ~ std * sqrt(0.8 / (4 n)) (kurtosis 1.8)
        assert abs(x.std() - std) < 5 * std * math.sqrt(0.2 / n) + 1e-12, (layer, x.std(), std)


def test_independent_inits_differ():
    a = jax.tree.leaves(_params("target", jax.random.key(0)))
    b = jax.tree.leaves(_params("target", jax.random.key(1)))
    assert all(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_actor_critic_outputs():
    model = ActorCritic()
    params = model.init(jax.random.key(0), dummy_obs())["params"]
    obs = jax.random.randint(jax.random.key(1), (2, 3, 7, 7, 3), 0, 11).astype(jnp.uint8)
    logits, v_ext, v_int = model.apply({"params": params}, obs)
    assert logits.shape == (2, 3, 7) and v_ext.shape == (2, 3) and v_int.shape == (2, 3)
    single = model.apply({"params": params}, obs[1, 2])
    np.testing.assert_allclose(single[0], logits[1, 2], rtol=1e-5, atol=1e-6)
    assert single[1].shape == ()
    # uint8 input is cast without scaling: identical to the same values given as float
    as_float = model.apply({"params": params}, obs.astype(jnp.float32))
    np.testing.assert_array_equal(np.asarray(as_float[0]), np.asarray(logits))


def _torch_style_torso(params, obs):
    """PyTorch's torso in numpy: NCHW input from MiniGrid's [x][y][c] array via
    permute(0, 3, 1, 2), cross-correlation with weight [out, in, kh, kw], Flatten in (C, H, W)."""
    x = np.asarray(obs, np.float64).transpose(0, 3, 1, 2)
    for name in ("conv0", "conv1", "conv2"):
        k = np.asarray(params[name]["kernel"], np.float64).transpose(3, 2, 0, 1)  # torch layout
        b = np.asarray(params[name]["bias"], np.float64)
        n, _, h, w = x.shape
        out = np.zeros((n, k.shape[0], h - 1, w - 1))
        for i in range(2):
            for j in range(2):
                out += np.einsum(
                    "nchw,oc->nohw", x[:, :, i : i + h - 1, j : j + w - 1], k[:, :, i, j]
                )
        x = np.maximum(out + b[None, :, None, None], 0.0)
    return x.reshape(x.shape[0], -1)  # (C, H, W) order


def test_torso_layout_matches_pytorch_up_to_flatten_permutation():
    torso = Torso()
    params = torso.init(jax.random.key(2), dummy_obs())["params"]
    obs = jax.random.randint(jax.random.key(3), (4, 7, 7, 3), 0, 11).astype(jnp.uint8)
    ours = np.asarray(torso.apply({"params": params}, obs))
    ref = _torch_style_torso(params, obs)
    assert ours.shape == ref.shape == (4, 1024)
    # ours is (H, W, C)-flattened: feature (h*4 + w)*64 + c == torch feature c*16 + h*4 + w
    perm = np.arange(1024).reshape(64, 4, 4).transpose(1, 2, 0).ravel()
    np.testing.assert_allclose(ours, ref[:, perm], rtol=1e-4, atol=1e-4)
    # and the layout matters (a transposed image gives other features)
    swapped = np.asarray(torso.apply({"params": params}, obs.transpose(0, 2, 1, 3)))
    assert not np.allclose(swapped, ours, atol=1e-3)


def test_conv2x2_equals_flax_conv():
    """The im2col convolution computes what nn.Conv does, on the same parameter tree."""
    x = jax.random.normal(jax.random.key(4), (2, 3, 7, 7, 5))
    ours = Conv2x2(8)
    params = ours.init(jax.random.key(5), x)["params"]
    ref = nn.Conv(8, (2, 2), padding="VALID").apply({"params": params}, x)
    np.testing.assert_allclose(ours.apply({"params": params}, x), ref, rtol=1e-5, atol=1e-5)
    grads = [
        jax.grad(lambda p, m=m: jnp.sum(jnp.sin(m.apply({"params": p}, x))))(params)
        for m in (ours, nn.Conv(8, (2, 2), padding="VALID"))
    ]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_predictor_dropout():
    pred = RNDPredictor()
    params = pred.init(jax.random.key(0), dummy_obs())["params"]
    obs = jax.random.randint(jax.random.key(1), (8, 7, 7, 3), 0, 11).astype(jnp.uint8)
    eval_a = pred.apply({"params": params}, obs)
    eval_b = pred.apply({"params": params}, obs, deterministic=True)
    np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))

    def train(key, module=pred):
        return module.apply(
            {"params": params}, obs, deterministic=False, rngs={"dropout": jax.random.key(key)}
        )

    assert not np.allclose(train(0), eval_a, atol=1e-4)
    assert not np.allclose(train(0), train(1), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(train(0)), np.asarray(train(0)))
    no_dropout = RNDPredictor(dropout=0.0)
    np.testing.assert_allclose(train(0, no_dropout), eval_a, rtol=1e-6, atol=1e-6)
    with pytest.raises(Exception, match="dropout"):
        pred.apply({"params": params}, obs, deterministic=False)
