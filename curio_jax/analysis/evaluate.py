"""Evaluate actor-critic parameters on DoorKey, in the JAX env or in gymnasium MiniGrid.

Actions are sampled as the notebook does, from ``Categorical(logits)``, written as an inverse
CDF: the action of step t of episode i is the first index whose cumulative softmax
probability exceeds ``u[i, t]``, one uniform per step (:func:`sample_actions`). Given the same
start layouts and the same uniforms, both backends therefore play the same episodes, step for
step, as long as the environments agree (the cross-check `curio-jax crosscheck` measures it).

Backends:
- ``"jax"``: all episodes vmapped in the JAX env, one jitted program: ``lax.scan`` over
  ``max_steps = 10 * size**2`` steps (every episode ends by then); an episode stops counting
  at its first ``terminated or truncated``.
- ``"minigrid"``: episode by episode in ``MiniGrid-DoorKey-SxS`` + ``ImgObsWrapper`` (the
  ``reference`` extra), the same Flax network applied to each observation.

Start layouts: the jax backend draws them from the JAX env's reset distribution, the minigrid
backend from MiniGrid's own resets (``env.reset(seed=seed)`` then unseeded resets); either
backend takes explicit ``layouts`` instead (injected into MiniGrid). The uniforms come from
``jax.random.key(seed)`` in both backends.

Parameter sources (host side): a `curio-jax train` run directory (:func:`load_run_params`) or
a notebook-format PyTorch checkpoint (:func:`load_torch_params`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from curio_jax.core.networks import ActorCritic
from curio_jax.envs import NUM_ACTIONS, DoorKeyLayout, make_doorkey, max_steps
from curio_jax.envs.layouts import (
    concrete_layout,
    layout_tuple,
    stack_layouts,
    unstack_layouts,
)
from curio_jax.envs.minigrid_bridge import apply_layout, make_minigrid_doorkey, minigrid_layout
from curio_jax.run.convert import actor_critic_to_torch
from curio_jax.run.params import ParamsError, load_pth_weights, load_weights

Params = Any
BACKENDS = ("jax", "minigrid")


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class Episodes:
    """N finished episodes (host numpy arrays). T = max_steps columns; entries after an
    episode's end are padding (action -1, reward 0)."""

    size: int
    layouts: list[DoorKeyLayout]  # N start layouts (Python ints)
    actions: np.ndarray  # int32 [N, T]
    rewards: np.ndarray  # float32 [N, T]
    lengths: np.ndarray  # int32 [N] steps until the first done
    terminated: np.ndarray  # bool [N] goal reached
    truncated: np.ndarray  # bool [N] time limit hit

    @property
    def returns(self) -> np.ndarray:
        """float32 [N] undiscounted episode returns."""
        return self.rewards.sum(axis=1, dtype=np.float32)

    def metrics(self, backend: str) -> dict:
        """``{"episodes", "success_rate", "mean_return", "mean_length", "backend"}``."""
        return {
            "episodes": int(len(self.lengths)),
            "success_rate": float(np.mean(self.terminated)),
            "mean_return": float(np.mean(self.returns)),
            "mean_length": float(np.mean(self.lengths)),
            "backend": backend,
        }


def first_difference(a: Episodes, b: Episodes) -> str | None:
    """None if the two batches are the same episodes (layouts, actions, rewards, lengths,
    flags); otherwise a one-line description of the first difference."""
    if a.size != b.size or len(a.lengths) != len(b.lengths):
        return f"different batches: size {a.size} vs {b.size}, {len(a.lengths)} vs {len(b.lengths)}"
    for i in range(len(a.lengths)):
        if layout_tuple(a.layouts[i]) != layout_tuple(b.layouts[i]):
            return f"episode {i}: start layouts differ"
        if a.lengths[i] != b.lengths[i]:
            return f"episode {i}: length {a.lengths[i]} vs {b.lengths[i]}"
        n = int(a.lengths[i])
        bad = np.nonzero(a.actions[i, :n] != b.actions[i, :n])[0]
        if len(bad):
            t = int(bad[0])
            return f"episode {i} step {t}: action {a.actions[i, t]} vs {b.actions[i, t]}"
        bad = np.nonzero(a.rewards[i, :n] != b.rewards[i, :n])[0]
        if len(bad):
            t = int(bad[0])
            return f"episode {i} step {t}: reward {a.rewards[i, t]} vs {b.rewards[i, t]}"
        if a.terminated[i] != b.terminated[i] or a.truncated[i] != b.truncated[i]:
            return f"episode {i}: terminated/truncated flags differ"
    return None


# --------------------------------------------------------------------------- policy


