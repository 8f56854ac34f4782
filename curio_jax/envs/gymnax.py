"""gymnax-style functional API for the MiniGrid-faithful DoorKey.

For agents written against gymnax (purejaxrl and the like)::

    from curio_jax.envs import gymnax

    env, params = gymnax.make("MiniGrid-DoorKey-5x5-v0")
    obs, state = env.reset(key, params)                                # obs uint8 [7, 7, 3]
    obs, state, reward, done, info = env.step(key, state, action, params)
    env.num_actions                                                    # 7
    env.action_space(params).n, env.observation_space(params).shape    # 7, (7, 7, 3)

All functions are pure and jittable and act on one environment; `jax.vmap` them for a batch
(`reset` over keys, `step` over keys, states and actions). Nothing needs the `gymnax` package.

Episode ends, truncation and autoreset
--------------------------------------
`done` is `terminated | truncated`, bool []: `terminated` means the agent reached the goal (a
true terminal state, value 0), `truncated` means the episode hit MiniGrid's horizon
`params.max_steps_in_episode` (10 * size**2 steps) without ending otherwise; both may be True
on the step that reaches the goal exactly at the horizon.

Autoreset happens on the same step, as in gymnax: a `step` that ends an episode returns the
reward and `done` of that last transition together with the *next* episode's first
observation and state. The layout of that next episode is drawn from the `key` passed to
`step` (the same draw as `reset(key)`), so with the same keys a run is reproducible; a step
that does not end an episode does not use its key (DoorKey's dynamics are deterministic).
There is no dummy transition: every `(obs, action, reward, done)` tuple is a real step.

`info` (every value an array of shape [] per environment):

- `"terminated"`, `"truncated"`: bool, the two flags behind `done`.
- `"discount"`: float32, `1 - terminated`: the factor to bootstrap with. It is 0 only at the
  goal; a truncated episode's last state is not terminal and keeps discount 1.
- `"final_observation"`: uint8 [7, 7, 3], the observation of the state this transition reached
  (before any reset). It equals the returned `obs` unless `done`.
- `"returned_episode"`: bool, an episode finished on this step (= `done`).
- `"returned_episode_returns"`: float32, the undiscounted return of the most recently finished
  episode (0 before any finished); `"returned_episode_lengths"`: int32, its length in steps.
  These are the keys and meanings of purejaxrl's `LogWrapper`, so its logging code
  (`info["returned_episode_returns"][info["returned_episode"]].mean()`) works unwrapped; the
  `LogWrapper` itself also works on top of this API.

Bootstrapping through truncation: with `V` the critic, the one-step target of a transition is
`reward + gamma * info["discount"] * V(info["final_observation"])`. For a TD(lambda) / GAE
recursion, use `next_value = V(info["final_observation"])` and `discount` for the value of the
transition's own next state, and `done` to stop the recursion from crossing into the next
episode. Agents that treat `done` as terminal (purejaxrl's PPO does) ignore truncation, as
gymnax does; DoorKey's horizon is long enough that this rarely matters.

`params` (`EnvParams`) holds the horizon as a static field; `None` means `default_params`.
The state (`EnvState`) carries the DoorKey timestep and the running episode statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import Array

from curio_jax.envs.doorkey import NUM_ACTIONS, VIEW, DoorKey, DoorKeyTimestep, make_doorkey
from curio_jax.envs.registration import ENV_IDS, size_of

OBS_SHAPE = (VIEW, VIEW, 3)


class EnvParams(struct.PyTreeNode):
    """Environment parameters. `max_steps_in_episode`: the truncation horizon (static; MiniGrid's
    reward `1 - 0.9 * t / max_steps_in_episode` uses it too)."""

    max_steps_in_episode: int = struct.field(pytree_node=False)


class EnvState(struct.PyTreeNode):
    """The state of one environment (leading batch axis `[B]` on every leaf when vmapped)."""

    timestep: DoorKeyTimestep  # the DoorKey timestep (navix state, observation, step count)
    episode_return: Array  # float32 [] undiscounted return of the running episode
    returned_episode_return: Array  # float32 [] return of the last finished episode
    returned_episode_length: Array  # int32 [] length of the last finished episode

    @property
    def time(self) -> Array:
        """Steps since the running episode's reset, int32 [] (gymnax's `state.time`)."""
        return self.timestep.t


@dataclasses.dataclass(frozen=True)
class Discrete:
    """`n` integer values 0 .. n-1, int32 [] (gymnax's `spaces.Discrete`)."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: Any = jnp.int32

    def sample(self, key: Array) -> Array:
        """A uniform draw, int32 []."""
        return jax.random.randint(key, self.shape, 0, self.n, dtype=self.dtype)

    def contains(self, x: Array) -> Array:
        """Whether `x` is a valid value, bool []."""
        x = jnp.asarray(x)
        return jnp.logical_and(x >= 0, x < self.n).all()


@dataclasses.dataclass(frozen=True)
class Box:
    """Arrays of `shape` and `dtype` with every element in [low, high] (gymnax's `spaces.Box`)."""

    low: int
    high: int
    shape: tuple[int, ...]
    dtype: Any

    def sample(self, key: Array) -> Array:
        """A uniform draw, `dtype` `shape`."""
        draw = jax.random.randint(key, self.shape, self.low, self.high + 1, dtype=jnp.int32)
        return draw.astype(self.dtype)

    def contains(self, x: Array) -> Array:
        """Whether `x` has the shape and every element lies in [low, high], bool []."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.logical_and(x >= self.low, x <= self.high).all()


@dataclasses.dataclass(frozen=True)
class DoorKeyGymnax:
    """The gymnax-style DoorKey of side `size` (see the module docstring). Build it with
    `make`. Hashable, so it can be a static argument of `jax.jit`."""

    size: int

    def __post_init__(self) -> None:
        make_doorkey(self.size)  # validates the size with a clear error

    @property
    def name(self) -> str:
        """MiniGrid's id, e.g. `"MiniGrid-DoorKey-5x5-v0"`."""
        return f"MiniGrid-DoorKey-{self.size}x{self.size}-v0"

    @property
    def num_actions(self) -> int:
        """7: left, right, forward, pickup, drop, toggle, done."""
        return NUM_ACTIONS

    @property
    def default_params(self) -> EnvParams:
        """MiniGrid's horizon, 10 * size**2 steps."""
        return EnvParams(max_steps_in_episode=10 * self.size * self.size)

    def _env(self, params: EnvParams | None) -> DoorKey:
        """The navix env without autoreset, with the horizon of `params`."""
        if params is None:
            params = self.default_params
        horizon = params.max_steps_in_episode
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ValueError(f"max_steps_in_episode must be a positive int, got {horizon!r}")
        env = make_doorkey(self.size, rgb_cache=False)
        return env.replace(max_steps=int(horizon), disable_autoreset=True)

    def reset(self, key: Array, params: EnvParams | None = None) -> tuple[Array, EnvState]:
        """A new episode from MiniGrid's layout distribution: `(obs uint8 [7, 7, 3], state)`."""
        timestep = self._env(params).reset(key)
        zero = jnp.asarray(0.0, jnp.float32)
        state = EnvState(
            timestep=timestep,
            episode_return=zero,
            returned_episode_return=zero,
            returned_episode_length=jnp.asarray(0, jnp.int32),
        )
        return timestep.observation, state

    def step(
        self, key: Array, state: EnvState, action: Array, params: EnvParams | None = None
    ) -> tuple[Array, EnvState, Array, Array, dict[str, Array]]:
        """One step with same-step autoreset: `(obs uint8 [7, 7, 3], state, reward float32 [],
        done bool [], info)`. `action` int32 []; one outside [0, 7) acts as `done` (a no-op).
        `key` draws the next layout if this step ends the episode. See the module docstring
        for `done`, `info` and bootstrapping."""
        env = self._env(params)
        reached = env.step(state.timestep, action)  # no autoreset: the state this step reached
        done = reached.done
        fresh = env.reset(key)
        timestep = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, reached)
        episode_return = state.episode_return + reached.reward
        returned_return = jnp.where(done, episode_return, state.returned_episode_return)
        returned_length = jnp.where(done, reached.t, state.returned_episode_length)
        new_state = EnvState(
            timestep=timestep,
            episode_return=jnp.where(done, jnp.float32(0.0), episode_return),
            returned_episode_return=returned_return,
            returned_episode_length=returned_length,
        )
        info = {
            "terminated": reached.terminated,
            "truncated": reached.truncated,
            "discount": 1.0 - reached.terminated.astype(jnp.float32),
            "final_observation": reached.observation,
            "returned_episode": done,
            "returned_episode_returns": returned_return,
            "returned_episode_lengths": returned_length,
        }
        return timestep.observation, new_state, reached.reward, done, info

    def action_space(self, params: EnvParams | None = None) -> Discrete:
        """`Discrete(7)` (MiniGrid's action set)."""
        return Discrete(NUM_ACTIONS)

    def observation_space(self, params: EnvParams | None = None) -> Box:
        """`Box(0, 255, (7, 7, 3), uint8)`, MiniGrid's `ImgObsWrapper` space. The values that
        occur are MiniGrid's (object, colour, state) codes, all below 11."""
        return Box(low=0, high=255, shape=OBS_SHAPE, dtype=jnp.uint8)


def make(name: str) -> tuple[DoorKeyGymnax, EnvParams]:
    """`(env, default_params)` for MiniGrid id `name` (one of `ENV_IDS`, e.g.
    `"MiniGrid-DoorKey-5x5-v0"`; the `curio_jax/` navix ids are accepted too), like
    `gymnax.make`. ValueError on an unknown id."""
    env = DoorKeyGymnax(size_of(name))
    return env, env.default_params


__all__ = ["ENV_IDS", "Box", "Discrete", "DoorKeyGymnax", "EnvParams", "EnvState", "make"]
