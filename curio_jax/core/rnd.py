"""Random Network Distillation: intrinsic reward, predictor loss and the RND paper's optional
normalisations, as pure functions over :class:`RunningMeanStd` containers.

Seed semantics (``RNDModule`` in the notebook):

- intrinsic reward of step t = mean over the feature axis of
  ``(target(next_obs[t]) - predictor(next_obs[t]))**2`` with the predictor in eval mode
  (dropout off); no normalisation;
- RND loss = the same error on the current observation batch with the predictor in train mode
  (dropout on), averaged over the batch.

RND paper options (Burda et al. 2018, off in the seed):

- observation normalisation: the RND input is whitened with running per-pixel mean/std and
  clipped to ``+-clip``; the statistics start from observations of random-policy steps;
- intrinsic-reward normalisation: rewards are divided by the running std of the discounted
  intrinsic return, which is filtered along time per env (never reset at episode ends, as in
  the paper's ``RewardForwardFilter``) with statistics pooled over envs and time.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.core.networks import RNDPredictor, RNDTarget

Array = jax.Array

OBS_NORM_EPS = 1e-8
"""Added to the variance before the square root when whitening observations."""
REWARD_NORM_EPS = 1e-8
"""Added to the variance before the square root when scaling intrinsic rewards."""


class RunningMeanStd(struct.PyTreeNode):
    """Running mean and (population) variance over a leading batch axis, merged per batch with
    Chan et al.'s parallel formula (as ``baselines.common.running_mean_std``).

    ``mean``, ``var``: ``[*shape]``; ``count``: ``[]`` float32, starts at a tiny epsilon so the
    first merge is well defined."""

    mean: Array
    var: Array
    count: Array

    @classmethod
    def create(cls, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> RunningMeanStd:
        """Mean 0, variance 1, count ``epsilon``."""
        return cls(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.asarray(epsilon, jnp.float32),
        )

    def update(self, batch: Array) -> RunningMeanStd:
        """Merge a batch ``[N, *shape]``."""
        chex.assert_rank(batch, self.mean.ndim + 1)
        x = batch.astype(jnp.float32)
        return self.update_from_moments(
            jnp.mean(x, axis=0), jnp.var(x, axis=0), jnp.asarray(x.shape[0], jnp.float32)
        )

    def update_from_moments(
        self, batch_mean: Array, batch_var: Array, batch_count: Array
    ) -> RunningMeanStd:
        """Merge a batch given by its mean, population variance and count."""
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * (batch_count / total)
        m2 = (
            self.var * self.count
            + batch_var * batch_count
            + jnp.square(delta) * (self.count * batch_count / total)
        )
        return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def normalize_obs(obs: Array, rms: RunningMeanStd, clip: float | Array) -> Array:
    """RND paper input whitening: ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``.

    ``obs [..., *rms.mean.shape]`` (uint8 or float) -> float32 of the same shape."""
    x = (obs.astype(jnp.float32) - rms.mean) / jnp.sqrt(rms.var + OBS_NORM_EPS)
    return jnp.clip(x, -clip, clip)


def init_obs_rms(observations: Array) -> RunningMeanStd:
    """Observation statistics from a stack of observations ``[..., 7, 7, 3]`` (e.g. random-policy
    steps ``[S, B, 7, 7, 3]``); every leading axis is pooled."""
    obs_shape = observations.shape[-3:]
    return RunningMeanStd.create(obs_shape).update(observations.reshape((-1,) + obs_shape))


def prediction_error(
    target: RNDTarget,
    predictor: RNDPredictor,
    target_params,
    predictor_params,
    obs: Array,
    *,
    dropout_key: Array | None = None,
    target_features: Array | None = None,
) -> Array:
    """Mean over features of ``(target(obs) - predictor(obs))**2``.

    ``obs [..., 7, 7, 3] -> [...]``. ``dropout_key=None``: predictor in eval mode (dropout off);
    otherwise train mode with that dropout key. The target gets no gradient.
    ``target_features [..., feature_dim]``: ``target(obs)`` computed by the caller (the update
    shares one target pass between the intrinsic reward and the RND loss); None: computed here.
    """
    if target_features is None:
        target_features = target.apply({"params": target_params}, obs)
    t = jax.lax.stop_gradient(target_features)
    if dropout_key is None:
        p = predictor.apply({"params": predictor_params}, obs, deterministic=True)
    else:
        p = predictor.apply(
            {"params": predictor_params}, obs, deterministic=False, rngs={"dropout": dropout_key}
        )
    return jnp.mean(jnp.square(t - p), axis=-1)


def intrinsic_reward(
    target: RNDTarget,
    predictor: RNDPredictor,
    target_params,
    predictor_params,
    next_obs: Array,
    target_features: Array | None = None,
) -> Array:
    """The notebook's intrinsic reward: prediction error on ``next_obs [T, B, 7, 7, 3]`` (the
    observation each step led to), predictor in eval mode, no gradient. Returns ``[T, B]``
    (``[N]`` for a flat piece ``[N, 7, 7, 3]``).
    ``target_features [T, B, F]``: precomputed ``target(next_obs)`` (see prediction_error)."""
    chex.assert_rank(next_obs, {4, 5})  # [T, B, ...] or a flat piece [N, ...] of it
    return jax.lax.stop_gradient(
        prediction_error(
            target,
            predictor,
            target_params,
            predictor_params,
            next_obs,
            target_features=target_features,
        )
    )


def rnd_loss(
    target: RNDTarget,
    predictor: RNDPredictor,
    target_params,
    predictor_params,
    obs: Array,
    dropout_key: Array,
    weights: Array | None = None,
    target_features: Array | None = None,
    denom: Array | None = None,
) -> Array:
    """The notebook's RND loss: prediction error on the current observation batch ``obs [N, ...]``
    with dropout on, averaged over the batch (weighted mean with ``weights [N]`` if given,
    ``sum(err * weights) / denom``, ``denom = max(sum(weights), 1)`` unless given).
    Differentiable in ``predictor_params`` only. ``target_features [N, F]``: precomputed
    ``target(obs)`` (see prediction_error)."""
    chex.assert_rank(obs, 4)
    err = prediction_error(
        target,
        predictor,
        target_params,
        predictor_params,
        obs,
        dropout_key=dropout_key,
        target_features=target_features,
    )
    if weights is None:
        return jnp.mean(err)
    if denom is None:
        denom = jnp.maximum(jnp.sum(weights), 1.0)
    return jnp.sum(err * weights) / denom


def discounted_return_filter(
    filter_state: Array, rewards: Array, gamma: Array | float
) -> tuple[Array, Array]:
    """The RND paper's ``RewardForwardFilter``: ``f <- gamma * f + r[t]`` per env, forwards in
    time, never reset at episode ends.

    Args:
      filter_state: ``[B]`` carried across segments.
      rewards: ``[T, B]``.
    Returns:
      ``(new_filter_state [B], filtered [T, B])``.
    """
    chex.assert_rank([filter_state, rewards], [1, 2])
    gamma = jnp.asarray(gamma, rewards.dtype)

    def step(f, r):
        f = gamma * f + r
        return f, f

    return jax.lax.scan(step, filter_state, rewards)


def normalize_intrinsic_reward(
    rewards: Array, filter_state: Array, rms: RunningMeanStd, gamma: Array | float
) -> tuple[Array, Array, RunningMeanStd]:
    """RND paper intrinsic-reward normalisation.

    Filters ``rewards [T, B]`` into discounted returns, merges all ``T * B`` of them into the
    scalar ``rms``, then divides the rewards by ``sqrt(rms.var + eps)`` (the updated
    statistics, as the paper). Returns ``(normalised [T, B], filter_state [B], rms)``."""
    filter_state, filtered = discounted_return_filter(filter_state, rewards, gamma)
    rms = rms.update(filtered.reshape(-1))
    return rewards / jnp.sqrt(rms.var + REWARD_NORM_EPS), filter_state, rms
