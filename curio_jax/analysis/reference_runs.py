"""The layout of a PyTorch reference run directory, and reading how far one has got, without
torch (the reference extra).

`python -m curio_jax.reference.train --out DIR` writes:

    DIR/reference_run.json              its settings (preset, seeds, config, threads, init_from)
    DIR/seeds/seed_S.json               a finished seed: its result and every logged row
    DIR/checkpoints/seed_S.pt           a running seed's loop (torch pickle; what --resume reads)
    DIR/checkpoints/seed_S.rows.json    the rows that seed had logged at that checkpoint
    DIR/summary.json, metrics.csv, config.json   once every seed has finished

Every file is replaced atomically (curio_jax.run.files), so a run can be read while it goes on
(`curio-jax compare --unfinished`, docs/cli.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

RUN_FILE = "reference_run.json"


class ReferenceRunError(ValueError):
    """A reference run directory that cannot be read (the message is one line)."""


def seed_result_path(out: Path, seed: int) -> Path:
    """Where a finished seed's result is kept."""
    return Path(out) / "seeds" / f"seed_{seed}.json"


def checkpoint_path(out: Path, seed: int) -> Path:
    """Where a running seed's loop is checkpointed."""
    return Path(out) / "checkpoints" / f"seed_{seed}.pt"


def checkpoint_rows_path(checkpoint: Path) -> Path:
    """The rows file that goes with a checkpoint (seed_S.pt -> seed_S.rows.json)."""
    return checkpoint.with_name(checkpoint.stem + ".rows.json")


@dataclass
class Progress:
    """How far a reference run in a directory has got (`read_progress`)."""

    settings: dict  # reference_run.json: preset, seeds, config, threads, init_from
    rows: list[dict] = field(default_factory=list)  # logged rows, seed by seed
    ended: list[int] = field(default_factory=list)  # finished (at their solve or budget)
    running: list[int] = field(default_factory=list)  # part-way, as of their last checkpoint
    not_started: list[int] = field(default_factory=list)  # nothing saved yet


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReferenceRunError(f"{path}: not valid JSON ({type(e).__name__})") from None


def _rows(path: Path, obj: object) -> list[dict]:
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise ReferenceRunError(f"{path}: expected a list of logged rows")
    return obj


def read_progress(out: str | Path) -> Progress:
    """The rows a reference run in `out` has logged so far, finished or not: a finished seed's
    from its seed file, a running seed's from the rows file of its last checkpoint. Reads
    only; the run may be going on. Raises ReferenceRunError."""
    out = Path(out)
    saved_path = out / RUN_FILE
    if not saved_path.is_file():
        raise ReferenceRunError(f"{out} holds no reference run ({RUN_FILE} is missing)")
    settings = _read_json(saved_path)
    seeds = settings.get("seeds") if isinstance(settings, dict) else None
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ReferenceRunError(f"{saved_path}: 'seeds' is missing or not a list of integers")
    progress = Progress(settings)
    for seed in seeds:
        done = seed_result_path(out, seed)
        if done.is_file():
            result = _read_json(done)
            metrics = result.get("metrics") if isinstance(result, dict) else None
            progress.rows += _rows(done, metrics)
            progress.ended.append(seed)
            continue
        ckpt = checkpoint_path(out, seed)
        rows = checkpoint_rows_path(ckpt)
        if rows.is_file():
            progress.rows += _rows(rows, _read_json(rows))
            progress.running.append(seed)
        elif ckpt.is_file():
            raise ReferenceRunError(
                f"{ckpt} has no {rows.name} beside it (a checkpoint saved before reference "
                "runs wrote one): resume the run with --resume until its next checkpoint"
            )
        else:
            progress.not_started.append(seed)
    return progress
