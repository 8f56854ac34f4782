"""curio_jax.gym: the gymnasium VectorEnv backed by the JAX DoorKey.

Lockstep against MiniGrid's own `gym.make_vec(..., "sync", wrappers=[ImgObsWrapper])`: the
MiniGrid side is the genuine sync vector env, with one extra wrapper that, on every reset of a
sub-env (the first one and each autoreset), replaces MiniGrid's freshly drawn layout by the one
curio_jax drew for the same env and episode (layouts come from different PRNGs). Both get the
same actions; observations, rewards (float64), terminations, truncations, infos and their
dtypes must be equal on every step, autoreset steps included. Policies: epsilon-greedy DoorKey
solvers (goals, hence rewards and autoresets) and uniform random actions (truncations: 250
steps at size 5).

Compilation dominates the run time, so every test reuses one (size, num_envs) shape per size.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("minigrid")

import jax  # noqa: E402
from gymnasium.wrappers.vector import RecordEpisodeStatistics  # noqa: E402
from minigrid.wrappers import ImgObsWrapper  # noqa: E402

import curio_jax.gym as cjgym  # noqa: E402
from curio_jax.envs import DoorKeyLayout, layout_of, make_doorkey  # noqa: E402
from curio_jax.envs.minigrid_bridge import apply_layout  # noqa: E402
from curio_jax.reference.crosscheck import FORWARD, PICKUP, TOGGLE, plan_to_face  # noqa: E402

NUM_ENVS = {5: 16, 8: 8, 16: 8}  # one compiled shape per size
# vector steps per size. Default suite: 16*400 + 8*150 = 7,600 env steps; `-m slow`:
# 16*700 + 8*250 + 8*250 = 15,200 env steps over the three sizes
STEPS = {5: 400, 8: 150}
STEPS_LONG = {5: 700, 8: 250, 16: 250}
FIELDS = ("wall_x", "door_y", "agent_x", "agent_y", "agent_dir", "key_x", "key_y")


# --------------------------------------------------------------------------- helpers


class InjectLayout(gym.Wrapper):
    """On reset, MiniGrid draws its layout as usual, then the next queued curio_jax layout
    replaces it (the returned observation is MiniGrid's own rendering of that layout)."""

    def __init__(self, env):
        super().__init__(env)
        self.queue: list[DoorKeyLayout] = []

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        return apply_layout(self.env, self.queue.pop(0)), info


def layouts(env, which) -> list[tuple[int, DoorKeyLayout]]:
    """(i, layout) of the curio_jax envs `which` (bool mask), just after their reset."""
    batch = jax.device_get(layout_of(env.timestep))
    return [
        (i, DoorKeyLayout(size=env.size, **{f: int(getattr(batch, f)[i]) for f in FIELDS}))
        for i in np.flatnonzero(which)
    ]


def minigrid_vec(size: int, n: int):
    return gym.make_vec(
        f"MiniGrid-DoorKey-{size}x{size}-v0",
        num_envs=n,
        vectorization_mode="sync",
        wrappers=[ImgObsWrapper, InjectLayout],
    )


def _find(u, kind: str):
    for i, cell in enumerate(u.grid.grid):
        if cell is not None and cell.type == kind:
            return (i % u.width, i // u.width), cell
    return None, None


def solver_action(u, rng: np.random.Generator, eps: float) -> int:
    """Epsilon-greedy DoorKey solution from MiniGrid's state: fetch the key, open the door,
    walk to the goal (random action with probability eps, or when no plan exists)."""
    if rng.random() < eps:
        return int(rng.integers(7))
    try:
        if u.carrying is None:
            key, _ = _find(u, "key")
            if key is not None:
                plan = plan_to_face(u, key)
                return plan[0] if plan else PICKUP
        door, cell = _find(u, "door")
        if not cell.is_open:
            plan = plan_to_face(u, door)
            return plan[0] if plan else TOGGLE
        plan = plan_to_face(u, (u.width - 2, u.height - 2))
        return plan[0] if plan else FORWARD
    except RuntimeError:
        return int(rng.integers(7))


def policy(mg, rng: np.random.Generator) -> np.ndarray:
    """Envs 0, 2, 4, ... solve (eps 0.2), the odd ones act at random."""
    return np.array(
        [
            solver_action(e.unwrapped, rng, 0.2) if i % 2 == 0 else int(rng.integers(7))
            for i, e in enumerate(mg.envs)
        ],
        dtype=np.int64,
    )


def assert_same(mine, theirs, what: str):
    assert len(mine) == len(theirs), what
    for name, a, b in zip(("obs", "reward", "terminated", "truncated"), mine, theirs, strict=False):
        assert a.dtype == b.dtype and a.shape == b.shape, (what, name, a.dtype, b.dtype)
        if not np.array_equal(a, b):
            rows = np.flatnonzero(np.any((a != b).reshape(len(a), -1), axis=1))
            raise AssertionError(f"{what}: {name} differs in envs {rows.tolist()}")


def run_lockstep(size: int, steps: int, seed: int, wrap=lambda env: env):
    """Play `steps` vector steps in both; returns (mine, theirs, counts)."""
    n = NUM_ENVS[size]
    mine = wrap(cjgym.make_vec(f"MiniGrid-DoorKey-{size}x{size}-v0", num_envs=n))
    theirs = wrap(minigrid_vec(size, n))
    inject = theirs.unwrapped.envs
    obs, info = mine.reset(seed=seed)
    for i, lay in layouts(mine.unwrapped, np.ones(n, bool)):
        inject[i].queue.append(lay)
    obs2, info2 = theirs.reset(seed=seed)
    assert np.array_equal(obs, obs2) and obs.dtype == obs2.dtype and info == info2 == {}
    rng = np.random.default_rng(seed)
    counts = {"steps": 0, "terminated": 0, "truncated": 0, "autoresets": 0, "reward": 0.0}
    prev_done = np.zeros(n, bool)
    for t in range(steps):
        actions = policy(theirs.unwrapped, rng)
        out = mine.step(actions)
        for i, lay in layouts(mine.unwrapped, prev_done):  # envs that autoreset this step
            inject[i].queue.append(lay)
        out2 = theirs.step(actions)
        assert_same(out[:4], out2[:4], f"size {size} step {t}")
        assert set(out[4]) == set(out2[4]), (out[4], out2[4])
        counts["steps"] += n
        counts["autoresets"] += int(prev_done.sum())
        counts["terminated"] += int(out[2].sum())
        counts["truncated"] += int(out[3].sum())
        counts["reward"] += float(out[1].sum())
        prev_done = out[2] | out[3]
    assert all(not e.queue for e in inject)  # every injected layout was used
    return mine, theirs, counts


# --------------------------------------------------------------------------- lockstep


def check_lockstep(size: int, steps: int) -> None:
    mine, theirs, c = run_lockstep(size, steps, seed=size)
    mine.close()
    theirs.close()
    assert c["steps"] == NUM_ENVS[size] * steps
    assert c["terminated"] > 0 and c["reward"] > 0 and c["autoresets"] > 0
    if size == 5:
        assert c["truncated"] > 0, c  # random 5x5 episodes run into the 250-step horizon


@pytest.mark.parametrize("size", [5, 8])
def test_lockstep_with_minigrid_make_vec(size):
    check_lockstep(size, STEPS[size])


@pytest.mark.slow
@pytest.mark.parametrize("size", [5, 8, 16])
def test_lockstep_with_minigrid_make_vec_long(size):
    check_lockstep(size, STEPS_LONG[size])


def test_record_episode_statistics_same_as_minigrid():
    mine, theirs, c = run_lockstep(5, 300, seed=11, wrap=RecordEpisodeStatistics)
    assert c["truncated"] > 0 and c["terminated"] > 0
    assert mine.episode_count == theirs.episode_count > 0
    assert list(mine.return_queue) == list(theirs.return_queue)
    assert list(mine.length_queue) == list(theirs.length_queue)


# --------------------------------------------------------------------------- gymnasium API


def make5(**kw):
    return cjgym.make_vec("MiniGrid-DoorKey-5x5-v0", num_envs=NUM_ENVS[5], **kw)


def test_spaces_metadata_and_registration():
    env = make5()
    ref = minigrid_vec(5, NUM_ENVS[5])
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.single_observation_space == ref.single_observation_space
    assert env.single_action_space == ref.single_action_space
    assert env.observation_space == ref.observation_space
    assert env.action_space == ref.action_space
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert env.num_envs == NUM_ENVS[5] and env.render_mode is None
    assert env.spec.id == "curio_jax/MiniGrid-DoorKey-5x5-v0"
    ref.close()
    # through gymnasium's registry (all four MiniGrid sizes registered on import), and the
    # notebook's call with its wrappers argument as is
    via_gym = gym.make_vec("curio_jax/MiniGrid-DoorKey-5x5-v0", num_envs=NUM_ENVS[5])
    as_notebook = cjgym.make_vec(
        "MiniGrid-DoorKey-5x5-v0",
        num_envs=NUM_ENVS[5],
        vectorization_mode="sync",
        wrappers=[ImgObsWrapper],
    )
    for e in (via_gym, as_notebook):
        assert isinstance(e, cjgym.DoorKeyVectorEnv) and e.size == 5
        assert np.array_equal(e.reset(seed=3)[0], env.reset(seed=3)[0])
    assert all(f"curio_jax/MiniGrid-DoorKey-{s}x{s}-v0" in gym.registry for s in (5, 6, 8, 16))
    # sizes MiniGrid does not register are registered on demand
    assert cjgym.make_vec("MiniGrid-DoorKey-7x7-v0").size == 7
    assert "curio_jax/MiniGrid-DoorKey-7x7-v0" in gym.registry
    for e in (env, via_gym, as_notebook):
        e.close()
        assert e.closed


def test_seed_semantics():
    n = NUM_ENVS[5]
    env = make5()
    obs_a, _ = env.reset(seed=40)
    lay_a = layouts(env, np.ones(n, bool))
    # env i gets seed + i: the same as a list of seeds, and env i's first episode is
    # DoorKey.reset(jax.random.key(seed + i))
    obs_b, _ = env.reset(seed=[40 + i for i in range(n)])
    assert np.array_equal(obs_a, obs_b)
    reset = jax.jit(make_doorkey(5).reset)
    for i in (0, n - 1):
        assert np.array_equal(obs_a[i], np.asarray(reset(jax.random.key(40 + i)).observation))
    assert np.array_equal(env.reset(seed=41)[0][: n - 1], obs_a[1:])  # shifted by one
    # same seed, same episodes (actions and outcomes), also in a second instance
    twin = make5()
    rng = np.random.default_rng(0)
    out = [env.reset(seed=40)[0]], [twin.reset(seed=40)[0]]
    for _ in range(300):
        a = rng.integers(0, 7, n)
        out[0].append(env.step(a))
        out[1].append(twin.step(a))
    for x, y in zip(*out, strict=True):
        for u, v in zip(x, y, strict=False):
            assert np.array_equal(u, v) if isinstance(u, np.ndarray) else u == v
    # seed=None continues every env's stream: it starts the episode the env's next autoreset
    # would have started. Record each env's layout at its first autoreset (at size 5 random
    # episodes end within the 250-step horizon) ...
    env.reset(seed=40)
    seen: dict[int, DoorKeyLayout] = {}
    prev = np.zeros(n, bool)
    for _ in range(260):
        _, _, te, tr, _ = env.step(rng.integers(0, 7, n))
        for i, lay in layouts(env, prev & ~np.isin(np.arange(n), list(seen))):
            seen[int(i)] = lay  # the step after an episode's end is its autoreset
        prev = te | tr
    assert len(seen) == n
    # ... and compare with an unseeded reset right after the seeded one
    twin.reset(seed=40)
    twin.reset()
    second = [lay for _, lay in layouts(twin, np.ones(n, bool))]
    assert second == [seen[i] for i in range(n)]
    assert second != [lay for _, lay in lay_a]
    # an unseeded first reset draws random seeds; a partial reset touches only its envs
    obs_5 = env.reset(seed=5)[0]
    fresh = make5()
    obs_r, _ = fresh.reset()
    obs_r2, _ = fresh.reset(seed=[5] + [None] * (n - 1), options={"reset_mask": _mask(n, 0)})
    assert np.array_equal(obs_r2[1:], obs_r[1:]) and np.array_equal(obs_r2[0], obs_5[0])
    for e in (env, twin, fresh):
        e.close()


def _mask(n: int, *on: int) -> np.ndarray:
    m = np.zeros(n, bool)
    m[list(on)] = True
    return m


def test_bad_input_is_refused_clearly():
    n = NUM_ENVS[5]
    for bad_id in ("MiniGrid-DoorKey-8x6-v0", "MiniGrid-Empty-8x8-v0", "MiniGrid-DoorKey-4x4-v0"):
        with pytest.raises(ValueError, match="unknown environment id"):
            cjgym.make_vec(bad_id)
    for bad_n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
            cjgym.make_vec("MiniGrid-DoorKey-5x5-v0", num_envs=bad_n)
    with pytest.raises(ValueError, match="vectorization_mode"):
        cjgym.make_vec("MiniGrid-DoorKey-5x5-v0", vectorization_mode="async")
    with pytest.raises(ValueError, match="wrappers"):
        cjgym.make_vec("MiniGrid-DoorKey-5x5-v0", wrappers=[gym.wrappers.RecordEpisodeStatistics])
    with pytest.raises(ValueError, match="render_mode"):
        cjgym.make_vec("MiniGrid-DoorKey-5x5-v0", render_mode="human")
    env = make5()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(n, int))
    env.reset(seed=0)
    for bad, msg in (
        (np.zeros(n - 1, int), "shape"),
        (np.zeros((n, 1), int), "shape"),
        (0, "shape"),
        (np.full(n, 7), r"in \[0, 7\)"),
        (np.full(n, -1), r"in \[0, 7\)"),
        (np.full(n, 0.5), "integers"),
        (np.zeros(n, bool), "integers"),
        (["left"] * n, "integers"),
    ):
        with pytest.raises(ValueError, match=msg):
            env.step(bad)
    env.step(np.full(n, 2.0))  # integral floats are accepted, as MiniGrid accepts them
    env.step(list(range(7)) * 2 + [0, 1])
    for bad_seed, msg in ((-1, r"\[0, 2\*\*32\)"), (2**32 - 1, r"\[0, 2\*\*32\)"), ([1, 2], "one")):
        with pytest.raises(ValueError, match=msg):
            env.reset(seed=bad_seed)
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.zeros(n, bool)})
    env.close()
    with pytest.raises(gym.error.ClosedEnvironmentError):
        env.step(np.zeros(n, int))


