"""E3B, Exploration via Elliptical Episodic Bonuses (Henaff et al. 2022): the pure building blocks.

Bonus (the paper's definition)::

    b_t = phi(s_{t+1})^T C_t^{-1} phi(s_{t+1}),
    C_t = lam * I + sum of phi(s) phi(s)^T over the states s of the current episode seen
          before s_{t+1} (its first observation included, see below)

so the bonus of a step is read BEFORE the step's own embedding is added (an embedding never
discounts itself; an unseen direction pays up to ``|phi|^2 / lam``). ``C^{-1}`` is kept directly,
one Sherman-Morrison rank-one update per step.

Which observation is embedded: ``phi(s_{t+1})``, the observation the step led to
(``Transition.next_obs[t]``), as the paper's definition and the RND bonus of this package. The
paper's released code (``facebookresearch/e3b``, MiniHack) embeds the observation the action was
chosen from and zeroes the bonus of each episode's first step; RLeXplore / rllte's ``E3B`` also
embeds ``observations[t]`` (``s_t``) and does not zero the first step. Both read the bonus
before the update, as here.

Episode boundaries under gymnasium's next-step autoreset (this package's rollouts): after a step
t with ``done[t]`` (terminated or truncated) the matrix is reset to ``I / lam``; ``next_obs[t]``
is still the ending episode's last observation, so step t pays its bonus against the ending
episode's matrix. Step t + 1 is the autoreset dummy transition (``is_reset``): its ``next_obs``
is the reset observation, the new episode's first state. The dummy step adds that embedding to
the fresh matrix (so the first state is part of the episode's memory, as in both reference
codes) and pays a bonus of exactly 0 when ``is_reset`` is given (the paper gives the initial
state no bonus; the dummy transition is also masked out of the loss). In same-step autoreset
mode there is no dummy step and ``next_obs`` of a done step is already the next episode's first
observation: it would be scored against the ending episode's matrix (as RLeXplore does with
same-step vector envs).
The very first observation of each env (``obs[0]`` of the first rollout, which no dummy step
precedes) is never embedded: that first episode's matrix starts from ``lam * I`` alone.

Also here: the embedding network ``phi`` and the inverse-dynamics head it is trained with
(``E3BNetwork``), and the inverse-dynamics loss.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.core.networks import TORSO_FEATURES, Torso, torch_bias_init, torch_kernel_init

Array = jax.Array


def sherman_morrison(cinv: Array, u: Array) -> Array:
    """Rank-one update of a SYMMETRIC inverse: ``(C + u u^T)^{-1}`` from ``cinv = C^{-1}``::

        v = cinv @ u;   cinv' = cinv - v v^T / (1 + u^T v)

    ``cinv [..., d, d]``, ``u [..., d]`` -> ``[..., d, d]`` (batched over leading axes). The
    update of a symmetric ``cinv`` is symmetric bit for bit (``v_i v_j == v_j v_i``)."""
    if cinv.shape[-2:] != (u.shape[-1], u.shape[-1]):
        raise ValueError(
            f"cinv must be [..., d, d] with d = u.shape[-1], got {cinv.shape}, {u.shape}"
        )
    v = jnp.einsum("...ij,...j->...i", cinv, u)
    b = jnp.sum(u * v, axis=-1)
    return cinv - v[..., :, None] * v[..., None, :] / (1.0 + b)[..., None, None]


def fresh_inverse(num_envs: int, dim: int, lam: float | Array) -> Array:
    """``I / lam`` (the inverse of ``lam * I``) for each env: ``[B, d, d]`` float32.
    ``lam`` may be traced."""
    eye = jnp.eye(dim, dtype=jnp.float32)
    return jnp.broadcast_to(eye / jnp.asarray(lam, jnp.float32), (num_envs, dim, dim))


class EllipticalState(struct.PyTreeNode):
    """The per-env inverse of the episode's covariance ``C``: ``cinv [B, d, d]`` float32."""

    cinv: Array

    @classmethod
    def create(cls, num_envs: int, dim: int, lam: float | Array) -> EllipticalState:
        """Every env at the start of an episode: ``cinv = I / lam``."""
        if num_envs < 1 or dim < 1:
            raise ValueError(f"num_envs and dim must be >= 1, got {num_envs}, {dim}")
        return cls(cinv=fresh_inverse(num_envs, dim, lam))


