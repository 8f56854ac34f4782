"""Count-based bonus (curio_jax.core.counts) against hand-counted cases, and the visit cell of
the DoorKey state (curio_jax.envs.doorkey.visit_index)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from curio_jax.core.counts import VisitCounts, count_bonus
from curio_jax.envs import DoorKeyLayout, make_doorkey
from curio_jax.envs.doorkey import num_visit_cells, visit_index

CELLS = jnp.array([[0, 1], [0, 0], [2, 1]], jnp.int32)  # [T=3, B=2]
NO_DONE = jnp.zeros((3, 2), bool)


def test_global_counts_by_hand():
    v = VisitCounts.create("count", 4, 2)
    v, bonus = count_bonus(v, CELLS, NO_DONE)
    # t0: cells 0, 1 -> counts 1, 1; t1: both envs at 0 -> count 3 for both; t2: 2 -> 1, 1 -> 2
    want = 1 / np.sqrt(np.array([[1, 1], [3, 3], [1, 2]], np.float32))
    np.testing.assert_allclose(bonus, want, rtol=1e-6)
    assert v.counts.tolist() == [3, 2, 1, 0]
    v, bonus = count_bonus(v, CELLS[:1], NO_DONE[:1])  # counts carry over to the next rollout
    np.testing.assert_allclose(bonus, [[1 / 2, 1 / np.sqrt(3)]], rtol=1e-6)


def test_episodic_counts_are_per_env_and_emptied_at_episode_end():
    v = VisitCounts.create("episodic_count", 4, 2)
    done = jnp.array([[False, False], [True, False], [False, False]])
    v, bonus = count_bonus(v, CELLS, done)
    # env 0: cell 0 (1), cell 0 (2) and the episode ends, cell 2 (1); env 1: 1 (1), 0 (1), 1 (2)
    want = 1 / np.sqrt(np.array([[1, 1], [2, 1], [1, 2]], np.float32))
    np.testing.assert_allclose(bonus, want, rtol=1e-6)
    assert v.counts.tolist() == [[0, 0, 1, 0], [1, 2, 0, 0]]


def test_bad_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        VisitCounts.create("rnd", 4, 2)


def test_visit_index_reads_position_direction_key_and_door():
    env = make_doorkey(5)
    layout = DoorKeyLayout(
        size=5, wall_x=2, door_y=1, agent_x=1, agent_y=2, agent_dir=3, key_x=1, key_y=3
    )
    ts = env.reset_to(layout)
    # row 2, col 1, facing north (3), no key, door locked
    assert int(visit_index(ts)) == (((2 * 5 + 1) * 4 + 3) * 2 + 0) * 3 + 0
    seen = {int(visit_index(ts))}
    for a in (1, 1, 3):  # turn to face south (the key), pick it up
        ts = env.step(ts, jnp.int32(a))
        seen.add(int(visit_index(ts)))
    assert int(visit_index(ts)) % 6 == 1 * 3 + 0  # carrying, door still locked
    assert len(seen) == 4
    batch = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 64))
    idx = np.asarray(visit_index(batch))
    assert idx.shape == (64,) and idx.min() >= 0 and idx.max() < num_visit_cells(5)
