"""Count-based exploration bonus: an intrinsic reward of ``1 / sqrt(N(cell))`` for the cell a
step reaches, `cell` being what `curio_jax.envs.doorkey.visit_index` reads from the state (the
agent's position, direction, carried key and door state).

Two kinds of counts (`bonus.kind` in the config):
- ``"count"``: global counts over the whole run, one table per learner ``[K]`` (the bonus of a
  cell decays as the run revisits it, across episodes);
- ``"episodic_count"``: one table per environment ``[B, K]``, emptied when its episode ends (the
  bonus rewards covering new ground within an episode).

A step's own visit is counted before its bonus is read, so the first visit of a cell pays 1.
Steps are counted in order (a rollout is scanned along time); the visits of several envs to
the same cell at the same step all count before any of them is paid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

Array = jax.Array
KINDS = ("count", "episodic_count")


class VisitCounts(struct.PyTreeNode):
    """int32 counts: ``[K]`` (global) or ``[B, K]`` (episodic)."""

    counts: Array

    @classmethod
    def create(cls, kind: str, num_cells: int, num_envs: int) -> VisitCounts:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        shape = (num_cells,) if kind == "count" else (num_envs, num_cells)
        return cls(counts=jnp.zeros(shape, jnp.int32))

    @property
    def episodic(self) -> bool:
        return self.counts.ndim == 2


def count_bonus(visits: VisitCounts, cells: Array, done: Array) -> tuple[VisitCounts, Array]:
    """Count the rollout's visits and pay their bonus.

    Args:
      visits: the counts before the rollout.
      cells: int32 ``[T, B]`` the cell each step reached.
      done: bool ``[T, B]`` the step ended its episode (episodic counts are emptied after it).

    Returns ``(visits after the rollout, bonus float32 [T, B])``."""
    b = cells.shape[1]
    env = jnp.arange(b)

    def step(counts, xs):
        cell, d = xs
        if counts.ndim == 1:
            counts = counts.at[cell].add(1)
            n = counts[cell]
        else:
            counts = counts.at[env, cell].add(1)
            n = counts[env, cell]
            counts = jnp.where(d[:, None], 0, counts)
        return counts, jax.lax.rsqrt(n.astype(jnp.float32))

    counts, bonus = jax.lax.scan(step, visits.counts, (cells, done))
    return visits.replace(counts=counts), bonus