def elliptical_bonus(
    state: EllipticalState,
    phi_next: Array,
    done: Array,
    lam: float | Array,
    is_reset: Array | None = None,
) -> tuple[EllipticalState, Array]:
    """The episodic elliptical bonus of a rollout, scanned along time.

    For each step t and env (independently)::

        bonus[t] = phi_next[t]^T cinv phi_next[t]          (cinv before this step's update)
        cinv    <- sherman_morrison(cinv, phi_next[t])     (C <- C + phi phi^T)
        cinv    <- I / lam   if done[t]                    (the next episode starts fresh)
        bonus[t] = 0         if is_reset[t]                (autoreset dummy; still added to C)

    Args:
      state: ``cinv [B, d, d]`` before the rollout (carried across rollouts).
      phi_next: ``[T, B, d]`` float32 embeddings of ``Transition.next_obs`` (no gradient needed).
      done: bool ``[T, B]``, terminated | truncated of step t.
      lam: the ridge ``lam`` (float or traced float32 scalar); used only by the resets.
      is_reset: bool ``[T, B]`` ``Transition.is_reset`` (next-step autoreset dummy steps, paid
        0); None: no step is a dummy (same-step autoreset).

    Returns ``(state after the rollout, bonus float32 [T, B])``. See the module docstring for
    the episode-boundary conventions.
    """
    if phi_next.ndim != 3 or done.shape != phi_next.shape[:2]:
        raise ValueError(
            f"phi_next must be [T, B, d], done [T, B], got {phi_next.shape}, {done.shape}"
        )
    if state.cinv.shape != (phi_next.shape[1], phi_next.shape[2], phi_next.shape[2]):
        raise ValueError(
            f"state.cinv must be [B, d, d], got {state.cinv.shape} for {phi_next.shape}"
        )
    num_envs, dim = phi_next.shape[1], phi_next.shape[2]
    fresh = fresh_inverse(num_envs, dim, lam)
    if is_reset is None:
        is_reset = jnp.zeros(done.shape, bool)

    def step(cinv, xs):
        u, d, r = xs
        u = u.astype(jnp.float32)
        v = jnp.einsum("bij,bj->bi", cinv, u)
        b = jnp.sum(u * v, axis=-1)
        cinv = cinv - v[:, :, None] * v[:, None, :] / (1.0 + b)[:, None, None]
        cinv = jnp.where(d[:, None, None], fresh, cinv)
        return cinv, jnp.where(r, 0.0, b)

    cinv, bonus = jax.lax.scan(step, state.cinv, (phi_next, done, is_reset))
    return state.replace(cinv=cinv), bonus


