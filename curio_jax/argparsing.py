"""Argument parsing shared by every command line of the package (`curio-jax` and
`python -m curio_jax.reference.train`): one-line errors and the argument types."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn


def one_line(text: object) -> str:
    """`text` as a single printable line: line breaks and every other non-printable character
    (which `str.splitlines` may treat as a line boundary, e.g. \\x1e) are escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line error messages (exit status 2, no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def micro_batch_list(text: str) -> list[int | None]:
    """'auto,0,256' -> [None, 0, 256]: TrainSettings.micro_batch values (auto: automatic)."""
    out: list[int | None] = []
    for t in (t.strip() for t in text.split(",")):
        if t == "auto":
            out.append(None)
        elif t.isdigit():
            out.append(int(t))
        elif t:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated 'auto' or integers >= 0, got {text!r}"
            )
    if not out:
        raise argparse.ArgumentTypeError(f"expected 'auto' or integers >= 0, got {text!r}")
    return out


def unit_float(text: str) -> float:
    """A number in [0, 1]."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


def int_list(text: str) -> list[int]:
    """'5,8,16' -> [5, 8, 16]; every item a positive integer."""
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def size_list(text: str) -> list[int]:
    vals = int_list(text)
    bad = [v for v in vals if v < 5]
    if bad:
        raise argparse.ArgumentTypeError(f"DoorKey sizes must be >= 5, got {bad[0]}")
    return vals


def out_path(text: str) -> Path:
    p = Path(text)
    if p.exists() and p.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file path")
    if not p.parent.exists():
        raise argparse.ArgumentTypeError(f"directory {str(p.parent)!r} does not exist")
    return p


def int_at_least(minimum: int, what: str):
    """argparse type: an integer >= minimum, else a one-line error naming `what`."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


positive_int = int_at_least(1, "a positive integer")
nonneg_int = int_at_least(0, "a non-negative integer")


def run_dir(text: str) -> Path:
    """A run directory for `train --out`: need not exist, but may not be (or lie under) a file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a directory path, got an empty string")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"invalid path {text!r}")
    p = Path(text)
    try:
        for a in (p, *p.parents):
            if a.exists():
                if not a.is_dir():
                    raise argparse.ArgumentTypeError(f"{str(a)!r} exists and is not a directory")
                break
    except OSError as e:
        raise argparse.ArgumentTypeError(f"invalid path {text!r}: {e.strerror or e}") from None
    return p


door_size = int_at_least(5, "a DoorKey size, an integer >= 5")