def test_pickle_and_render():
    n = NUM_ENVS[5]
    env = make5(render_mode="rgb_array")
    env.reset(seed=2)
    a = np.arange(n) % 7
    env.step(a)
    copy = pickle.loads(pickle.dumps(env))
    for x, y in zip(env.step(a)[:4], copy.step(a)[:4], strict=True):
        assert np.array_equal(x, y)
    frames = env.render()
    assert len(frames) == n and frames[0].shape == (5 * 32, 5 * 32, 3)
    assert frames[0].dtype == np.uint8


# --------------------------------------------------------------------------- the reference


def test_reference_trainer_runs_on_it():
    torch = pytest.importorskip("torch")
    from curio_jax import config
    from curio_jax.reference import agents
    from curio_jax.reference.train import train_loop

    n = NUM_ENVS[5]
    env = agents.make_minigrid_env(5, n, backend="curio_jax")
    assert isinstance(env.unwrapped, cjgym.DoorKeyVectorEnv)
    cfg = config.preset("notebook-rnd-5x5").with_overrides({"train.num_envs": n})
    try:
        agents.init_random(env, 3)
        agent = agents.make_agent(cfg, env)
        result = train_loop(
            env,
            agent,
            rollout_size=8,
            log_every=1,
            solved_score=2.0,
            max_updates=2,
            log=None,
        )
    finally:
        env.close()
        torch.use_deterministic_algorithms(False)
    assert result.updates == 2 and result.frames == 2 * 8 * n
    assert [m["update"] for m in result.metrics] == [1, 2]
    with pytest.raises(ValueError, match="backend"):
        agents.make_minigrid_env(5, 2, backend="navix")


