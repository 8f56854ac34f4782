"""What a run reports while it runs: the console progress line and the loggers that the run
loop calls after every chunk (:class:`Callback`): metrics.csv, TensorBoard, progress.

A logger is any object with ``on_chunk(chunk)`` (and optionally ``close()``); the loop calls
them in order after a chunk's rows are final (and after its checkpoint, if any), so a callback
may print, write, plot or even pause the process.
"""

from __future__ import annotations

import importlib.util
import json
import math
import secrets
import shutil
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from curio_jax.core.metrics import tensorboard_names
from curio_jax.run.files import atomic_write
from curio_jax.run.rundir import MetricsCSV


@dataclass
class Chunk:
    """What the run loop hands to its callbacks after each chunk (all host values)."""

    update: int
    """Updates done (per learner state) after this chunk."""
    total: int
    """Updates of the whole run."""
    frames_per_update: int
    """Frames per update of one learner state."""
    rows: list[list[dict]]
    """Per group (a run; several in a sweep), per seed: the logged row by column name."""
    checkpointed: bool
    """A checkpoint at `update` was written after this chunk."""
    frames_per_sec: float
    """Steady training throughput so far (all learner states together)."""
    eta_seconds: float
    """Estimated time to the end of the run."""
    last_checkpoint: str
    """Where the last good state is, for messages ("checkpoint update 8")."""


class Callback(Protocol):
    def on_chunk(self, chunk: Chunk) -> None: ...


class Progress:
    """Console output of a run: on a terminal the per-chunk progress is one line rewritten in
    place; otherwise (a log file, a pipe) every update of it is a plain line."""

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None):
        self.stream = stream if stream is not None else sys.stdout
        if tty is None:
            try:
                tty = self.stream.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = bool(tty)
        self._open = False

    def update(self, text: str) -> None:
        if self.tty:
            width = max(20, shutil.get_terminal_size().columns - 1)
            self.stream.write("\r" + text[:width] + "\x1b[K")
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def info(self, text: str) -> None:
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        """Finish the in-place line (if any) so the next output starts on a fresh line."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def _fmt_time(s: float) -> str:
    if not math.isfinite(s) or s < 0:
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s"


def progress_line(
    update: int,
    total: int,
    frames_per_update: int,
    frames_per_sec: float,
    score: float,
    reward_int: float,
    eta_seconds: float,
    checkpointed: bool = False,
) -> str:
    """One progress line: frames (per seed), throughput (all seeds), ETA, average score over
    seeds, intrinsic reward (most important first: a terminal cuts the line at its width)."""
    score_s = f"{score:.3f}" if math.isfinite(score) else "n/a"
    return (
        f"[{100 * update / total:5.1f}%] frames {update * frames_per_update:,}/"
        f"{total * frames_per_update:,} | {frames_per_sec:,.0f} frames/s | ETA "
        f"{_fmt_time(eta_seconds)} | avg score {score_s} | r_int {reward_int:.2e} | update "
        f"{update}/{total}" + (" | checkpoint" if checkpointed else "")
    )


class ProgressLogger:
    """The progress line after every chunk: frames (per seed), throughput, ETA, the average
    score over seeds and the intrinsic reward of the last chunk."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def on_chunk(self, chunk: Chunk) -> None:
        rows = [r for group in chunk.rows for r in group]
        scores = np.array([r["avg_return_last100"] for r in rows])
        score = (
            float(np.mean(scores[np.isfinite(scores)])) if np.isfinite(scores).any() else math.nan
        )
        self.progress.update(
            progress_line(
                chunk.update,
                chunk.total,
                chunk.frames_per_update,
                chunk.frames_per_sec,
                score,
                float(np.mean([r["reward_int_mean"] for r in rows])),
                chunk.eta_seconds,
                chunk.checkpointed,
            )
        )


class CSVLogger:
    """Each group's rows appended to its metrics.csv (by column name; flushed every chunk,
    synced before a checkpoint so rows up to it survive a power cut)."""

    def __init__(self, paths: list[Path]):
        self.files = [MetricsCSV(p).open() for p in paths]

    def write(self, chunk: Chunk) -> None:
        for f, rows in zip(self.files, chunk.rows, strict=True):
            f.append(
                [
                    {
                        "seed": s,
                        "update": chunk.update,
                        "frames": chunk.update * chunk.frames_per_update,
                        **r,
                    }
                    for s, r in enumerate(rows)
                ]
            )

    def sync(self) -> None:
        for f in self.files:
            f.sync()

    def on_chunk(self, chunk: Chunk) -> None:  # rows are written by the loop before checkpoints
        pass

    def close(self) -> None:
        for f in self.files:
            f.close()


