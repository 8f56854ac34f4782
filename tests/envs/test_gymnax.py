"""The gymnax-style functional API (`curio_jax.envs.gymnax`): its semantics against the navix
DoorKey, and a compact purejaxrl-style PPO written against it (a consumer of the API, not the
project's learner) that runs deterministically and, in the slow test, learns DoorKey-5x5."""

from __future__ import annotations

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training.train_state import TrainState

from curio_jax.envs import DoorKeyLayout, gymnax, layout_of, make_doorkey

L, R, F, PICK, DROP, TOG, DONE = range(7)
SOLVE = (PICK, F, R, TOG, F, F, R, F)  # solves LAYOUT in 8 steps
LAYOUT = DoorKeyLayout(
    size=5, wall_x=2, door_y=2, agent_x=1, agent_y=3, agent_dir=3, key_x=1, key_y=2
)


def _same(a, b) -> bool:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb:
        return False
    for x, y in zip(la, lb, strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if not np.array_equal(np.asarray(x), np.asarray(y)):
            return False
    return True


# --------------------------------------------------------------------------- API semantics


def test_make_and_spaces():
    env, params = gymnax.make("MiniGrid-DoorKey-5x5-v0")
    assert env.name == "MiniGrid-DoorKey-5x5-v0" and env.num_actions == 7
    assert params == env.default_params and params.max_steps_in_episode == 250
    assert gymnax.make("curio_jax/MiniGrid-DoorKey-16x16-v0")[1].max_steps_in_episode == 2560
    act, obs_space = env.action_space(params), env.observation_space(params)
    assert act.n == 7 and act.shape == ()
    key = jax.random.key(0)
    a = act.sample(key)
    assert a.dtype == jnp.int32 and bool(act.contains(a)) and not bool(act.contains(7))
    obs, state = jax.jit(env.reset)(key, params)
    assert obs.shape == obs_space.shape == (7, 7, 3) and obs.dtype == obs_space.dtype
    assert bool(obs_space.contains(obs)) and bool(obs_space.contains(obs_space.sample(key)))
    assert not bool(obs_space.contains(obs[:, :, :2]))
    assert int(state.time) == 0
    with pytest.raises(ValueError, match="unknown DoorKey id"):
        gymnax.make("MiniGrid-DoorKey-9x9-v0")
    with pytest.raises(ValueError, match="max_steps_in_episode must be a positive int"):
        env.reset(key, gymnax.EnvParams(max_steps_in_episode=0))


def _play(env, params, state, actions, keys):
    step = jax.jit(env.step)
    out = []
    for a, k in zip(actions, keys, strict=True):
        obs, state, reward, done, info = step(k, state, jnp.int32(a), params)
        out.append((obs, state, reward, done, info))
    return out


def test_step_is_navix_same_step_autoreset_with_the_step_key():
    """Against the navix DoorKey in "same_step" mode whose state key is the step's key: same
    observation, reward and flags on every step (termination, then truncation)."""
    env, _ = gymnax.make("MiniGrid-DoorKey-5x5-v0")
    params = gymnax.EnvParams(max_steps_in_episode=12)
    # the gymnax env's own build: no rendering cache (its state takes the timestep as it is)
    navix_env = make_doorkey(5, "same_step", rgb_cache=False).replace(max_steps=12)
    navix_step = jax.jit(navix_env.step)
    _, state = env.reset(jax.random.key(0), params)
    state = state.replace(timestep=navix_env.reset_to(LAYOUT, jax.random.key(1)))
    actions = list(SOLVE) + [DONE] * 14
    keys = list(jax.random.split(jax.random.key(2), len(actions)))
    ts = state.timestep
    dones = []
    for (obs, new_state, reward, done, info), a, k in zip(
        _play(env, params, state, actions, keys), actions, keys, strict=True
    ):
        ts = navix_step(ts.replace(state=ts.state.replace(key=k)), jnp.int32(a))
        np.testing.assert_array_equal(obs, ts.observation)
        assert float(reward) == float(ts.reward) and bool(done) == bool(ts.done)
        assert bool(info["terminated"]) == bool(ts.terminated)
        assert bool(info["truncated"]) == bool(ts.truncated)
        assert _same(layout_of(new_state.timestep), layout_of(ts)) or not bool(done)
        assert int(new_state.time) == int(ts.t)
        dones.append(bool(done))
    assert dones.index(True) == len(SOLVE) - 1 and sum(dones) == 2


def test_info_episode_statistics_and_bootstrapping_fields():
    env, _ = gymnax.make("MiniGrid-DoorKey-5x5-v0")
    params = gymnax.EnvParams(max_steps_in_episode=12)
    _, state = env.reset(jax.random.key(0), params)
    state = state.replace(timestep=make_doorkey(5, rgb_cache=False).reset_to(LAYOUT))
    actions = list(SOLVE) + [DONE] * 12
    steps = _play(env, params, state, actions, list(jax.random.split(jax.random.key(3), 20)))
    # reference for final_observation: the same episode without any reset
    plain = make_doorkey(5).replace(max_steps=12, disable_autoreset=True)
    reached = plain.reset_to(LAYOUT)
    solved_return = 1 - 0.9 * len(SOLVE) / 12
    for i, (obs, _, _, done, info) in enumerate(steps):
        assert bool(info["returned_episode"]) == bool(done)
        assert float(info["discount"]) == (0.0 if bool(info["terminated"]) else 1.0)
        if i < len(SOLVE):
            reached = plain.step(reached, jnp.int32(actions[i]))
            np.testing.assert_array_equal(info["final_observation"], reached.observation)
        if not bool(done):
            np.testing.assert_array_equal(info["final_observation"], obs)
        else:  # the returned observation is the next episode's, not the reached state's
            assert not np.array_equal(info["final_observation"], obs)
        if i == len(SOLVE) - 1:  # the goal: terminal, discount 0, stats of episode 1
            assert bool(info["terminated"]) and not bool(info["truncated"])
            assert float(info["returned_episode_returns"]) == pytest.approx(solved_return)
            assert int(info["returned_episode_lengths"]) == len(SOLVE)
        if len(SOLVE) <= i < len(SOLVE) + 11:  # the stats persist until the next episode ends
            assert not bool(done)
            assert float(info["returned_episode_returns"]) == pytest.approx(solved_return)
        if i == len(SOLVE) + 11:  # the horizon: truncated, discount 1, return 0, length 12
            assert bool(done) and bool(info["truncated"]) and float(info["discount"]) == 1.0
            assert float(info["returned_episode_returns"]) == 0.0
            assert int(info["returned_episode_lengths"]) == 12


def test_vmapped_api_and_step_key_draws_the_next_layout():
    env, params = gymnax.make("MiniGrid-DoorKey-5x5-v0")
    n = 6
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(
        jax.random.split(jax.random.key(0), n), params
    )
    assert obs.shape == (n, 7, 7, 3) and state.time.shape == (n,)
    # force every env to the horizon's last step, then step with two different key sets
    state = state.replace(timestep=state.timestep.replace(t=jnp.full((n,), 249, jnp.int32)))
    vstep = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    acts = jnp.full((n,), DONE, jnp.int32)
    k1 = jax.random.split(jax.random.key(1), n)
    k2 = jax.random.split(jax.random.key(2), n)
    o1, s1, r1, d1, i1 = vstep(k1, state, acts, params)
    o1b, s1b, *_ = vstep(k1, state, acts, params)
    o2, s2, *_ = vstep(k2, state, acts, params)
    assert bool(d1.all()) and bool(i1["truncated"].all()) and not bool(i1["terminated"].any())
    assert (np.asarray(i1["returned_episode_lengths"]) == 250).all()
    assert _same(s1, s1b)  # same key, same next episode
    assert not np.array_equal(o1, o2)  # the step key draws the next layout
    ref = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(k1, params)[0]
    np.testing.assert_array_equal(o1, ref)  # ... as reset(key) does
    assert (np.asarray(s1.time) == 0).all()


# --------------------------------------------------------------------------- a small PPO


class PPOConfig(NamedTuple):
    num_envs: int = 16
    num_steps: int = 64
    num_updates: int = 2
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64


class Net(nn.Module):
    """Separate actor and critic MLPs on a one-hot encoding of the 7x7 MiniGrid image."""

    num_actions: int
    hidden: int

    @nn.compact
    def __call__(self, obs):
        x = obs.astype(jnp.int32)
        x = jnp.concatenate(
            [
                jax.nn.one_hot(x[..., 0], 11),
                jax.nn.one_hot(x[..., 1], 6),
                jax.nn.one_hot(x[..., 2], 3),
            ],
            axis=-1,
        ).reshape(*obs.shape[:-3], -1)
        init = nn.initializers.orthogonal

        def mlp(out, scale):
            h = nn.tanh(nn.Dense(self.hidden, kernel_init=init(np.sqrt(2)))(x))
            h = nn.tanh(nn.Dense(self.hidden, kernel_init=init(np.sqrt(2)))(h))
            return nn.Dense(out, kernel_init=init(scale))(h)

        return mlp(self.num_actions, 0.01), mlp(1, 1.0)[..., 0]


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array
    info: dict


def make_train(cfg: PPOConfig, name: str = "MiniGrid-DoorKey-5x5-v0"):
    """purejaxrl-style PPO against the gymnax API: `train(key) -> (params, metrics)`, metrics
    per update: mean return and count of the episodes that ended in it."""
    env, params = gymnax.make(name)
    net = Net(env.action_space(params).n, cfg.hidden)
    batch = cfg.num_envs * cfg.num_steps
    vreset = jax.vmap(env.reset, in_axes=(0, None))
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def train(key):
        key, k_net, k_env = jax.random.split(key, 3)
        shape = env.observation_space(params).shape
        tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr))
        ts = TrainState.create(
            apply_fn=net.apply, params=net.init(k_net, jnp.zeros(shape, jnp.uint8)), tx=tx
        )
        obs, env_state = vreset(jax.random.split(k_env, cfg.num_envs), params)

        def env_step(carry, _):
            ts, env_state, obs, key = carry
            key, k_act, k_step = jax.random.split(key, 3)
            logits, value = net.apply(ts.params, obs)
            action = jax.random.categorical(k_act, logits)
            log_prob = jax.nn.log_softmax(logits)[jnp.arange(cfg.num_envs), action]
            keys = jax.random.split(k_step, cfg.num_envs)
            next_obs, env_state, reward, done, info = vstep(keys, env_state, action, params)
            tr = Transition(obs, action, log_prob, value, reward, done, info)
            return (ts, env_state, next_obs, key), tr

        def gae(traj, last_value):
            def back(carry, tr):
                adv, next_value = carry
                nonterminal = 1.0 - tr.done  # purejaxrl: done stops bootstrapping
                delta = tr.reward + cfg.gamma * next_value * nonterminal - tr.value
                adv = delta + cfg.gamma * cfg.gae_lambda * nonterminal * adv
                return (adv, tr.value), adv

            init = (jnp.zeros_like(last_value), last_value)
            _, adv = jax.lax.scan(back, init, traj, reverse=True)
            return adv, adv + traj.value

        def loss_fn(p, tr, adv, target):
            logits, value = net.apply(p, tr.obs)
            logp_all = jax.nn.log_softmax(logits)
            log_prob = jnp.take_along_axis(logp_all, tr.action[:, None], -1)[:, 0]
            v_clip = tr.value + jnp.clip(value - tr.value, -cfg.clip_eps, cfg.clip_eps)
            v_loss = 0.5 * jnp.maximum((value - target) ** 2, (v_clip - target) ** 2).mean()
            ratio = jnp.exp(log_prob - tr.log_prob)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            clipped = jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps)
            pg = -jnp.minimum(ratio * adv, clipped * adv)
            entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
            return pg.mean() + cfg.vf_coef * v_loss - cfg.ent_coef * entropy

        def update(carry, _):
            ts, env_state, obs, key = carry
            (ts, env_state, obs, key), traj = jax.lax.scan(
                env_step, (ts, env_state, obs, key), None, cfg.num_steps
            )
            adv, target = gae(traj, net.apply(ts.params, obs)[1])
            flat = jax.tree.map(lambda x: x.reshape((batch,) + x.shape[2:]), (traj, adv, target))

            def epoch(carry, _):
                ts, key = carry
                key, k_perm = jax.random.split(key)
                perm = jax.random.permutation(k_perm, batch)
                mbs = jax.tree.map(
                    lambda x: x[perm].reshape((cfg.num_minibatches, -1) + x.shape[1:]), flat
                )

                def sgd(ts, mb):
                    grads = jax.grad(loss_fn)(ts.params, *mb)
                    return ts.apply_gradients(grads=grads), None

                ts, _ = jax.lax.scan(sgd, ts, mbs)
                return (ts, key), None

            (ts, key), _ = jax.lax.scan(epoch, (ts, key), None, cfg.update_epochs)
            ended = traj.info["returned_episode"]
            n = ended.sum()
            ret = jnp.where(ended, traj.info["returned_episode_returns"], 0.0).sum()
            metrics = {"episodes": n, "mean_return": ret / jnp.maximum(n, 1)}
            return (ts, env_state, obs, key), metrics

        (ts, *_), metrics = jax.lax.scan(update, (ts, env_state, obs, key), None, cfg.num_updates)
        return ts.params, metrics

    return train


