"""A2C (+ RND) losses, the batch construction and one gradient step, as the notebook's ``learn``.

Per segment: flatten ``[T, B] -> [T * B]`` and shuffle; one gradient step on the whole batch::

    loss = policy + value_coef * value - entropy_coef * entropy (+ rnd_loss)
    policy = -mean(logprob(action) * adv),  adv = adv_coef_ext * adv_ext (+ adv_coef_int * adv_int)
    value  = MSE(value_ext, ret_ext) (+ MSE(value_int, ret_int))

The notebook's RND agent shuffles ``(obs, action, adv_ext, ret_ext)`` with one permutation and
``(adv_int, ret_int)`` with a second, independent one, so the intrinsic targets are paired with
the wrong samples. :func:`make_batch` keeps this quirk unless ``shared_permutation``.
``mask_reset_transition`` weights the autoreset dummy transitions 0 in every loss term, each
term then averaging over the unmasked samples.

Optimiser: gradients are clipped by global norm per group exactly as
``torch.nn.utils.clip_grad_norm_`` (actor-critic and predictor separately), then one RMSprop with
PyTorch's semantics (:func:`torch_rmsprop`) updates both groups. The RND target is frozen and
is not part of the optimised parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.core.hparams import Hyperparams
from curio_jax.core.networks import ActorCritic, RNDPredictor, RNDTarget
from curio_jax.core.optim import AgentParams, TorchRMSpropState, apply_gradients
from curio_jax.core.rnd import RunningMeanStd, normalize_obs, rnd_loss

Array = jax.Array
Params = Any

# --------------------------------------------------------------------------- containers


class Batch(struct.PyTreeNode):
    """A flattened, shuffled segment, ``N = T * B`` samples."""

    obs: Array  # [N, 7, 7, 3] uint8
    action: Array  # [N] int32
    adv_ext: Array  # [N]
    ret_ext: Array  # [N]
    adv_int: Array | None  # [N] (RND only; second permutation unless shared_permutation)
    ret_int: Array | None  # [N]
    weight: Array  # [N] float32 loss weight: 0 for masked dummy transitions, else 1
    target_features: Array | None = None  # [N, F] RND target(obs), shuffled with obs; None:
    #                                       the loss runs the target itself


class LossTerms(struct.PyTreeNode):
    """The scalar loss terms of one step (``value_int`` and ``rnd`` are 0 for plain A2C)."""

    total: Array
    policy: Array
    value_ext: Array
    value_int: Array
    entropy: Array
    rnd: Array


class StepMetrics(struct.PyTreeNode):
    """What one gradient step reports: loss terms and pre-clip gradient norms."""

    loss: LossTerms
    grad_norm_ac: Array
    grad_norm_rnd: Array  # 0 for plain A2C


class Networks(struct.PyTreeNode):
    """The modules (static). ``target`` and ``predictor`` are None without RND; ``counts``
    marks an intrinsic stream fed by a count-based bonus (no networks of its own)."""

    ac: ActorCritic = struct.field(pytree_node=False)
    target: RNDTarget | None = struct.field(pytree_node=False, default=None)
    predictor: RNDPredictor | None = struct.field(pytree_node=False, default=None)
    counts: bool = struct.field(pytree_node=False, default=False)

    @property
    def rnd(self) -> bool:
        """RND networks: the predictor's loss and gradients are part of the update."""
        return self.predictor is not None

    @property
    def intrinsic(self) -> bool:
        """An intrinsic stream (RND or counts): intrinsic advantages and the value_int head's
        loss are part of the update."""
        return self.rnd or self.counts


# --------------------------------------------------------------------------- batch


