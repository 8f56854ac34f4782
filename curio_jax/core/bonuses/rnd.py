"""``bonus.kind = "rnd"``: Random Network Distillation (the notebook's ``RNDModule``).

The reward of step t is the frozen target's and the trained predictor's disagreement on the
observation the step led to (:func:`curio_jax.core.rnd.intrinsic_reward`); the predictor is
trained jointly with the actor-critic, by the learner's optimiser, on the prediction error
with dropout (:func:`curio_jax.core.rnd.rnd_loss`; the notebook's one RMSprop over both).
With ``bonus.obs_norm`` (RND paper) the networks' input is whitened with running statistics
that start from random-policy steps and are updated with each rollout after its rewards.

Each forward pass of the frozen target is made once per update: without ``obs_norm`` one
pass over ``[obs[0]; next_obs]`` (``[T + 1, B]``) serves both the reward (``target(next_obs)``)
and the loss (``target(obs)``, as ``obs[t] == next_obs[t - 1]``); with ``obs_norm`` the loss's
input is normalised with the statistics updated by the rollout, so PPO (many minibatch steps
per rollout) computes ``target(normalised obs)`` once after the reward, while A2C (one step)
lets the loss run the target on its batch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.core.agent import BonusTerm, map_rows
from curio_jax.core.bonuses.base import Bonus, BonusReward, register
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.networks import RNDPredictor, RNDTarget, dummy_obs
from curio_jax.core.rnd import (
    RunningMeanStd,
    init_obs_rms,
    intrinsic_reward,
    normalize_obs,
    rnd_loss,
)

Array = jax.Array


class RNDState(struct.PyTreeNode):
    """The frozen target's parameters and the input statistics (``bonus.obs_norm`` only)."""

    target_params: Any
    obs_rms: RunningMeanStd | None = None  # [7, 7, 3]


def random_policy_obs_rms(env: Any, num_envs: int, steps: int, key: Array) -> RunningMeanStd:
    """RND paper: observation statistics from ``steps`` uniformly random steps of ``num_envs``
    separate environments (discarded afterwards; not counted as frames)."""
    k_reset, k_act = jax.random.split(key)
    timestep = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))
    env_step = jax.vmap(env.step)

    def step(ts, k):
        action = jax.random.randint(k, (num_envs,), 0, env.num_actions, jnp.int32)
        ts = env_step(ts, action)
        return ts, ts.observation

    _, obs = jax.lax.scan(step, timestep, jax.random.split(k_act, steps))
    return init_obs_rms(obs)