# --------------------------------------------------------------------------- benchmark


def test_bench_env_runs_it_beside_minigrid(monkeypatch):
    from curio_jax.tools import bench

    rec = bench.bench_gym_vector(5, NUM_ENVS[5], seconds=0.1)
    assert rec["impl"] == "curio_jax_gym_vector" and rec["steps_per_sec"] > 0
    # dispatch and the same-run ratio, with the timed functions faked
    monkeypatch.setattr(
        bench,
        "bench_gym_vector",
        lambda s, n: {**rec, "size": s, "num_envs": n, "steps_per_sec": 900.0},
    )
    monkeypatch.setattr(
        bench,
        "bench_minigrid",
        lambda s, n: {
            "impl": "minigrid",
            "size": s,
            "num_envs": n,
            "steps_per_sec": 300.0,
            "compile_seconds": 0.0,
        },
    )
    lines: list[str] = []
    recs = bench.bench_env(
        [8],
        [32, 256],
        impls=("curio_jax_gym_vector", "minigrid"),
        minigrid_envs=(32,),
        log=lines.append,
    )
    assert [(r["impl"], r["num_envs"]) for r in recs] == [
        ("curio_jax_gym_vector", 32),
        ("curio_jax_gym_vector", 256),
        ("minigrid", 32),
    ]
    assert recs[0]["over_minigrid"] == 3.0 and "over_minigrid" not in recs[1]
    assert any("3.0x" in line for line in lines)
