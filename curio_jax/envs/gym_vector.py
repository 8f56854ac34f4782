"""A `gymnasium.vector.VectorEnv` backed by the JAX DoorKey: numpy in, numpy out.

`DoorKeyVectorEnv(num_envs, size)` behaves like

    gym.make_vec("MiniGrid-DoorKey-{size}x{size}-v0", num_envs, vectorization_mode="sync",
                 wrappers=[ImgObsWrapper])

(gymnasium 1.x, next-step autoreset) but every `step` is one compiled JAX program over all
environments (the vmapped `curio_jax.envs.doorkey.DoorKey.step`), so the host only converts the
actions and copies the results back. Given the same start layouts and the same actions it emits
exactly what MiniGrid's sync vector env emits: observations, float64 rewards, terminations,
truncations and the autoreset step (tests/envs/test_gym_vector.py). What differs is where layouts
come from: a JAX PRNG per environment instead of MiniGrid's numpy generator (see `reset`).

Imports gymnasium (the `reference` extra): import this module on demand only;
`curio_jax.envs` does not import it. The public entry point is `curio_jax.gym.make_vec`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import error, spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from curio_jax.envs.doorkey import NUM_ACTIONS, VIEW, make_doorkey
from curio_jax.envs.frames import render_frame

NAMESPACE = "curio_jax"
"""Gymnasium namespace of the registered ids: `curio_jax/MiniGrid-DoorKey-8x8-v0`."""
REGISTERED_SIZES = (5, 6, 8, 16)
"""Sizes registered on import of `curio_jax.gym` (the ones MiniGrid registers); `make_vec`
registers any other size >= 5 when it is first asked for."""
SEED_LIMIT = 2**32
"""Per-environment seeds must lie in [0, SEED_LIMIT): JAX builds its PRNG keys from 32-bit
seeds here (larger integers would silently wrap around)."""

_ID_RE = re.compile(r"^(?:curio_jax/)?MiniGrid-DoorKey-(\d+)x(\d+)-v0$")


def env_id(size: int) -> str:
    """The registered gymnasium id of size `size`: 'curio_jax/MiniGrid-DoorKey-SxS-v0'."""
    return f"{NAMESPACE}/MiniGrid-DoorKey-{size}x{size}-v0"


def parse_env_id(name: str) -> int:
    """The size in 'MiniGrid-DoorKey-SxS-v0' or 'curio_jax/MiniGrid-DoorKey-SxS-v0' (S >= 5).
    ValueError for anything else."""
    m = _ID_RE.match(name) if isinstance(name, str) else None
    if m is None or m.group(1) != m.group(2) or int(m.group(1)) < 5:
        raise ValueError(
            f"unknown environment id {name!r}: curio_jax provides only DoorKey, as "
            "'MiniGrid-DoorKey-SxS-v0' or 'curio_jax/MiniGrid-DoorKey-SxS-v0' with a size S >= 5"
        )
    return int(m.group(1))


# --------------------------------------------------------------------------- compiled programs


class _Programs:
    """The jitted batched programs of one size (shared by every env of that size; each jit
    keeps one executable per batch shape and device): `reset` and `step`."""

    def __init__(self, size: int):
        env = make_doorkey(size, autoreset="next_step", rgb_cache=False)

        def select(mask, new, old):
            return jax.vmap(lambda m, a, b: jax.tree.map(lambda x, y: jnp.where(m, x, y), a, b))(
                mask, new, old
            )

        def reset(old, seeds, use_seed, mask):
            # seeded envs start from their seed's key; the others from their own stream, i.e.
            # the episode their next autoreset would have started (DoorKey.reset(key) and the
            # autoreset in DoorKey.step split the key the same way)
            keys = jnp.where(use_seed, jax.vmap(jax.random.key)(seeds), old.state.key)
            return select(mask, jax.vmap(env.reset)(keys), old)

        self.env = env
        self.reset = jax.jit(reset, donate_argnums=0)
        self.step = jax.jit(jax.vmap(env.step), donate_argnums=0)

    def blank(self, num_envs: int, device: jax.Device | None) -> Any:
        """An all-zero batched timestep (the `old` of the first reset, which replaces all of
        it), built on the host: no program of its own to compile."""
        key = jax.random.key(0)
        key_shape = jax.random.key_data(key).shape
        shapes = jax.eval_shape(jax.vmap(self.env.reset), jax.random.split(key, num_envs))

        def zeros(s):
            if jnp.issubdtype(s.dtype, jax.dtypes.prng_key):
                data = np.zeros(s.shape + key_shape, np.uint32)
                return jax.random.wrap_key_data(data, impl=jax.random.key_impl(key))
            return np.zeros(s.shape, s.dtype)

        return jax.device_put(jax.tree.map(zeros, shapes), device)


@functools.cache
def _programs(size: int) -> _Programs:
    return _Programs(size)


def _reward_table(max_steps: int) -> np.ndarray:
    """MiniGrid's success reward `1 - 0.9 * (step_count / max_steps)` for every step count, as
    the Python floats MiniGrid computes (float64)."""
    return np.array([1 - 0.9 * (t / max_steps) for t in range(max_steps + 1)], dtype=np.float64)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


# --------------------------------------------------------------------------- the vector env


class DoorKeyVectorEnv(VectorEnv):
    """`num_envs` MiniGrid DoorKey-`size` environments (+ `ImgObsWrapper`) stepped by one
    compiled JAX program. A `gymnasium.vector.VectorEnv`:

    - spaces: `single_observation_space` Box(0, 255, (7, 7, 3), uint8) and
      `single_action_space` Discrete(7), exactly MiniGrid's; `observation_space` and
      `action_space` batched by gymnasium's `batch_space` (Box (N, 7, 7, 3), MultiDiscrete).
    - `step(actions)`: integer actions of shape (num_envs,) in [0, 7) (lists, numpy arrays and
      CPU torch tensors work); returns observations uint8 (N, 7, 7, 3), rewards float64 (N,),
      terminations and truncations bool (N,), infos `{}`. Next-step autoreset
      (`metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP`): the step after an episode
      ends ignores that env's action and returns the next episode's first observation with
      reward 0 and both flags False.
    - `reset(seed=..., options=...)`: see :meth:`reset` for what a seed means.
    - `render()`: with `render_mode="rgb_array"`, one RGB frame per env drawn on the host
      (MiniGrid's look, 32-pixel tiles; see `curio_jax.envs.frames.render_frame`).

    `device`: a `jax.Device` (or a platform name such as "cpu") the environments live on;
    default JAX's default device."""

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        size: int = 8,
        render_mode: str | None = None,
        device: jax.Device | str | None = None,
    ):
        if not _is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self._programs = _programs(int(make_doorkey(size).size))  # validates size
        self.size = self._programs.env.size
        self.max_steps = int(self._programs.env.max_steps)
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        if isinstance(device, str):
            device = jax.devices(device)[0]
        self.device = device
        self.metadata = dict(type(self).metadata)
        self.single_observation_space = spaces.Box(0, 255, (VIEW, VIEW, 3), np.uint8)
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rewards = _reward_table(self.max_steps)
        self._ts = None  # batched DoorKeyTimestep on the device, None before the first reset

    # ---- seeding

    def _seed_list(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif _is_int(seed):
            seeds = [int(seed) + i for i in range(n)]
        elif isinstance(seed, (list, tuple)):
            if len(seed) != n:
                raise ValueError(
                    f"a list of seeds needs one entry per env (num_envs={n}), got {len(seed)}"
                )
            if not all(s is None or _is_int(s) for s in seed):
                raise ValueError(f"seeds must be integers or None, got {list(seed)!r}")
            seeds = [None if s is None else int(s) for s in seed]
        else:
            raise ValueError(f"seed must be an int, a list of ints / None, or None; got {seed!r}")
        for s in seeds:
            if s is not None and not 0 <= s < SEED_LIMIT:
                what = "seed + i (env i)" if _is_int(seed) else "each seed"
                raise ValueError(f"{what} must be in [0, 2**32), got {s} (seed={seed!r})")
        return seeds

    # ---- gymnasium API

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes; returns (observations, {}).

        What a seed means: env `i` reset with seed `s` draws its episodes from the JAX PRNG key
        `jax.random.key(s)`: its first episode is `make_doorkey(size).reset(jax.random.key(s))`
        and each later one (autoreset or unseeded reset) follows from the previous episode's
        key, exactly as `DoorKey.step` autoresets. So the layouts an env sees depend only on its
        seed and the episode's index, never on the actions (as in MiniGrid); the same seed
        gives the same episodes, but not MiniGrid's layouts (those come from numpy).

        - `seed=int`: env i gets `seed + i` (gymnasium's convention; `seed + i < 2**32`).
        - `seed=[s_0, ..., s_{N-1}]`: env i gets `s_i`; a None entry continues that env's stream.
        - `seed=None`: every env continues its stream (starts the episode its next autoreset
          would have started); on the very first reset, random seeds are drawn.
        - `options={"reset_mask": bool array (num_envs,)}`: only those envs are reset (the
          others keep their episode, even one waiting for its autoreset). Other options are
          ignored, as MiniGrid ignores them."""
        seeds = self._seed_list(seed)
        mask = None
        if options is not None and "reset_mask" in options:
            mask = options["reset_mask"]
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
                raise ValueError("options['reset_mask'] must be a numpy bool array")
            if mask.shape != (self.num_envs,):
                raise ValueError(
                    f"options['reset_mask'] must have shape ({self.num_envs},), got {mask.shape}"
                )
            if not mask.any():
                raise ValueError("options['reset_mask'] must select at least one env")
        if self._ts is None:
            if mask is not None and not mask.all():
                raise error.ResetNeeded("the first reset must reset every env (no reset_mask)")
            if any(s is None for s in seeds):  # gymnasium: unseeded envs get random seeds
                base = int(np.random.default_rng().integers(0, SEED_LIMIT - self.num_envs))
                seeds = [base + i if s is None else s for i, s in enumerate(seeds)]
            self._ts = self._programs.blank(self.num_envs, self.device)
        use_seed = np.array([s is not None for s in seeds])
        seed_data = np.array([0 if s is None else s for s in seeds], np.uint32)
        if mask is None:
            mask = np.ones(self.num_envs, bool)
        args = (seed_data, use_seed, mask)
        if self.device is not None:
            args = jax.device_put(args, self.device)
        self._ts = self._programs.reset(self._ts, *args)
        if _is_int(seed):
            super().reset(seed=int(seed))  # gymnasium's np_random / np_random_seed bookkeeping
        return np.array(self._ts.observation), {}

    def _check_actions(self, actions: Any) -> np.ndarray:
        try:
            a = np.asarray(actions)
        except Exception as e:  # noqa: BLE001 - any unconvertible input is reported alike
            raise ValueError(f"actions must be an array of integers: {e}") from None
        if a.shape != (self.num_envs,):
            raise ValueError(
                f"actions must have shape ({self.num_envs},) (one per env), got {a.shape}"
            )
        if a.dtype.kind not in "iu":
            if a.dtype.kind != "f" or not np.all(np.isfinite(a) & (a == np.round(a))):
                raise ValueError(f"actions must be integers, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= NUM_ACTIONS):
            bad = a[(a < 0) | (a >= NUM_ACTIONS)]
            raise ValueError(f"actions must be in [0, {NUM_ACTIONS}), got {bad.tolist()[:8]}")
        a = a.astype(np.int32)
        return a if self.device is None else jax.device_put(a, self.device)

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every env (see the class docstring)."""
        if self.closed:
            raise error.ClosedEnvironmentError("step() on a closed DoorKeyVectorEnv")
        if self._ts is None:
            raise error.ResetNeeded("call reset() before step()")
        a = self._check_actions(actions)
        self._ts = ts = self._programs.step(self._ts, a)
        obs, t, terminated, truncated = jax.device_get(
            (ts.observation, ts.t, ts.terminated, ts.truncated)
        )
        terminated = np.array(terminated)
        rewards = np.where(terminated, self._rewards[np.asarray(t)], 0.0)
        return np.array(obs), rewards, terminated, np.array(truncated), {}

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One RGB frame per env (uint8 [size * 32, size * 32, 3]) with
        `render_mode="rgb_array"`; None without a render mode."""
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode: pass render_mode='rgb_array'")
            return None
        if self._ts is None:
            raise error.ResetNeeded("call reset() before render()")
        ts = jax.device_get(self._ts)
        return tuple(
            render_frame(jax.tree.map(lambda x, i=i: x[i], ts), mark_carrying=False)
            for i in range(self.num_envs)
        )

    def close_extras(self, **kwargs: Any) -> None:
        self._ts = None

    # ---- extras

    @property
    def timestep(self) -> Any:
        """The batched `DoorKeyTimestep` on the device (None before the first reset): e.g.
        `curio_jax.envs.layout_of(env.timestep)` after a reset gives the envs' layouts."""
        return self._ts

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_programs"] = None
        ts = state["_ts"]
        if ts is not None:  # typed PRNG keys travel as raw key data
            impl = jax.random.key_impl(ts.state.key)
            ts = ts.replace(state=ts.state.replace(key=jax.random.key_data(ts.state.key)))
            state["_ts"] = (jax.device_get(ts), str(impl))
        state["device"] = None if self.device is None else str(self.device.platform)
        return state

    def __setstate__(self, state: dict) -> None:
        saved = state.pop("_ts")
        device = state.pop("device")
        self.__dict__.update(state)
        self.device = None if device is None else jax.devices(device)[0]
        self._programs = _programs(self.size)
        self._ts = None
        if saved is not None:
            ts, impl = saved
            key = jax.random.wrap_key_data(jnp.asarray(ts.state.key), impl=impl)
            ts = ts.replace(state=ts.state.replace(key=key))
            self._ts = jax.device_put(ts, self.device) if self.device is not None else ts


def make_vector_env(num_envs: int = 1, size: int = 8, **kwargs: Any) -> DoorKeyVectorEnv:
    """The `vector_entry_point` of the registered ids (gymnasium calls it with `num_envs` and
    the spec's kwargs, `size` among them)."""
    return DoorKeyVectorEnv(num_envs=num_envs, size=size, **kwargs)


def register(size: int) -> str:
    """Register `curio_jax/MiniGrid-DoorKey-{size}x{size}-v0` with gymnasium (idempotent) and
    return the id."""
    name = env_id(size)
    if name not in gym.registry:
        gym.register(
            name,
            entry_point=None,
            vector_entry_point=f"{__name__}:make_vector_env",
            kwargs={"size": size},
        )
    return name


def make_vec(
    id: str,
    num_envs: int = 1,
    vectorization_mode: str | None = None,
    vector_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Any] | None = None,
    **kwargs: Any,
) -> DoorKeyVectorEnv:
    """`gym.make_vec` for curio_jax DoorKey: `make_vec("MiniGrid-DoorKey-8x8-v0", num_envs=N)`.

    Takes `gym.make_vec`'s arguments so that the notebook's call can be swapped as is:
    `vectorization_mode` may be None, "vector_entry_point" or "sync" (the results equal a sync
    vector env's; "async" is refused); `wrappers` may be empty or `[ImgObsWrapper]` (already
    applied: observations are the image); `vector_kwargs` must be empty. Other keyword
    arguments go to :class:`DoorKeyVectorEnv` (`render_mode`, `device`). The env is built
    through gymnasium's registry (`curio_jax/` id, registered on demand), so `env.spec` is set
    as `gym.make_vec` sets it."""
    size = parse_env_id(id)
    if vectorization_mode not in (None, "vector_entry_point", "sync"):
        raise ValueError(
            f"vectorization_mode must be None, 'vector_entry_point' or 'sync' (all mean one "
            f"batched JAX program), got {vectorization_mode!r}"
        )
    if vector_kwargs:
        raise ValueError(f"vector_kwargs are not supported, got {vector_kwargs!r}")
    if wrappers:
        names = [(getattr(w, "__module__", ""), getattr(w, "__name__", "")) for w in wrappers]
        if len(names) != 1 or names[0][1] != "ImgObsWrapper" or "minigrid" not in names[0][0]:
            raise ValueError(
                "wrappers: only [ImgObsWrapper] (already applied) is accepted; wrap the vector "
                f"env with gymnasium.wrappers.vector wrappers instead, got {list(wrappers)!r}"
            )
    if "size" in kwargs:
        raise ValueError("the size comes from the id, do not pass size=")
    return gym.make_vec(
        register(size), num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
    )
