"""Generalised advantage estimation, time-major, as the seed computes it (and corrected variants).

All functions take time-major arrays ``[T, B]`` and scan backwards over time with
:func:`jax.lax.scan`. ``gamma`` and ``lam`` may be traced scalars (a sweep can batch them).

The notebook's recursion (``util.rl_algos.compute_advantages_and_returns``), reproduced exactly by
:func:`gae`::

    next_value, last = last_value, 0
    for t = T-1 .. 0:
        nonterminal = 1 - done[t]
        delta   = r[t] + gamma * next_value * nonterminal - value[t]
        adv[t]  = delta + gamma * lam * last * nonterminal
        next_value, last = value[t], adv[t] * nonterminal
    returns = adv + values

Note that ``last`` is masked by ``nonterminal`` twice (once when stored, once when used), so the
advantage of a step that ends an episode is not carried back to the step before it either
(textbook GAE masks once). This is what the notebook ran and is kept in every episodic mode.

How the correction switches generalise it (see :func:`gae_general`):

- ``bootstrap_truncation``: a step that is truncated but not terminated bootstraps from the
  value of the episode's final observation instead of 0. With next-step autoreset that final
  observation is the observation stored at ``t + 1`` (the autoreset dummy transition acts from
  it) or, at the end of the segment, the segment's last observation; so its value is exactly
  the ``next_value`` of the recursion and only the bootstrap mask changes
  (``1 - terminated`` instead of ``1 - done``). Where the next stored observation is not the
  final one (same-step autoreset), pass ``truncation_value``. The eligibility trace is still
  cut at every done: the next stored transition belongs to another episode (or is the dummy).
- ``episodic=False`` (RND paper, intrinsic stream): dones are ignored altogether, the trace and
  the bootstrap run through episode boundaries.
- ``textbook=True`` (PPO's ``ppo.textbook_gae``, as CleanRL and purejaxrl): the trace is cut
  once, by the step's own done, ``adv[t] = delta[t] + gamma * lam * (1 - done[t]) * adv[t + 1]``
  (the carried ``last`` is the unmasked ``adv[t + 1]``).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def _gae_scan(
    rewards: Array,
    values: Array,
    last_value: Array,
    bootstrap_mask: Array,
    trace_cut: Array,
    gamma: Array | float,
    lam: Array | float,
    bootstrap_value: Array | None = None,
    use_bootstrap_value: Array | None = None,
    textbook: bool = False,
) -> tuple[Array, Array]:
    """The notebook's backward recursion with separate bootstrap mask and trace cut.

    Args:
      rewards: ``[T, B]`` float.
      values: ``[T, B]`` value of the observation each step acted from.
      last_value: ``[B]`` value of the observation after the last step.
      bootstrap_mask: ``[T, B]`` 1 where step t bootstraps from the next value, else 0.
      trace_cut: ``[T, B]`` 1 where the GAE trace is cut after step t (the notebook's ``done``).
      gamma, lam: discount and GAE lambda (scalars, may be traced).
      bootstrap_value: optional ``[T, B]`` value to bootstrap from instead of the next value
        where ``use_bootstrap_value`` is 1.
      use_bootstrap_value: ``[T, B]`` 0/1, required with ``bootstrap_value``.
      textbook: (static) carry ``adv[t]`` unmasked (the trace is cut once, by ``trace_cut[t]``
        at step t) instead of the seed's ``adv[t] * (1 - trace_cut[t])``.

    Returns:
      ``(advantages [T, B], returns [T, B])`` with ``returns = advantages + values``.
    """
    dtype = values.dtype
    gamma = jnp.asarray(gamma, dtype)
    lam = jnp.asarray(lam, dtype)
    if bootstrap_value is None:
        bootstrap_value = jnp.zeros_like(values)
        use_bootstrap_value = jnp.zeros_like(values)

    def step(carry, xs):
        next_value, last = carry
        r, v, bmask, cut, bval, use_bval = xs
        nonterminal = 1.0 - cut
        boot = jnp.where(use_bval > 0, bval, next_value)
        delta = r + gamma * boot * bmask - v
        adv = delta + gamma * lam * last * nonterminal
        if textbook:
            return (v, adv), adv
        return (v, adv * nonterminal), adv

    xs = (
        rewards.astype(dtype),
        values,
        bootstrap_mask.astype(dtype),
        trace_cut.astype(dtype),
        bootstrap_value.astype(dtype),
        use_bootstrap_value.astype(dtype),
    )
    init = (last_value.astype(dtype), jnp.zeros_like(last_value, dtype))
    _, advantages = jax.lax.scan(step, init, xs, reverse=True)
    return advantages, advantages + values


def gae(
    rewards: Array,
    values: Array,
    dones: Array,
    last_value: Array,
    gamma: Array | float,
    lam: Array | float,
) -> tuple[Array, Array]:
    """The notebook's GAE, exactly (truncation treated as termination; see the module docstring).

    Args:
      rewards: ``[T, B]`` reward of step t.
      values: ``[T, B]`` value of the observation step t acted from.
      dones: ``[T, B]`` bool or 0/1: step t ended an episode (terminated or truncated).
      last_value: ``[B]`` value of the observation after step T-1 (the segment's next start).
      gamma: discount. lam: GAE lambda (the notebook's default 0.98).

    Returns:
      ``(advantages [T, B], returns [T, B])``.
    """
    chex.assert_rank([rewards, values, dones, last_value], [2, 2, 2, 1])
    chex.assert_equal_shape([rewards, values, dones])
    chex.assert_equal_shape_suffix([values, last_value], 1)
    return _gae_scan(
        rewards, values, last_value, 1.0 - dones.astype(values.dtype), dones, gamma, lam
    )


def gae_general(
    rewards: Array,
    values: Array,
    last_value: Array,
    terminated: Array,
    truncated: Array,
    gamma: Array | float,
    lam: Array | float,
    *,
    bootstrap_truncation: bool = False,
    episodic: bool = True,
    truncation_value: Array | None = None,
    textbook: bool = False,
) -> tuple[Array, Array]:
    """GAE with the correction switches; defaults reproduce :func:`gae` with
    ``dones = terminated | truncated``.

    Args:
      rewards: ``[T, B]``.
      values: ``[T, B]`` value of the observation step t acted from.
      last_value: ``[B]`` value of the observation after step T-1.
      terminated: ``[T, B]`` bool: step t reached a terminal state (no bootstrap).
      truncated: ``[T, B]`` bool: step t hit the time limit.
      gamma, lam: discount and GAE lambda (scalars, may be traced).
      bootstrap_truncation: (static) truncated-but-not-terminated steps bootstrap from the
        value of the final observation (by default the next value, right for next-step
        autoreset; see the module docstring) instead of 0.
      episodic: (static) False ignores all episode boundaries (non-episodic stream).
      truncation_value: optional ``[T, B]`` value of the final observation of step t, used on
        truncated steps with ``bootstrap_truncation`` (same-step autoreset). Ignored otherwise.
      textbook: (static) cut the GAE trace once per done (see the module docstring); the
        default is the seed's double mask. Irrelevant when not ``episodic``.

    Returns:
      ``(advantages [T, B], returns [T, B])``.
    """
    chex.assert_rank([rewards, values, terminated, truncated, last_value], [2, 2, 2, 2, 1])
    chex.assert_equal_shape([rewards, values, terminated, truncated])
    chex.assert_equal_shape_suffix([values, last_value], 1)
    dtype = values.dtype
    terminated = terminated.astype(bool)
    truncated = truncated.astype(bool)
    done = (terminated | truncated).astype(dtype)
    if not episodic:
        zeros = jnp.zeros_like(values)
        return _gae_scan(rewards, values, last_value, 1.0 - zeros, zeros, gamma, lam)
    if not bootstrap_truncation:
        return _gae_scan(
            rewards, values, last_value, 1.0 - done, done, gamma, lam, textbook=textbook
        )
    bootstrap_mask = 1.0 - terminated.astype(dtype)
    if truncation_value is None:
        return _gae_scan(
            rewards, values, last_value, bootstrap_mask, done, gamma, lam, textbook=textbook
        )
    chex.assert_equal_shape([values, truncation_value])
    return _gae_scan(
        rewards,
        values,
        last_value,
        bootstrap_mask,
        done,
        gamma,
        lam,
        bootstrap_value=truncation_value,
        use_bootstrap_value=truncated & ~terminated,
        textbook=textbook,
    )
