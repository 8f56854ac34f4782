"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never a
part of one, and a write that fails (a full disk, an interrupt) leaves no temporary file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open `path`.tmp for writing; on success flush, fsync and rename it over `path`; on any
    exception remove it and re-raise."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_file(path) as f:
        f.write(text)
