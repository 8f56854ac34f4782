"""``bonus.kind = "e3b"``: the elliptical episodic bonus of E3B (Henaff et al. 2022) over a
learned embedding (:mod:`curio_jax.core.e3b` has the building blocks and the conventions).

Reward of step t: ``phi(s_{t+1})^T C^{-1} phi(s_{t+1})``, ``C`` reset to ``lambda * I`` at each
episode start and grown by each visited embedding; every env keeps ``C^{-1}`` (``[B, d, d]``,
rank-one Sherman-Morrison updates in a scan over the rollout). ``phi`` is trained by inverse
dynamics (predict the action from ``phi(s_t), phi(s_{t+1})``) with an optimiser of its own
(Adam, ``bonus.e3b_lr``, gradients clipped to ``bonus.max_grad_norm``), after the learner's
step: one pass over the rollout's transitions in the learner's number of minibatches (PPO's
``ppo.minibatches``, one batch for A2C; groups of whole env trajectories when they divide the
envs, so that each observation is embedded once), autoreset dummy transitions weighted 0
(their action did nothing). The rewards of a rollout use the embedding as it was before that
rollout's training.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from curio_jax.core.agent import largest_divisor, map_rows, sum_over_pieces
from curio_jax.core.bonuses.base import Bonus, BonusMetrics, BonusReward, register
from curio_jax.core.e3b import (
    E3BNetwork,
    EllipticalState,
    elliptical_bonus,
    inverse_dynamics_loss,
    trajectory_inverse_dynamics_loss,
)
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.networks import dummy_obs

Array = jax.Array


class E3BState(struct.PyTreeNode):
    """The embedding and inverse-dynamics parameters, their Adam state, and each env's
    ``C^{-1}`` (``per_env``: the env axis leads, split with the envs when sharded)."""

    params: Any
    opt_state: Any
    per_env: EllipticalState  # cinv [B, d, d]


@register
class E3B(Bonus):
    """E3B with an embedding of ``bonus.e3b_dim`` and ridge ``hparams.e3b_lambda``."""

    kind = "e3b"
    joint = False

    def __init__(self, cfg: Any, env: Any):
        super().__init__(cfg, env)
        b = cfg.bonus
        self.net = E3BNetwork(
            num_actions=env.num_actions, embed_dim=b.e3b_dim, hidden_dim=b.e3b_hidden
        )
        self.optimizer = optax.chain(
            optax.clip_by_global_norm(b.max_grad_norm), optax.adam(b.e3b_lr)
        )
        self.minibatches = cfg.ppo.minibatches if cfg.algorithm == "ppo" else 1

    def init(self, keys: Array, hparams: Hyperparams) -> tuple[E3BState, Any]:
        obs0 = dummy_obs()
        params = self.net.init(keys[0], obs0, obs0)["params"]
        per_env = EllipticalState.create(
            self.cfg.train.num_envs, self.cfg.bonus.e3b_dim, hparams.e3b_lambda
        )
        return E3BState(params=params, opt_state=self.optimizer.init(params), per_env=per_env), None

    def embed(self, params: Any, obs: Array, micro: int | None) -> Array:
        """``phi(obs)`` of ``[T, B, ...]`` observations, ``[T, B, d]``, no gradient."""
        phi = map_rows(
            lambda o: self.net.apply({"params": params}, o, method=E3BNetwork.embed), obs, micro
        )
        return jax.lax.stop_gradient(phi)

    def reward(
        self, state: E3BState, params: Any, traj: Any, hparams: Hyperparams, micro: int | None
    ) -> BonusReward:
        phi_next = self.embed(state.params, traj.next_obs, micro)
        per_env, bonus = elliptical_bonus(
            state.per_env, phi_next, traj.done, hparams.e3b_lambda, traj.is_reset
        )
        return BonusReward(state=state.replace(per_env=per_env), reward=bonus)

    def learn(
        self,
        state: E3BState,
        traj: Any,
        key: Array,
        hparams: Hyperparams,
        micro: int | None = None,
    ) -> tuple[E3BState, BonusMetrics]:
        """One pass of inverse-dynamics Adam steps over the rollout's transitions in the
        learner's number of minibatches; reports the mean loss and pre-clip gradient norm over
        the steps.

        When the minibatches divide the envs, each minibatch is the whole trajectories of a
        random group of envs, and each observation is embedded once (``[obs[0]; next_obs]``
        of the group: step t's pair is ``(x[t], x[t + 1])``, as ``obs[t + 1] == next_obs[t]``),
        about half the embedding passes of separate pairs; ``micro`` (rows per piece) cuts a
        group's gradient into pieces of whole trajectories of about that many observations.
        Otherwise the transitions are shuffled one by one and each pair embeds both of its
        observations."""
        t, b = traj.action.shape
        weight = 1.0 - traj.is_reset.astype(jnp.float32)

        def adam_step(carry, loss_of, with_grads=False):
            """One clipped Adam step; ``loss_of(params)`` -> loss (or, ``with_grads``, the
            loss and its gradient)."""
            params, opt_state = carry
            if with_grads:
                loss, grads = loss_of(params)
            else:
                loss, grads = jax.value_and_grad(loss_of)(params)
            norm = optax.global_norm(grads)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss, norm)

        carry = (state.params, state.opt_state)
        if b % self.minibatches == 0:
            # env-major: [B, T + 1, ...] trajectories, [B, T] actions and weights
            x = jnp.swapaxes(jnp.concatenate([traj.obs[:1], traj.next_obs], axis=0), 0, 1)
            action, w_env = jnp.swapaxes(traj.action, 0, 1), jnp.swapaxes(weight, 0, 1)
            groups = jax.random.permutation(key, b).reshape(self.minibatches, -1)
            envs = groups.shape[1]
            piece = None if micro is None else largest_divisor(envs, round(micro / (t + 1)))

            def env_step(carry, group):
                part = (x[group], action[group], w_env[group])
                denom = jnp.maximum(jnp.sum(part[2]), 1.0)

                def loss_of(params):
                    def grads_of(p, _key):
                        xs, a, w = (jnp.swapaxes(v, 0, 1) for v in p)  # time-major
                        return jax.value_and_grad(trajectory_inverse_dynamics_loss)(
                            params, self.net, xs, a, w, denom
                        )

                    return sum_over_pieces(grads_of, part, key, piece)

                return adam_step(carry, loss_of, with_grads=True)

            carry, (losses, norms) = jax.lax.scan(env_step, carry, groups)
        else:
            n = t * b
            m = n // self.minibatches

            def flat(a: Array) -> Array:
                return a.reshape((n,) + a.shape[2:])

            obs, next_obs, action, w = (
                flat(traj.obs),
                flat(traj.next_obs),
                flat(traj.action),
                flat(weight),
            )
            idx = jax.random.permutation(key, n)[: m * self.minibatches].reshape(
                self.minibatches, m
            )

            def sample_step(carry, i):
                return adam_step(
                    carry,
                    lambda p: inverse_dynamics_loss(
                        p, self.net, obs[i], next_obs[i], action[i], w[i]
                    ),
                )

            carry, (losses, norms) = jax.lax.scan(sample_step, carry, idx)
        params, opt_state = carry
        metrics = BonusMetrics(loss=jnp.mean(losses), grad_norm=jnp.mean(norms))
        return state.replace(params=params, opt_state=opt_state), metrics
