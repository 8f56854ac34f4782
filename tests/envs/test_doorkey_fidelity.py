"""One regression test per point of docs/fidelity.md, plus input validation.

Each behavioural test plays a short action script from an injected layout in curio_jax AND in
gymnasium MiniGrid, asserts the two agree on every step, then checks the specific property."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from curio_jax.envs import DoorKeyLayout, EpisodeStats, layout_of, make_doorkey
from curio_jax.envs import doorkey as dk

minigrid_bridge = pytest.importorskip("curio_jax.envs.minigrid_bridge")

L, R, F, PICK, DROP, TOG, DONE = range(7)


def _layout(size=5, wall_x=2, door_y=2, agent=(1, 3), agent_dir=3, key=(1, 2)):
    return DoorKeyLayout(
        size=size,
        wall_x=wall_x,
        door_y=door_y,
        agent_x=agent[0],
        agent_y=agent[1],
        agent_dir=agent_dir,
        key_x=key[0],
        key_y=key[1],
    )


_STEP_CACHE: dict = {}


def _jit_step(env):
    k = (env.size, env.autoreset_mode)
    if k not in _STEP_CACHE:
        _STEP_CACHE[k] = (jax.jit(env._step), jax.jit(env.step))
    return _STEP_CACHE[k]


def play(layout, actions, check_minigrid=True):
    """Play `actions` from `layout` (no autoreset) in curio_jax and MiniGrid; assert equality on
    every step; return the list of curio_jax timesteps (first = reset)."""
    env = make_doorkey(layout.size)
    step, _ = _jit_step(env)
    ts = env.reset_to(layout)
    out = [ts]
    if check_minigrid:
        mg = minigrid_bridge.make_minigrid_doorkey(layout.size)
        mg.reset(seed=0)
        np.testing.assert_array_equal(
            np.asarray(ts.observation), minigrid_bridge.apply_layout(mg, layout)
        )
    for i, a in enumerate(actions):
        ts = step(ts, jnp.int32(a))
        out.append(ts)
        if check_minigrid:
            o, r, term, trunc, _ = mg.step(a)
            ctx = f"step {i} action {a}"
            np.testing.assert_array_equal(np.asarray(ts.observation), o, err_msg=ctx)
            assert float(ts.reward) == np.float32(r), ctx
            assert bool(ts.terminated) == term and bool(ts.truncated) == trunc, ctx
    return out


def door(ts):
    d = ts.state.entities["door"]
    return bool(d.open[0]), int(d.requires[0]) != -1


def pocket(ts):
    return int(ts.state.entities["player"].pocket[0])


# Default layout (5x5): wall x=2, door (2, 2), goal (3, 3), agent (1, 3) facing north with the key
# at (1, 2) right in front of it.
TO_DOOR = [PICK, F, R]  # pick key at (1,2), step to (1,2), face east: door (2,2) ahead


# ---------------------------------------------------------------- reset distribution


def _empirical_layouts(size, n, seed):
    env = make_doorkey(size)
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(seed), n))
    return {k: np.asarray(v) for k, v in vars(layout_of(ts)).items() if k != "size"}


@pytest.mark.parametrize("size", [5, 8, 16])
def test_reset_distribution_matches_minigrid_exactly(size):
    """>= 20,000 resets per size against MiniGrid's exact `_gen_grid` distribution: wall column
    uniform in [2, size-3], door row uniform in [1, size-3], agent uniform over the cells left of
    the wall with a uniform direction, key uniform over the other cells left of the wall."""
    n = 20_000
    lay = _empirical_layouts(size, n, seed=size)
    w, dy = lay["wall_x"], lay["door_y"]
    ax, ay, kx, ky, ad = (
        lay["agent_x"],
        lay["agent_y"],
        lay["key_x"],
        lay["key_y"],
        lay["agent_dir"],
    )
    # support (exact)
    assert w.min() >= 2 and w.max() <= size - 3
    assert dy.min() >= 1 and dy.max() <= size - 3  # never the last interior row
    assert (ax >= 1).all() and (ax < w).all() and (ay >= 1).all() and (ay <= size - 2).all()
    assert (kx >= 1).all() and (kx < w).all() and (ky >= 1).all() and (ky <= size - 2).all()
    assert not ((ax == kx) & (ay == ky)).any()
    assert set(np.unique(ad)) <= {0, 1, 2, 3}

    def gof(observed_codes, probs, what):
        counts = np.bincount(observed_codes, minlength=len(probs))
        assert len(counts) == len(probs)
        p = sps.chisquare(counts, np.asarray(probs) * len(observed_codes)).pvalue
        assert p > 1e-3, f"{what}: chi-square p = {p:.2e}"

    n_w, n_d, h = size - 4, size - 3, size - 2
    gof((w - 2) * n_d + (dy - 1), np.full(n_w * n_d, 1 / (n_w * n_d)), "(wall, door)")
    gof(ad, np.full(4, 0.25), "direction")
    # agent cell given the wall: uniform over (w-1)*(size-2) cells -> joint (wall, agent cell)
    codes, probs = {}, []
    for wx in range(2, size - 2):
        for x in range(1, wx):
            for y in range(1, size - 1):
                codes[(wx, x, y)] = len(probs)
                probs.append(1 / n_w / ((wx - 1) * h))
    gof(np.array([codes[t] for t in zip(w, ax, ay, strict=True)]), probs, "(wall, agent cell)")
    gof(np.array([codes[t] for t in zip(w, kx, ky, strict=True)]), probs, "(wall, key cell)")
    if size <= 8:  # the full joint (wall, agent, key) has enough samples per cell here
        codes2, probs2 = {}, []
        for wx in range(2, size - 2):
            cells = [(x, y) for x in range(1, wx) for y in range(1, size - 1)]
            c = len(cells)
            for a in cells:
                for k in cells:
                    if a != k:
                        codes2[(wx, *a, *k)] = len(probs2)
                        probs2.append(1 / n_w / (c * (c - 1)))
        obs = np.array([codes2[t] for t in zip(w, ax, ay, kx, ky, strict=True)])
        gof(obs, probs2, "(wall, agent, key)")


@pytest.mark.parametrize("size", [5, 8])
def test_reset_distribution_agrees_with_minigrid_samples(size):
    """The analytic distribution above is MiniGrid's: two-sample chi-square against MiniGrid's
    own resets (5,000) on (wall, door), direction and the agent's x offset from the wall."""
    mg = minigrid_bridge.make_minigrid_doorkey(size)
    rows = []
    for seed in range(5_000):
        mg.reset(seed=seed)
        lay = minigrid_bridge.minigrid_layout(mg)
        rows.append((lay.wall_x, lay.door_y, lay.agent_dir, lay.wall_x - lay.agent_x, lay.key_y))
    theirs = np.array(rows)
    lay = _empirical_layouts(size, 20_000, seed=100 + size)
    ours = np.stack(
        [
            lay["wall_x"],
            lay["door_y"],
            lay["agent_dir"],
            lay["wall_x"] - lay["agent_x"],
            lay["key_y"],
        ],
        1,
    )
    for col, name in enumerate(["wall", "door", "dir", "agent offset", "key row"]):
        values = np.union1d(ours[:, col], theirs[:, col])
        table = np.array([[np.sum(x[:, col] == v) for v in values] for x in (ours, theirs)])
        p = sps.chi2_contingency(table).pvalue
        assert p > 1e-3, f"{name}: p = {p:.2e}"


