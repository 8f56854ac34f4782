"""Slice records: what a finished slice of a study keeps in the repository (docs/studies.md).

A run directory holds checkpoints and may vanish with the machine it ran on; a record is the
small part of it that statistics need, written once, atomically, into the study's folder:

    {"format": "curio_jax/study-record/1", "study", "arm", "slice",
     "content": {"config", "run": {"seeds", "seed", "stop_when_solved"},
                 "summary": {...the deterministic fields of summary.json...},
                 "rows": {"columns": [...], "lines": ["0,40,2560,...", ...]}},
     "content_sha256": "<sha256 of the canonical JSON of content>",
     "provenance": {"package_version", "git_commit", "device", "date", "frames_per_sec",
                    "seconds", "compile_seconds", "segments", ...}}

``content`` is a pure function of the study spec and the code on CPU (a resumed run ends
bit-identical to an uninterrupted one): rerunning a slice gives the same content, and "the same
record" means the same ``content_sha256``. ``provenance`` (when, where, how fast) is kept
apart and never compared. ``rows`` is metrics.csv as it is (one line per logged update per
seed, every column; plain text, a few hundred bytes a row).

`write_record` creates a record file and never replaces one with different content (both are
named); `read_record` refuses a record whose content does not hash to its digest (edited by
hand or corrupted); `load_record` reads one as a `Run` for compare, and `load_records` pools an
arm's records (a folder of them) like ``DIR+DIR``.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import importlib.metadata
import io
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curio_jax.analysis.runs import (
    Run,
    RunDirError,
    _check_config,
    _check_summary,
    _frame_budget,
    _parse_float,
    pool_runs,
)

FORMAT = "curio_jax/study-record/1"
SUMMARY_KEYS = (
    "preset",
    "impl",
    "solved_threshold",
    "seeds",
    "frames",
    "frames_per_seed",
    "updates",
    "stops_at_solve",
)
"""The fields of summary.json a record keeps as content (the rest is timing and machine)."""
PROVENANCE_SUMMARY_KEYS = (
    "device",
    "seconds",
    "frames_per_sec",
    "compile_seconds",
    "segments",
    "devices",
    "env_shards",
    "micro_batch",
    "seed_batch",
)


class RecordError(RunDirError):
    """A record that cannot be read, does not match its digest, or clashes with another."""


def canonical(obj: Any) -> str:
    """The JSON text a digest is taken of: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(content).encode()).hexdigest()


def _git_commit(where: Path) -> str | None:
    """The commit the package was run from (with "+dirty" for uncommitted changes), if git
    knows it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _package_version() -> str | None:
    try:
        return importlib.metadata.version("curio_jax")
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance(summary: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Where, when and how fast a slice ran: the package version and git commit, the date,
    and summary.json's machine and timing fields."""
    here = Path(__file__).resolve().parent
    return {
        "package_version": _package_version(),
        "git_commit": _git_commit(here),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **{k: summary[k] for k in PROVENANCE_SUMMARY_KEYS if k in summary},
        **extra,
    }


def record_from_run_dir(
    run_dir: str | Path, study: str, arm: str, slice_name: str, **prov: Any
) -> dict[str, Any]:
    """The record of a finished `curio-jax train` run directory (config.json, run.json,
    metrics.csv, summary.json) as slice ``slice_name`` of arm ``arm`` of ``study``."""
    d = Path(run_dir)
    try:
        config = json.loads((d / "config.json").read_text())
        run = json.loads((d / "run.json").read_text())
        summary = json.loads((d / "summary.json").read_text())
        text = (d / "metrics.csv").read_text()
    except (OSError, json.JSONDecodeError) as e:
        raise RecordError(f"{d}: cannot make a record of it ({e})") from None
    lines = text.splitlines()
    content = {
        "config": config,
        "run": {
            "seeds": run["seeds"],
            "seed": run["seed"],
            "stop_when_solved": bool(run.get("stop_when_solved", False)),
        },
        "summary": {k: summary[k] for k in SUMMARY_KEYS if k in summary},
        "rows": {"columns": lines[0].split(","), "lines": lines[1:]},
    }
    # the format first: `is_record` looks for it at the start of a file
    return {
        "format": FORMAT,
        "study": study,
        "arm": arm,
        "slice": slice_name,
        "content_sha256": content_digest(content),
        "provenance": provenance(summary, **prov),
        "content": content,
    }