@functools.cache
def _jitted_train(cfg: PPOConfig):
    return jax.jit(make_train(cfg))


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_ppo_runs_and_is_deterministic():
    cfg = PPOConfig(num_envs=4, num_steps=32, num_updates=2, update_epochs=2, num_minibatches=2)
    train = _jitted_train(cfg)
    params_a, metrics_a = train(jax.random.key(0))
    params_b, metrics_b = train(jax.random.key(0))
    params_c, _ = train(jax.random.key(1))
    assert metrics_a["mean_return"].shape == (2,)
    assert _same((params_a, metrics_a), (params_b, metrics_b))
    assert not _same(params_a, params_c)
    init = Net(7, cfg.hidden).init(jax.random.split(jax.random.key(0), 3)[1], jnp.zeros((7, 7, 3)))
    assert not _same(params_a, init)  # it did update
    for leaf in jax.tree_util.tree_leaves(params_a):
        assert np.isfinite(np.asarray(leaf)).all()


@pytest.mark.slow
def test_ppo_learns_doorkey_5x5():
    """purejaxrl-style PPO against the gymnax API solves DoorKey-5x5 in 100 updates (102,400
    frames; it passes 0.9 after about 40): the mean return of the episodes that end in the
    last 10 updates is above 0.9 (the optimum is about 0.96)."""
    cfg = PPOConfig(num_updates=100)
    _, metrics = _jitted_train(cfg)(jax.random.key(0))
    ret, n = np.asarray(metrics["mean_return"]), np.asarray(metrics["episodes"])
    final = float((ret[-10:] * n[-10:]).sum() / n[-10:].sum())
    print(f"final mean return {final:.4f}; every 10 updates: {np.round(ret[::10], 3).tolist()}")
    assert final > 0.9
