"""The PPO learner: the clipped-surrogate loss, the minibatch loop and one update on a rollout.

One update (:func:`ppo_update`) takes the flattened rollout (:class:`PPOBatch`, ``N = T * B``
samples with the behaviour policy's log-probabilities and values and both streams' advantages
and returns) through ``epochs`` passes; each pass shuffles the N samples with its own
permutation and cuts them into ``minibatches`` equal minibatches of ``M = N / minibatches``
samples, one gradient step each (a ``lax.scan`` over the ``epochs * minibatches`` steps)::

    adv    = adv_coef_ext * adv_ext (+ adv_coef_int * adv_int)    normalised per minibatch
    ratio  = exp(logprob_new(action) - logprob_old(action))
    policy = mean(max(-adv * ratio, -adv * clip(ratio, 1 - clip_eps, 1 + clip_eps)))
    value  = mean(max((v - R)^2, (v_old + clip(v - v_old, +-clip_eps) - R)^2))   (clip_value)
             mean((v - R)^2)                                                      (otherwise)
             (+ mean((v_int - R_int)^2), never clipped)
    bonus  = mean(err) over k = round(update_proportion * M) samples drawn without
             replacement (ppo.bonus_sample="subset"), or sum(err * mask) / max(sum(mask), 1),
             mask ~ Bernoulli(update_proportion) ("mask")
             (the loss of the bonus's jointly trained parameters: the RND predictor's error)
    loss   = policy + value_coef * value - entropy_coef * entropy (+ bonus)

Every mean is weighted by the sample weights (0 for masked autoreset dummy transitions,
``mask_reset_transition``) and divided by the minibatch's weight sum (the bonus's: its
samples' weight sum; the mask multiplies the weight). Gradients are clipped by global norm
per group (actor-critic, the bonus's joint parameters), then one Adam step
(:func:`curio_jax.core.optim.adam_step`) updates both groups. The logged terms are means over
the update's ``epochs * minibatches`` steps. Semantics and how they compare with CleanRL and
purejaxrl: docs/ppo.md.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import struct

from curio_jax.core import agent
from curio_jax.core.agent import BonusTerm, LearnInputs
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.networks import ActorCritic
from curio_jax.core.optim import AgentParams, adam, adam_step

Array = jax.Array
Params = Any

ADV_NORM_EPS = 1e-8
"""Added to the minibatch's advantage std before dividing (CleanRL, purejaxrl)."""


class PPOBatch(struct.PyTreeNode):
    """A flattened rollout (``N = T * B`` samples, time-major order), or a minibatch of it.

    ``adv`` and ``bonus_weight`` are set per minibatch by :func:`prepare_minibatch`."""

    obs: Array  # [N, 7, 7, 3] uint8, the observation the action was chosen from
    action: Array  # [N] int32
    logprob: Array  # [N] log-probability of the action under the behaviour (rollout) policy
    value_ext: Array  # [N] the rollout's extrinsic value of obs (value clipping)
    adv_ext: Array  # [N]
    ret_ext: Array  # [N]
    weight: Array  # [N] float32 loss weight: 0 for masked dummy transitions, else 1
    adv_int: Array | None = None  # [N] (intrinsic stream)
    ret_int: Array | None = None  # [N] (intrinsic stream)
    bonus_input: Any = None  # [N, ...] what the bonus's loss reads besides obs (e.g. the RND
    #                          target's features of its input, computed once per update)
    adv: Array | None = None  # [M] combined (and normalised) advantage of a minibatch
    bonus_weight: Array | None = None  # [M] weight of the bonus's loss: weight * proportion mask


class PPOLossTerms(struct.PyTreeNode):
    """The scalar terms of one minibatch's loss (``value_int`` and ``bonus`` are 0 without
    them).

    ``approx_kl`` (``mean((ratio - 1) - log ratio)``, the k3 estimator of KL(old || new)) and
    ``clip_fraction`` (the fraction of samples with ``|ratio - 1| > clip_eps``) are diagnostics
    without gradient."""

    total: Array
    policy: Array
    value_ext: Array
    value_int: Array
    entropy: Array
    bonus: Array
    approx_kl: Array
    clip_fraction: Array