def make_batch(
    obs: Array,
    action: Array,
    adv_ext: Array,
    ret_ext: Array,
    key: Array,
    *,
    adv_int: Array | None = None,
    ret_int: Array | None = None,
    is_reset: Array | None = None,
    shared_permutation: bool = False,
    mask_reset_transition: bool = False,
    target_features: Array | None = None,
) -> Batch:
    """Flatten ``[T, B, ...] -> [T * B, ...]`` and shuffle, as the notebook's
    ``flatten_and_shuffle``.

    Args:
      obs ``[T, B, 7, 7, 3]``, action, adv_ext, ret_ext ``[T, B]``: shuffled together.
      key: permutation key.
      adv_int, ret_int: ``[T, B]`` (RND). The notebook draws a second, independent permutation for
        them; ``shared_permutation=True`` uses the first one (aligned with obs and action).
      is_reset: ``[T, B]`` autoreset dummy flags; with ``mask_reset_transition`` their samples get
        weight 0 (the weight follows obs and action).
      target_features: ``[T, B, F]`` RND target features of ``obs`` (optional): shuffled with
        obs, so the RND loss need not run the target again.
    """
    chex.assert_rank([action, adv_ext, ret_ext], 2)
    n = action.shape[0] * action.shape[1]
    key_main, key_int = jax.random.split(key)
    perm = jax.random.permutation(key_main, n)

    def shuffle(x: Array, p: Array) -> Array:
        return x.reshape((n,) + x.shape[2:])[p]

    if mask_reset_transition:
        if is_reset is None:
            raise ValueError("mask_reset_transition needs is_reset")
        weight = 1.0 - is_reset.astype(jnp.float32)
    else:
        weight = jnp.ones(action.shape, jnp.float32)
    if adv_int is not None:
        perm_int = perm if shared_permutation else jax.random.permutation(key_int, n)
        adv_int, ret_int = shuffle(adv_int, perm_int), shuffle(ret_int, perm_int)
    return Batch(
        obs=shuffle(obs, perm),
        action=shuffle(action, perm),
        adv_ext=shuffle(adv_ext, perm),
        ret_ext=shuffle(ret_ext, perm),
        adv_int=adv_int,
        ret_int=ret_int,
        weight=shuffle(weight, perm),
        target_features=None if target_features is None else shuffle(target_features, perm),
    )


# --------------------------------------------------------------------------- losses


def weight_denominator(weight: Array) -> Array:
    """The denominator of every weighted mean of the loss: ``max(sum(weight), 1)``."""
    return jnp.maximum(jnp.sum(weight), 1.0)


def weighted_mean(weight: Array, denom: Array) -> Callable[[Array], Array]:
    """``x -> sum(x * weight) / denom``: every term of the losses."""

    def wmean(x: Array) -> Array:
        return jnp.sum(x * weight) / denom

    return wmean


def policy_forward(
    nets: Networks,
    params: AgentParams,
    obs: Array,
    action: Array,
    wmean: Callable[[Array], Array],
) -> tuple[Array, Array, Array, Array]:
    """The actor-critic on ``obs``: ``(logprob of action, weighted-mean entropy, value_ext,
    value_int)``."""
    logits, value_ext, value_int = nets.ac.apply({"params": params.ac}, obs)
    logp_all = jax.nn.log_softmax(logits)
    logprob = jnp.take_along_axis(logp_all, action[:, None], axis=-1)[:, 0]
    entropy = wmean(-jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1))
    return logprob, entropy, value_ext, value_int


def rnd_term(
    nets: Networks,
    target_params: Params | None,
    params: AgentParams,
    obs: Array,
    target_features: Array | None,
    dropout_key: Array,
    weight: Array,
    denom: Array,
    obs_rms: RunningMeanStd | None,
    obs_clip: float,
) -> Array:
    """The predictor's loss on ``obs`` (whitened and clipped with ``obs_rms``), weights
    ``weight`` over ``denom`` (:func:`curio_jax.core.rnd.rnd_loss`)."""
    rnd_obs = obs if obs_rms is None else normalize_obs(obs, obs_rms, obs_clip)
    return rnd_loss(
        nets.target,
        nets.predictor,
        target_params,
        params.predictor,
        rnd_obs,
        dropout_key,
        weight,
        target_features=target_features,
        denom=denom,
    )


def total_loss(
    coefs: Hyperparams,
    policy: Array,
    value_ext: Array,
    value_int: Array,
    entropy: Array,
    rnd: Array,
) -> Array:
    """``policy + value_coef * (value_ext + value_int) - entropy_coef * entropy + rnd``."""
    return policy + coefs.value_coef * (value_ext + value_int) - coefs.entropy_coef * entropy + rnd


