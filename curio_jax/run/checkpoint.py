"""Checkpoints of the full learner state (host side only; never called under jit).

A checkpoint is one ``.npz`` file, ``ckpt_<update:09d>.npz``, holding every leaf of a pytree
(here the seed-batched ``LearnerState``: params, optimiser state, PRNG keys, env states,
running statistics, episode buffers) keyed by its pytree path, plus a small JSON record
(``__meta__``: the update and whatever the caller adds, e.g. elapsed time). Typed PRNG keys are
stored as their raw key data and re-wrapped with the template's implementation on restore.

Writes are atomic and durable: the file is written under a temporary name, flushed and fsynced,
renamed over the real name (``os.replace``) and the directory is fsynced, so a crash, a SIGKILL
or a power cut leaves either the previous set of checkpoints or the new one, never a
half-written file under a real name (a stale ``*.npz.tmp`` may remain; it is never listed and
is overwritten when the same update is saved again).

Reading verifies: every member of the zip carries a CRC-32 that numpy's reader checks, so a
truncated or bit-flipped file raises :class:`CheckpointError` instead of restoring garbage;
shapes, dtypes, leaf names and the update recorded inside the file are checked against the
caller's template. :func:`restore_latest` falls back from an unreadable newest checkpoint to an
older readable one and renames the unreadable ones aside (``*.corrupt``; nothing is deleted).
:func:`prune` deletes old checkpoints only while a newer kept one is readable.

Why npz and not orbax-checkpoint: orbax 0.12 does restore typed PRNG keys (checked), and its
directory-rename commit is atomic too, so the choice rests on other grounds. (1) One file per
checkpoint with a CRC per array is exactly what the fallback needs to tell a corrupt checkpoint
from a good one; orbax writes a directory of tensorstore/OCDBT files whose integrity checks
depend on the storage driver. (2) It needs nothing beyond numpy: ``eval``, ``compare`` or a
user's notebook can read a checkpoint with ``np.load``; orbax-checkpoint (and tensorstore) is
not a dependency of this package. (3) The state is small (a few MB per seed), so sharded,
asynchronous writes buy nothing here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from curio_jax.run.files import atomic_file

META_KEY = "__meta__"
_KEY_SUFFIX = "#prngkey"
_NAME = re.compile(r"^ckpt_(\d{9})\.npz$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or does not match the expected state."""


class Restored(NamedTuple):
    """A checkpoint read back: the update it was taken after, the state, its metadata."""

    update: int
    state: Any
    meta: dict
    path: Path


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_impl(leaf: Any) -> Any:
    """The PRNG implementation of a key array or of an abstract one (``ShapeDtypeStruct``,
    which ``jax.random.key_impl`` does not accept directly)."""
    if isinstance(leaf, jax.Array):
        return jax.random.key_impl(leaf)
    found: list = []
    jax.eval_shape(lambda k: found.append(jax.random.key_impl(k)), leaf)
    return found[0]


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


LEGACY_PREFIXES = (
    (".params.bonus", ".params.predictor"),
    (".opt_state.square_avg.bonus", ".opt_state.square_avg.predictor"),
    (".opt_state.mu.bonus", ".opt_state.mu.predictor"),
    (".opt_state.nu.bonus", ".opt_state.nu.predictor"),
    (".bonus.target_params", ".target_params"),
    (".bonus.obs_rms", ".obs_rms"),
    (".bonus.per_env.counts", ".visits.counts"),
    (".bonus.counts", ".visits.counts"),
)
"""(current leaf-name prefix, its name in checkpoints written before the learner state was
reshaped around learner x bonus): the RND predictor was ``params.predictor``, the target,
input statistics and visit counts top-level fields. A leaf missing from a checkpoint is looked
up under its old name before the checkpoint is refused."""


def _stored_name(name: str, arrays: dict[str, np.ndarray]) -> str:
    """The name under which leaf ``name`` is stored in ``arrays``: itself, or its name from
    before the reshaping (:data:`LEGACY_PREFIXES`) when only that is there."""
    if name in arrays:
        return name
    base = name[: -len(_KEY_SUFFIX)] if name.endswith(_KEY_SUFFIX) else name
    suffix = name[len(base) :]
    for new, old in LEGACY_PREFIXES:
        if base == new or base.startswith((new + ".", new + "[")):
            legacy = old + base[len(new) :] + suffix
            if legacy in arrays:
                return legacy
    return name