class PPOStepMetrics(struct.PyTreeNode):
    """What an update reports: loss terms and pre-clip gradient norms, averaged over its
    ``epochs * minibatches`` gradient steps."""

    loss: PPOLossTerms
    grad_norm_ac: Array
    grad_norm_bonus: Array  # 0 without jointly trained bonus parameters


# --------------------------------------------------------------------------- batch


def flatten_rollout(
    obs: Array,
    action: Array,
    logprob: Array,
    value_ext: Array,
    adv_ext: Array,
    ret_ext: Array,
    *,
    adv_int: Array | None = None,
    ret_int: Array | None = None,
    is_reset: Array | None = None,
    mask_reset_transition: bool = False,
    bonus_input: Any = None,
) -> PPOBatch:
    """``[T, B, ...] -> [T * B, ...]`` in time-major order (no shuffling: the minibatch loop
    draws one permutation per epoch). ``is_reset [T, B]``: autoreset dummy flags, weight 0 with
    ``mask_reset_transition``. ``bonus_input``: a pytree of ``[T, B, ...]`` arrays the bonus's
    loss reads with obs (the RND target's features, computed once per update)."""
    chex.assert_rank([action, logprob, value_ext, adv_ext, ret_ext], 2)
    n = action.shape[0] * action.shape[1]

    def flat(x: Array | None) -> Array | None:
        return None if x is None else x.reshape((n,) + x.shape[2:])

    weight = agent.loss_weight(is_reset, mask_reset_transition, action.shape)
    return PPOBatch(
        obs=flat(obs),
        action=flat(action),
        logprob=flat(logprob),
        value_ext=flat(value_ext),
        adv_ext=flat(adv_ext),
        ret_ext=flat(ret_ext),
        weight=flat(weight),
        adv_int=flat(adv_int),
        ret_int=flat(ret_int),
        bonus_input=jax.tree.map(flat, bonus_input),
    )