def loss_fn(
    params: AgentParams,
    target_params: Params | None,
    batch: Batch,
    dropout_key: Array,
    coefs: Hyperparams,
    nets: Networks,
    obs_rms: RunningMeanStd | None = None,
    obs_clip: float = 5.0,
    denom: Array | None = None,
) -> tuple[Array, LossTerms]:
    """The notebook's total loss on one batch. Returns ``(total, LossTerms)``.

    With ``obs_rms`` the RND input (not the actor-critic's) is whitened and clipped.
    Every term is ``sum(x * weight) / denom``, ``denom = weight_denominator(batch.weight)`` by
    default; a micro-batch passes the whole batch's ``denom`` so its terms add up to the whole
    batch's."""
    w = batch.weight
    if denom is None:
        denom = weight_denominator(w)
    wmean = weighted_mean(w, denom)
    logprob, entropy, value_ext, value_int = policy_forward(
        nets, params, batch.obs, batch.action, wmean
    )
    adv = coefs.adv_coef_ext * batch.adv_ext
    loss_value_ext = wmean(jnp.square(value_ext - batch.ret_ext))
    zero = jnp.zeros((), jnp.float32)
    loss_value_int, loss_rnd = zero, zero
    if nets.intrinsic:
        adv = adv + coefs.adv_coef_int * batch.adv_int
        loss_value_int = wmean(jnp.square(value_int - batch.ret_int))
    if nets.rnd:
        loss_rnd = rnd_term(
            nets,
            target_params,
            params,
            batch.obs,
            batch.target_features,
            dropout_key,
            w,
            denom,
            obs_rms,
            obs_clip,
        )
    loss_policy = -wmean(logprob * adv)
    total = total_loss(coefs, loss_policy, loss_value_ext, loss_value_int, entropy, loss_rnd)
    return total, LossTerms(
        total=total,
        policy=loss_policy,
        value_ext=loss_value_ext,
        value_int=loss_value_int,
        entropy=entropy,
        rnd=loss_rnd,
    )


def _accumulated_grads(
    grads_of: Any, batch: Batch, dropout_key: Array, micro_batch: int
) -> tuple[AgentParams, LossTerms]:
    """``grads_of(batch, dropout_key, denom) -> (grads, terms)`` of a whole batch as the sum
    over its micro-batches (``lax.scan``), each piece divided by the whole batch's ``denom``."""
    n = batch.action.shape[0]
    if n % micro_batch:
        raise ValueError(f"micro_batch={micro_batch} does not divide the batch size {n}")
    pieces = n // micro_batch
    denom = weight_denominator(batch.weight)
    split = jax.tree.map(lambda x: x.reshape((pieces, micro_batch) + x.shape[1:]), batch)

    def piece(acc, xs):
        part, key = xs
        return jax.tree.map(jnp.add, acc, grads_of(part, key, denom)), None

    first = jax.tree.map(lambda x: x[0], split)
    shapes = jax.eval_shape(grads_of, first, dropout_key, denom)
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


def update_step(
    params: AgentParams,
    opt_state: TorchRMSpropState,
    target_params: Params | None,
    batch: Batch,
    dropout_key: Array,
    coefs: Hyperparams,
    nets: Networks,
    *,
    lr: float | Array,
    decay: float,
    eps: float,
    max_grad_norm_ac: float,
    max_grad_norm_rnd: float,
    obs_rms: RunningMeanStd | None = None,
    obs_clip: float = 5.0,
    micro_batch: int | None = None,
) -> tuple[AgentParams, TorchRMSpropState, StepMetrics]:
    """One gradient step of the notebook's ``learn`` on a prepared batch.

    ``micro_batch`` (static; None or the batch size: one pass): take the gradient in
    ``N / micro_batch`` consecutive pieces of the (already shuffled) batch and add them up, each
    piece's loss terms divided by the whole batch's weight sum, so gradient and loss terms are
    the whole batch's up to float summation order. The RND predictor's dropout then draws its
    masks per piece, from ``jax.random.split(dropout_key, N / micro_batch)``. Same step, less
    memory, and on CPU faster (the activations of a piece stay in cache)."""

    def grads_of(part: Batch, key: Array, denom: Array | None) -> tuple[AgentParams, LossTerms]:
        return jax.grad(loss_fn, has_aux=True)(
            params, target_params, part, key, coefs, nets, obs_rms, obs_clip, denom
        )

    if micro_batch is None or micro_batch >= batch.action.shape[0]:
        grads, terms = grads_of(batch, dropout_key, None)
    else:
        grads, terms = _accumulated_grads(grads_of, batch, dropout_key, micro_batch)
    params, opt_state, norm_ac, norm_rnd = apply_gradients(
        params,
        opt_state,
        grads,
        lr=lr,
        decay=decay,
        eps=eps,
        max_grad_norm_ac=max_grad_norm_ac,
        max_grad_norm_rnd=max_grad_norm_rnd,
    )
    return params, opt_state, StepMetrics(loss=terms, grad_norm_ac=norm_ac, grad_norm_rnd=norm_rnd)