def read_record(path: str | Path) -> dict[str, Any]:
    """A record file, checked: its format, its fields, and its content against its digest."""
    p = Path(path)
    try:
        rec = json.loads(p.read_text())
    except FileNotFoundError:
        raise RecordError(f"{p}: no such record") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{p}: not a readable record ({str(e).splitlines()[0]})") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise RecordError(f"{p}: not a study record (format {FORMAT!r})")
    for key in ("study", "arm", "slice", "content_sha256"):
        if not isinstance(rec.get(key), str):
            raise RecordError(f"{p}: {key!r} is missing or not a string")
    content = rec.get("content")
    ok = isinstance(content, dict) and all(
        isinstance(content.get(k), dict) for k in ("config", "run", "summary", "rows")
    )
    if not ok:
        raise RecordError(f"{p}: 'content' lacks config, run, summary or rows")
    try:
        digest = content_digest(content)
    except ValueError as e:
        raise RecordError(f"{p}: content is not plain JSON ({e})") from None
    if digest != rec["content_sha256"]:
        raise RecordError(
            f"{p}: its content does not match its content_sha256 (edited or corrupted: "
            f"{digest[:12]} vs recorded {rec['content_sha256'][:12]}); rerun the slice"
        )
    return rec


def same_record(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Records of the same slice with the same deterministic content (provenance aside)."""
    keys = ("study", "arm", "slice", "content_sha256")
    return all(a.get(k) == b.get(k) for k in keys)


def write_record(path: str | Path, record: dict[str, Any]) -> bool:
    """Create the record file ``path`` atomically (never a partial file). An existing record
    with the same content is kept as it is (False: nothing written); one with different
    content, or an unreadable one, is never overwritten: RecordError naming both."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, p)  # atomic create: fails if a record is there (another job's too)
            return True
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    try:
        old = read_record(p)
    except RecordError as e:
        raise RecordError(f"{p} exists and is not a valid record ({e}); not replaced") from None
    if same_record(old, record):
        return False
    raise RecordError(
        f"{p} holds a different record of {record['arm']}/{record['slice']} (content "
        f"{old['content_sha256'][:12]}, from {old.get('provenance', {}).get('date', '?')}) than "
        f"the new one (content {record['content_sha256'][:12]}); the stored one is kept: compare "
        "them, then remove the wrong one"
    )


def _rows(where: Path, rows: dict[str, Any]) -> dict[str, np.ndarray]:
    columns, lines = rows.get("columns"), rows.get("lines")
    if not isinstance(columns, list) or not isinstance(lines, list) or not lines:
        raise RecordError(f"{where}: rows lack columns or lines")
    for name in ("seed", "frames", "avg_return_last100"):
        if name not in columns:
            raise RecordError(f"{where}: rows lack the column {name}")
    body = list(csv.reader(io.StringIO("\n".join(lines))))
    if any(len(r) != len(columns) for r in body):
        raise RecordError(f"{where}: a row does not have {len(columns)} fields")
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(columns):
        try:
            out[name] = np.array([_parse_float(r[j]) for r in body])
        except ValueError:
            continue
    return out


def load_record(path: str | Path, name: str | Path | None = None) -> Run:
    """A record as a Run (its seeds numbered 0..n-1 as in its run directory, its base seed
    kept for pooling); ``name``: the path the Run reports (default ``path``)."""
    p = Path(path)
    rec = read_record(p)
    content = rec["content"]
    config = _check_config(p, content["config"], where=p)
    summary = content["summary"]
    budget = _frame_budget(p, config, summary)
    try:
        seeds, finals, solves = _check_summary(p, summary, budget)
    except RunDirError as e:
        raise RecordError(str(e).replace("summary.json", "summary")) from None
    metrics = _rows(p, content["rows"])
    run = content["run"]
    return Run(
        path=Path(name) if name is not None else p,
        config=config,
        summary={**summary, **{k: v for k, v in rec.get("provenance", {}).items()}},
        metrics=metrics,
        seeds=seeds,
        final_scores=finals,
        frames_to_solve=solves,
        budget=budget,
        base_seed=int(run["seed"]),
    )


def is_record(path: str | Path) -> bool:
    """Whether ``path`` is a file that says it is a study record (not validated)."""
    p = Path(path)
    if not p.is_file() or p.suffix != ".json":
        return False
    try:
        with open(p) as f:
            head = f.read(512)
    except (OSError, UnicodeDecodeError):
        return False
    return f'"format": "{FORMAT}"' in head


def records_in(folder: str | Path) -> list[Path]:
    """The record files directly in ``folder`` (one arm's), by name."""
    return sorted(p for p in Path(folder).glob("*.json") if is_record(p))


def load_records(paths: Sequence[str | Path], name: str | None = None) -> Run:
    """Records of one arm (slices run as separate programs) pooled into one run, like
    ``DIR+DIR``, in order of base seed; a seed counted twice (two records of one base seed) is
    refused."""
    runs = sorted((load_record(p) for p in paths), key=lambda r: r.base_seed)
    if not runs:
        raise RecordError(f"{name}: no records")
    if len(runs) == 1:
        return runs[0]
    for a, b in zip(runs, runs[1:], strict=False):
        if a.base_seed == b.base_seed:
            raise RecordError(
                f"{a.path} and {b.path} hold the same seeds (base seed {a.base_seed}): a seed "
                "would be counted twice"
            )
    return pool_runs(runs, name)