def sample_actions(logits: jax.Array, u: jax.Array) -> jax.Array:
    """Categorical(logits) sampled by inverse CDF: ``logits [..., A]``, uniforms ``u [...]``
    in [0, 1) -> int32 ``[...]``, the number of cumulative probabilities below ``u`` times the
    total (so ``u`` uniform gives exactly the softmax distribution)."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    cdf = jnp.cumsum(probs, axis=-1)
    a = jnp.sum(cdf < u[..., None] * cdf[..., -1:], axis=-1)
    return jnp.minimum(a, logits.shape[-1] - 1).astype(jnp.int32)


def actor_critic_for(params: Params) -> ActorCritic:
    """The ActorCritic module whose parameter tree `params` is (hidden size read from the
    shapes). Raises ParamsError for a tree that is not an actor-critic for DoorKey."""

    if isinstance(params, dict) and set(params) == {"params"}:
        params = params["params"]
    try:
        actor_critic_to_torch(params)  # checks every entry and shape
    except ValueError as e:
        raise ParamsError(f"not actor-critic parameters: {e}") from None
    hidden, actions = np.shape(params["policy_out"]["kernel"])
    if actions != NUM_ACTIONS:
        raise ParamsError(f"the policy has {actions} actions, DoorKey has {NUM_ACTIONS}")
    return ActorCritic(num_actions=NUM_ACTIONS, hidden_dim=int(hidden))


def _as_float_params(params: Params) -> Params:
    if isinstance(params, dict) and set(params) == {"params"}:
        params = params["params"]
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)


# --------------------------------------------------------------------------- layouts & uniforms


def _keys(seed: int) -> tuple[jax.Array, jax.Array]:
    k_layout, k_action = jax.random.split(jax.random.key(seed))
    return k_layout, k_action


def uniform_stream(seed: int, episodes: int, size: int) -> np.ndarray:
    """float32 [episodes, max_steps] action uniforms of `evaluate(..., seed=seed)`."""
    _, k_action = _keys(seed)
    return np.asarray(jax.random.uniform(k_action, (episodes, max_steps(size)), jnp.float32))


def sample_layouts(seed: int, episodes: int, size: int) -> list[DoorKeyLayout]:
    """The JAX env's start layouts of `evaluate(..., backend="jax", seed=seed)`."""
    k_layout, _ = _keys(seed)
    env = make_doorkey(size, rgb_cache=False)
    batch = jax.jit(jax.vmap(env.sample_layout))(jax.random.split(k_layout, episodes))
    return unstack_layouts(batch)


def _check_inputs(
    size: int, layouts: Sequence[DoorKeyLayout] | None, n: int, uniforms
) -> np.ndarray:
    """Validated uniforms [n, max_steps] (extra columns dropped)."""
    u = np.asarray(uniforms, np.float32)
    if u.ndim != 2 or u.shape[0] != n or u.shape[1] < max_steps(size):
        raise ValueError(
            f"uniforms must be [episodes={n}, >= max_steps={max_steps(size)}], got {u.shape}"
        )
    if not np.all((u >= 0) & (u < 1)):
        raise ValueError("uniforms must lie in [0, 1)")
    for lay in layouts or ():
        if int(lay.size) != size:
            raise ValueError(f"a layout has size {lay.size}, expected {size}")
    return u[:, : max_steps(size)]


# --------------------------------------------------------------------------- jax backend


@functools.lru_cache(maxsize=16)
def _jax_program(size: int, hidden_dim: int) -> Callable:
    env = make_doorkey(size, rgb_cache=False, disable_autoreset=True)
    net = ActorCritic(num_actions=NUM_ACTIONS, hidden_dim=hidden_dim)

    def run(params, layouts, uniforms):  # uniforms [N, T]
        ts = jax.vmap(env.reset_to)(layouts)
        alive = jnp.ones(uniforms.shape[0], bool)

        def step(carry, u):  # u [N]
            ts, alive = carry
            logits, _, _ = net.apply({"params": params}, ts.observation)
            action = sample_actions(logits, u)
            nxt = jax.vmap(env.step)(ts, action)  # no autoreset; ended episodes are masked
            out = (
                jnp.where(alive, action, -1),
                jnp.where(alive, nxt.reward, 0.0),
                alive & nxt.terminated,
                alive & nxt.truncated,
                alive,
            )
            return (nxt, alive & ~nxt.done), out

        _, (a, r, term, trunc, live) = jax.lax.scan(step, (ts, alive), uniforms.T)
        return a.T, r.T, term.any(0), trunc.any(0), live.sum(0).astype(jnp.int32)

    return jax.jit(run)


def run_jax(params: Params, layouts: Sequence[DoorKeyLayout], uniforms: np.ndarray) -> Episodes:
    """Play one episode per layout in the JAX env (one jitted, vmapped program), action t of
    episode i from ``uniforms[i, t]`` (float32 [N, >= max_steps] in [0, 1))."""
    if len(layouts) == 0:
        raise ValueError("no layouts")
    layouts = [concrete_layout(lay) for lay in layouts]
    size = int(layouts[0].size)
    u = _check_inputs(size, layouts, len(layouts), uniforms)
    net = actor_critic_for(params)
    program = _jax_program(size, net.hidden_dim)
    out = program(_as_float_params(params), stack_layouts(layouts), jnp.asarray(u))
    a, r, term, trunc, lengths = (np.asarray(x) for x in jax.device_get(out))
    return Episodes(size, layouts, a, r, lengths, term, trunc)


# --------------------------------------------------------------------------- minigrid backend


