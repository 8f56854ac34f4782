"""The navix contract of the MiniGrid-faithful DoorKey: navix's `Timestep` interface on its
timesteps, navix's own `Environment` code and agents running on it, its spaces, and its ids in
navix's registry."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import navix as nx
import numpy as np
import pytest
from navix import observations as nx_observations
from navix.agents import PPO, ActorCritic, PPOHparams
from navix.agents.agent import derive_episodic_metrics
from navix.agents.models import Encoder
from navix.environments import registry as nx_registry

from curio_jax import navix_ids
from curio_jax.config import preset
from curio_jax.core.train import make_train
from curio_jax.envs import (
    ENV_IDS,
    NAVIX_IDS,
    DoorKey,
    DoorKeyLayout,
    DoorKeyTimestep,
    layout_of,
    make,
    make_doorkey,
    register,
)
from curio_jax.envs import registration as reg

ROOT = Path(__file__).resolve().parents[2]
L, R, F, PICK, DROP, TOG, DONE = range(7)
# From LAYOUT, these 8 actions pick up the key, open the door and reach the goal.
SOLVE = (PICK, F, R, TOG, F, F, R, F)
LAYOUT = DoorKeyLayout(
    size=5, wall_x=2, door_y=2, agent_x=1, agent_y=3, agent_dir=3, key_x=1, key_y=2
)


def _assert_same(a, b) -> None:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@functools.cache
def _stepper(size: int, mode: str, max_steps: int):
    env = make_doorkey(size, mode).replace(max_steps=max_steps)
    return env, jax.jit(env.step)


def _trajectory(mode: str, max_steps: int = 12):
    """Episode 1 solves LAYOUT in 8 steps (termination); the next episode (autoreset layout)
    plays `done` until the horizon (truncation); then 3 more steps. Returns (env, timesteps
    with the first = reset, actions)."""
    env, step = _stepper(5, mode, max_steps)
    actions = list(SOLVE) + [DONE] * (max_steps + 1 + (mode == "next_step")) + [DONE] * 3
    out = [env.reset_to(LAYOUT, jax.random.key(7))]
    for a in actions:
        out.append(step(out[-1], jnp.int32(a)))
    return env, out, actions


def _assert_predicates(ts) -> None:
    term, trunc = np.asarray(ts.terminated), np.asarray(ts.truncated)
    want = np.where(term, 2, np.where(trunc, 1, 0))
    assert ts.step_type.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(ts.step_type), want)
    assert (np.asarray(ts.step_type) == np.asarray(nx.StepType.TERMINATION)).tolist() == (
        term.tolist()
    )
    np.testing.assert_array_equal(np.asarray(ts.is_termination()), term)
    np.testing.assert_array_equal(np.asarray(ts.is_truncation()), trunc & ~term)
    np.testing.assert_array_equal(np.asarray(ts.is_done()), term | trunc)
    np.testing.assert_array_equal(np.asarray(ts.is_done()), np.asarray(ts.done))
    np.testing.assert_array_equal(np.asarray(ts.is_transition()), ~(term | trunc))
    np.testing.assert_array_equal(np.asarray(ts.is_start()), np.asarray(ts.t) == 0)


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_timestep_interface_follows_the_flags(mode):
    env, traj, actions = _trajectory(mode)
    kinds = [int(ts.step_type) for ts in traj]
    assert kinds.count(2) == 1 and kinds.count(1) == 1  # one termination, one truncation
    episode_return = 0.0
    for i, ts in enumerate(traj):
        _assert_predicates(ts)
        # info["return"]: navix's undiscounted return of the episode so far. A new episode
        # starts at a reset timestep (next_step) or right after the done step (same_step).
        new_episode = i == 0 or (ts.is_start() if mode == "next_step" else traj[i - 1].is_done())
        episode_return = (0.0 if new_episode else episode_return) + float(ts.reward)
        assert set(ts.info) == {"return"}
        assert float(ts.info["return"]) == pytest.approx(episode_return)
        if mode == "next_step" and i > 0 and traj[i - 1].is_done():
            # the step after a done ignores its action and is the next episode's first step
            assert int(ts.t) == 0 and ts.is_start() and int(ts.step_type) == 0
            assert float(ts.reward) == 0.0 and int(ts.action) == -1
            step = _stepper(5, mode, env.max_steps)[1]
            _assert_same(step(traj[i - 1], jnp.int32(F)), ts)
            _assert_same(step(traj[i - 1], jnp.int32(TOG)), ts)
        if mode == "same_step" and ts.is_done():
            # the done step already shows the next episode's start state
            assert int(ts.t) == 0 and ts.is_start()
            layout_of(ts).validate()
    solved = traj[len(SOLVE)]
    assert solved.is_termination()
    assert float(solved.info["return"]) == pytest.approx(1 - 0.9 * len(SOLVE) / env.max_steps)


def test_goal_at_the_horizon_is_a_termination():
    """Both flags set: navix's precedence makes it a TERMINATION, not a TRUNCATION."""
    env, step = _stepper(5, "next_step", len(SOLVE))
    ts = env.reset_to(LAYOUT)
    prev = ts
    for a in SOLVE:
        prev, ts = ts, step(ts, jnp.int32(a))
    assert bool(ts.terminated) and bool(ts.truncated)
    assert int(ts.step_type) == int(nx.StepType.TERMINATION)
    assert ts.is_termination() and not ts.is_truncation() and ts.is_done()
    # navix's own Environment.termination agrees
    kind = env.termination(prev.state, jnp.int32(SOLVE[-1]), ts.state, ts.t)
    assert int(kind) == int(ts.step_type)