def minibatch_indices(key: Array, n: int, epochs: int, minibatches: int) -> Array:
    """The samples of every minibatch, ``[epochs * minibatches, n / minibatches]`` int32 in the
    order the update takes them: epoch e shuffles ``range(n)`` with
    ``jax.random.permutation(jax.random.split(key, epochs)[e], n)`` and cuts it into
    ``minibatches`` consecutive parts."""
    if n % minibatches:
        raise ValueError(f"minibatches={minibatches} does not divide the batch size {n}")
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, epochs))
    return perms.reshape(epochs * minibatches, n // minibatches).astype(jnp.int32)


def combined_advantage(
    adv_ext: Array,
    adv_int: Array | None,
    weight: Array,
    coefs: Hyperparams,
    normalize: bool,
) -> Array:
    """``adv_coef_ext * adv_ext (+ adv_coef_int * adv_int)`` of a minibatch ``[M]``; with
    ``normalize`` shifted and scaled to weighted mean 0 and population std 1 over the
    minibatch (``(adv - mean) / (std + 1e-8)``, weights ``weight``)."""
    adv = coefs.adv_coef_ext * adv_ext
    if adv_int is not None:
        adv = adv + coefs.adv_coef_int * adv_int
    if not normalize:
        return adv
    denom = agent.weight_denominator(weight)
    mean = jnp.sum(adv * weight) / denom
    var = jnp.sum(jnp.square(adv - mean) * weight) / denom
    return (adv - mean) / (jnp.sqrt(var) + ADV_NORM_EPS)


def proportion_mask(key: Array, m: int, proportion: Array | float) -> Array:
    """PPO-RND's predictor mask of one minibatch: ``uniform(key, [m]) < proportion`` as
    float32 0/1 (each sample trains the bonus's joint parameters with probability
    ``proportion``)."""
    return (jax.random.uniform(key, (m,)) < proportion).astype(jnp.float32)


def subset_size(m: int, proportion: float) -> int:
    """The predictor's samples per minibatch of ``m`` with ``ppo.bonus_sample="subset"``:
    ``round(proportion * m)``, at least 1 (a static array size)."""
    if not 0.0 < proportion <= 1.0:
        raise ValueError(f"update_proportion must be in (0, 1], got {proportion!r}")
    return max(1, min(m, round(proportion * m)))


def subset_indices(key: Array, m: int, k: int) -> Array:
    """PPO-RND's predictor samples of one minibatch with the subset draw: ``k`` of its ``m``
    positions drawn uniformly without replacement (the first ``k`` of a permutation with
    ``key``), ``[k]`` int32."""
    return jax.random.permutation(key, m)[:k].astype(jnp.int32)


def prepare_minibatch(
    mb: PPOBatch,
    prop_key: Array,
    coefs: Hyperparams,
    *,
    adv_norm: bool,
    bonus_loss: bool,
) -> PPOBatch:
    """Set a gathered minibatch's combined advantage (the intrinsic one included when the
    batch carries it) and the weight of the bonus's loss. ``bonus_loss``: the bonus has
    jointly trained parameters; draw their update-proportion mask."""
    adv = combined_advantage(mb.adv_ext, mb.adv_int, mb.weight, coefs, adv_norm)
    bonus_weight = None
    if bonus_loss:
        bonus_weight = mb.weight * proportion_mask(
            prop_key, mb.action.shape[0], coefs.update_proportion
        )
    return mb.replace(adv=adv, bonus_weight=bonus_weight)


# --------------------------------------------------------------------------- loss


def ppo_loss(
    params: AgentParams,
    mb: PPOBatch,
    dropout_key: Array,
    coefs: Hyperparams,
    ac: ActorCritic,
    bonus_term: BonusTerm | None = None,
    *,
    clip_value: bool,
    denom: Array | None = None,
    denom_bonus: Array | None = None,
) -> tuple[Array, PPOLossTerms]:
    """PPO's loss on a prepared minibatch (``mb.adv`` set; ``mb.bonus_weight`` with a
    ``bonus_term``, the loss of the bonus's jointly trained parameters ``params.bonus``).

    Every term is ``sum(x * weight) / denom`` (the bonus term ``sum(err * bonus_weight) /
    denom_bonus``), the denominators ``max(sum(weights), 1)`` of ``mb`` by default; a piece of
    a minibatch passes its whole minibatch's, so the pieces' terms add up to the minibatch's.
    Returns ``(total, PPOLossTerms)``."""
    w = mb.weight
    if denom is None:
        denom = agent.weight_denominator(w)
    wmean = agent.weighted_mean(w, denom)
    eps = coefs.clip_eps
    logprob, entropy, value_ext, value_int = agent.policy_forward(
        ac, params.ac, mb.obs, mb.action, wmean
    )
    log_ratio = logprob - mb.logprob
    ratio = jnp.exp(log_ratio)
    surrogate = jnp.maximum(-mb.adv * ratio, -mb.adv * jnp.clip(ratio, 1.0 - eps, 1.0 + eps))
    loss_policy = wmean(surrogate)
    err_ext = jnp.square(value_ext - mb.ret_ext)
    if clip_value:
        clipped = mb.value_ext + jnp.clip(value_ext - mb.value_ext, -eps, eps)
        err_ext = jnp.maximum(err_ext, jnp.square(clipped - mb.ret_ext))
    loss_value_ext = wmean(err_ext)
    zero = jnp.zeros((), jnp.float32)
    loss_value_int, loss_bonus = zero, zero
    if mb.adv_int is not None:
        loss_value_int = wmean(jnp.square(value_int - mb.ret_int))
    if bonus_term is not None:
        if denom_bonus is None:
            denom_bonus = agent.weight_denominator(mb.bonus_weight)
        loss_bonus = bonus_term(
            params.bonus, mb.obs, mb.bonus_input, dropout_key, mb.bonus_weight, denom_bonus
        )
    total = agent.total_loss(
        coefs, loss_policy, loss_value_ext, loss_value_int, entropy, loss_bonus
    )
    sg_ratio, sg_log_ratio = jax.lax.stop_gradient(ratio), jax.lax.stop_gradient(log_ratio)
    return total, PPOLossTerms(
        total=total,
        policy=loss_policy,
        value_ext=loss_value_ext,
        value_int=loss_value_int,
        entropy=entropy,
        bonus=loss_bonus,
        approx_kl=wmean((sg_ratio - 1.0) - sg_log_ratio),
        clip_fraction=wmean((jnp.abs(sg_ratio - 1.0) > eps).astype(jnp.float32)),
    )


# --------------------------------------------------------------------------- update


class UpdateKeys(struct.PyTreeNode):
    """The randomness of one update, per gradient step ``[epochs * minibatches]``."""

    indices: Array  # [S, M] int32 samples of each minibatch (minibatch_indices)
    dropout: Array  # [S] keys of the bonus's dropout (RND predictor)
    proportion: Array  # [S] keys of the bonus's update-proportion masks

    @classmethod
    def draw(
        cls, batch_key: Array, dropout_key: Array, n: int, epochs: int, minibatches: int
    ) -> UpdateKeys:
        """From the update's batch key (permutations, proportion masks) and dropout key."""
        k_perm, k_prop = jax.random.split(batch_key)
        steps = epochs * minibatches
        return cls(
            indices=minibatch_indices(k_perm, n, epochs, minibatches),
            dropout=jax.random.split(dropout_key, steps),
            proportion=jax.random.split(k_prop, steps),
        )


def ppo_update(
    params: AgentParams,
    opt_state: Any,
    batch: PPOBatch,
    keys: UpdateKeys,
    coefs: Hyperparams,
    ac: ActorCritic,
    bonus_term: BonusTerm | None = None,
    *,
    lr: float | Array,
    adam_eps: float,
    clip_value: bool,
    adv_norm: bool,
    max_grad_norm_ac: float,
    max_grad_norm_bonus: float,
    micro_batch: int | None = None,
    sample_sharding: Any = None,
    bonus_subset: int | None = None,
) -> tuple[AgentParams, Any, PPOStepMetrics]:
    """All ``epochs * minibatches`` gradient steps of one update on ``batch`` (a ``lax.scan``
    over ``keys``' steps): gather the minibatch, combine (and normalise) its advantages, draw
    the bonus's samples, take its gradient (in ``micro_batch`` pieces if smaller than the
    minibatch), clip per group, one Adam step with learning rate ``lr``.

    The bonus's samples (with a ``bonus_term``): ``bonus_subset`` None, a Bernoulli mask over
    the minibatch (``coefs.update_proportion``; the bonus's pass runs on every sample);
    ``bonus_subset = k``, ``k`` samples drawn without replacement (:func:`subset_indices`),
    and the bonus's pass runs on those ``k`` alone, its gradient taken apart from the
    actor-critic's (the two share no parameter; their sum is the loss's gradient).

    Returns the parameters and Adam state after the last step and the steps' mean metrics.
    ``sample_sharding``: the sharding each minibatch is held to (env-sharded runs)."""
    joint = bonus_term is not None
    subset = joint and bonus_subset is not None
    masked = joint and not subset

    def step(carry, xs):
        params, opt_state = carry
        idx, k_drop, k_prop = xs
        # with the subset, the bonus's inputs are gathered for its k samples alone (below)
        src = batch.replace(bonus_input=None) if subset else batch
        mb = jax.tree.map(lambda x: x[idx], src)
        mb = prepare_minibatch(mb, k_prop, coefs, adv_norm=adv_norm, bonus_loss=masked)
        if sample_sharding is not None:
            mb = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sample_sharding), mb)
        denom = agent.weight_denominator(mb.weight)
        denom_bonus = agent.weight_denominator(mb.bonus_weight) if masked else None

        def grads_of(part: PPOBatch, key: Array) -> tuple[AgentParams, PPOLossTerms]:
            return jax.grad(ppo_loss, has_aux=True)(
                params,
                part,
                key,
                coefs,
                ac,
                None if subset else bonus_term,
                clip_value=clip_value,
                denom=denom,
                denom_bonus=denom_bonus,
            )

        grads, terms = agent.sum_over_pieces(grads_of, mb, k_drop, micro_batch)
        if subset:
            sel = subset_indices(k_prop, idx.shape[0], bonus_subset)
            loss_bonus, grads_bonus = subset_bonus_grads(
                params.bonus,
                mb.obs[sel],
                jax.tree.map(lambda x: x[idx[sel]], batch.bonus_input),
                mb.weight[sel],
                k_drop,
                bonus_term,
                micro_batch,
            )
            grads = grads.replace(bonus=grads_bonus)
            terms = terms.replace(bonus=loss_bonus, total=terms.total + loss_bonus)
        params, opt_state, norm_ac, norm_bonus = adam_step(
            params,
            opt_state,
            grads,
            lr=lr,
            eps=adam_eps,
            max_grad_norm_ac=max_grad_norm_ac,
            max_grad_norm_bonus=max_grad_norm_bonus,
        )
        metrics = PPOStepMetrics(loss=terms, grad_norm_ac=norm_ac, grad_norm_bonus=norm_bonus)
        return (params, opt_state), metrics

    (params, opt_state), per_step = jax.lax.scan(
        step, (params, opt_state), (keys.indices, keys.dropout, keys.proportion)
    )
    return params, opt_state, jax.tree.map(lambda x: jnp.mean(x, axis=0), per_step)