@functools.lru_cache(maxsize=16)
def _policy_program(hidden_dim: int) -> Callable:
    net = ActorCritic(num_actions=NUM_ACTIONS, hidden_dim=hidden_dim)

    def act(params, obs, u):  # obs [1, 7, 7, 3], u [1]
        logits, _, _ = net.apply({"params": params}, obs)
        return sample_actions(logits, u)[0]

    return jax.jit(act)


def run_minigrid(
    params: Params,
    size: int,
    uniforms: np.ndarray,
    layouts: Sequence[DoorKeyLayout] | None = None,
    seed: int = 0,
) -> Episodes:
    """Play episodes one by one in gymnasium MiniGrid (+ ImgObsWrapper), action t of episode
    i from ``uniforms[i, t]``. With `layouts`, episode i starts from ``layouts[i]`` (injected);
    otherwise from MiniGrid's own resets (``reset(seed=seed)``, then unseeded)."""

    n = len(uniforms) if layouts is None else len(layouts)
    if n == 0:
        raise ValueError("no episodes")
    if layouts is not None:
        layouts = [concrete_layout(lay) for lay in layouts]
    u = _check_inputs(size, layouts, n, uniforms)
    net = actor_critic_for(params)
    act = _policy_program(net.hidden_dim)
    p = _as_float_params(params)
    horizon = max_steps(size)
    env = make_minigrid_doorkey(size)
    if env.unwrapped.max_steps != horizon:
        raise RuntimeError(f"MiniGrid's DoorKey horizon is {env.unwrapped.max_steps}")
    actions = np.full((n, horizon), -1, np.int32)
    rewards = np.zeros((n, horizon), np.float32)
    lengths = np.zeros(n, np.int32)
    term = np.zeros(n, bool)
    trunc = np.zeros(n, bool)
    played: list[DoorKeyLayout] = []
    try:
        for i in range(n):
            obs, _ = env.reset(seed=seed if i == 0 else None)
            if layouts is not None:
                obs = apply_layout(env, layouts[i])
                played.append(layouts[i])
            else:
                played.append(concrete_layout(minigrid_layout(env)))
            for t in range(horizon):
                a = int(act(p, jnp.asarray(obs[None], jnp.uint8), jnp.asarray(u[i, t : t + 1])))
                obs, r, te, tr, _ = env.step(a)
                actions[i, t], rewards[i, t] = a, np.float32(r)
                if te or tr:
                    lengths[i], term[i], trunc[i] = t + 1, bool(te), bool(tr)
                    break
            else:  # MiniGrid always ends an episode at max_steps
                raise RuntimeError(f"episode {i} did not end within {horizon} steps")
    finally:
        env.close()
    return Episodes(size, played, actions, rewards, lengths, term, trunc)


# --------------------------------------------------------------------------- one call


def evaluate(
    params: Params,
    size: int,
    episodes: int = 100,
    backend: str = "jax",
    seed: int = 0,
    layouts: Sequence[DoorKeyLayout] | None = None,
    uniforms: np.ndarray | None = None,
) -> tuple[dict, Episodes]:
    """Evaluate actor-critic `params` for `episodes` episodes of DoorKey-`size`.

    Returns ``(metrics, episodes)`` with metrics ``{"episodes", "success_rate" (fraction
    terminated, i.e. goal reached), "mean_return", "mean_length", "backend"}``. `layouts` and
    `uniforms` (float32 [episodes, >= max_steps]) override the notebook's draws; given both, the
    two backends play identical episodes."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 5:
        raise ValueError(f"size must be an integer >= 5, got {size!r}")
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    size, episodes, seed = int(size), int(episodes), int(seed)
    if layouts is not None and len(layouts) != episodes:
        raise ValueError(f"{len(layouts)} layouts for {episodes} episodes")
    if uniforms is None:
        uniforms = uniform_stream(seed, episodes, size)
    if backend == "jax":
        if layouts is None:
            layouts = sample_layouts(seed, episodes, size)
        eps = run_jax(params, layouts, uniforms)
    else:
        eps = run_minigrid(params, size, uniforms, layouts=layouts, seed=seed)
    return eps.metrics(backend), eps


# --------------------------------------------------------------------------- parameter sources


@dataclasses.dataclass(frozen=True)
class LoadedParams:
    """Actor-critic params and where they came from."""

    params: Params
    description: str


def load_run_params(
    path: str | Path, seed_index: int = 0, warn: Callable[[str], None] | None = None
) -> LoadedParams:
    """Actor-critic params of seed `seed_index` of a `curio-jax train` run, or of a params-only
    export (curio_jax.run.params.load_weights)."""
    weights = load_weights(path, seed_index, warn)
    actor_critic_for(weights.actor_critic)
    return LoadedParams(weights.actor_critic, weights.description)


def load_torch_params(path: str | Path) -> LoadedParams:
    """Actor-critic params from a notebook-format PyTorch checkpoint (``{"a2c_params": ...,
    "rnd_params": ...}``, needs torch)."""
    weights = load_pth_weights(path)
    actor_critic_for(weights.actor_critic)
    return LoadedParams(weights.actor_critic, weights.description)