def test_navix_environment_step_agrees_with_doorkey_step():
    """navix's generic `Environment.step` (deferred autoreset driven by `step_type`, reset via
    `env.reset(state.key)`, transition via `env._step`) reproduces DoorKey's next-step
    autoreset exactly, and navix's `Environment.termination` its step types."""
    env, traj, actions = _trajectory("next_step")
    navix_step = jax.jit(functools.partial(nx.Environment.step, env))
    termination = jax.jit(env.termination)
    for prev, ts, a in zip(traj[:-1], traj[1:], actions, strict=True):
        _assert_same(navix_step(prev, jnp.int32(a)), ts)
        if not prev.is_done():
            kind = termination(prev.state, jnp.int32(a), ts.state, ts.t)
            assert int(kind) == int(ts.step_type)


def test_navix_environment_reset_gives_a_start_timestep():
    env = make_doorkey(6)
    for seed in range(3):
        ts = nx.Environment.reset(env, jax.random.key(seed))
        assert isinstance(ts, DoorKeyTimestep)
        assert ts.is_start() and ts.is_transition() and not ts.is_done()
        assert float(ts.info["return"]) == 0.0
        layout_of(ts).validate()


def test_timestep_stores_only_its_own_fields():
    """step_type and info are derived: a timestep's pytree (and so every checkpointed training
    state holding one) is what it was before the navix interface was added."""
    names = [f.name for f in dataclasses.fields(DoorKeyTimestep)]
    assert names == ["t", "observation", "action", "reward", "terminated", "truncated", "state"]
    ts = make_doorkey(5, rgb_cache=False).reset(jax.random.key(0))
    assert ts.state.cache.patches.shape == (0,)  # the training pipeline's empty cache
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(ts)[0]]
    assert not any("step_type" in p or "info" in p for p in paths)


def test_batched_timesteps():
    env = make_doorkey(5)
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 4))
    ts = jax.jit(jax.vmap(env.step))(ts, jnp.asarray([L, R, F, DONE], jnp.int32))
    assert ts.step_type.shape == (4,) and ts.is_done().shape == (4,)
    assert ts.info["return"].shape == (4,)
    _assert_predicates(ts)


def test_disable_autoreset_steps_past_the_end():
    env = make_doorkey(5).replace(disable_autoreset=True)
    ts = env.reset_to(LAYOUT)
    for a in SOLVE:
        ts = env.step(ts, jnp.int32(a))
    assert ts.is_termination()
    after = env.step(ts, jnp.int32(L))
    assert int(after.t) == len(SOLVE) + 1 and int(after.action) == L  # no reset
    _assert_same(after.state.entities["player"].position, ts.state.entities["player"].position)