class E3BNetwork(nn.Module):
    """The embedding ``phi`` and the inverse-dynamics head that trains it.

    - ``embed(obs [..., 7, 7, 3]) -> [..., embed_dim]``: the notebook's conv torso (as
      ``RNDTarget``, raw uint8 cast to float32) then ``Dense(1024 -> embed_dim)``, no activation.
    - ``__call__(obs, next_obs) -> logits [..., num_actions]``: the inverse-dynamics model
      ``Dense(2 * embed_dim -> hidden) ReLU Dense(hidden -> num_actions)`` on
      ``concat(phi(obs), phi(next_obs))`` (both through the same ``phi``).

    ``init`` through ``__call__`` creates every parameter: ``torso/{conv0,conv1,conv2}``,
    ``phi``, ``idm_hidden``, ``idm_out``. PyTorch-default initialisation as the other networks.
    """

    num_actions: int = 7
    embed_dim: int = 128
    hidden_dim: int = 256

    def setup(self):
        def dense(features: int, fan_in: int) -> nn.Dense:
            return nn.Dense(
                features, kernel_init=torch_kernel_init(), bias_init=torch_bias_init(fan_in)
            )

        self.torso = Torso()
        self.phi = dense(self.embed_dim, TORSO_FEATURES)
        self.idm_hidden = dense(self.hidden_dim, 2 * self.embed_dim)
        self.idm_out = dense(self.num_actions, self.hidden_dim)

    def embed(self, obs: Array) -> Array:
        """``phi(obs)``: ``[..., 7, 7, 3] -> [..., embed_dim]`` float32."""
        return self.phi(self.torso(obs))

    def __call__(self, obs: Array, next_obs: Array) -> Array:
        """Inverse-dynamics logits ``[..., num_actions]`` of the action that led from ``obs`` to
        ``next_obs``."""
        return self.inverse_dynamics(self.embed(obs), self.embed(next_obs))

    def inverse_dynamics(self, phi: Array, phi_next: Array) -> Array:
        """The head alone: logits ``[..., num_actions]`` from the two embeddings."""
        h = jnp.concatenate([phi, phi_next], axis=-1)
        return self.idm_out(nn.relu(self.idm_hidden(h)))

    def trajectories(self, x: Array) -> Array:
        """Inverse-dynamics logits of every step of trajectories ``x [T + 1, ..., 7, 7, 3]``
        (each observation followed by the one its step led to): ``[T, ..., num_actions]``,
        step t's from ``x[t]`` to ``x[t + 1]``, with one embedding per observation (each
        inner observation is the end of one step and the start of the next)."""
        phi = self.embed(x)
        return self.inverse_dynamics(phi[:-1], phi[1:])


def weighted_cross_entropy(
    logits: Array, action: Array, weight: Array, denom: Array | None = None
) -> Array:
    """``sum(ce * weight) / denom``, ``ce = -log softmax(logits)[action]``, over every leading
    axis; ``denom`` by default ``max(sum(weight), 1)`` (a piece of a batch passes its whole
    batch's, so that the pieces add up)."""
    logp = jax.nn.log_softmax(logits)
    ce = -jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]
    weight = weight.astype(jnp.float32)
    if denom is None:
        denom = jnp.maximum(jnp.sum(weight), 1.0)
    return jnp.sum(ce * weight) / denom


def trajectory_inverse_dynamics_loss(
    params,
    net: E3BNetwork,
    x: Array,
    action: Array,
    weight: Array,
    denom: Array | None = None,
) -> Array:
    """:func:`inverse_dynamics_loss` of the steps of trajectories: ``x [T + 1, b, 7, 7, 3]``
    (``obs[0]`` then every step's next observation), ``action``, ``weight [T, b]``; the same
    loss as the pairs ``(x[t], x[t + 1])`` would give, with one embedding per observation
    instead of two (:meth:`E3BNetwork.trajectories`). ``denom``: see
    :func:`weighted_cross_entropy`."""
    if x.ndim != 5 or action.shape != (x.shape[0] - 1, x.shape[1]):
        raise ValueError(
            f"need x [T + 1, b, 7, 7, 3], action and weight [T, b]; got {x.shape}, {action.shape}"
        )
    logits = net.apply({"params": params}, x, method=E3BNetwork.trajectories)
    return weighted_cross_entropy(logits, action, weight, denom)


def inverse_dynamics_loss(
    params, net: E3BNetwork, obs: Array, next_obs: Array, action: Array, weight: Array
) -> Array:
    """Weighted mean cross-entropy of the inverse-dynamics model::

        ce[i] = -log softmax(net(obs[i], next_obs[i]))[action[i]]
        loss  = sum(ce * weight) / max(sum(weight), 1)

    ``obs``, ``next_obs [N, 7, 7, 3]``; ``action [N]`` int; ``weight [N]`` float (e.g. 0 for
    autoreset dummy transitions, whose action did nothing). Differentiable in ``params`` (the
    embedding and the head together)."""
    if obs.ndim != 4 or action.shape != obs.shape[:1] or weight.shape != obs.shape[:1]:
        raise ValueError(f"need obs [N, 7, 7, 3], action [N], weight [N]; got {obs.shape}")
    logits = net.apply({"params": params}, obs, next_obs)
    return weighted_cross_entropy(logits, action, weight)