def summary_writer() -> tuple[Any, str]:
    """(SummaryWriter class, its module) or (None, why not)."""
    try:
        from tensorboardX import SummaryWriter

        return SummaryWriter, "tensorboardX"
    except ImportError:
        pass
    except Exception as e:  # a broken install (e.g. protobuf mismatch)
        return None, f"tensorboardX failed to import ({type(e).__name__}: {e})"
    if importlib.util.find_spec("tensorboard") and importlib.util.find_spec("torch"):
        try:
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter, "torch.utils.tensorboard"
        except Exception as e:
            return None, f"torch.utils.tensorboard failed to import ({type(e).__name__}: {e})"
    return None, "neither tensorboardX nor tensorboard is installed"


class TensorBoardLogger:
    """One event-file writer per seed under DIR/tb/seed_<i>; scalars are stepped by frames per
    seed and named by the metrics' metadata. On resume, events after the checkpoint (steps >=
    purge_step) are purged."""

    def __init__(
        self, writer_cls: Any, directory: Path, seeds: int, purge_step: int | None, rnd: bool
    ):
        self.names = tensorboard_names(rnd)
        self.writers = [
            writer_cls(str(directory / f"seed_{s}"), purge_step=purge_step) for s in range(seeds)
        ]

    def write(self, frames: int, rows: list[dict[str, float]]) -> None:
        for writer, values in zip(self.writers, rows, strict=True):
            for name, tag in self.names.items():
                v = values[name]
                if math.isfinite(v):
                    writer.add_scalar(tag, v, global_step=frames)
            writer.flush()

    def close(self) -> None:
        for w in self.writers:
            w.close()


class GroupTensorBoard:
    """TensorBoard for every group of a run that has a writer (callback)."""

    def __init__(self, loggers: list[TensorBoardLogger | None]):
        self.loggers = loggers

    def on_chunk(self, chunk: Chunk) -> None:
        frames = chunk.update * chunk.frames_per_update
        for tb, rows in zip(self.loggers, chunk.rows, strict=True):
            if tb is not None:
                tb.write(frames, rows)

    def close(self) -> None:
        for tb in self.loggers:
            if tb is not None:
                tb.close()


def open_tensorboard(
    enabled: bool, out: Path, seeds: int, purge_step: int | None, rnd: bool, info
) -> TensorBoardLogger | None:
    """A TensorBoard logger for one run directory, or None (disabled, or no writer installed:
    then `info` says why once)."""
    if not enabled:
        return None
    writer_cls, where = summary_writer()
    if writer_cls is None:
        info(f"TensorBoard logging off: {where} (pip install 'curio_jax[tensorboard]')")
        return None
    return TensorBoardLogger(writer_cls, out / "tb", seeds, purge_step, rnd)


class WandbLogger:
    """Weights & Biases logging (opt-in: `train --wandb PROJECT`, the `wandb` extra). One W&B
    run per curio_jax run, its config the TrainConfig; after every chunk, each metric per seed
    (``seed_<i>/<tensorboard name>``) and its mean over seeds (``mean/<name>``), stepped by
    frames per seed. The W&B run id is kept in DIR/wandb.json, so `--resume` continues the
    same W&B run (rows after the checkpoint that a killed session had logged are logged
    again at the same steps; W&B keeps the first)."""

    FILE = "wandb.json"

    def __init__(self, project: str | None, out: Path, cfg: Any, rnd: bool):
        self.project, self.out, self.cfg = project, out, cfg
        self.names = tensorboard_names(rnd)
        self.run: Any = None  # started at the first chunk, inside the prepared run directory

    def _start(self) -> None:
        import wandb

        record_path = self.out / self.FILE
        project = self.project
        if record_path.is_file():
            record = json.loads(record_path.read_text())
            project = project or record["project"]
            if record["project"] != project:
                raise ValueError(
                    f"{self.out} logs to W&B project {record['project']!r}, not {project!r}"
                )
        else:
            alphabet = string.ascii_lowercase + string.digits
            run_id = "".join(secrets.choice(alphabet) for _ in range(8))  # W&B's id form
            record = {"project": project, "id": run_id}
            atomic_write(record_path, json.dumps(record, indent=2))
        self.run = wandb.init(
            project=project,
            id=record["id"],
            resume="allow",
            dir=str(self.out),
            name=self.out.name,
            config=self.cfg.to_dict(),
        )

    @classmethod
    def saved_project(cls, out: Path) -> str | None:
        """The project a run directory logs to (None: no W&B logging)."""
        path = out / cls.FILE
        return json.loads(path.read_text())["project"] if path.is_file() else None

    def on_chunk(self, chunk: Chunk) -> None:
        if self.run is None:
            self._start()
        rows = chunk.rows[0]
        data: dict[str, float] = {}
        for name, tag in self.names.items():
            values = np.array([r[name] for r in rows], dtype=float)
            for s, v in enumerate(values):
                if math.isfinite(v):
                    data[f"seed_{s}/{tag}"] = float(v)
            if np.isfinite(values).any():
                data[f"mean/{tag}"] = float(np.mean(values[np.isfinite(values)]))
        self.run.log(data, step=chunk.update * chunk.frames_per_update)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
