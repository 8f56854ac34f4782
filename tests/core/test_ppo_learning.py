"""PPO and PPO-RND learn DoorKey-5x5: the presets `ppo-5x5` and `ppo-rnd-5x5` as they are
(1,024,000 frames per seed, 16 envs x 128 steps, 500 updates, logged every 25), 4 seeds
vmapped in one program.

Slow (whole runs; not for a shared 2-core machine during other work):
``pytest -m slow tests/core/test_ppo_learning.py``.

What it holds: the run's average of the last 100 episode returns (``avg_return_last100``,
the notebook's "Average Score") is above 0.91 at a logged update (every ``log_every``
updates, as the solved check of ``curio-jax train``) for at least 3 of the 4 seeds.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from curio_jax.config import preset
from curio_jax.core.train import make_train

FRAMES = 1_024_000
THRESHOLD = 0.91
SEEDS = 4


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppo-5x5", "ppo-rnd-5x5"])
def test_ppo_learns_doorkey_5x5(name):
    cfg = preset(name).replace(total_frames=FRAMES)
    assert cfg.algorithm == "ppo"
    out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(0), SEEDS))
    avg = np.asarray(out.metrics.avg_return_last100)  # [seeds, updates]
    frames = np.asarray(out.metrics.frames)[0]
    assert frames[-1] <= FRAMES
    logged = avg[:, cfg.log_every - 1 :: cfg.log_every]
    solved = np.any(logged > THRESHOLD, axis=1)
    first = np.argmax(logged > THRESHOLD, axis=1)
    frames_to_solve = np.where(solved, (first + 1) * cfg.log_every * cfg.frames_per_update, -1)
    print(f"\n{name}: frames to solve per seed (-1: not solved) {frames_to_solve.tolist()}")
    print(f"{name}: best logged avg {np.nanmax(logged, axis=1)}, final avg {avg[:, -1]}")
    assert solved.sum() >= 3, (name, np.nanmax(logged, axis=1))
