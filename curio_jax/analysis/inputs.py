"""What a RUN argument of `curio-jax compare` names: a run directory, a pool of them, a run
recorded in a compare JSON, or a study's slice records (one, a pool, or an arm's folder)."""

from __future__ import annotations

from pathlib import Path

from curio_jax.analysis import records
from curio_jax.analysis.runs import POOL_SEP, Run, RunDirError, load_recorded, load_run, pool_runs


def load(spec: str | Path, unfinished: bool = False) -> Run:
    """A run directory; ``FILE.json:LABEL`` (the run labelled LABEL in a JSON that
    `compare --json` wrote, see `load_recorded`); a slice record of a study (``RECORD.json``,
    `curio_jax.analysis.records`) or a folder of one arm's records (pooled); or
    ``RUN+RUN[+...]``, run directories (or records) of one config pooled into one run
    (`pool_runs`). ``unfinished``: see `load_run`. Raises RunDirError with a one-line
    message."""
    text = str(spec)
    p = Path(text)
    if p.is_dir():
        if not (p / "config.json").exists() and records.records_in(p):
            return records.load_records(records.records_in(p), text)
    else:
        if records.is_record(p):
            return records.load_record(p)
        file, sep, label = text.rpartition(":")
        if sep and file and Path(file).is_file():
            return load_recorded(file, label)
        if POOL_SEP in text and not p.exists():
            names = text.split(POOL_SEP)
            if not all(names):
                raise RunDirError(f"{text}: an empty name in a pooled run (DIR+DIR[+...])")
            return pool_runs([load(n, unfinished) for n in names], text)
    return load_run(spec, unfinished)