def arrays_to_state(arrays: dict[str, np.ndarray], template: Any) -> Any:
    """Inverse of `state_to_arrays` given a template with the target structure, shapes and
    dtypes (concrete arrays or `jax.ShapeDtypeStruct`s). The restored arrays are strongly
    typed (a weakly typed template leaf comes back as an ordinary array of its dtype). A
    checkpoint written before the learner x bonus reshaping is read by its old leaf names
    (:data:`LEGACY_PREFIXES`)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    restored = []
    expected = {META_KEY}
    for path, leaf in leaves:
        name = _leaf_name(path)
        if _is_key(leaf):
            key = _stored_name(name + _KEY_SUFFIX, arrays)
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
            restored.append(jax.random.wrap_key_data(data, impl=_key_impl(leaf)))
        else:
            stored = _stored_name(name, arrays)
            expected.add(stored)
            if stored not in arrays:
                raise CheckpointError(f"checkpoint has no leaf {name}")
            data = arrays[stored]
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


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(directory: Path, update: int, state: Any, meta: dict | None = None) -> Path:
    """Atomically and durably write the checkpoint of `state` taken after `update` updates.
    A write that fails (e.g. `[Errno 28] No space left on device`) removes its partial
    temporary file and raises; the earlier checkpoints are untouched.

    `meta`: JSON-serialisable extras stored in the same file (``update`` is added)."""
    if not isinstance(update, int) or isinstance(update, bool) or not 0 <= update < 10**9:
        raise ValueError(f"update must be an integer in [0, 1e9), got {update!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, update)
    arrays = state_to_arrays(jax.device_get(state))
    record = {**(meta or {}), "update": update}
    arrays[META_KEY] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    with atomic_file(path, "wb") as f:  # a full disk, an interrupt: no partial file is left
        np.savez(f, **arrays)
    _fsync_dir(directory)
    return path


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(update, path) of every checkpoint under its real name, oldest first (temporary and
    renamed-aside files are not listed)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a checkpoint file, CRC-checked; CheckpointError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as e:  # zip / npy format errors, bad CRC, truncation, missing file
        raise CheckpointError(
            f"cannot read checkpoint {Path(path).name}: {type(e).__name__}: {e}"
        ) from None


def _meta(arrays: dict[str, np.ndarray], path: Path) -> dict:
    raw = arrays.get(META_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(bytes(np.asarray(raw, dtype=np.uint8)).decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path.name}: unreadable metadata: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path.name}: metadata is not a JSON object")
    return meta


def read(path: Path, template: Any) -> Restored:
    """Read and verify one checkpoint against `template`; CheckpointError on any problem."""
    path = Path(path)
    m = _NAME.match(path.name)
    arrays = read_arrays(path)
    meta = _meta(arrays, path)
    if m and "update" in meta and meta["update"] != int(m.group(1)):
        raise CheckpointError(
            f"checkpoint {path.name} records update {meta['update']}, not {int(m.group(1))}"
        )
    update = int(m.group(1)) if m else int(meta.get("update", -1))
    try:
        state = arrays_to_state(arrays, template)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {path.name}: {e}") from None
    return Restored(update=update, state=state, meta=meta, path=path)


def load(path: Path, template: Any) -> Any:
    """The state of one checkpoint; CheckpointError if it is unreadable or does not match."""
    return read(path, template).state


def load_latest(directory: Path, template: Any, warn=print) -> tuple[int, Any] | None:
    """Read-only: the newest readable checkpoint as (update, state), falling back to older
    ones when newer are unreadable (files are left as they are); None when there is no
    checkpoint at all. Raises CheckpointError if checkpoints exist but none can be read."""
    ckpts = list_checkpoints(directory)
    if not ckpts:
        return None
    errors = []
    for update, path in reversed(ckpts):
        try:
            return update, read(path, template).state
        except CheckpointError as e:
            errors.append(str(e))
            warn(f"warning: skipping unreadable checkpoint: {e}")
    raise CheckpointError(f"no readable checkpoint in {directory}: {errors[0]}")


def set_aside(path: Path) -> Path:
    """Rename an unreadable checkpoint to ``<name>.corrupt`` (``.corrupt.1``, ... if taken),
    so it is neither listed, overwritten nor pruned; returns the new path."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    i = 0
    while target.exists():
        i += 1
        target = path.with_name(f"{path.name}.corrupt.{i}")
    os.replace(path, target)
    _fsync_dir(path.parent)
    return target


def restore_latest(directory: Path, template: Any, log=print, validate=None) -> Restored | None:
    """The newest readable checkpoint, for continuing a run.

    Unreadable newer checkpoints (corrupt, or rejected by ``validate(restored)`` raising
    CheckpointError) are renamed aside with :func:`set_aside` once an older readable one is
    found, and each is reported through `log`; nothing is deleted. None when the directory
    holds no checkpoint. If checkpoints exist but none is readable, CheckpointError is raised
    and every file is left untouched."""
    ckpts = list_checkpoints(directory)
    if not ckpts:
        return None
    bad: list[tuple[Path, str]] = []
    for _, path in reversed(ckpts):
        try:
            restored = read(path, template)
            if validate is not None:
                validate(restored)
        except CheckpointError as e:
            bad.append((path, str(e)))
            continue
        for p, why in bad:
            aside = set_aside(p)
            log(f"warning: {why}; renamed it to {aside.name} and fell back to {path.name}")
        return restored
    raise CheckpointError(
        f"none of the {len(ckpts)} checkpoint(s) in {directory} is readable (newest: "
        f"{bad[0][1]}); nothing was changed"
    )


def is_readable(path: Path) -> bool:
    """True when every array of the file reads back with a good CRC."""
    try:
        read_arrays(path)
    except CheckpointError:
        return False
    return True


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` checkpoints, but only if one of the kept ones reads back
    intact (so the only good checkpoint is never deleted). Files that are not checkpoints under
    their real names (``*.tmp``, ``*.corrupt``) are never touched. Returns the deleted paths."""
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise ValueError(f"keep must be a positive integer, got {keep!r}")
    ckpts = list_checkpoints(directory)
    old, kept = ckpts[:-keep], ckpts[-keep:]
    if not old or not any(is_readable(p) for _, p in reversed(kept)):
        return []
    for _, path in old:
        path.unlink()
    return [p for _, p in old]
