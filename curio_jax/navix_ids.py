"""The DoorKey ids curio_jax registers in navix's registry, registered by `import curio_jax`.

`navix.make("curio_jax/MiniGrid-DoorKey-8x8-v0")` works after a bare `import curio_jax`, in
either import order, without `import curio_jax` importing navix or JAX (several seconds, which
`curio-jax --help` must not pay). `install()`, called by the package's `__init__`, does this
with the standard library only:

- if navix's registry module (`navix.environments.registry`) is already imported, it adds the
  ids to it at once;
- otherwise it puts a finder on `sys.meta_path` that adds them right after that module is
  executed (whenever navix is first imported), then takes itself off `sys.meta_path`.

The ids are added as `LazyConstructor`s: a constructor that imports `curio_jax.envs` when
`navix.make` first calls it (importing it registers the full constructors of
`curio_jax.envs.registration` in their place) and builds the env there. An id that is already
registered is left alone (`curio_jax.envs.registration.register` refuses to overwrite one that
something else registered).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

SIZES = (5, 6, 8, 16)
"""The DoorKey sizes MiniGrid registers."""
ENV_IDS = tuple(f"MiniGrid-DoorKey-{s}x{s}-v0" for s in SIZES)
"""MiniGrid's ids of the environments `curio_jax.envs.make` builds."""
NAMESPACE = "curio_jax/"
"""Prefix of the ids registered in navix's registry."""
NAVIX_IDS = tuple(NAMESPACE + name for name in ENV_IDS)
"""The ids under which curio_jax puts the environments in navix's registry."""
NAVIX_REGISTRY = "navix.environments.registry"
"""The navix module that holds the registry (`register_env`, `registry`)."""
ENVS_REGISTRATION = "curio_jax.envs.registration"
"""Where the environments are built (imported by the first `navix.make` of a lazy id)."""


class LazyConstructor:
    """What `navix.make(NAVIX_IDS[i])` calls until `curio_jax.envs` is imported: imports it
    (which registers the full constructors) and builds the env of `name` with the keywords.
    (A plain class: `dataclasses` alone would double the package's import time.)"""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"LazyConstructor({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((LazyConstructor, self.name))

    def __call__(self, **kwargs: Any) -> Any:
        # A lazy import by design: curio_jax.envs pulls in JAX and navix, which the package's
        # top-level import must not pay; it is the same layer (envs) as this module.
        registration = importlib.import_module(ENVS_REGISTRATION)
        return registration.make(self.name, **kwargs)


def register_lazily(registry_module: Any) -> None:
    """Add a `LazyConstructor` for every id of `NAVIX_IDS` that navix's registry module
    `registry_module` does not already hold."""
    table = registry_module.registry()
    for name in NAVIX_IDS:
        if name not in table:
            registry_module.register_env(name, LazyConstructor(name))


class _RegisterAfterExec:
    """A loader that runs navix's loader for its registry module, then `register_lazily`."""

    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        register_lazily(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... for tracebacks
        return getattr(self._loader, name)


class RegistryHook:
    """The `sys.meta_path` finder of `install`: finds navix's registry module with the other
    finders and wraps its loader in `_RegisterAfterExec` (then leaves `sys.meta_path`)."""

    curio_jax_navix_hook = True  # how `install` recognises one (also across reloads)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != NAVIX_REGISTRY:
            return None
        uninstall()
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = None if find_spec is None else find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisterAfterExec(spec.loader)
                return spec
        return None


def _hooks() -> list[Any]:
    return [f for f in sys.meta_path if getattr(f, "curio_jax_navix_hook", False)]


def uninstall() -> None:
    """Take `install`'s finder off `sys.meta_path` (no-op if it is not there)."""
    for hook in _hooks():
        sys.meta_path.remove(hook)


def install() -> None:
    """Register `NAVIX_IDS` in navix's registry now if navix is imported, else as soon as it
    is (idempotent; imports nothing)."""
    module = sys.modules.get(NAVIX_REGISTRY)
    if module is not None and hasattr(module, "register_env"):
        register_lazily(module)
    elif not _hooks():
        sys.meta_path.insert(0, RegistryHook())
