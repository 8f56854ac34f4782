"""Micro-batched update (TrainSettings.micro_batch): same step as one pass over the batch, up to
float summation order; the config's resolution and its errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_env import Corridor

from curio_jax.config import TrainSettings, micro_batch_size, preset
from curio_jax.core.agent import map_rows
from curio_jax.core.train import make_train

NUM_ENVS, ROLLOUT, UPDATES = 8, 4, 4  # 32 samples per update


def _cfg(name: str, micro: int | None, **extra):
    return preset(name).with_overrides(
        {
            "train.num_envs": NUM_ENVS,
            "train.rollout_size": ROLLOUT,
            "train.micro_batch": micro,
            "total_frames": NUM_ENVS * ROLLOUT * UPDATES,
            **extra,
        }
    )


def _run(cfg):
    train = make_train(cfg, env=Corridor(length=3, max_steps=4))
    return train, jax.jit(train)(jax.random.key(0))


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    "num_envs, rollout, micro, backend, expected",
    [
        (32, 16, None, "cpu", 512),  # the notebook's batch: one pass
        (512, 16, None, "cpu", 512),  # 8192 samples: 16 pieces of 512
        (300, 5, None, "cpu", 500),  # 1500: largest divisor <= 512
        (1031, 1, None, "cpu", 1031),  # prime: no divisor >= 128, one pass
        (512, 16, None, "gpu", 8192),  # accelerators: one pass
        (512, 16, 0, "cpu", 8192),  # 0: one pass everywhere
        (512, 16, 256, "gpu", 256),  # explicit: used as given
    ],
)
def test_micro_batch_size(num_envs, rollout, micro, backend, expected):
    a2c = TrainSettings(num_envs=num_envs, rollout_size=rollout, micro_batch=micro)
    assert micro_batch_size(a2c, backend) == expected


@pytest.mark.parametrize(
    "micro, match",
    [
        (-1, "micro_batch must be None"),
        (2.0, "micro_batch must be None"),
        (True, "micro_batch must be None"),
        (100, r"does not divide .* 512; divisors near it: \[64, 128\]"),
    ],
)
def test_invalid_micro_batch_raises(micro, match):
    with pytest.raises(ValueError, match=match):
        TrainSettings(num_envs=32, rollout_size=16, micro_batch=micro)


def test_train_resolves_micro_batch():
    train = make_train(_cfg("notebook-a2c-5x5", None), env=Corridor())
    assert train.micro_batch == NUM_ENVS * ROLLOUT  # 32 <= 512: one pass
    assert make_train(_cfg("notebook-a2c-5x5", 8), env=Corridor()).micro_batch == 8


# --------------------------------------------------------------------------- map_rows


@pytest.mark.parametrize("micro", [None, 4, 5, 15, 64])  # 5 leaves a padded last piece
def test_map_rows_equals_one_call(micro):
    x = jax.random.normal(jax.random.key(0), (3, 5, 2, 2))
    y = jax.random.normal(jax.random.key(1), (3, 5, 6))

    def fn(xs):
        a, b = xs
        return jnp.concatenate([a.reshape(a.shape[:-2] + (-1,)), b], -1) * 2.0  # any lead dims

    out = jax.jit(lambda xs: map_rows(fn, xs, micro))((x, y))
    want = fn((x.reshape(15, 2, 2), y.reshape(15, 6))).reshape(3, 5, 10)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(want))


def test_map_rows_allows_none_leaves():
    x = jnp.arange(12.0).reshape(3, 4)
    out = map_rows(lambda xs: xs[0] + (0.0 if xs[1] is None else 1.0), (x, None), 5)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(x))


# --------------------------------------------------------------------------- the update


@pytest.mark.parametrize(
    "name",
    [
        "notebook-a2c-5x5",
        pytest.param("notebook-rnd-5x5", marks=pytest.mark.slow),
        pytest.param("rnd-paper-5x5", marks=pytest.mark.slow),
    ],
)
def test_micro_batched_update_equals_one_pass(name):
    """Dropout off (its masks are drawn per piece): 4 pieces of 8 give the parameters and
    metrics of one pass over the 32 samples, to float32 summation order, after 4 updates."""
    extra = {} if name.startswith("notebook-a2c") else {"bonus.dropout": 0.0}
    if name.startswith("rnd-paper"):
        extra["bonus.obs_norm_init_steps"] = 2
    train, micro = _run(_cfg(name, 8, **extra))
    assert train.micro_batch == 8
    _, whole = _run(_cfg(name, 0, **extra))
    m_micro, m_whole = micro.metrics, whole.metrics
    for field in ("loss_total", "loss_policy", "loss_value_ext", "entropy", "grad_norm_ac"):
        np.testing.assert_allclose(
            np.asarray(getattr(m_micro, field)),
            np.asarray(getattr(m_whole, field)),
            rtol=2e-4,
            atol=1e-6,
            err_msg=field,
        )
    if "rnd" in name:
        for field in ("loss_rnd", "loss_value_int", "reward_int_mean", "grad_norm_rnd"):
            a, b = np.asarray(getattr(m_micro, field)), np.asarray(getattr(m_whole, field))
            assert np.all(b > 0), field  # the RND path really ran
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7, err_msg=field)
    pm, pw = jax.tree.leaves(micro.final_state.params), jax.tree.leaves(whole.final_state.params)
    for a, b in zip(pm, pw, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)
    # the two differ at all (a different code path), or this test checks nothing
    diffs = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(pm, pw, strict=True)]
    assert max(diffs) > 0


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_micro_batched_run_is_deterministic_with_dropout():
    cfg = _cfg("notebook-rnd-5x5", 8)
    train = make_train(cfg, env=Corridor(length=3, max_steps=4))
    jitted = jax.jit(train)
    a, b = jitted(jax.random.key(3)), jitted(jax.random.key(3))
    pa, pb = jax.tree.leaves(a.final_state.params), jax.tree.leaves(b.final_state.params)
    for x, y in zip(pa, pb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert np.all(np.isfinite(np.asarray(a.metrics.loss_rnd)))
