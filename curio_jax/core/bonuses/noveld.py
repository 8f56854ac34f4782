"""``bonus.kind = "noveld"``: NovelD (Zhang et al. 2021) on the RND networks.

Reward of step t::

    max(n(s_{t+1}) - alpha * n(s_t), 0) * 1[first visit of s_{t+1} in this episode]

with ``n`` the RND novelty, the L2 norm of the target's and predictor's disagreement
(``sqrt(feature_dim * mean squared error)``: the NovelD paper's ``||f(s) - f'(s)||``; the
``rnd`` bonus pays the mean squared error itself), ``alpha = hparams.noveld_alpha``, and the
episodic first-visit indicator keyed by a 32-bit hash of the whole observation
(:mod:`curio_jax.core.noveld`; not the env's cells, so it works on any discrete-observation
env), per env, emptied when its episode ends. Autoreset dummy transitions pay 0.

The predictor is trained as the ``rnd`` bonus's (jointly, by the learner's optimiser, with
the same input normalisation): :class:`NovelD` is :class:`curio_jax.core.bonuses.rnd.RND` with
another reward. Both novelties come from one pass over ``[obs[0]; next_obs]`` (``obs[t] ==
next_obs[t - 1]``), which also gives the target's features of ``obs`` for the loss.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.core.agent import map_rows
from curio_jax.core.bonuses.base import BonusReward, register
from curio_jax.core.bonuses.rnd import RND
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.noveld import EpisodicVisits, first_visits, noveld_reward, obs_hash
from curio_jax.core.rnd import RunningMeanStd, normalize_obs

Array = jax.Array


class NovelDState(struct.PyTreeNode):
    """The RND target's parameters, the input statistics (``bonus.obs_norm``) and each env's
    episodic visit table (``per_env``)."""

    target_params: Any
    obs_rms: RunningMeanStd | None
    per_env: EpisodicVisits  # table [B, K], episode [B]


@register
class NovelD(RND):
    """NovelD with ``bonus.noveld_buckets`` episodic buckets per env."""

    kind = "noveld"

    def init(self, keys: Array, hparams: Hyperparams) -> tuple[NovelDState, Any]:
        rnd_state, predictor_params = super().init(keys, hparams)
        visits = EpisodicVisits.create(self.cfg.train.num_envs, self.cfg.bonus.noveld_buckets)
        state = NovelDState(
            target_params=rnd_state.target_params, obs_rms=rnd_state.obs_rms, per_env=visits
        )
        return state, predictor_params

    def reward(
        self, state: NovelDState, params: Any, traj: Any, hparams: Hyperparams, micro: int | None
    ) -> BonusReward:
        x = jnp.concatenate([traj.obs[:1], traj.next_obs], axis=0)  # [T + 1, B]
        feats = None
        if self.obs_norm:
            x = normalize_obs(x, state.obs_rms, self.obs_clip)
        else:
            feats = map_rows(
                lambda o: self.target.apply({"params": state.target_params}, o), x, micro
            )
        mse = self.errors(state, params, x, feats, micro)
        novelty = jnp.sqrt(mse * self.cfg.bonus.feature_dim)
        per_env, first = first_visits(
            state.per_env, obs_hash(traj.next_obs), traj.done, traj.is_reset
        )
        reward = noveld_reward(novelty[1:], novelty[:-1], first, hparams.noveld_alpha)
        state = self.after_rollout(state.replace(per_env=per_env), traj)
        loss_input = None if feats is None else feats[:-1]
        if self.obs_norm and self.loss_targets_once:
            loss_input = self.loss_targets(state, traj.obs, micro)
        return BonusReward(state=state, reward=reward, loss_input=loss_input)
