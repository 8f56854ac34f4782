"""The A2C learner: the notebook's ``learn``, one gradient step on the whole rollout.

Per segment: flatten ``[T, B] -> [T * B]`` and shuffle; one gradient step on the whole batch::

    loss = policy + value_coef * value - entropy_coef * entropy (+ bonus loss)
    policy = -mean(logprob(action) * adv),  adv = adv_coef_ext * adv_ext (+ adv_coef_int * adv_int)
    value  = MSE(value_ext, ret_ext) (+ MSE(value_int, ret_int))

The notebook's RND agent shuffles ``(obs, action, adv_ext, ret_ext)`` with one permutation and
``(adv_int, ret_int)`` with a second, independent one, so the intrinsic targets are paired with
the wrong samples. :func:`make_batch` keeps this quirk unless ``shared_permutation``.
``mask_reset_transition`` weights the autoreset dummy transitions 0 in every loss term, each
term then averaging over the unmasked samples.

Optimiser: gradients are clipped by global norm per group exactly as
``torch.nn.utils.clip_grad_norm_`` (actor-critic and the bonus's jointly trained parameters,
the RND predictor, separately), then one RMSprop with PyTorch's semantics
(:func:`torch_rmsprop`) updates both groups: the notebook's single optimiser. Which bonus is
trained and how is the bonus's business (:mod:`curio_jax.core.bonuses`): the learner receives
its loss term as a callable (:data:`curio_jax.core.agent.BonusTerm`).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.core.agent import (
    BonusTerm,
    LearnInputs,
    loss_weight,
    policy_forward,
    rollout_fields,
    sum_over_pieces,
    total_loss,
    weight_denominator,
    weighted_mean,
)
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.networks import ActorCritic
from curio_jax.core.optim import AgentParams, TorchRMSpropState, apply_gradients, torch_rmsprop

Array = jax.Array
Params = Any

# --------------------------------------------------------------------------- containers


class Batch(struct.PyTreeNode):
    """A flattened, shuffled segment, ``N = T * B`` samples."""

    obs: Array  # [N, 7, 7, 3] uint8
    action: Array  # [N] int32
    adv_ext: Array  # [N]
    ret_ext: Array  # [N]
    adv_int: Array | None  # [N] (intrinsic stream; second permutation unless shared_permutation)
    ret_int: Array | None  # [N]
    weight: Array  # [N] float32 loss weight: 0 for masked dummy transitions, else 1
    bonus_input: Any = None  # [N, ...] what the bonus's loss reads besides obs (e.g. the RND
    #                          target's features of obs), shuffled with obs; None: nothing


class LossTerms(struct.PyTreeNode):
    """The scalar loss terms of one step (``value_int`` and ``bonus`` are 0 without them)."""

    total: Array
    policy: Array
    value_ext: Array
    value_int: Array
    entropy: Array
    bonus: Array


class StepMetrics(struct.PyTreeNode):
    """What one gradient step reports: loss terms and pre-clip gradient norms."""

    loss: LossTerms
    grad_norm_ac: Array
    grad_norm_bonus: Array  # 0 without jointly trained bonus parameters


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
    bonus_input: Any = None,
) -> Batch:
    """Flatten ``[T, B, ...] -> [T * B, ...]`` and shuffle, as the notebook's
    ``flatten_and_shuffle``.

    Args:
      obs ``[T, B, 7, 7, 3]``, action, adv_ext, ret_ext ``[T, B]``: shuffled together.
      key: permutation key.
      adv_int, ret_int: ``[T, B]`` (intrinsic stream). The notebook draws a second,
        independent permutation for them; ``shared_permutation=True`` uses the first one.
      is_reset: ``[T, B]`` autoreset dummy flags; with ``mask_reset_transition`` their samples get
        weight 0 (the weight follows obs and action).
      bonus_input: a pytree of ``[T, B, ...]`` arrays the bonus's loss reads with obs
        (optional): shuffled with obs.
    """
    chex.assert_rank([action, adv_ext, ret_ext], 2)
    n = action.shape[0] * action.shape[1]
    key_main, key_int = jax.random.split(key)
    perm = jax.random.permutation(key_main, n)

    def shuffle(x: Array, p: Array) -> Array:
        return x.reshape((n,) + x.shape[2:])[p]

    weight = loss_weight(is_reset, mask_reset_transition, action.shape)
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
        bonus_input=jax.tree.map(lambda x: shuffle(x, perm), bonus_input),
    )


# --------------------------------------------------------------------------- loss


def loss_fn(
    params: AgentParams,
    batch: Batch,
    dropout_key: Array,
    coefs: Hyperparams,
    ac: ActorCritic,
    bonus_term: BonusTerm | None = None,
    denom: Array | None = None,
) -> tuple[Array, LossTerms]:
    """The notebook's total loss on one batch. Returns ``(total, LossTerms)``.

    The intrinsic stream (``adv_int``, the ``value_int`` head's loss) is in when the batch
    carries ``adv_int``; ``bonus_term`` adds the loss of the bonus's jointly trained
    parameters (``params.bonus``), e.g. the RND predictor's. Every term is
    ``sum(x * weight) / denom``, ``denom = weight_denominator(batch.weight)`` by default; a
    micro-batch passes the whole batch's ``denom`` so its terms add up to the whole batch's."""
    w = batch.weight
    if denom is None:
        denom = weight_denominator(w)
    wmean = weighted_mean(w, denom)
    logprob, entropy, value_ext, value_int = policy_forward(
        ac, params.ac, batch.obs, batch.action, wmean
    )
    adv = coefs.adv_coef_ext * batch.adv_ext
    loss_value_ext = wmean(jnp.square(value_ext - batch.ret_ext))
    zero = jnp.zeros((), jnp.float32)
    loss_value_int, loss_bonus = zero, zero
    if batch.adv_int is not None:
        adv = adv + coefs.adv_coef_int * batch.adv_int
        loss_value_int = wmean(jnp.square(value_int - batch.ret_int))
    if bonus_term is not None:
        loss_bonus = bonus_term(params.bonus, batch.obs, batch.bonus_input, dropout_key, w, denom)
    loss_policy = -wmean(logprob * adv)
    total = total_loss(coefs, loss_policy, loss_value_ext, loss_value_int, entropy, loss_bonus)
    return total, LossTerms(
        total=total,
        policy=loss_policy,
        value_ext=loss_value_ext,
        value_int=loss_value_int,
        entropy=entropy,
        bonus=loss_bonus,
    )


def update_step(
    params: AgentParams,
    opt_state: TorchRMSpropState,
    batch: Batch,
    dropout_key: Array,
    coefs: Hyperparams,
    ac: ActorCritic,
    bonus_term: BonusTerm | None = None,
    *,
    lr: float | Array,
    decay: float,
    eps: float,
    max_grad_norm_ac: float,
    max_grad_norm_bonus: float,
    micro_batch: int | None = None,
) -> tuple[AgentParams, TorchRMSpropState, StepMetrics]:
    """One gradient step of the notebook's ``learn`` on a prepared batch.

    ``micro_batch`` (static; None or the batch size: one pass): take the gradient in
    ``N / micro_batch`` consecutive pieces of the (already shuffled) batch and add them up, each
    piece's loss terms divided by the whole batch's weight sum, so gradient and loss terms are
    the whole batch's up to float summation order. The bonus's dropout (RND predictor) then
    draws its masks per piece, from ``jax.random.split(dropout_key, N / micro_batch)``. Same
    step, less memory, and on CPU faster (the activations of a piece stay in cache)."""
    n = batch.action.shape[0]
    one_pass = micro_batch is None or micro_batch >= n
    denom = None if one_pass else weight_denominator(batch.weight)

    def grads_of(part: Batch, key: Array) -> tuple[AgentParams, LossTerms]:
        return jax.grad(loss_fn, has_aux=True)(params, part, key, coefs, ac, bonus_term, denom)

    grads, terms = sum_over_pieces(grads_of, batch, dropout_key, micro_batch)
    params, opt_state, norm_ac, norm_bonus = apply_gradients(
        params,
        opt_state,
        grads,
        lr=lr,
        decay=decay,
        eps=eps,
        max_grad_norm_ac=max_grad_norm_ac,
        max_grad_norm_bonus=max_grad_norm_bonus,
    )
    metrics = StepMetrics(loss=terms, grad_norm_ac=norm_ac, grad_norm_bonus=norm_bonus)
    return params, opt_state, metrics


# --------------------------------------------------------------------------- the learner


class A2C:
    """The A2C learner of a run, its static settings bound once from the config: its
    optimiser (the notebook's RMSprop over the actor-critic and the bonus's joint parameters)
    and its learning step on a rollout."""

    def __init__(self, cfg: Any, ac: ActorCritic, sample_sharding: Any = None):
        self.cfg, self.ac, self.sample_sharding = cfg, ac, sample_sharding

    def init_opt(self, params: AgentParams, hparams: Hyperparams) -> TorchRMSpropState:
        return torch_rmsprop(hparams.lr).init(params)

    def learn(
        self, params: AgentParams, opt_state: TorchRMSpropState, x: LearnInputs
    ) -> tuple[AgentParams, TorchRMSpropState, StepMetrics]:
        """Shuffle the rollout (the notebook's permutation quirk unless
        ``shared_permutation``) and take one RMSprop step on all of it."""
        cfg = self.cfg
        batch = make_batch(
            **rollout_fields(x),
            key=x.k_batch,
            shared_permutation=cfg.shared_permutation,
            mask_reset_transition=cfg.mask_reset_transition,
        )
        if self.sample_sharding is not None:
            batch = jax.tree.map(
                lambda x: jax.lax.with_sharding_constraint(x, self.sample_sharding), batch
            )
        return update_step(
            params,
            opt_state,
            batch,
            x.k_drop,
            x.hparams,
            self.ac,
            x.bonus_term,
            lr=x.hparams.lr,
            decay=cfg.a2c.rmsprop_decay,
            eps=cfg.a2c.rmsprop_eps,
            max_grad_norm_ac=cfg.train.max_grad_norm,
            max_grad_norm_bonus=cfg.bonus.max_grad_norm,
            micro_batch=x.micro,
        )
