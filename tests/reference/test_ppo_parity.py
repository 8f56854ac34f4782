"""PPO and PPO-RND against the PyTorch port (curio_jax.reference.ppo): the pieces of the port
against hand-computed values and curio_jax's statistics, then one whole update on a real
DoorKey segment (curio_jax.reference.crosscheck.ppo_parity) at the cross-checks' tolerances.

Relative errors are max|a - b| / max|b| in float32 (loss terms: relative to the largest term).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("minigrid")

from curio_jax.core import rnd  # noqa: E402
from curio_jax.core.returns import gae_general  # noqa: E402
from curio_jax.reference import ppo as ref_ppo  # noqa: E402
from curio_jax.reference.crosscheck import (  # noqa: E402
    LOSS_GRAD_TOL,
    PARAMS_TOL,
    ppo_parity,
    rel_err,
)

torch.set_num_threads(1)


def test_reference_gae_textbook_and_notebook_traces():
    # gamma = lambda = 0.5; env 0 ends its episode at step 2, env 1 at step 1.
    rewards = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    values = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 5.0]])
    dones = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    nxt = torch.tensor([4.0, 2.0])
    boot = 1.0 - dones
    text, _ = ref_ppo.gae(rewards, values, nxt, boot, dones, 0.5, 0.5, textbook=True)
    note, _ = ref_ppo.gae(rewards, values, nxt, boot, dones, 0.5, 0.5, textbook=False)
    # env 0: delta2 = 0 - 3 = -3 (done), delta1 = 1 + 0.5 * 3 - 2 = 0.5, delta0 = 0 + 1 - 1 = 0.
    #   textbook: adv1 = 0.5 + 0.25 * (-3) = -0.25, adv0 = 0 + 0.25 * -0.25 = -0.0625.
    #   notebook: adv2 is not carried (step 2 is done): adv1 = 0.5, adv0 = 0.125.
    np.testing.assert_allclose(text[:, 0].numpy(), [-0.0625, -0.25, -3.0], atol=1e-7)
    np.testing.assert_allclose(note[:, 0].numpy(), [0.125, 0.5, -3.0], atol=1e-7)
    # both agree with curio_jax.core.returns (truncation = termination here)
    for textbook, got in ((True, text), (False, note)):
        adv, _ = gae_general(
            jnp.asarray(rewards.numpy()),
            jnp.asarray(values.numpy()),
            jnp.asarray(nxt.numpy()),
            jnp.asarray(dones.numpy()).astype(bool),
            jnp.zeros((3, 2), bool),
            0.5,
            0.5,
            textbook=textbook,
        )
        np.testing.assert_allclose(np.asarray(adv), got.numpy(), rtol=1e-6, atol=1e-7)


def test_reference_running_statistics_match_curio_jax():
    rng = np.random.default_rng(0)
    ours = rnd.RunningMeanStd.create((3,))
    theirs = ref_ppo.RunningMeanStd.create((3,))
    for n in (5, 17, 1, 40):
        x = rng.normal(2.0, 3.0, size=(n, 3)).astype(np.float32)
        ours = ours.update(jnp.asarray(x))
        theirs.update(torch.as_tensor(x))
    assert rel_err(ours.mean, theirs.mean.numpy()) < 1e-6
    assert rel_err(ours.var, theirs.var.numpy()) < 1e-6
    assert float(ours.count) == pytest.approx(float(theirs.count), rel=1e-7)


def test_reference_loss_clips_both_sides():
    """The port's surrogate at hand-picked ratios: inside the clip range the plain ratio,
    outside the clipped one whenever that is the larger loss."""
    s = ref_ppo.PPOSettings(clip_eps=0.2, adv_norm=False, clip_value=False, entropy_coef=0.0)
    ratio = torch.tensor([0.5, 1.1, 1.5, 0.5, 1.5])
    adv = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0])
    got = torch.max(-adv * ratio, -adv * ratio.clamp(1 - s.clip_eps, 1 + s.clip_eps))
    np.testing.assert_allclose(got.numpy(), [-0.5, -1.1, -1.2, 0.8, 1.5], rtol=1e-6)


@pytest.fixture(scope="module", params=["ppo", "ppo-rnd"])
def parity(request):
    return request.param, ppo_parity(request.param)


def test_targets_and_normalisation_statistics(parity):
    kind, r = parity
    names = {"adv_ext", "ret_ext"}
    if kind == "ppo-rnd":
        names |= {"reward_int_mean", "adv_int", "ret_int", "obs_rms", "reward_rms"}
        names |= {"reward_filter"}
    assert set(r["targets"]) == names
    for name, err in r["targets"].items():
        assert err <= LOSS_GRAD_TOL, (name, err)


def test_first_step_loss_and_gradients(parity):
    kind, r = parity
    for name, err in r["first_step"]["loss"].items():
        assert err <= LOSS_GRAD_TOL, (name, err)
    grads = r["first_step"]["grads"]
    assert any(k.startswith("predictor") for k in grads) == (kind == "ppo-rnd")
    worst = max(grads, key=grads.get)
    assert grads[worst] <= LOSS_GRAD_TOL, (worst, grads[worst])


def test_whole_update(parity):
    kind, r = parity
    assert r["steps"] == 16  # 4 epochs x 4 minibatches
    for name, err in r["mean_terms"].items():
        assert err <= LOSS_GRAD_TOL, (name, err)
    assert r["grad_norms"] <= LOSS_GRAD_TOL
    for name, err in r["params_rel_err"].items():
        assert err <= PARAMS_TOL, (name, err)
    assert 0 < r["clip_acted"][0] < 16  # the actor-critic clip acted on some steps only
    if kind == "ppo-rnd":
        assert 0 < r["clip_acted"][1] < 16
        assert 0.65 < r["dropout_keep"] < 0.85
        assert 0.15 < r["rnd_fraction"] < 0.35