def test_goal_bottom_right_and_random_start():
    for size in (5, 8, 16):
        env = make_doorkey(size)
        ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(1), 256))
        goal = np.asarray(ts.state.entities["goal"].position[:, 0])
        assert (goal == [size - 2, size - 2]).all()  # (row, col)
        lay = layout_of(ts)
        # navix's plain ids always start at (1, 1) facing east; MiniGrid does not
        assert len(np.unique(np.asarray(lay.agent_dir))) == 4
        assert len(np.unique(np.asarray(lay.agent_y))) == size - 2


# ---------------------------------------------------------------- horizon, reward, flags


@pytest.mark.parametrize("size", [5, 8, 16])
def test_horizon_is_10_size_squared_and_truncation_flag(size):
    env = make_doorkey(size)
    assert env.max_steps == 10 * size * size
    layout = _layout(size=size, wall_x=2, door_y=1, agent=(1, 2), agent_dir=2, key=(1, 3))
    ts = play(layout, [DONE] * env.max_steps, check_minigrid=(size == 5))
    assert not any(bool(t.truncated) for t in ts[:-1])
    assert bool(ts[-1].truncated) and not bool(ts[-1].terminated)
    assert int(ts[-1].t) == env.max_steps


def _reach_goal_actions_5x5():
    # 5x5, wall x=2, door (2,2), goal (3,3): pick key, unlock, walk through, go down to goal
    return TO_DOOR + [TOG, F, F, R, F]


