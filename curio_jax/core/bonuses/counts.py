"""``bonus.kind = "count"`` and ``"episodic_count"``: ``1 / sqrt(N)`` of the visit cell a step
reaches (:mod:`curio_jax.core.counts`), the cell being what the env's ``visit_index`` reads
from its state (for DoorKey: the agent's position, direction, carried key and door state).
Global counts over the run (one table ``[K]``) or per-episode counts (``[B, K]``, emptied when
the env's episode ends). Nothing is learned."""

from __future__ import annotations

from typing import Any

import jax
from flax import struct

from curio_jax.core.bonuses.base import Bonus, BonusReward, register
from curio_jax.core.counts import VisitCounts, count_bonus
from curio_jax.core.hparams import Hyperparams

Array = jax.Array


class EpisodicCountState(struct.PyTreeNode):
    """Per-env counts (``per_env``: the env axis leads, split with the envs when sharded)."""

    per_env: VisitCounts  # counts [B, K]


@register
class Count(Bonus):
    """Counts over the whole run: a cell's bonus decays as the run revisits it."""

    kind = "count"

    def check_env(self, env: Any) -> None:
        cells = getattr(env, "num_visit_cells", None)
        if not callable(getattr(env, "visit_index", None)) or not isinstance(cells, int):
            raise ValueError(
                f"bonus.kind={self.kind!r} counts visit cells: the env needs a "
                "`visit_index(timestep) -> int32` method and an int `num_visit_cells` "
                "(curio_jax.envs.make_doorkey has both)"
            )

    def cell_fn(self) -> Any:
        return jax.vmap(self.env.visit_index)

    def _counts(self) -> VisitCounts:
        return VisitCounts.create(self.kind, self.env.num_visit_cells, self.cfg.train.num_envs)

    def init(self, keys: Array, hparams: Hyperparams) -> tuple[Any, Any]:
        return self._counts(), None

    def reward(self, state: Any, params: Any, traj: Any, hparams, micro) -> BonusReward:
        state, reward = count_bonus(state, traj.cell, traj.done)
        return BonusReward(state=state, reward=reward)


@register
class EpisodicCount(Count):
    """Counts within each episode: the bonus rewards covering new ground in an episode."""

    kind = "episodic_count"

    def init(self, keys: Array, hparams: Hyperparams) -> tuple[Any, Any]:
        return EpisodicCountState(per_env=self._counts()), None

    def reward(self, state: Any, params: Any, traj: Any, hparams, micro) -> BonusReward:
        counts, reward = count_bonus(state.per_env, traj.cell, traj.done)
        return BonusReward(state=state.replace(per_env=counts), reward=reward)
