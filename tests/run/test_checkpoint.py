"""Checkpoint files: exact round trip (typed PRNG keys included), corruption detection, fallback
that renames aside instead of deleting, and pruning that never removes the only good file."""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from curio_jax.run import checkpoint as ckpt


def make_state(scale: float = 1.0) -> dict:
    return {
        "params": {"w": jnp.arange(12, dtype=jnp.float32).reshape(3, 4) * scale, "b": None},
        "count": jnp.asarray([3, 4], jnp.int32),
        "flags": jnp.asarray([True, False]),
        "key": jax.random.split(jax.random.key(7), 2),
        "rbg": jax.random.split(jax.random.key(1, impl="rbg"), 3),
    }


def assert_same_state(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def flip_byte(path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


def snapshot(directory) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


@pytest.mark.parametrize("abstract", [False, True])
def test_round_trip_is_exact_with_keys_and_metadata(tmp_path, abstract):
    state = make_state()
    path = ckpt.save(tmp_path, 5, state, meta={"seconds": 1.5})
    assert path.name == "ckpt_000000005.npz"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    template = jax.eval_shape(lambda: make_state(2.0)) if abstract else make_state(2.0)
    restored = ckpt.read(path, template)
    assert restored.update == 5 and restored.meta == {"seconds": 1.5, "update": 5}
    assert_same_state(restored.state, state)
    # the file is plain numpy: readable without JAX
    with np.load(path) as data:
        np.testing.assert_array_equal(data["['count']"], [3, 4])


def test_template_mismatch_names_the_leaf(tmp_path):
    path = ckpt.save(tmp_path, 1, make_state())
    bad_shape = make_state()
    bad_shape["params"]["w"] = jnp.zeros((4, 3), jnp.float32)
    with pytest.raises(ckpt.CheckpointError, match=r"\['params'\]\['w'\]"):
        ckpt.read(path, bad_shape)
    extra = {**make_state(), "more": jnp.zeros(2)}
    with pytest.raises(ckpt.CheckpointError, match=r"no leaf \['more'\]"):
        ckpt.read(path, extra)
    fewer = make_state()
    del fewer["flags"]
    with pytest.raises(ckpt.CheckpointError, match=r"unexpected leaf \['flags'\]"):
        ckpt.read(path, fewer)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_damaged_file_is_detected(tmp_path, damage):
    path = ckpt.save(tmp_path, 3, make_state())
    if damage == "flip":
        flip_byte(path)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"")
    assert not ckpt.is_readable(path)
    with pytest.raises(ckpt.CheckpointError, match="ckpt_000000003.npz"):
        ckpt.read(path, make_state())


def test_file_renamed_to_another_update_is_rejected(tmp_path):
    path = ckpt.save(tmp_path, 2, make_state())
    path.rename(ckpt.checkpoint_path(tmp_path, 3))
    with pytest.raises(ckpt.CheckpointError, match="records update 2"):
        ckpt.read(ckpt.checkpoint_path(tmp_path, 3), make_state())


def test_listing_ignores_temporary_and_set_aside_files(tmp_path):
    for u in (1, 20, 3):
        ckpt.save(tmp_path, u, make_state())
    (tmp_path / "ckpt_000000030.npz.tmp").write_bytes(b"partial")
    (tmp_path / "ckpt_000000040.npz.corrupt").write_bytes(b"old")
    assert [u for u, _ in ckpt.list_checkpoints(tmp_path)] == [1, 3, 20]


def test_restore_latest_falls_back_and_sets_the_corrupt_file_aside(tmp_path):
    for u in (1, 2, 3):
        ckpt.save(tmp_path, u, make_state(float(u)))
    newest = ckpt.checkpoint_path(tmp_path, 3)
    flip_byte(newest)
    damaged = newest.read_bytes()
    before = snapshot(tmp_path)
    messages: list[str] = []
    restored = ckpt.restore_latest(tmp_path, make_state(), log=messages.append)
    assert restored.update == 2
    assert_same_state(restored.state, make_state(2.0))
    assert len(messages) == 1 and "ckpt_000000003.npz" in messages[0]
    assert "ckpt_000000003.npz.corrupt" in messages[0] and "ckpt_000000002.npz" in messages[0]
    # nothing deleted: the damaged bytes live on under the new name, the rest is untouched
    after = snapshot(tmp_path)
    assert after.pop("ckpt_000000003.npz.corrupt") == before.pop("ckpt_000000003.npz")
    assert after == before
    assert (tmp_path / "ckpt_000000003.npz.corrupt").read_bytes() == damaged
    # a second corrupt file of the same name does not overwrite the first one set aside
    ckpt.save(tmp_path, 3, make_state())
    flip_byte(newest)
    assert ckpt.restore_latest(tmp_path, make_state(), log=messages.append).update == 2
    assert (tmp_path / "ckpt_000000003.npz.corrupt").read_bytes() == damaged
    assert (tmp_path / "ckpt_000000003.npz.corrupt.1").is_file()


def test_restore_latest_rejected_by_validation_is_set_aside(tmp_path):
    ckpt.save(tmp_path, 1, make_state())
    ckpt.save(tmp_path, 2, make_state())

    def only_odd(r):
        if r.update % 2 == 0:
            raise ckpt.CheckpointError("even")

    restored = ckpt.restore_latest(tmp_path, make_state(), log=lambda m: None, validate=only_odd)
    assert restored.update == 1
    assert (tmp_path / "ckpt_000000002.npz.corrupt").is_file()


def test_restore_latest_refuses_when_nothing_is_readable_and_changes_nothing(tmp_path):
    for u in (1, 2):
        flip_byte(ckpt.save(tmp_path, u, make_state()))
    before = snapshot(tmp_path)
    with pytest.raises(ckpt.CheckpointError, match="none of the 2 checkpoint"):
        ckpt.restore_latest(tmp_path, make_state(), log=lambda m: None)
    assert snapshot(tmp_path) == before
    assert ckpt.restore_latest(tmp_path / "absent", make_state()) is None


def test_load_latest_is_read_only(tmp_path):
    ckpt.save(tmp_path, 1, make_state(1.0))
    flip_byte(ckpt.save(tmp_path, 2, make_state(2.0)))
    before = snapshot(tmp_path)
    warnings: list[str] = []
    update, state = ckpt.load_latest(tmp_path, make_state(), warn=warnings.append)
    assert update == 1 and len(warnings) == 1
    assert_same_state(state, make_state(1.0))
    assert snapshot(tmp_path) == before


def test_prune_keeps_the_newest_and_never_the_only_good_one(tmp_path):
    for u in (1, 2, 3, 4):
        ckpt.save(tmp_path, u, make_state())
    (tmp_path / "ckpt_000000000.npz.corrupt").write_bytes(b"x")
    deleted = ckpt.prune(tmp_path, keep=2)
    assert [p.name for p in deleted] == ["ckpt_000000001.npz", "ckpt_000000002.npz"]
    assert [u for u, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]
    assert (tmp_path / "ckpt_000000000.npz.corrupt").is_file()
    # the kept (newest) checkpoint is damaged: the older, good one must survive
    ckpt.save(tmp_path, 5, make_state())
    flip_byte(ckpt.checkpoint_path(tmp_path, 5))
    assert ckpt.prune(tmp_path, keep=1) == []
    assert [u for u, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4, 5]
    with pytest.raises(ValueError):
        ckpt.prune(tmp_path, keep=0)


_FULL_DISK_CHILD = """
import resource, signal, sys
from pathlib import Path
import numpy as np
from curio_jax.run import checkpoint as ckpt
d = Path(sys.argv[1])
ckpt.save(d, 1, {"w": np.zeros(1000, np.float32)})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
try:
    ckpt.save(d, 2, {"w": np.zeros(100_000, np.float32)})
except OSError as e:
    print("errno", e.errno)
"""


def test_a_write_the_filesystem_refuses_keeps_the_earlier_checkpoint_and_no_partial_file(
    tmp_path,
):
    """A real failed write (the kernel's file-size limit, as a full disk stops a write part-way):
    the earlier checkpoint stays, the partial ckpt_*.npz.tmp is removed, and the directory
    still restores."""
    import errno
    import subprocess
    import sys

    d = tmp_path / "ckpts"
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(d)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert f"errno {errno.EFBIG}" in proc.stdout
    assert sorted(p.name for p in d.iterdir()) == ["ckpt_000000001.npz"]
    restored = ckpt.restore_latest(d, {"w": np.zeros(1000, np.float32)}, log=lambda _: None)
    assert restored.update == 1


def test_no_space_left_removes_the_partial_file(tmp_path, monkeypatch):
    import errno

    ckpt.save(tmp_path, 1, make_state())
    real = np.savez

    def full_disk(f, **arrays):
        f.write(b"x" * 4096)  # part of the file reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save(tmp_path, 2, make_state(2.0))
    monkeypatch.setattr(np, "savez", real)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["ckpt_000000001.npz"]