def subset_bonus_grads(
    bonus_params: Any,
    obs: Array,
    loss_input: Any,
    weight: Array,
    dropout_key: Array,
    bonus_term: BonusTerm,
    micro_batch: int | None,
) -> tuple[Array, Any]:
    """The bonus's loss and its gradient in ``bonus_params`` on the ``k`` samples it trains on
    (``obs [k, ...]``, ``loss_input [k, ...]`` or None, ``weight [k]``): the weighted mean of
    its error over them, computed in pieces of at most ``micro_batch`` rows (piece i with
    dropout key ``split(dropout_key, pieces)[i]``, or ``dropout_key`` in one piece)."""
    k = weight.shape[0]
    denom = agent.weight_denominator(weight)

    def grads_of(piece: Any, key: Array) -> tuple[Array, Any]:
        o, li, w = piece
        return jax.value_and_grad(bonus_term)(bonus_params, o, li, key, w, denom)

    rows = None if micro_batch is None else agent.largest_divisor(k, micro_batch)
    return agent.sum_over_pieces(grads_of, (obs, loss_input, weight), dropout_key, rows)


def annealed_lr(lr: Array, update: Array, num_updates: int) -> Array:
    """Linear annealing (CleanRL's ``anneal_lr``): ``lr * (1 - update / num_updates)`` for the
    update that starts after ``update`` updates (``lr`` at the first, ``lr / num_updates`` at
    the last)."""
    return lr * (1.0 - update.astype(jnp.float32) / jnp.float32(num_updates))