def test_goal_reward_formula_bit_exact():
    actions = _reach_goal_actions_5x5()
    ts = play(_layout(), actions)
    last = ts[-1]
    assert bool(last.terminated) and not bool(last.truncated)
    t = len(actions)
    assert float(last.reward) == np.float32(1 - 0.9 * (t / 250))
    assert all(float(x.reward) == 0.0 for x in ts[:-1])


def test_terminated_and_truncated_together():
    actions = _reach_goal_actions_5x5()
    pad = [DONE] * (250 - len(actions))
    ts = play(_layout(), actions[:-1] + pad + actions[-1:])
    assert int(ts[-1].t) == 250
    assert bool(ts[-1].terminated) and bool(ts[-1].truncated)
    assert float(ts[-1].reward) == np.float32(1 - 0.9)


# ---------------------------------------------------------------- actions


def test_toggle_unlocks_and_keeps_key():
    ts = play(_layout(), TO_DOOR + [TOG])
    assert door(ts[-2]) == (False, True)  # closed, locked
    assert door(ts[-1]) == (True, False)  # open, unlocked
    assert pocket(ts[-1]) == dk.KEY_ID  # navix would have consumed the key
    np.testing.assert_array_equal(np.asarray(ts[-1].observation[3, 6]), [5, 4, 0])


def test_toggle_without_key_does_nothing():
    ts = play(_layout(agent=(1, 2), agent_dir=0, key=(1, 1)), [TOG])
    assert door(ts[-1]) == (False, True)


def test_toggle_recloses_and_reopens_unlocked_door():
    ts = play(_layout(), TO_DOOR + [TOG, TOG, TOG])
    assert [door(t) for t in ts[-3:]] == [(True, False), (False, False), (True, False)]
    # the observation shows the door state: open 0, closed 1
    assert [int(t.observation[3, 5, 2]) for t in ts[-3:]] == [0, 1, 0]


def test_drop_only_onto_empty_floor():
    # carrying the key, facing the open door: no-op; facing a wall: no-op; empty floor: drops
    ts = play(_layout(), TO_DOOR + [TOG, DROP, L, L, DROP, L, DROP])
    assert pocket(ts[len(TO_DOOR) + 2]) == dk.KEY_ID  # facing the open door
    assert pocket(ts[-3]) == dk.KEY_ID  # facing west: the outer wall
    assert pocket(ts[-1]) == -1  # facing south: (1, 3) empty floor
    key_pos = np.asarray(ts[-1].state.entities["key"].position[0])
    assert key_pos.tolist() == [3, 1]  # (row, col)


def test_drop_facing_goal_is_a_noop_not_a_win():
    # through the door to (3, 2) facing south: the goal (3, 3) is in front; drop must not end it
    actions = TO_DOOR + [TOG, F, F, R, DROP]
    ts = play(_layout(), actions)
    assert not bool(ts[-1].terminated) and float(ts[-1].reward) == 0.0
    assert pocket(ts[-1]) == dk.KEY_ID


def test_pickup_needs_empty_hands_and_a_key_in_front():
    ts = play(_layout(), [PICK, PICK, F, R, PICK])
    assert pocket(ts[1]) == dk.KEY_ID
    assert pocket(ts[-1]) == dk.KEY_ID  # facing the door: nothing to pick
    ts = play(_layout(agent_dir=0), [PICK])  # facing the wall
    assert pocket(ts[-1]) == -1


