"""Rollout semantics and the jitted training run: determinism, vmapped seeds, chunking,
compile-once, metrics, validation; and (slow) learning on DoorKey-5x5.

Most tests use the tiny corridor of ``fake_env.py`` (cheap to compile); one uses the real env.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fake_env import Corridor
from helpers import assert_trees_equal, count_update_traces, tiny_program

from curio_jax.config import preset
from curio_jax.core.hparams import Hyperparams
from curio_jax.core.rollout import collect_rollout
from curio_jax.core.train import TrainOutput, make_train
from curio_jax.envs import EpisodeStats

NUM_ENVS, ROLLOUT, UPDATES = 4, 4, 6
TINY = {"train.num_envs": NUM_ENVS, "train.rollout_size": ROLLOUT, "total_frames": 16 * UPDATES}


def tiny(name: str, **extra):
    return preset(name).with_overrides({**TINY, **extra})


# --------------------------------------------------------------------------- rollout


def _right_policy(obs):
    b = obs.shape[0]
    logits = jnp.tile(jnp.array([-1e9, 0.0, -1e9]), (b, 1))
    return logits, jnp.zeros(b), jnp.ones(b)


def _rollout(env, policy, steps, key=0):
    ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 3))
    fn = jax.jit(
        lambda ts, stats, k: collect_rollout(
            env, policy, ts, stats, k, steps, autoreset=env.autoreset
        )
    )
    return fn(ts, EpisodeStats.create(3), jax.random.key(key))


def test_rollout_next_step_semantics():
    env = Corridor(length=3, max_steps=10)
    ts, stats, tr = _rollout(env, _right_policy, 7)
    assert tr.obs.shape == (7, 3, 7, 7, 3) and tr.obs.dtype == jnp.uint8
    pos = np.argmax(np.asarray(tr.obs[:, 0, :, 0, 0]), axis=-1)
    # right, right (goal), dummy reset step, right, right (goal), dummy, right
    np.testing.assert_array_equal(pos, [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(tr.reward[:, 0], [0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(tr.done[:, 0], [0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(tr.terminated, tr.done)
    np.testing.assert_array_equal(tr.is_reset[:, 0], [0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(tr.action[:, 0], np.ones(7))
    np.testing.assert_allclose(tr.logprob, 0.0, atol=1e-6)
    np.testing.assert_array_equal(tr.value_int, 1.0)
    np.testing.assert_array_equal(tr.next_obs[:-1], tr.obs[1:])
    np.testing.assert_array_equal(tr.next_obs[-1], ts.observation)
    assert int(stats.episodes) == 6 and float(stats.avg_return) == 1.0


def test_rollout_random_policy_invariants():
    env = Corridor(length=3, max_steps=3)

    def policy(obs):
        b = obs.shape[0]
        return jnp.tile(jnp.array([0.3, -0.2, 0.1]), (b, 1)), jnp.zeros(b), jnp.zeros(b)

    _, stats, tr = _rollout(env, policy, 40, key=3)
    done = np.asarray(tr.done)
    np.testing.assert_array_equal(done, np.asarray(tr.terminated | tr.truncated))
    assert np.asarray(tr.truncated).any() and np.asarray(tr.terminated).any()
    np.testing.assert_array_equal(np.asarray(tr.is_reset)[1:], done[:-1])
    assert not np.asarray(tr.is_reset)[0].any()
    assert np.all(np.asarray(tr.reward)[np.asarray(tr.is_reset)] == 0)
    logp = jax.nn.log_softmax(jnp.array([0.3, -0.2, 0.1]))
    np.testing.assert_allclose(tr.logprob, logp[tr.action], rtol=1e-6)
    counts = np.bincount(np.asarray(tr.action).ravel(), minlength=3) / tr.action.size
    np.testing.assert_allclose(counts, np.exp(logp), atol=0.12)
    assert int(stats.episodes) == done.sum()


def test_rollout_same_step_has_no_dummy_transition():
    env = Corridor(length=3, max_steps=10, autoreset="same_step")
    _, stats, tr = _rollout(env, _right_policy, 6)
    pos = np.argmax(np.asarray(tr.obs[:, 0, :, 0, 0]), axis=-1)
    np.testing.assert_array_equal(pos, [0, 1, 0, 1, 0, 1])
    assert not np.asarray(tr.is_reset).any()
    assert int(stats.episodes) == 9 and float(stats.avg_return) == 1.0


# --------------------------------------------------------------------------- training run


@pytest.fixture(scope="module")
def a2c():
    """A2C on the corridor (helpers.TINY_PROGRAMS; its determinism, vmap and chunking
    contract is in test_program_contract.py)."""
    train, run, updates = tiny_program("a2c")
    assert updates == UPDATES
    return train, run


def test_a2c_builds_no_rnd_nets(a2c):
    train, run = a2c
    assert train.bonus.kind == "none" and not train.bonus.intrinsic
    state, m = run(jax.random.key(0), Hyperparams.from_config(train.cfg))
    assert state.bonus is None and state.params.bonus is None
    assert state.reward_rms is None and state.reward_filter is None
    for name in ("loss_rnd", "loss_value_int", "reward_int_mean", "grad_norm_rnd"):
        np.testing.assert_array_equal(getattr(m, name), 0.0)


def test_metrics(a2c):
    train, run = a2c
    _, m = run(jax.random.key(3), Hyperparams.from_config(train.cfg))
    np.testing.assert_array_equal(m.frames, 16 * np.arange(1, UPDATES + 1))
    ep = np.asarray(m.episodes)
    assert np.all(np.diff(ep) >= 0) and ep[-1] > 0
    avg = np.asarray(m.avg_return_last100)
    np.testing.assert_array_equal(np.isnan(avg), ep == 0)
    assert np.all((avg[ep > 0] >= 0) & (avg[ep > 0] <= 1))
    for name in ("loss_total", "loss_policy", "loss_value_ext", "entropy", "grad_norm_ac"):
        assert np.all(np.isfinite(getattr(m, name))), name
    assert np.all(np.asarray(m.entropy) > 0) and np.all(np.asarray(m.grad_norm_ac) > 0)


def test_hyperparams_are_used(a2c):
    """lr = 0 leaves the parameters exactly as initialised; a sweep value really is traced."""
    train, run = a2c
    hp = Hyperparams.from_config(train.cfg).replace(lr=jnp.float32(0.0))
    state, _ = run(jax.random.key(5), hp)
    init = jax.jit(train.init)(jax.random.key(5), hp)
    assert_trees_equal(state.params, init.params)
    moved, _ = run(jax.random.key(5), Hyperparams.from_config(train.cfg))
    assert not np.array_equal(
        np.asarray(moved.params.ac["policy_out"]["bias"]),
        np.asarray(init.params.ac["policy_out"]["bias"]),
    )


@pytest.fixture(scope="module")
def rnd_paper_run():
    """Every correction switch on, on the corridor (truncations at 4 steps)."""
    cfg = tiny("rnd-paper-5x5", **{"bonus.obs_norm_init_steps": 3})
    train = make_train(cfg, env=Corridor(length=3, max_steps=4))
    jitted = jax.jit(lambda key: (train.init(key), train(key)))  # one compile for both
    return jitted, jitted(jax.random.key(0))


def test_rnd_paper_run(rnd_paper_run):
    jitted, (init, out) = rnd_paper_run
    assert isinstance(out, TrainOutput)
    assert_trees_equal(out, jitted(jax.random.key(0))[1])
    s, m = out.final_state, out.metrics
    assert_trees_equal(s.bonus.target_params, init.bonus.target_params)  # frozen
    n = NUM_ENVS * ROLLOUT
    # obs statistics: random-policy init (3 steps x 4 envs) plus every update's next_obs
    np.testing.assert_allclose(float(init.bonus.obs_rms.count), 12 + 1e-4, rtol=1e-6)
    np.testing.assert_allclose(float(s.bonus.obs_rms.count), 12 + UPDATES * n + 1e-4, rtol=1e-6)
    np.testing.assert_allclose(float(s.reward_rms.count), UPDATES * n + 1e-4, rtol=1e-6)
    assert float(jnp.abs(s.reward_filter).min()) > 0
    for name in ("loss_rnd", "loss_value_int", "reward_int_mean", "grad_norm_rnd"):
        v = np.asarray(getattr(m, name))
        assert np.all(np.isfinite(v)) and np.all(v > 0), name
    assert int(s.update) == UPDATES


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_doorkey_run_is_deterministic():
    """The real env (default of make_train): same key, bit-identical output on CPU."""
    cfg = tiny("notebook-a2c-5x5", total_frames=16 * 3)
    train = make_train(cfg)
    traces = count_update_traces(train)
    jitted = jax.jit(train)
    a = jitted(jax.random.key(7))
    assert_trees_equal(a, jitted(jax.random.key(7)))
    assert traces["n"] == 1
    assert a.final_state.timestep.observation.shape == (NUM_ENVS, 7, 7, 3)
    np.testing.assert_array_equal(a.metrics.frames, [16, 32, 48])
    assert np.all(np.isfinite(a.metrics.loss_total))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "cfg, match",
    [
        (tiny("notebook-a2c-5x5", shared_permutation=True), "only apply to an intrinsic bonus"),
        (tiny("notebook-a2c-5x5", **{"bonus.obs_norm": True}), "bonus.obs_norm"),
        (tiny("notebook-a2c-5x5", **{"bonus.reward_norm": True}), "bonus.reward_norm"),
        (tiny("notebook-a2c-5x5", **{"bonus.episodic_int": False}), "episodic_int"),
        (
            tiny("rnd-paper-5x5", **{"env.autoreset": "same_step"}),
            "bootstrap_truncation needs the final observation",
        ),
    ],
)
def test_invalid_configs_raise(cfg, match):
    with pytest.raises(ValueError, match=match):
        make_train(cfg, env=Corridor())


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="TrainConfig"):
        make_train({"train.num_envs": 4})
    with pytest.raises(ValueError, match="num_actions"):
        make_train(tiny("notebook-a2c-5x5"), env=Corridor(num_actions=0))
    with pytest.raises(ValueError, match="autoreset"):
        make_train(tiny("notebook-a2c-5x5"), env=Corridor(autoreset="same_step"))
    train = make_train(tiny("notebook-a2c-5x5"), env=Corridor())
    with pytest.raises(ValueError, match="num_updates"):
        train.run_chunk(None, 0)
    with pytest.raises(ValueError, match="Hyperparams"):
        train.init(jax.random.key(0), {"lr": 1.0})
    with pytest.raises(ValueError):  # config validation
        dataclasses.replace(train.cfg.train, num_envs=0)


# --------------------------------------------------------------------------- learning


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, frames", [("notebook-rnd-5x5", 716_800), ("notebook-a2c-5x5", 1_024_000)]
)
def test_learns_doorkey_5x5(name, frames):
    """The notebook's 5x5 runs solve (average of the last 100 returns > 0.91 at a logged
    update) within the frame budget for at least 3 of 4 seeds (vmapped)."""
    cfg = preset(name).replace(total_frames=frames)
    out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(0), 4))
    avg = np.asarray(out.metrics.avg_return_last100)  # [seeds, updates]
    logged = avg[:, cfg.log_every - 1 :: cfg.log_every]
    solved = np.any(logged > cfg.solved_threshold, axis=1)
    first = np.argmax(logged > cfg.solved_threshold, axis=1)
    frames_to_solve = np.where(solved, (first + 1) * cfg.log_every * cfg.frames_per_update, -1)
    print(f"\n{name}: frames to solve per seed (-1: not solved) {frames_to_solve.tolist()}")
    print(f"{name}: best logged avg {np.nanmax(logged, axis=1)}, final avg {avg[:, -1]}")
    assert solved.sum() >= 3, (name, np.nanmax(logged, axis=1))
