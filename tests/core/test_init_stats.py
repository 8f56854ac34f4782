"""Initialisation statistics of the Flax networks against PyTorch's, empirically: per-layer
mean and std of the weights, and the intrinsic reward of a freshly initialised RND pair on random
DoorKey-like observations (the scale the notebook's tuned 100 / 10 advantage weights depend on)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from curio_jax.core.networks import ActorCritic, RNDPredictor, RNDTarget, dummy_obs
from curio_jax.core.rnd import intrinsic_reward
from curio_jax.run import convert

torch = pytest.importorskip("torch")
from curio_jax.reference.agents import ActorCritic as TorchActorCritic  # noqa: E402
from curio_jax.reference.agents import RNDModule  # noqa: E402

N_INITS = 24


def _random_obs(n=256, seed=0):
    rng = np.random.default_rng(seed)
    obj = rng.choice([0, 1, 2, 4, 5, 8], size=(n, 7, 7))
    colour = rng.integers(0, 6, size=(n, 7, 7))
    state = rng.integers(0, 3, size=(n, 7, 7))
    return np.stack([obj, colour, state], -1).astype(np.uint8)


def _flax_leaves(params):
    return {
        jax.tree_util.keystr(p): np.asarray(x).ravel()
        for p, x in jax.tree_util.tree_flatten_with_path(params)[0]
    }


def test_actor_critic_weight_statistics_match_pytorch():
    torch.manual_seed(0)
    net = ActorCritic()
    flax_samples: dict[str, list] = {}
    torch_samples: dict[str, list] = {}
    for i in range(N_INITS):
        fl = _flax_leaves(net.init(jax.random.key(i), dummy_obs())["params"])
        tp = convert.actor_critic_to_flax(
            {k: v.numpy() for k, v in TorchActorCritic(7).state_dict().items()}
        )
        tl = _flax_leaves(tp)
        for k in fl:
            flax_samples.setdefault(k, []).append(fl[k])
            torch_samples.setdefault(k, []).append(tl[k])
    assert flax_samples.keys() == torch_samples.keys()
    for k in flax_samples:
        a, b = np.concatenate(flax_samples[k]), np.concatenate(torch_samples[k])
        # the same distribution: a two-sample KS test cannot tell them apart, and the std and mean
        # agree within a few standard errors
        p = sps.ks_2samp(a, b).pvalue
        assert p > 1e-4, (k, p)
        se = b.std() * np.sqrt(2 / min(len(a), len(b)))
        assert abs(a.std() - b.std()) < 4 * se + 1e-3 * b.std(), (k, a.std(), b.std())
        se_mean = b.std() / np.sqrt(min(len(a), len(b)) / 4)
        assert abs(a.mean() - b.mean()) < 4 * se_mean, (k, a.mean(), b.mean())


def test_intrinsic_reward_at_init_matches_pytorch():
    obs = _random_obs()
    target, predictor = RNDTarget(), RNDPredictor()
    reward = jax.jit(
        lambda kt, kp: intrinsic_reward(
            target,
            predictor,
            target.init(kt, dummy_obs())["params"],
            predictor.init(kp, dummy_obs())["params"],
            jnp.asarray(obs)[None],
        ).mean()
    )
    ours = np.array(
        [float(reward(jax.random.key(2 * i), jax.random.key(2 * i + 1))) for i in range(N_INITS)]
    )
    theirs = []
    torch.manual_seed(1)
    x = torch.as_tensor(obs, dtype=torch.float32).permute(0, 3, 1, 2)
    for _ in range(N_INITS):
        module = RNDModule().eval()
        with torch.no_grad():
            theirs.append(float(module(x).mean()))
    theirs = np.array(theirs)
    # two samples of the same distribution: a rank test cannot tell them apart
    p = sps.mannwhitneyu(ours, theirs).pvalue
    assert p > 0.01, (p, ours.mean(), theirs.mean())
    assert 0.67 < ours.mean() / theirs.mean() < 1.5, (ours.mean(), theirs.mean())
