"""Lockstep cross-check of curio_jax DoorKey against gymnasium MiniGrid DoorKey (+ImgObsWrapper).

For sizes 5, 8 and 16, episodes of a random policy and of a scripted policy (key pickup, unlock,
re-close, re-open, failed drops, drop and re-pickup, goal) are played in MiniGrid; the same
action sequences are replayed from the same layouts in curio_jax. Half of the layouts come from
MiniGrid (injected into curio_jax), half from curio_jax (injected into MiniGrid). Observation,
reward, terminated and truncated must be equal on every step.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from curio_jax.envs import layout_of, make_doorkey

minigrid_bridge = pytest.importorskip("curio_jax.envs.minigrid_bridge")
pytest.importorskip("minigrid")

from minigrid_helpers import ScriptedEpisode, replay  # noqa: E402

# (random episodes, scripted episodes) per size; about 60k compared steps in total
EPISODES = {5: (60, 24), 8: (30, 24), 16: (8, 16)}
TOTAL_STEPS: dict[int, int] = {}


def _random_episode(env, rng, max_steps):
    actions, obs, rew, term, trunc = [], [], [], [], []
    for a in rng.integers(0, 7, size=max_steps):
        o, r, te, tr, _ = env.step(int(a))
        actions.append(int(a))
        obs.append(o)
        rew.append(float(r))
        term.append(bool(te))
        trunc.append(bool(tr))
        if te or tr:
            break
    return actions, obs, rew, term, trunc


def _layouts_from_curio(env, n, seed):
    keys = jax.random.split(jax.random.key(seed), n)
    ts = jax.vmap(env.reset)(keys)
    lay = layout_of(ts)
    out = []
    for i in range(n):
        out.append(jax.tree.map(lambda x, i=i: int(np.asarray(x)[i]), lay))
    return out


@pytest.mark.parametrize("size", [5, 8, 16])
def test_lockstep(size):
    env = make_doorkey(size)
    mg = minigrid_bridge.make_minigrid_doorkey(size)
    mg.reset(seed=1000 + size)
    rng = np.random.default_rng(size)
    n_random, n_scripted = EPISODES[size]
    n_total = n_random + n_scripted
    ours_layouts = _layouts_from_curio(env, n_total // 2, seed=size)

    layouts, episodes, first_obs_mg = [], [], []
    for i in range(n_total):
        if i % 2 == 0:  # MiniGrid layout -> curio_jax
            mg.reset(seed=int(rng.integers(2**31)))
            layout = minigrid_bridge.minigrid_layout(mg)
            first = mg.unwrapped.gen_obs()["image"]
        else:  # curio_jax layout -> MiniGrid
            mg.reset(seed=int(rng.integers(2**31)))
            layout = ours_layouts[i // 2]
            first = minigrid_bridge.apply_layout(mg, layout)
        layouts.append(layout)
        first_obs_mg.append(first)
        if i < n_random:
            episodes.append(_random_episode(mg, rng, env.max_steps))
        else:
            ep = ScriptedEpisode(mg).run(rng)
            assert ep.terminated[-1], "scripted policy must reach the goal"
            episodes.append((ep.actions, ep.obs, ep.rewards, ep.terminated, ep.truncated))

    t_max = max(len(ep[0]) for ep in episodes)
    actions = np.full((n_total, t_max), 6, np.int32)
    for i, ep in enumerate(episodes):
        actions[i, : len(ep[0])] = ep[0]
    obs, rew, term, trunc, first = replay(env, layouts, actions)

    compared = 0
    saw_truncation = saw_goal = False
    for i, (acts, mobs, mrew, mterm, mtrunc) in enumerate(episodes):
        np.testing.assert_array_equal(first[i], first_obs_mg[i], err_msg=f"episode {i} reset obs")
        n = len(acts)
        for t in range(n):
            ctx = f"size {size} episode {i} step {t} action {acts[t]}"
            np.testing.assert_array_equal(obs[i, t], mobs[t], err_msg=ctx)
            assert rew[i, t] == np.float32(mrew[t]), ctx
            assert bool(term[i, t]) == mterm[t], ctx
            assert bool(trunc[i, t]) == mtrunc[t], ctx
        compared += n
        saw_truncation |= mtrunc[-1]
        saw_goal |= mterm[-1]
    assert saw_goal
    if size == 16:
        assert saw_truncation, "random 16x16 episodes must include a truncation"
    TOTAL_STEPS[size] = compared
    # at least 50,000 steps compared over the three sizes (checked per size to stay independent)
    assert compared >= {5: 8_000, 8: 15_000, 16: 20_000}[size], compared