def test_spaces_describe_what_the_env_produces():
    env = make_doorkey(5)
    key = jax.random.key(0)
    ts = env.reset(key)
    obs_space, act_space, rew_space = env.observation_space, env.action_space, env.reward_space
    sample = obs_space.sample(key)
    assert sample.shape == ts.observation.shape == (7, 7, 3)
    assert sample.dtype == ts.observation.dtype == jnp.uint8
    assert int(obs_space.minimum) <= int(ts.observation.min())
    assert int(ts.observation.max()) <= int(obs_space.maximum)
    assert int(act_space.n) == len(env.action_set) == env.num_actions == 7
    actions = jax.vmap(act_space.sample)(jax.random.split(key, 200))
    assert actions.dtype == jnp.int32 and actions.shape == (200,)
    assert set(np.unique(np.asarray(actions)).tolist()) == set(range(7))
    stepped = jax.jit(jax.vmap(env.step, in_axes=(None, 0)))(ts, actions)  # valid actions
    assert stepped.action.tolist() == actions.tolist()
    r = rew_space.sample(key)
    assert r.shape == ts.reward.shape == () and r.dtype == ts.reward.dtype == jnp.float32
    _, traj, _ = _trajectory("next_step")
    rewards = np.asarray([float(t.reward) for t in traj])
    assert rewards.max() > 0
    lo, hi = float(rew_space.minimum), float(rew_space.maximum)
    assert ((rewards >= lo) & (rewards <= hi)).all()


def test_rgb_cache_enables_navix_rendering_and_changes_nothing_else():
    plain, cached = make_doorkey(5, rgb_cache=False), make_doorkey(5)
    assert cached.rgb_cache and not plain.rgb_cache  # filled by default, as in navix
    a, b = plain.reset_to(LAYOUT), cached.reset_to(LAYOUT)
    step_a, step_b, rgb = jax.jit(plain.step), jax.jit(cached.step), jax.jit(nx_observations.rgb)
    frames = [rgb(b.state)]
    for act in SOLVE:
        a, b = step_a(a, jnp.int32(act)), step_b(b, jnp.int32(act))
        _assert_same(a.replace(state=a.state.replace(cache=b.state.cache)), b)
        frames.append(rgb(b.state))
    assert frames[0].shape == (5 * 8, 5 * 8, 3) and frames[0].dtype == jnp.uint8
    assert not np.array_equal(np.asarray(frames[0]), np.asarray(frames[1]))  # key picked up
    with pytest.raises(ValueError, match="rgb_cache must be a bool"):
        make_doorkey(5, rgb_cache=1)


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("size", [5, 6, 8, 16])
def test_navix_make_builds_the_doorkey(size):
    name = f"curio_jax/MiniGrid-DoorKey-{size}x{size}-v0"
    assert name in NAVIX_IDS and name in nx.registry()
    env = nx.make(name)
    assert isinstance(env, DoorKey) and isinstance(env, nx.Environment)
    assert env.size == size and env.max_steps == 10 * size * size
    assert env.autoreset_mode == "next_step" and env.rgb_cache
    key = jax.random.key(size)
    want = make_doorkey(size).reset(key)
    got = env.reset(key)
    _assert_same(got.observation, want.observation)
    _assert_same(layout_of(got), layout_of(want))
    # curio_jax's own by-name builder is the same env
    assert make(f"MiniGrid-DoorKey-{size}x{size}-v0") == env == make(name)


def test_by_name_keywords_and_errors():
    env = nx.make(NAVIX_IDS[0], autoreset="same_step", gamma=0.9, rgb_cache=False)
    assert env.autoreset_mode == "same_step" and env.gamma == 0.9 and not env.rgb_cache
    assert make(ENV_IDS[0], disable_autoreset=True).disable_autoreset
    with pytest.raises(TypeError, match="observation_fn"):
        nx.make(NAVIX_IDS[1], observation_fn=nx_observations.rgb)
    with pytest.raises(ValueError, match="autoreset must be"):
        make(ENV_IDS[0], autoreset="never")
    with pytest.raises(ValueError, match="gamma must be"):
        make(ENV_IDS[0], gamma=1.5)
    with pytest.raises(ValueError, match="unknown DoorKey id 'MiniGrid-DoorKey-7x7-v0'"):
        make("MiniGrid-DoorKey-7x7-v0")
    with pytest.raises(ValueError, match="did you mean"):
        make("MiniGrid-DoorKey-8x8-v1")


