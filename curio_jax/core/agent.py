"""What both learners share: the weighted means of the losses, the actor-critic's forward pass
on a batch, the total loss, and the two ways of cutting a batch into pieces (forward passes
with :func:`map_rows`, gradients with :func:`sum_over_pieces`).

A learner (:mod:`curio_jax.core.a2c`, :mod:`curio_jax.core.ppo`) builds its loss from these
and from the bonus's loss term (:class:`curio_jax.core.bonuses.Bonus`), which it receives as a
callable::

    bonus_term(bonus_params, obs [N, ...], loss_input [N, ...] | None, dropout_key,
               weight [N], denom []) -> scalar

so that no learner knows which bonus it trains with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.core.hparams import Hyperparams
from curio_jax.core.networks import ActorCritic

Array = jax.Array
BonusTerm = Callable[[Any, Array, Any, Array, Array, Array], Array]
"""A joint bonus's loss on a batch (see the module docstring)."""


class LearnInputs(struct.PyTreeNode):
    """What a learner's ``learn(params, opt_state, x)`` learns from (both learners: A2C and
    PPO): the rollout, its targets, the bonus's loss term and inputs, and the update's keys."""

    traj: Any  # curio_jax.core.rollout.Transition [T, B]
    targets: Any  # curio_jax.core.train.Targets: advantages and returns of both streams
    hparams: Hyperparams  # the traced coefficients
    update: Array  # int32 [] updates done before this one (learning-rate schedules)
    bonus_input: Any  # [T, B, ...] what the bonus's loss reads besides obs, or None
    k_batch: Array  # shuffling (and PPO's update-proportion masks)
    k_drop: Array  # the bonus's dropout
    bonus_term: BonusTerm | None = struct.field(pytree_node=False, default=None)
    micro: int | None = struct.field(pytree_node=False, default=None)  # rows per piece


def rollout_fields(x: LearnInputs) -> dict[str, Any]:
    """The per-sample arrays ``[T, B, ...]`` both learners' batches are made of, by the
    batch builders' argument names (A2C's ``make_batch``, PPO's ``flatten_rollout``)."""
    traj, tg = x.traj, x.targets
    return {
        "obs": traj.obs,
        "action": traj.action,
        "adv_ext": tg.adv_ext,
        "ret_ext": tg.ret_ext,
        "adv_int": tg.adv_int,
        "ret_int": tg.ret_int,
        "is_reset": traj.is_reset,
        "bonus_input": x.bonus_input,
    }


def weight_denominator(weight: Array) -> Array:
    """The denominator of every weighted mean of the loss: ``max(sum(weight), 1)``."""
    return jnp.maximum(jnp.sum(weight), 1.0)


def weighted_mean(weight: Array, denom: Array) -> Callable[[Array], Array]:
    """``x -> sum(x * weight) / denom``: every term of the losses."""

    def wmean(x: Array) -> Array:
        return jnp.sum(x * weight) / denom

    return wmean


def loss_weight(is_reset: Array | None, mask_reset_transition: bool, shape: tuple) -> Array:
    """The per-sample loss weight ``[T, B]``: 0 for autoreset dummy transitions with
    ``mask_reset_transition``, else 1."""
    if mask_reset_transition:
        if is_reset is None:
            raise ValueError("mask_reset_transition needs is_reset")
        return 1.0 - is_reset.astype(jnp.float32)
    return jnp.ones(shape, jnp.float32)


def policy_forward(
    ac: ActorCritic,
    params_ac: Any,
    obs: Array,
    action: Array,
    wmean: Callable[[Array], Array],
) -> tuple[Array, Array, Array, Array]:
    """The actor-critic on ``obs``: ``(logprob of action, weighted-mean entropy, value_ext,
    value_int)``."""
    logits, value_ext, value_int = ac.apply({"params": params_ac}, obs)
    logp_all = jax.nn.log_softmax(logits)
    logprob = jnp.take_along_axis(logp_all, action[:, None], axis=-1)[:, 0]
    entropy = wmean(-jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1))
    return logprob, entropy, value_ext, value_int


def total_loss(
    coefs: Hyperparams,
    policy: Array,
    value_ext: Array,
    value_int: Array,
    entropy: Array,
    bonus: Array,
) -> Array:
    """``policy + value_coef * (value_ext + value_int) - entropy_coef * entropy + bonus``."""
    return (
        policy + coefs.value_coef * (value_ext + value_int) - coefs.entropy_coef * entropy + bonus
    )


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is at most ``at_most`` (at least 1): a piece size
    that cuts ``n`` rows into equal pieces."""
    for d in range(min(n, max(at_most, 1)), 0, -1):
        if n % d == 0:
            return d
    return 1


def sum_over_pieces(grads_of: Any, batch: Any, dropout_key: Array, micro_batch: int | None) -> Any:
    """``grads_of(piece, dropout_key)`` of a whole batch (a pytree of ``[N, ...]`` arrays):
    in one call, or (``micro_batch`` below ``N``) as the sum over its consecutive pieces of
    ``micro_batch`` samples (``lax.scan``), piece i with dropout key
    ``jax.random.split(dropout_key, pieces)[i]``. ``grads_of`` must divide by the whole
    batch's denominators so that the pieces add up."""
    n = jax.tree.leaves(batch)[0].shape[0]
    if micro_batch is None or micro_batch >= n:
        return grads_of(batch, dropout_key)
    if n % micro_batch:
        raise ValueError(f"micro_batch={micro_batch} does not divide the batch size {n}")
    pieces = n // micro_batch
    split = jax.tree.map(lambda x: x.reshape((pieces, micro_batch) + x.shape[1:]), batch)

    def piece(acc, xs):
        part, key = xs
        return jax.tree.map(jnp.add, acc, grads_of(part, key)), None

    first = jax.tree.map(lambda x: x[0], split)
    shapes = jax.eval_shape(grads_of, first, dropout_key)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    keys = jax.random.split(dropout_key, pieces)
    return jax.lax.scan(piece, zeros, (split, keys))[0]


def map_rows(fn: Any, xs: Any, micro_batch: int | None) -> Any:
    """``fn(xs)`` for a pytree ``xs`` of ``[T, B, ...]`` arrays (None leaves allowed), computed
    on pieces of ``micro_batch`` of the ``T * B`` rows (``lax.map``; the last piece zero-padded
    and cut off again). ``fn`` must act row by row on any leading shape (a forward pass): it
    gets ``[micro_batch, ...]`` pieces, or with ``micro_batch`` None or at least ``T * B`` the
    whole ``[T, B, ...]`` in one call. Returns ``fn``'s output with leading dims ``[T, B]``."""
    leaves = jax.tree.leaves(xs)
    lead = leaves[0].shape[:2]
    n = lead[0] * lead[1]
    if micro_batch is None or micro_batch >= n:
        return fn(xs)
    pad = -n % micro_batch

    def pieces(x: Array) -> Array:
        flat = x.reshape((n,) + x.shape[2:])
        flat = jnp.pad(flat, [(0, pad)] + [(0, 0)] * (flat.ndim - 1))
        return flat.reshape((-1, micro_batch) + flat.shape[1:])

    def rows(y: Array) -> Array:
        return y.reshape((-1,) + y.shape[2:])[:n].reshape(lead + y.shape[2:])

    return jax.tree.map(rows, jax.lax.map(fn, jax.tree.map(pieces, xs)))