def test_done_is_a_noop():
    ts = play(_layout(), [DONE, DONE])
    a, b = ts[0].state, ts[-1].state
    for x, y in zip(jax.tree.leaves(a.entities), jax.tree.leaves(b.entities), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert int(ts[-1].t) == 2


@pytest.mark.parametrize("action", [-1, 7, 100])
def test_out_of_range_action_acts_as_done(action):
    env = make_doorkey(5)
    ts0 = env.reset_to(_layout())
    ts1 = jax.jit(env.step)(ts0, jnp.int32(action))
    ref = jax.jit(env.step)(ts0, jnp.int32(DONE))
    np.testing.assert_array_equal(np.asarray(ts1.observation), np.asarray(ref.observation))
    assert int(ts1.t) == 1
    for x, y in zip(
        jax.tree.leaves(ts1.state.entities), jax.tree.leaves(ref.state.entities), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ---------------------------------------------------------------- observation


def test_observation_orientation_minigrid_x_y():
    # 8x8, agent at (1, 1) facing east; the key two cells ahead at (3, 1)... wall at x=4
    layout = _layout(size=8, wall_x=4, door_y=3, agent=(1, 1), agent_dir=0, key=(3, 1))
    ts = play(layout, [])[0]
    obs = np.asarray(ts.observation)
    assert obs.shape == (7, 7, 3) and obs.dtype == np.uint8
    np.testing.assert_array_equal(obs[3, 6], [1, 0, 0])  # the agent's own cell, empty-handed
    np.testing.assert_array_equal(obs[3, 4], [5, 4, 0])  # key: 2 ahead -> view y = 4
    np.testing.assert_array_equal(obs[3, 3], [2, 5, 0])  # 3 ahead: the splitting wall
    np.testing.assert_array_equal(obs[2, 6], [2, 5, 0])  # to the left (north): the outer wall


def test_occlusion_hides_cells_behind_walls_and_closed_doors():
    # 8x8, agent at (3, 3) facing east toward the door at (4, 3)
    layout = _layout(size=8, wall_x=4, door_y=3, agent=(3, 3), agent_dir=0, key=(1, 1))
    ts = play(layout, [])[0]
    obs = np.asarray(ts.observation)
    np.testing.assert_array_equal(obs[3, 5], [4, 4, 2])  # the locked door right ahead
    assert (obs[:, :5] == 0).all()  # everything beyond the wall column is unseen
    # stock navix symbolic_first_person shows them: MiniGrid (and we) do not
    assert (obs[:, 5:, 0] != 0).all()


def test_open_door_reveals_the_other_room():
    layout = _layout(size=8, wall_x=4, door_y=3, agent=(3, 4), agent_dir=3, key=(3, 3))
    ts = play(layout, [PICK, F, R, TOG])
    before, after = np.asarray(ts[-2].observation), np.asarray(ts[-1].observation)
    assert (before[:, :5] == 0).all()
    assert (after[3, 2:5, 0] != 0).all()  # the line of sight through the open door
    np.testing.assert_array_equal(after[3, 5], [4, 4, 0])


def test_carried_key_drawn_in_agent_cell():
    ts = play(_layout(), [PICK])
    np.testing.assert_array_equal(np.asarray(ts[0].observation[3, 6]), [1, 0, 0])
    np.testing.assert_array_equal(np.asarray(ts[1].observation[3, 6]), [5, 4, 0])


def test_out_of_map_cells_encode_as_walls():
    env = make_doorkey(5)
    state = env.reset_to(_layout()).state
    gx = jnp.asarray([-3, -1, 0, 2, 5, 9])
    gy = jnp.asarray([1, 1, -2, 7, 2, 9])
    obj, colour, st, see_behind = dk._cell_codes(state, gx, gy)
    assert (np.asarray(obj) == 2).all() and (np.asarray(colour) == 5).all()
    assert not np.asarray(see_behind).any()


def test_visibility_table_matches_process_vis():
    """The per-row lookup table reproduces minigrid's Grid.process_vis on random 7x7 views."""
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import Wall

    rng = np.random.default_rng(0)
    vis = jax.jit(dk._visibility)
    for _ in range(300):
        sb = rng.random((7, 7)) < rng.uniform(0.3, 0.95)
        grid = Grid(7, 7)
        for x in range(7):
            for y in range(7):
                if not sb[x, y]:
                    grid.set(x, y, Wall())
        expected = grid.process_vis(agent_pos=(3, 6))
        np.testing.assert_array_equal(np.asarray(vis(jnp.asarray(sb))), expected)


# ---------------------------------------------------------------- autoreset


def _finish_episode(env):
    step, full = _jit_step(env)
    ts = env.reset_to(_layout(), jax.random.key(7))
    for a in _reach_goal_actions_5x5():
        ts = full(ts, jnp.int32(a))
    return ts, full


def test_next_step_autoreset_emits_one_dummy_transition():
    env = make_doorkey(5)
    done_ts, full = _finish_episode(env)
    assert bool(done_ts.terminated)
    nxt = full(done_ts, jnp.int32(F))  # the action is ignored
    nxt2 = full(done_ts, jnp.int32(L))
    assert int(nxt.t) == 0 and float(nxt.reward) == 0.0
    assert not bool(nxt.terminated) and not bool(nxt.truncated)
    np.testing.assert_array_equal(np.asarray(nxt.observation), np.asarray(nxt2.observation))
    # the new episode's start is a valid MiniGrid layout
    layout_of(nxt).validate()


def test_same_step_autoreset_has_no_dummy_transition():
    env = make_doorkey(5, autoreset="same_step")
    done_ts, full = _finish_episode(env)
    # the terminal step itself reports the reward and flag, with the next episode's first obs
    assert bool(done_ts.terminated) and float(done_ts.reward) > 0
    assert int(done_ts.t) == 0
    layout_of(done_ts).validate()
    nxt = full(done_ts, jnp.int32(DONE))
    assert int(nxt.t) == 1  # the following step is a real step of the new episode


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("size", [4, 0, -3, 8.0, "8", True, None])
def test_bad_size_raises(size):
    with pytest.raises(ValueError, match="size"):
        make_doorkey(size)


def test_bad_autoreset_raises():
    with pytest.raises(ValueError, match="autoreset"):
        make_doorkey(8, autoreset="never")


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"wall_x": 1}, "wall_x"),
        ({"door_y": 3}, "door_y"),  # the last interior row of 5x5
        ({"agent": (2, 2)}, "agent_x"),  # on the wall column
        ({"key": (1, 3)}, "key_x"),  # on the agent
        ({"agent_dir": 4}, "agent_dir"),
    ],
)
def test_bad_layout_raises(changes, field):
    kwargs = dict(size=5, wall_x=2, door_y=2, agent=(1, 3), agent_dir=3, key=(1, 2))
    kwargs.update(changes)
    with pytest.raises(ValueError, match=field):
        make_doorkey(5).reset_to(_layout(**kwargs))