@register
class RND(Bonus):
    """Random Network Distillation: target and predictor of ``bonus.feature_dim`` outputs."""

    kind = "rnd"
    joint = True

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        b = cfg.bonus
        self.target = RNDTarget(feature_dim=b.feature_dim)
        self.predictor = RNDPredictor(feature_dim=b.feature_dim, dropout=b.dropout)
        self.obs_norm, self.obs_clip = b.obs_norm, b.obs_norm_clip
        self.loss_targets_once = cfg.algorithm == "ppo"
        """With obs_norm: compute the target of the loss's input once per update (PPO's many
        minibatch steps) rather than in the loss (A2C's one step)."""

    def init(self, keys: Array, hparams: Hyperparams) -> tuple[RNDState, Any]:
        k_target, k_pred, k_norm = keys[0], keys[1], keys[2]
        obs0 = dummy_obs()
        target_params = self.target.init(k_target, obs0)["params"]
        predictor_params = self.predictor.init(k_pred, obs0)["params"]
        obs_rms = None
        if self.obs_norm:
            cfg = self.cfg
            obs_rms = random_policy_obs_rms(
                self.env, cfg.train.num_envs, cfg.bonus.obs_norm_init_steps, k_norm
            )
        return RNDState(target_params=target_params, obs_rms=obs_rms), predictor_params

    def novelty(
        self, state: RNDState, params: Any, obs: Array, micro: int | None, extra_first: Any = None
    ) -> tuple[Array, Array | None]:
        """Prediction errors of the observations ``obs [T, B, ...]`` (predictor in eval mode),
        and without ``obs_norm`` the target's features of ``extra_first [1, B, ...]`` followed
        by ``obs[:-1]`` (the features of the rollout's obs when ``obs`` is its next_obs and
        ``extra_first`` its obs[0]), computed in the same target pass; else None."""
        target_obs = None
        target_feats = None
        if self.obs_norm:
            obs = normalize_obs(obs, state.obs_rms, self.obs_clip)
        elif extra_first is not None:
            feats = map_rows(
                lambda o: self.target.apply({"params": state.target_params}, o),
                jnp.concatenate([extra_first, obs], axis=0),
                micro,
            )
            target_feats, target_obs = feats[1:], feats[:-1]
        return self.errors(state, params, obs, target_feats, micro), target_obs

    def errors(
        self, state: Any, params: Any, x: Array, target_feats: Array | None, micro: int | None
    ) -> Array:
        """The predictor's (eval-mode) mean squared error against the target on the networks'
        inputs ``x [T, B, ...]`` (already normalised with ``obs_norm``), ``[T, B]``;
        ``target_feats``: the target's features of ``x`` if already computed, else None."""
        return map_rows(
            lambda xs: intrinsic_reward(
                self.target,
                self.predictor,
                state.target_params,
                params,
                xs[0],
                target_features=xs[1],
            ),
            (x, target_feats),
            micro,
        )

    def reward(
        self, state: RNDState, params: Any, traj: Any, hparams: Hyperparams, micro: int | None
    ) -> BonusReward:
        reward, loss_input = self.novelty(state, params, traj.next_obs, micro, traj.obs[:1])
        state = self.after_rollout(state, traj)
        if self.obs_norm and self.loss_targets_once:
            loss_input = self.loss_targets(state, traj.obs, micro)
        return BonusReward(state=state, reward=reward, loss_input=loss_input)

    def after_rollout(self, state: RNDState, traj: Any) -> RNDState:
        """The input statistics updated with the rollout's next observations (``obs_norm``;
        the rewards used the old ones, the loss uses the new)."""
        if not self.obs_norm:
            return state
        flat = traj.next_obs.reshape((-1,) + traj.next_obs.shape[2:])
        return state.replace(obs_rms=state.obs_rms.update(flat))

    def loss_targets(self, state: RNDState, obs: Array, micro: int | None) -> Array:
        """The target's features of the loss's (normalised) input ``obs [T, B, ...]``."""
        return map_rows(
            lambda o: self.target.apply(
                {"params": state.target_params},
                normalize_obs(o, state.obs_rms, self.obs_clip),
            ),
            obs,
            micro,
        )

    def loss_term(self, state: RNDState) -> BonusTerm:
        return predictor_loss_term(
            self.target, self.predictor, state.target_params, state.obs_rms, self.obs_clip
        )


def predictor_loss_term(
    target: RNDTarget,
    predictor: RNDPredictor,
    target_params: Any,
    obs_rms: RunningMeanStd | None,
    obs_clip: float,
) -> BonusTerm:
    """The predictor's loss as a learner's bonus term: the prediction error on ``obs``
    (whitened and clipped with ``obs_rms`` if given) with dropout, weights ``weight`` over
    ``denom`` (:func:`curio_jax.core.rnd.rnd_loss`); ``loss_input``: the target's features of
    that input, or None to run the target here."""

    def term(
        params: Any, obs: Array, loss_input: Any, key: Array, weight: Array, denom: Array
    ) -> Array:
        rnd_obs = obs if obs_rms is None else normalize_obs(obs, obs_rms, obs_clip)
        return rnd_loss(
            target,
            predictor,
            target_params,
            params,
            rnd_obs,
            key,
            weight,
            target_features=loss_input,
            denom=denom,
        )

    return term
