"""In-jit episode statistics, the JAX counterpart of gymnasium's vector
`RecordEpisodeStatistics` as the notebook uses it.

Per environment it accumulates the return and length of the running episode; every finished
episode's return and length go into a ring buffer of the last `window` (100) episodes of the
run, in the order gymnasium appends them (by step, then by env index). `avg_return` is the
mean of that buffer: the notebook's "Average Score" (`np.mean(env.return_queue)`, NaN while no
episode has finished).

With next-step autoreset the step after a done is the dummy reset transition; like gymnasium
it neither adds to the new episode's return nor counts towards its length.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct
from jax import Array


class EpisodeStats(struct.PyTreeNode):
    """Running episode statistics of one run (one seed) over `num_envs` environments."""

    ep_return: Array  # float32 [B] return of the running episode
    ep_length: Array  # int32 [B] length of the running episode
    prev_done: Array  # bool [B] the previous step ended an episode (this one is the reset step)
    recent_returns: Array  # float32 [window] ring buffer of finished-episode returns
    recent_lengths: Array  # int32 [window] ring buffer of finished-episode lengths
    episodes: Array  # int32 [] episodes finished so far
    window: int = struct.field(pytree_node=False, default=100)

    @classmethod
    def create(cls, num_envs: int, window: int = 100) -> EpisodeStats:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        return cls(
            ep_return=jnp.zeros((num_envs,), jnp.float32),
            ep_length=jnp.zeros((num_envs,), jnp.int32),
            prev_done=jnp.zeros((num_envs,), bool),
            recent_returns=jnp.zeros((window,), jnp.float32),
            recent_lengths=jnp.zeros((window,), jnp.int32),
            episodes=jnp.asarray(0, jnp.int32),
            window=window,
        )

    def update(self, reward: Array, done: Array, skip_reset_step: bool = True) -> EpisodeStats:
        """Record one vector step: `reward` float [B], `done` bool [B] (terminated | truncated).

        `skip_reset_step=True` (next-step autoreset): a step that follows a done is the reset
        step and is not counted, as gymnasium does. Use False with same-step autoreset."""
        reward = jnp.asarray(reward, jnp.float32)
        done = jnp.asarray(done, bool)
        live = ~self.prev_done if skip_reset_step else jnp.ones_like(done)
        ep_return = jnp.where(live, self.ep_return + reward, 0.0)
        ep_length = jnp.where(live, self.ep_length + 1, 0)
        finished = done & live
        # Append finished episodes in env order; if more than `window` finish in one step only
        # the last `window` of them are written (indices stay unique).
        rank = jnp.cumsum(finished.astype(jnp.int32)) - 1  # [B]
        n_new = jnp.sum(finished.astype(jnp.int32))
        write = finished & (rank >= n_new - self.window)
        slot = jnp.where(write, (self.episodes + rank) % self.window, self.window)  # OOB = drop
        recent_returns = self.recent_returns.at[slot].set(ep_return, mode="drop")
        recent_lengths = self.recent_lengths.at[slot].set(ep_length, mode="drop")
        return self.replace(
            ep_return=jnp.where(finished, 0.0, ep_return),
            ep_length=jnp.where(finished, 0, ep_length),
            prev_done=done if skip_reset_step else jnp.zeros_like(done),
            recent_returns=recent_returns,
            recent_lengths=recent_lengths,
            episodes=self.episodes + n_new,
        )

    @property
    def num_recent(self) -> Array:
        """How many entries of the ring buffer are filled."""
        return jnp.minimum(self.episodes, self.window)

    @property
    def avg_return(self) -> Array:
        """Mean return of the last `window` finished episodes; NaN if none finished yet."""
        n = self.num_recent
        filled = jnp.arange(self.window) < n
        total = jnp.sum(jnp.where(filled, self.recent_returns, 0.0))
        return jnp.where(n > 0, total / jnp.maximum(n, 1), jnp.nan)

    @property
    def avg_length(self) -> Array:
        """Mean length of the last `window` finished episodes; NaN if none finished yet."""
        n = self.num_recent
        filled = jnp.arange(self.window) < n
        total = jnp.sum(jnp.where(filled, self.recent_lengths, 0)).astype(jnp.float32)
        return jnp.where(n > 0, total / jnp.maximum(n, 1), jnp.nan)