def test_registration_leaves_navix_ids_alone_and_refuses_to_clobber(monkeypatch):
    assert type(nx.make("Navix-DoorKey-8x8-v0")).__module__ == "navix.environments.door_key"
    assert not any(n.startswith("Navix-") or n.startswith("MiniGrid-") for n in NAVIX_IDS)
    before = dict(nx.registry())
    register()  # idempotent
    assert nx.registry().keys() == before.keys()
    table = dict(nx_registry.registry())
    ours = table[NAVIX_IDS[0]]
    table[NAVIX_IDS[2]] = lambda **kw: None  # someone else's env under one of our ids
    monkeypatch.setattr(nx_registry, "_ENVS_REGISTRY", table)
    with pytest.raises(RuntimeError, match="will not overwrite"):
        reg.register()
    assert table[NAVIX_IDS[0]] is ours  # nothing was (re)registered


# --------------------------------------------------------------------------- navix's PPO


class _FlatEncoder(Encoder):
    """A small stateless encoder for the 7x7x3 image (navix's MLPEncoder expects flat input)."""

    @nn.compact
    def __call__(self, carry, x, is_first):
        return carry, nn.tanh(nn.Dense(16)(jnp.ravel(x).astype(jnp.float32) / 10.0))


def _train_navix_ppo(env, horizon=20, num_envs=4, num_steps=32):
    """Two updates of navix's own PPO on `env` with a `horizon`-step horizon: (train state,
    logs). PPO reads `is_start`, `is_done`, `info["return"]`, `t`, `gamma` and the spaces, and
    minibatches every leaf of the stored env states (a zero-size one breaks it)."""
    env = env.replace(max_steps=horizon)
    hp = PPOHparams(
        budget=2 * num_envs * num_steps, num_envs=num_envs, num_steps=num_steps, num_minibatches=2
    )
    network = ActorCritic(
        action_dim=len(env.action_set), actor_encoder=_FlatEncoder(), critic_encoder=_FlatEncoder()
    )
    agent = PPO(hparams=hp, env=env, network=network)
    return jax.jit(agent.train)(jax.random.key(0))


def test_navix_ppo_trains_on_the_registered_env():
    """navix's PPO on `navix.make("curio_jax/MiniGrid-DoorKey-5x5-v0")`: its per-step logs must
    show navix's deferred autoreset: a done at t 19 -> 20 (a truncation, or a success), then
    the reset step (t 20 in, reward 0, not done), then t 0."""
    horizon, num_envs = 20, 4
    train_state, logs = _train_navix_ppo(nx.make(NAVIX_IDS[0]), horizon, num_envs)
    assert isinstance(train_state.env_state, DoorKeyTimestep)
    assert train_state.env_state.t.shape == (num_envs,)
    done = np.asarray(logs["agent/train/done_mask"]).reshape(-1, num_envs)  # [2 * 32, N]
    t_in = np.asarray(logs["agent/train/lengths"]).reshape(-1, num_envs)  # t before the step
    ret = np.asarray(logs["agent/train/returns"]).reshape(-1, num_envs)
    assert done.sum() >= 2 * num_envs
    for e in range(num_envs):
        np.testing.assert_array_equal(ret[~done[:, e], e], 0.0)
        for i in np.flatnonzero(done[:, e]):
            success = ret[i, e] > 0
            assert success or t_in[i, e] == horizon - 1
            if i + 1 < len(done):
                assert not done[i + 1, e] and ret[i + 1, e] == 0.0
                assert t_in[i + 1, e] == t_in[i, e] + 1
            if i + 2 < len(done):
                assert t_in[i + 2, e] == 0
    metrics = derive_episodic_metrics(logs)
    assert np.all(np.isfinite(np.asarray(metrics["agent/episode/length"])))
    assert np.isfinite(np.asarray(logs["agent/diagnostics/total_loss"])).all()


def test_navix_ppo_trains_on_make_doorkey_as_it_is():
    """The README's constructor with no keywords is what navix's agents need: a filled
    rendering cache (an empty one made PPO's minibatching fail: integer modulo by zero)."""
    env = make_doorkey(5)
    assert env.rgb_cache
    train_state, logs = _train_navix_ppo(env)
    assert train_state.env_state.state.cache.patches.shape == (4, 5 * 5 + 1, 8, 8, 3)
    assert np.asarray(logs["agent/train/done_mask"]).sum() >= 4
    assert np.isfinite(np.asarray(logs["agent/diagnostics/total_loss"])).all()


