"""NovelD (Zhang et al. 2021, "NovelD: A Simple yet Effective Exploration Criterion"): the pure
building blocks.

Reward of step t (the paper's Eq. with its clipping threshold 0)::

    r_t = max(n(s_{t+1}) - alpha * n(s_t), 0) * 1[N_e(s_{t+1}) == 1]

``n`` is the RND novelty (the prediction error, computed by :mod:`curio_jax.core.rnd` on
``Transition.next_obs`` and ``Transition.obs``); ``N_e(s_{t+1}) == 1``: step t is the first time
in the current episode that its env sees the observation ``s_{t+1}``.

Episodic first visits are keyed by a 32-bit hash of all bytes of the observation
(:func:`obs_hash`), not by grid cells, so they work for any discrete observation; the hash picks
one of ``K`` buckets of a per-env table (:class:`EpisodicVisits`). Collisions: two different
observations of one episode that share a bucket make the second look already visited, a missed
bonus, never a spurious one (the indicator can only be wrongly 0, not wrongly 1).

Default ``K = 2**14`` (:data:`DEFAULT_BUCKETS`): an episode with ``n`` distinct observations
misses about ``n**2 / (2 K)`` first visits (the ``m``-th new observation finds ``m`` of ``K``
buckets taken). DoorKey-16x16 episodes last at most 2560 steps: even if every step saw a new
observation that is ~200 misses of 2560 (8 %); realistic episodes see a few hundred distinct
egocentric views (``n = 500``: ~8 misses, 1.5 %). Memory: ``[B, K]`` int32 = 64 KiB per env
(1 MiB for 16 envs). The cost per step does not depend on ``K`` (see :class:`EpisodicVisits`).

Episode boundaries under gymnasium's next-step autoreset (this package's rollouts): the table of
an env is emptied right after a step with ``done`` (its ``next_obs`` is still the ending
episode's last observation, so that step is judged within the ending episode). The next step is
the autoreset dummy transition (``is_reset``): its ``next_obs`` is the reset observation, the new
episode's first state; the dummy step marks it visited (a return to the start state later in the
episode pays no bonus) and, when ``is_reset`` is given, reports ``first = False`` so the dummy
transition (masked out of the loss anyway) gets reward 0. In same-step autoreset mode the done
step's ``next_obs`` is already the next episode's first observation and would be judged against
the ending episode's table. The very first observation of each env (``obs[0]`` of the first
rollout) is never marked: a return to it in that first episode counts as a first visit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

Array = jax.Array

DEFAULT_BUCKETS = 2**14
"""Buckets per env of the episodic table (see the module docstring for the reasoning)."""

_FNV_OFFSET = np.uint32(2166136261)
_FNV_PRIME = np.uint32(16777619)


def _as_bytes(obs: Array, obs_ndim: int) -> Array:
    """The observation's bytes, little-endian per element: ``[..., *shape] -> uint32 [..., n]``
    with each entry in ``[0, 255]`` and ``n = prod(shape) * itemsize``."""
    dtype = jnp.dtype(obs.dtype)
    if dtype == jnp.bool_:
        obs, dtype = obs.astype(jnp.uint8), jnp.dtype(jnp.uint8)
    if not jnp.issubdtype(dtype, jnp.integer) or dtype.itemsize > 4:
        raise ValueError(f"obs must be bool or an integer type of at most 32 bits, got {dtype}")
    lead = obs.shape[: obs.ndim - obs_ndim]
    flat = obs.reshape(lead + (-1,))
    if jnp.issubdtype(dtype, jnp.signedinteger):  # same bits, unsigned
        flat = jax.lax.bitcast_convert_type(flat, jnp.dtype(f"uint{8 * dtype.itemsize}"))
    words = flat.astype(jnp.uint32)
    if dtype.itemsize == 1:
        return words
    parts = [(words >> np.uint32(8 * j)) & np.uint32(0xFF) for j in range(dtype.itemsize)]
    return jnp.stack(parts, axis=-1).reshape(lead + (-1,))


def obs_hash(obs: Array, obs_ndim: int = 3) -> Array:
    """32-bit hash of every byte of each observation: FNV-1a over the bytes in row-major order,
    then MurmurHash3's ``fmix32`` finaliser (spreads the bits evenly over the low bits that
    pick a bucket)::

        h = 2166136261;  for each byte c: h = (h ^ c) * 16777619   (mod 2**32)
        h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13; h *= 0xC2B2AE35; h ^= h >> 16

    ``obs [..., *shape]`` (bool or integer up to 32 bits; the last ``obs_ndim`` axes are one
    observation, e.g. ``[T, B, 7, 7, 3]`` uint8) -> uint32 ``[...]``. Equal observations hash
    equal; two observations differing in a single byte (any position, any value) never collide,
    since each FNV-1a step and the finaliser are bijections of the 32-bit state. Cost per
    observation: one xor and one multiply per byte (147 of each for a MiniGrid image), done as a
    ``lax.scan`` along the bytes, vectorised over the leading axes."""
    if not 0 <= obs_ndim <= obs.ndim:
        raise ValueError(f"obs_ndim must be in [0, {obs.ndim}], got {obs_ndim}")
    data = _as_bytes(obs, obs_ndim)
    lead = data.shape[:-1]
    cols = data.reshape((-1, data.shape[-1])).T  # [n, N]

    def step(h, c):
        return (h ^ c) * _FNV_PRIME, None

    h0 = jnp.full(cols.shape[1:], _FNV_OFFSET, jnp.uint32)
    h, _ = jax.lax.scan(step, h0, cols)
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    h = h ^ (h >> np.uint32(16))
    return h.reshape(lead)


class EpisodicVisits(struct.PyTreeNode):
    """Per-env table of the observation buckets visited in the current episode.

    ``table [B, K]`` int32 and ``episode [B]`` int32: bucket ``k`` of env ``b`` is visited in the
    current episode iff ``table[b, k] == episode[b]``. Emptying an env's table is
    ``episode[b] += 1`` (constant work per env rather than clearing ``K`` entries every step);
    ``table`` starts at 0 and ``episode`` at 1, so every table starts empty. (An int32 episode
    counter per env does not wrap in any feasible run.)"""

    table: Array
    episode: Array

    @classmethod
    def create(cls, num_envs: int, num_buckets: int = DEFAULT_BUCKETS) -> EpisodicVisits:
        """Empty tables for ``num_envs`` envs of ``num_buckets`` buckets each."""
        if num_envs < 1 or not 1 <= num_buckets <= 2**31 - 1:
            raise ValueError(
                f"need num_envs >= 1, 1 <= num_buckets < 2**31: {num_envs}, {num_buckets}"
            )
        return cls(
            table=jnp.zeros((num_envs, num_buckets), jnp.int32),
            episode=jnp.ones((num_envs,), jnp.int32),
        )

    @property
    def num_buckets(self) -> int:
        return self.table.shape[1]

    def visited(self) -> Array:
        """bool ``[B, K]``: the buckets visited in each env's current episode."""
        return self.table == self.episode[:, None]


