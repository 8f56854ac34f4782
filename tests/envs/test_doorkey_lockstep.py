"""Lockstep cross-check of curio_jax DoorKey against gymnasium MiniGrid DoorKey (+ImgObsWrapper).

For sizes 5, 8 and 16, episodes of a random policy and of a scripted policy (key pickup, unlock,
re-close, re-open, failed drops, drop and re-pickup, goal) are played in MiniGrid; the same
action sequences are replayed from the same layouts in curio_jax. Half of the layouts come from
MiniGrid (injected into curio_jax), half from curio_jax (injected into MiniGrid). Observation,
reward, terminated and truncated must be equal on every step. The comparison itself is
`curio_jax.reference.crosscheck.lockstep`, the code `curio-jax crosscheck` runs.
"""

from __future__ import annotations

import pytest

pytest.importorskip("minigrid")
from curio_jax.reference.crosscheck import lockstep  # noqa: E402

# (random episodes, scripted episodes, minimum compared steps) per size: about 57,000 steps in
# total over the three sizes (>= 50,000 required)
EPISODES = {5: (60, 24, 8_000), 8: (30, 24, 15_000), 16: (8, 16, 20_000)}


@pytest.mark.parametrize(
    "size", [5, pytest.param(8, marks=pytest.mark.slow), pytest.param(16, marks=pytest.mark.slow)]
)
def test_lockstep(size):
    n_random, n_scripted, min_steps = EPISODES[size]
    result = lockstep(size, n_random, n_scripted)
    assert result.mismatch is None, result.mismatch
    assert result.scripted_failures == 0, "the scripted policy must reach the goal"
    assert result.goals > 0
    if size == 16:
        assert result.truncations > 0, "random 16x16 episodes must include a truncation"
    assert result.steps >= min_steps, result.steps