def test_layout_size_mismatch_raises():
    with pytest.raises(ValueError, match="size"):
        make_doorkey(8).reset_to(_layout(size=5))


# ---------------------------------------------------------------- episode statistics


def test_episode_stats_hand_computed():
    s = EpisodeStats.create(num_envs=2, window=3)
    assert np.isnan(float(s.avg_return))
    # env 0: rewards 0, 0.5 done -> return 0.5 length 2; then dummy step; then 1.0 done (len 1)
    # env 1: 0.2 done at step 0 -> return 0.2 length 1; dummy; 0; 0 ...
    steps = [
        ([0.0, 0.2], [False, True]),
        ([0.5, 0.0], [True, False]),  # env1 dummy step (reward ignored)
        ([0.0, 0.0], [False, False]),  # env0 dummy step
        ([1.0, 0.3], [True, True]),
    ]
    for r, d in steps:
        s = s.update(jnp.asarray(r), jnp.asarray(d))
    assert int(s.episodes) == 4
    # returns in order: 0.2, 0.5, then step 3: env0 1.0 (len 1), env1 0.3 (len 2)
    # window 3 keeps the last three: 0.5, 1.0, 0.3
    np.testing.assert_allclose(float(s.avg_return), (0.5 + 1.0 + 0.3) / 3, rtol=1e-6)
    np.testing.assert_allclose(float(s.avg_length), (2 + 1 + 2) / 3, rtol=1e-6)


def test_episode_stats_more_episodes_than_window_in_one_step():
    s = EpisodeStats.create(num_envs=150, window=100)
    r = jnp.arange(150, dtype=jnp.float32)
    s = s.update(r, jnp.ones(150, bool))
    assert int(s.episodes) == 150
    np.testing.assert_allclose(float(s.avg_return), np.mean(np.arange(50, 150)), rtol=1e-6)


def test_episode_stats_match_gymnasium_record_episode_statistics():
    """Against gymnasium's RecordEpisodeStatistics on the real vector env: same returns queue
    when both see the same rewards and dones."""
    import gymnasium as gym
    from gymnasium.wrappers.vector import RecordEpisodeStatistics
    from minigrid.wrappers import ImgObsWrapper

    venv = RecordEpisodeStatistics(
        gym.make_vec("MiniGrid-DoorKey-5x5-v0", num_envs=4, wrappers=[ImgObsWrapper]),
        buffer_length=100,
    )
    venv.reset(seed=3)
    rng = np.random.default_rng(0)
    s = EpisodeStats.create(num_envs=4)
    update = jax.jit(EpisodeStats.update)
    for _ in range(3000):
        _, r, term, trunc, _ = venv.step(rng.integers(0, 7, size=4))
        s = update(s, jnp.asarray(r, jnp.float32), jnp.asarray(term | trunc))
    assert len(venv.return_queue) > 10
    assert int(s.episodes) == venv.episode_count
    np.testing.assert_allclose(float(s.avg_return), np.mean(venv.return_queue), rtol=1e-5)
    np.testing.assert_allclose(float(s.avg_length), np.mean(venv.length_queue), rtol=1e-5)
