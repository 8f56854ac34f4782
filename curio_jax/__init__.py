"""curio_jax: A2C and A2C + Random Network Distillation on a MiniGrid-faithful DoorKey, in JAX.

Submodules load lazily so that `curio-jax --help` and config handling stay fast (navix and
JAX are heavy imports). Importing the package registers the `curio_jax/MiniGrid-DoorKey-*`
ids in navix's registry (`navix.make("curio_jax/MiniGrid-DoorKey-8x8-v0")`) without importing
navix: see `curio_jax.navix_ids`.
"""

from __future__ import annotations

import importlib
from typing import Any

from curio_jax import navix_ids

__version__ = "0.1.0"

navix_ids.install()  # the curio_jax/ ids in navix's registry, now or when navix is imported

_SUBMODULES = {"config", "envs", "core", "parallel", "run", "analysis", "tools", "cli", "api"}
_ATTRS = {
    "make_train": "curio_jax.core.train",
    "preset": "curio_jax.config",
    "make_doorkey": "curio_jax.envs",
    "train_run": "curio_jax.api",
    "sweep": "curio_jax.api",
    "compare": "curio_jax.api",
    "evaluate": "curio_jax.api",
    "export": "curio_jax.api",
    "load_weights": "curio_jax.api",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"curio_jax.{name}")
    if name in _ATTRS:
        return getattr(importlib.import_module(_ATTRS[name]), name)
    raise AttributeError(f"module 'curio_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | set(_ATTRS))
