"""What the `curio-jax` commands share: usage errors, option groups, config overrides, the
run-job wrapper that turns failures into exit statuses."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from curio_jax.argparsing import nonneg_int, one_line, positive_int

REFERENCE_EXTRA = ("torch", "gymnasium", "minigrid")
"""The modules of the `reference` extra."""


def missing_modules(names: tuple[str, ...] = REFERENCE_EXTRA) -> list[str]:
    """Which of `names` cannot be imported."""
    return [m for m in names if importlib.util.find_spec(m) is None]


class UsageError(Exception):
    """Bad user input discovered after parsing; reported as one line, exit status 2."""


MICRO_BATCH_HELP = (
    "samples per micro-batch of the update (speed and memory; RND dropout masks are drawn per "
    "piece; 0: the whole batch; default: automatic, 512 on CPU, the whole batch on GPU/TPU; "
    "must divide num_envs x rollout_size)"
)


SEED_BATCH_HELP = (
    "seeds vmapped together per step of the seed loop inside the one program (speed only; "
    "0: all at once; default: automatic, 1 on CPU with one device, all on GPU/TPU or several "
    "devices; must divide the number of seeds run together)"
)


def write_json(path: Path | None, obj: object) -> None:
    """Write `obj` as JSON to `path` atomically (nothing when `path` is None)."""
    if path is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)
    print(f"wrote {path}")


def config_from_args(args: argparse.Namespace, base=None):
    """The preset, the `--config` file or `base` (a saved config being resumed), with the
    command-line overrides: the named options, then every `--set KEY=VALUE` in order."""
    from curio_jax import config

    try:
        if getattr(args, "config", None) is not None:
            cfg = read_config_file(args.config)
        elif args.preset is not None:
            cfg = config.preset(args.preset)
        else:
            cfg = base
        overrides: dict[str, object] = {}
        if args.num_envs is not None:
            overrides["train.num_envs"] = args.num_envs
        if args.total_frames is not None:
            overrides["total_frames"] = args.total_frames
        if getattr(args, "log_every", None) is not None:
            overrides["log_every"] = args.log_every
        if getattr(args, "micro_batch", None) is not None:
            overrides["train.micro_batch"] = args.micro_batch
        if getattr(args, "seed_batch", None) is not None:
            overrides["train.seed_batch"] = args.seed_batch
        overrides.update(
            config.parse_overrides(getattr(args, "set_fields", None) or [], renamed=note_renamed)
        )
        return cfg.with_overrides(overrides)
    except ValueError as e:
        raise UsageError(one_line(e)) from None


def read_config_file(path: Path):
    """A TrainConfig from a JSON file (e.g. a run's own config.json); ValueError naming the
    problem."""
    from curio_jax.config import TrainConfig

    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"--config {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"--config {path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a JSON object")
    renamed: list[str] = []
    try:
        cfg = TrainConfig.from_dict(data, renamed=lambda old, new: renamed.append(old))
    except (ValueError, TypeError) as e:
        raise ValueError(f"--config {path}: {e}") from None
    if renamed:
        print(
            f"curio-jax: note: --config {path} uses the config's old names ({len(renamed)} "
            "fields: a2c.* shared settings are now train.*, rnd.* is bonus.*, rnd.enabled and "
            "rnd.bonus are bonus.kind); read as the new ones",
            file=sys.stderr,
        )
    return cfg


def note_renamed(old: str, new: str) -> None:
    """One line on stderr for a config field given by its old name."""
    print(f"curio-jax: note: {old} is now {new} (the old name still works)", file=sys.stderr)


def start_distributed(args: argparse.Namespace) -> None:
    """jax.distributed.initialize from --coordinator/--num-processes/--process-id or the
    CURIO_JAX_* environment variables (nothing when neither is given)."""
    from curio_jax.parallel import sharding

    try:
        sharding.initialize(args.coordinator, args.num_processes, args.process_id)
    except sharding.ShardingError as e:
        raise UsageError(one_line(e)) from None


def add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        help="devices to spread the seeds over (default: all visible, over all processes)",
    )
    p.add_argument(
        "--env-shards",
        type=positive_int,
        default=1,
        help="devices per agent: each seed's envs are split over this many devices (1)",
    )
    p.add_argument("--coordinator", default=None, help="multi-host: HOST:PORT of process 0")
    p.add_argument("--num-processes", type=positive_int, default=None, help="multi-host")
    p.add_argument("--process-id", type=nonneg_int, default=None, help="multi-host: 0 .. N-1")


def run_job(job: Any) -> Any:
    """Run a training job: a request that cannot be honoured becomes a UsageError (exit 2);
    a failure during the run is printed as one line and gives None (exit 1)."""
    from curio_jax.run.errors import RunError, RunFailure

    try:
        return job()
    except RunFailure as e:
        print(f"curio-jax: error: {one_line(e)}", file=sys.stderr)
        return None
    except (RunError, ValueError) as e:
        raise UsageError(one_line(e)) from None
    except OSError as e:
        print(f"curio-jax: error: {one_line(e)}", file=sys.stderr)
        return None


def report_other_process(summaries: list[dict]) -> bool:
    """Processes other than 0 write nothing and return empty summaries."""
    if summaries and not summaries[0]:
        print("done (this process fed its devices; process 0 wrote the results)")
        return True
    return False