class PPO:
    """The PPO learner of a run, its static settings bound once from the config: Adam over the
    actor-critic and the bonus's joint parameters, and ``ppo.epochs`` shuffles of each rollout
    into ``ppo.minibatches`` minibatches, one Adam step each."""

    def __init__(self, cfg: Any, ac: ActorCritic, sample_sharding: Any = None):
        self.cfg, self.ac, self.sample_sharding = cfg, ac, sample_sharding

    def init_opt(self, params: AgentParams, hparams: Hyperparams) -> Any:
        del hparams
        return adam(self.cfg.ppo.adam_eps).init(params)

    def learn(
        self, params: AgentParams, opt_state: Any, x: LearnInputs
    ) -> tuple[AgentParams, Any, PPOStepMetrics]:
        """PPO's learning step on a rollout (:func:`ppo_update`), the learning rate annealed
        over the budget from ``x.update`` (``ppo.anneal_lr``)."""
        cfg = self.cfg
        batch = flatten_rollout(
            **agent.rollout_fields(x),
            logprob=x.traj.logprob,
            value_ext=x.traj.value_ext,
            mask_reset_transition=cfg.mask_reset_transition,
        )
        keys = UpdateKeys.draw(
            x.k_batch, x.k_drop, cfg.frames_per_update, cfg.ppo.epochs, cfg.ppo.minibatches
        )
        lr = x.hparams.lr
        if cfg.ppo.anneal_lr:
            lr = annealed_lr(lr, x.update, cfg.num_updates)
        return ppo_update(
            params,
            opt_state,
            batch,
            keys,
            x.hparams,
            self.ac,
            x.bonus_term,
            lr=lr,
            adam_eps=cfg.ppo.adam_eps,
            clip_value=cfg.ppo.clip_value,
            adv_norm=cfg.ppo.adv_norm,
            max_grad_norm_ac=cfg.train.max_grad_norm,
            max_grad_norm_bonus=cfg.bonus.max_grad_norm,
            micro_batch=x.micro,
            sample_sharding=self.sample_sharding,
            bonus_subset=self.bonus_subset(),
        )

    def bonus_subset(self) -> int | None:
        """The predictor's samples per minibatch with ``ppo.bonus_sample="subset"``
        (:func:`subset_size` of ``ppo.update_proportion``), None with the mask."""
        p = self.cfg.ppo
        if p.bonus_sample != "subset":
            return None
        return subset_size(self.cfg.minibatch_size, p.update_proportion)
