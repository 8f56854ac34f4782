"""Checkpoints of the full learner state (host side only; never called under jit).

A checkpoint is one `.npz` file holding every leaf of the (seed-batched) `LearnerState`, keyed
by its pytree path; typed PRNG keys are stored as their raw key data. Files are written to a
temporary name, flushed to disk and atomically renamed, so a crash never leaves a half-written
checkpoint under a real name. Restoring needs a template of the state (its shapes, dtypes and
structure, e.g. from `jax.eval_shape`); any mismatch raises `CheckpointError` naming the first
offending leaf.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np

_KEY_SUFFIX = "#prngkey"
_NAME = re.compile(r"^ckpt_(\d{9})\.npz$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or does not match the expected state."""


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _leaf_name(path: tuple) -> str:
    return jax.tree_util.keystr(path)


def state_to_arrays(state: Any) -> dict[str, np.ndarray]:
    """Flat {pytree path: numpy array} of a state; PRNG keys become their key data."""
    out: dict[str, np.ndarray] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = _leaf_name(path)
        if _is_key(leaf):
            out[name + _KEY_SUFFIX] = np.asarray(jax.random.key_data(leaf))
        else:
            out[name] = np.asarray(leaf)
    return out


def arrays_to_state(arrays: dict[str, np.ndarray], template: Any) -> Any:
    """Inverse of `state_to_arrays` given a template with the target structure, shapes and
    dtypes (concrete arrays or `jax.ShapeDtypeStruct`s)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    restored = []
    expected = set()
    for path, leaf in leaves:
        name = _leaf_name(path)
        if _is_key(leaf):
            key = name + _KEY_SUFFIX
            expected.add(key)
            if key not in arrays:
                raise CheckpointError(f"checkpoint has no PRNG key {name}")
            data = arrays[key]
            want = jax.eval_shape(jax.random.key_data, leaf)
            if data.shape != want.shape or data.dtype != want.dtype:
                raise CheckpointError(
                    f"checkpoint key {name}: data {data.shape} {data.dtype}, expected "
                    f"{want.shape} {want.dtype}"
                )
            restored.append(jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf)))
        else:
            expected.add(name)
            if name not in arrays:
                raise CheckpointError(f"checkpoint has no leaf {name}")
            data = arrays[name]
            if data.shape != tuple(leaf.shape) or data.dtype != leaf.dtype:
                raise CheckpointError(
                    f"checkpoint leaf {name}: {data.shape} {data.dtype}, expected "
                    f"{tuple(leaf.shape)} {leaf.dtype}"
                )
            restored.append(jax.numpy.asarray(data))
    extra = sorted(set(arrays) - expected)
    if extra:
        raise CheckpointError(f"checkpoint has unexpected leaf {extra[0]}")
    return jax.tree_util.tree_unflatten(treedef, restored)


def checkpoint_path(directory: Path, update: int) -> Path:
    return Path(directory) / f"ckpt_{update:09d}.npz"


def save(directory: Path, update: int, state: Any) -> Path:
    """Atomically write the checkpoint of `state` taken after `update` updates."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, update)
    tmp = path.with_name(path.name + ".tmp")
    arrays = state_to_arrays(jax.device_get(state))
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(update, path) of every complete checkpoint, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load(path: Path, template: Any) -> Any:
    """Read one checkpoint; CheckpointError if it is unreadable or does not match."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # zip / npy format errors of a corrupt file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    return arrays_to_state(arrays, template)


def load_latest(directory: Path, template: Any, warn=print) -> tuple[int, Any] | None:
    """The newest readable checkpoint as (update, state), falling back to older ones when the
    newest is corrupt (nothing is deleted); None when there is no checkpoint at all. Raises
    CheckpointError if checkpoints exist but none can be read."""
    ckpts = list_checkpoints(directory)
    if not ckpts:
        return None
    errors = []
    for update, path in reversed(ckpts):
        try:
            return update, load(path, template)
        except CheckpointError as e:
            errors.append(str(e))
            warn(f"warning: skipping unreadable checkpoint {path.name}: {e}")
    raise CheckpointError(f"no readable checkpoint in {directory}: {errors[0]}")


def prune(directory: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints written by this run."""
    ckpts = list_checkpoints(directory)
    for _, path in ckpts[: max(0, len(ckpts) - keep)]:
        path.unlink()