# A fresh interpreter, so that nothing but `import curio_jax` (not curio_jax.envs, which the
# test session has imported) can have registered the ids.
_BARE_IMPORT = """
import sys

import curio_jax

heavy = [m for m in ("jax", "navix", "curio_jax.envs") if m in sys.modules]
assert not heavy, f"import curio_jax imported {heavy}"

import flax.linen as nn
import jax
import jax.numpy as jnp
import navix as nx
import numpy as np
from navix.agents import PPO, ActorCritic, PPOHparams
from navix.agents.models import Encoder

NAME = "curio_jax/MiniGrid-DoorKey-5x5-v0"
assert NAME in nx.registry() and "curio_jax.envs" not in sys.modules
env = nx.make(NAME).replace(max_steps=20)
assert type(env).__module__ == "curio_jax.envs.doorkey" and env.rgb_cache
assert type(nx.registry()[NAME]).__name__ == "_NavixConstructor"  # the lazy one, replaced


class FlatEncoder(Encoder):
    @nn.compact
    def __call__(self, carry, x, is_first):
        return carry, nn.tanh(nn.Dense(16)(jnp.ravel(x).astype(jnp.float32) / 10.0))


hp = PPOHparams(budget=2 * 4 * 32, num_envs=4, num_steps=32, num_minibatches=2)
net = ActorCritic(action_dim=7, actor_encoder=FlatEncoder(), critic_encoder=FlatEncoder())
_, logs = jax.jit(PPO(hparams=hp, env=env, network=net).train)(jax.random.key(0))
assert np.asarray(logs["agent/train/done_mask"]).sum() >= 4
assert np.isfinite(np.asarray(logs["agent/diagnostics/total_loss"])).all()
print("ok")
"""

_NAVIX_FIRST = """
import navix as nx
import curio_jax

NAME = "curio_jax/MiniGrid-DoorKey-8x8-v0"
assert type(nx.registry()[NAME]).__name__ == "LazyConstructor"
env = nx.make(NAME, autoreset="same_step")
assert env.size == 8 and env.autoreset_mode == "same_step"
print("ok")
"""


def _fresh_python(code: str) -> None:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


def test_navix_ppo_trains_on_the_id_after_a_bare_import_curio_jax():
    """`import curio_jax` alone (no JAX, no navix imported) registers the ids: navix.make of
    one, then navix's PPO on it, in a fresh interpreter."""
    _fresh_python(_BARE_IMPORT)


def test_import_curio_jax_after_navix_registers_the_ids():
    _fresh_python(_NAVIX_FIRST)


def test_registration_accepts_the_lazy_constructors(monkeypatch):
    """The lazy entries of `curio_jax.navix_ids` build the same env, `register` replaces them,
    and adding the lazy entries again leaves the full ones alone."""
    table = {k: v for k, v in nx_registry.registry().items() if k not in NAVIX_IDS}
    monkeypatch.setattr(nx_registry, "_ENVS_REGISTRY", table)
    navix_ids.register_lazily(nx_registry)
    assert all(table[n] == navix_ids.LazyConstructor(n) for n in NAVIX_IDS)
    env = nx.make(NAVIX_IDS[1], gamma=0.9)
    assert env == make(NAVIX_IDS[1], gamma=0.9) and env.size == 6 and env.gamma == 0.9
    register()
    full = {n: table[n] for n in NAVIX_IDS}
    assert all(type(c) is reg._NavixConstructor for c in full.values())
    navix_ids.register_lazily(nx_registry)
    assert {n: table[n] for n in NAVIX_IDS} == full


# --------------------------------------------------------------------------- training pipeline


@pytest.mark.parametrize("given", [False, True])
def test_the_training_state_has_no_rendering_cache(given):
    """make_train builds its env without navix's cache (and drops it from a DoorKey it is
    given): the training state, its checkpoints and the programs stay as they were."""
    cfg = preset("ppo-rnd-5x5").with_overrides(
        {"train.num_envs": 4, "train.rollout_size": 4, "total_frames": 16}
    )
    train = make_train(cfg, make_doorkey(5) if given else None)
    assert not train.env.rgb_cache
    state = jax.eval_shape(train.init, jax.random.key(0))
    assert state.timestep.state.cache.patches.shape == (4, 0)
