"""DoorKey by name: MiniGrid's ids, in curio_jax and in navix's registry.

`make("MiniGrid-DoorKey-8x8-v0")` builds the MiniGrid-faithful `DoorKey` of that size, the way
`gymnasium.make` builds MiniGrid's. The four sizes MiniGrid registers are available: 5x5, 6x6,
8x8 and 16x16.

navix users build environments with `navix.make(id)`. `import curio_jax` registers the same
four environments in navix's registry under the ids of `NAVIX_IDS`, which are MiniGrid's ids in
a `curio_jax/` namespace, e.g. `navix.make("curio_jax/MiniGrid-DoorKey-8x8-v0")`: lazily
(`curio_jax.navix_ids`: the package's import stays free of navix and JAX), and importing
`curio_jax.envs` replaces the lazy constructors by the ones of this module.
The namespace is there for three reasons:

- navix's own, differently behaving DoorKey is `Navix-DoorKey-8x8-v0`; a `curio_jax/` id can
  neither overwrite it nor be confused with it;
- navix reserves MiniGrid's bare ids for itself (its registry redirects some `MiniGrid-*-v1`
  ids to navix environments), so a bare `MiniGrid-DoorKey-8x8-v0` in navix's global registry
  could collide with a later navix release, and `navix.make` of it would silently change
  meaning with whether curio_jax had been imported;
- `namespace/Name-vN` is gymnasium's convention for third-party ids, and navix's registry
  accepts any string.

`register()` (called on importing `curio_jax.envs`) refuses to overwrite an id that something
other than curio_jax registered, and is idempotent.

Constructor keywords (for both `make` and `navix.make`): `autoreset` ("next_step", the
default, or "same_step"), `rgb_cache` (default True, as for `make_doorkey`: a filled navix
rendering cache, which navix's PPO / PQN and `navix.observations.rgb` need),
`disable_autoreset` (navix's switch) and `gamma` (the discount navix's agents read from
`env.gamma`). The observation, reward and dynamics are MiniGrid's and fixed, so navix's
`observation_fn`, `reward_fn`, ... are refused with a TypeError.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from navix.environments import registry as nx_registry

from curio_jax.envs.doorkey import DoorKey, make_doorkey
from curio_jax.navix_ids import ENV_IDS, NAMESPACE, NAVIX_IDS, SIZES, LazyConstructor

MAKE_KWARGS = ("autoreset", "rgb_cache", "disable_autoreset", "gamma")
"""Keyword arguments accepted by `make` and by the navix constructors."""


def size_of(name: str) -> int:
    """The side of DoorKey id `name` (MiniGrid's or the `curio_jax/` navix id); ValueError
    naming the known ids if `name` is not one of them."""
    bare = name[len(NAMESPACE) :] if name.startswith(NAMESPACE) else name
    if bare not in ENV_IDS:
        known = ENV_IDS + NAVIX_IDS
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown DoorKey id {name!r}: known ids are {list(known)}{hint}")
    return SIZES[ENV_IDS.index(bare)]


def _build(size: int, kwargs: dict[str, Any], name: str) -> DoorKey:
    unknown = sorted(set(kwargs) - set(MAKE_KWARGS))
    if unknown:
        raise TypeError(
            f"{name} got unsupported keyword argument(s) {unknown}; it accepts "
            f"{list(MAKE_KWARGS)} (observation, reward, termination and dynamics are "
            "MiniGrid's and cannot be swapped)"
        )
    env = make_doorkey(
        size,
        autoreset=kwargs.get("autoreset", "next_step"),
        rgb_cache=kwargs.get("rgb_cache", True),
    )
    if "disable_autoreset" in kwargs:
        flag = kwargs["disable_autoreset"]
        if not isinstance(flag, bool):
            raise TypeError(f"{name}: disable_autoreset must be a bool, got {flag!r}")
        env = env.replace(disable_autoreset=flag)
    if "gamma" in kwargs:
        gamma = kwargs["gamma"]
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1:
            raise ValueError(f"{name}: gamma must be a number in [0, 1], got {gamma!r}")
        env = env.replace(gamma=float(gamma))
    return env


def make(name: str, **kwargs: Any) -> DoorKey:
    """The MiniGrid-faithful DoorKey of MiniGrid id `name` (`"MiniGrid-DoorKey-8x8-v0"`, or the
    navix id `"curio_jax/MiniGrid-DoorKey-8x8-v0"`). `kwargs`: see `MAKE_KWARGS` and the
    module docstring. ValueError on an unknown id, TypeError on an unsupported keyword."""
    return _build(size_of(name), kwargs, name)


@dataclasses.dataclass(frozen=True)
class _NavixConstructor:
    """What `navix.make` calls: `ctor(**kwargs) -> DoorKey` (compares equal by size)."""

    size: int

    def __call__(self, **kwargs: Any) -> DoorKey:
        return _build(self.size, kwargs, NAVIX_IDS[SIZES.index(self.size)])


def register() -> None:
    """Register `NAVIX_IDS` in navix's registry (idempotent; replaces the lazy constructors of
    `curio_jax.navix_ids`). RuntimeError if one of them is already registered by something
    other than curio_jax (nothing is registered then)."""
    ours = (_NavixConstructor.__qualname__, LazyConstructor.__qualname__)
    table = nx_registry.registry()
    for name in NAVIX_IDS:
        existing = table.get(name)
        if existing is not None and type(existing).__qualname__ not in ours:
            raise RuntimeError(
                f"navix id {name!r} is already registered by {existing!r}; curio_jax will not "
                "overwrite it"
            )
    for size, name in zip(SIZES, NAVIX_IDS, strict=True):
        nx_registry.register_env(name, _NavixConstructor(size))