def first_visits(
    visits: EpisodicVisits, hashes: Array, done: Array, is_reset: Array | None = None
) -> tuple[EpisodicVisits, Array]:
    """Episodic first-visit indicator of a rollout, scanned along time.

    For each step t and env (independently), with ``k = hashes[t] % K``::

        first[t] = bucket k not yet visited in this episode
        mark bucket k visited
        empty the env's table              if done[t]
        first[t] = False                   if is_reset[t]   (autoreset dummy; still marked)

    Args:
      visits: the tables before the rollout (carried across rollouts).
      hashes: uint32 ``[T, B]`` :func:`obs_hash` of ``Transition.next_obs``.
      done: bool ``[T, B]``, terminated | truncated of step t.
      is_reset: bool ``[T, B]`` ``Transition.is_reset``; None: no step is a dummy.

    Returns ``(visits after the rollout, first bool [T, B])``. Two observations of one episode
    in the same bucket: the second is reported as already visited (see the module docstring).
    """
    if hashes.ndim != 2 or done.shape != hashes.shape:
        raise ValueError(f"hashes and done must both be [T, B], got {hashes.shape}, {done.shape}")
    if hashes.shape[1] != visits.table.shape[0]:
        raise ValueError(f"hashes has {hashes.shape[1]} envs, visits {visits.table.shape[0]}")
    env = jnp.arange(hashes.shape[1])
    k = np.uint32(visits.num_buckets)
    if is_reset is None:
        is_reset = jnp.zeros(done.shape, bool)

    def step(carry, xs):
        table, episode = carry
        h, d, r = xs
        bucket = (h.astype(jnp.uint32) % k).astype(jnp.int32)
        first = table[env, bucket] != episode
        table = table.at[env, bucket].set(episode)
        episode = episode + d.astype(jnp.int32)
        return (table, episode), first & ~r

    (table, episode), first = jax.lax.scan(
        step, (visits.table, visits.episode), (hashes, done, is_reset)
    )
    return visits.replace(table=table, episode=episode), first


def noveld_reward(n_next: Array, n_cur: Array, first: Array, alpha: float | Array) -> Array:
    """NovelD's intrinsic reward ``max(n_next - alpha * n_cur, 0) * first``.

    ``n_next [T, B]``: novelty of ``next_obs[t]`` (``s_{t+1}``); ``n_cur [T, B]``: novelty of
    ``obs[t]`` (``s_t``), both computed with the same predictor; ``first`` bool ``[T, B]``
    (:func:`first_visits`); ``alpha`` float or traced scalar (paper: 0.5). Returns float32
    ``[T, B]``, no gradient (a reward)."""
    if n_next.shape != n_cur.shape or first.shape != n_next.shape:
        raise ValueError(
            f"n_next, n_cur, first must share a shape: {n_next.shape}, {n_cur.shape}, {first.shape}"
        )
    diff = n_next.astype(jnp.float32) - jnp.asarray(alpha, jnp.float32) * n_cur.astype(jnp.float32)
    return jax.lax.stop_gradient(jnp.maximum(diff, 0.0) * first.astype(jnp.float32))
