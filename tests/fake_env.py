"""A tiny corridor environment with DoorKey's interface, for fast tests of the training core.

The agent starts in cell 0 of a corridor of ``length`` cells; action 1 moves right, 0 moves
left, anything else stays. Reaching the last cell gives reward 1 and terminates; the episode is
truncated after ``max_steps`` steps (both flags can be true on one step). The observation is a
uint8 ``[7, 7, 3]`` image with a 1 at ``[pos, 0, 0]`` and the step count at ``[6, 6, 2]``.
Autoreset follows :func:`curio_jax.envs.make_doorkey`: ``next_step`` (the step after a done
ignores its action and returns the reset observation with reward 0 and both flags False) or
``same_step``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct


class CorridorTimestep(struct.PyTreeNode):
    pos: jax.Array  # int32 []
    t: jax.Array  # int32 []
    observation: jax.Array  # uint8 [7, 7, 3]
    reward: jax.Array  # float32 []
    terminated: jax.Array  # bool []
    truncated: jax.Array  # bool []

    @property
    def done(self) -> jax.Array:
        return self.terminated | self.truncated


@dataclass(frozen=True)
class Corridor:
    length: int = 3
    max_steps: int = 4
    num_actions: int = 3
    autoreset: str = "next_step"

    def _obs(self, pos: jax.Array, t: jax.Array) -> jax.Array:
        obs = jnp.zeros((7, 7, 3), jnp.uint8)
        obs = obs.at[pos, 0, 0].set(1)
        return obs.at[6, 6, 2].set(t.astype(jnp.uint8))

    def _first(self) -> CorridorTimestep:
        zero = jnp.asarray(0, jnp.int32)
        return CorridorTimestep(
            pos=zero,
            t=zero,
            observation=self._obs(zero, zero),
            reward=jnp.asarray(0.0, jnp.float32),
            terminated=jnp.asarray(False),
            truncated=jnp.asarray(False),
        )

    def reset(self, key: jax.Array) -> CorridorTimestep:
        del key
        return self._first()

    def step(self, ts: CorridorTimestep, action: jax.Array) -> CorridorTimestep:
        move = jnp.where(action == 1, 1, jnp.where(action == 0, -1, 0))
        pos = jnp.clip(ts.pos + move, 0, self.length - 1)
        t = ts.t + 1
        terminated = pos == self.length - 1
        truncated = t >= self.max_steps
        nxt = CorridorTimestep(
            pos=pos,
            t=t,
            observation=self._obs(pos, t),
            reward=jnp.where(terminated, 1.0, 0.0).astype(jnp.float32),
            terminated=terminated,
            truncated=truncated,
        )
        first = self._first()
        if self.autoreset == "next_step":
            reset = ts.done
            out = jax.tree.map(lambda a, b: jnp.where(reset, a, b), first, nxt)
            return out
        reset = nxt.done
        return nxt.replace(
            pos=jnp.where(reset, first.pos, nxt.pos),
            t=jnp.where(reset, 0, nxt.t),
            observation=jnp.where(reset, first.observation, nxt.observation),
        )


@dataclass(frozen=True)
class CountingCorridor(Corridor):
    """The corridor with a visit cell (its position), for count-based bonuses."""

    @property
    def num_visit_cells(self) -> int:
        return self.length

    def visit_index(self, ts: CorridorTimestep) -> jax.Array:
        return ts.pos
