"""Trained weights in and out of runs: the parameters of one agent from a run's checkpoint, from
the notebook's `.pth` format, or from a params-only export, and the export itself.

    weights = load_weights("runs/quickstart")               # a run dir: seed 0 of its newest
    weights = load_weights("runs/q/checkpoints/ckpt_000001000.npz", seed_index=2)
    weights = load_weights("a2c_rnd_16x16_weights.pth")     # the notebook's format (torch)
    export(weights, "agent.npz")                            # small file: networks + config
    weights = load_weights("agent.npz")

An export is one `.npz` (no pickle) holding the actor-critic and, for an RND agent, the RND
predictor and target, plus a JSON record of where they came from and the run's config; it is a
few MB, loadable by `curio-jax eval` and by `train --init-from`, and `curio-jax export --pth`
converts it to the notebook's `.pth` (run/convert.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from curio_jax.config import NETWORK_BONUSES, TrainConfig
from curio_jax.core.train import make_train
from curio_jax.run import checkpoint as ckpt
from curio_jax.run import convert
from curio_jax.run.files import atomic_file

Params = Any
EXPORT_FORMAT = "curio_jax-params-v1"
_META = "__export__"
NETWORKS = ("actor_critic", "rnd_predictor", "rnd_target")


class ParamsError(ValueError):
    """Weights that cannot be read or do not fit; the message is one line naming the problem."""


@dataclass(frozen=True)
class AgentWeights:
    """The networks of one agent (Flax params trees of numpy arrays) and their provenance."""

    networks: dict[str, Params]
    """``actor_critic`` and, for an RND agent, ``rnd_predictor`` and ``rnd_target``."""
    description: str
    """Where they came from, for messages."""
    config: dict | None = None
    """The TrainConfig (as a dict) of the run that trained them, when known."""

    @property
    def actor_critic(self) -> Params:
        return self.networks["actor_critic"]

    @property
    def has_rnd(self) -> bool:
        return "rnd_predictor" in self.networks


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# --------------------------------------------------------------------------- run checkpoints


def find_run(path: Path) -> tuple[Path, Path | None, Path]:
    """(run dir, checkpoint file or None, checkpoints dir) for a run dir, its checkpoints/
    dir or one checkpoint file."""
    if not path.exists():
        raise ParamsError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix != ".npz":
            raise ParamsError(f"{path}: not a checkpoint (expected a ckpt_*.npz file)")
        for cand in (path.parent, path.parent.parent):
            if (cand / "config.json").is_file():
                return cand, path, path.parent
        raise ParamsError(f"{path}: no config.json next to the checkpoint or above it")
    if (path / "config.json").is_file():
        return path, None, path / "checkpoints"
    if (path.parent / "config.json").is_file():
        return path.parent, None, path
    raise ParamsError(f"{path}: not a run directory (no config.json)")


def _seed_count(run_dir: Path, files: Sequence[Path]) -> int:
    """Seeds of the run: run.json's "seeds", else the leading axis of the first readable
    checkpoint among `files` (every leaf of the state carries the seed axis first)."""
    try:
        seeds = json.loads((run_dir / "run.json").read_text())["seeds"]
        if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
            return seeds
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as data:
                for k in data.files:
                    if k.endswith(".update"):
                        return int(data[k].shape[0])
        except Exception:  # noqa: BLE001 - unreadable: try the next, the loader reports it
            continue
    return 1


def load_run_weights(
    path: str | Path, seed_index: int = 0, warn: Callable[[str], None] | None = None
) -> AgentWeights:
    """The networks of seed `seed_index` of a `curio-jax train` run: `path` is the run
    directory, its ``checkpoints/`` directory or one ``ckpt_*.npz`` file. A directory gives the
    newest readable checkpoint (older ones are tried when the newest is corrupt). The state
    template comes from the run's config.json; any mismatch raises ParamsError."""
    if warn is None:
        warn = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    path = Path(path)
    run_dir, file, ckpt_dir = find_run(path)
    try:
        cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        train = make_train(cfg)
    except (OSError, ValueError, TypeError) as e:
        raise ParamsError(f"{run_dir / 'config.json'}: unusable config ({_one_line(e)})") from None
    if file is None:
        found = [p for _, p in reversed(ckpt.list_checkpoints(ckpt_dir))]
        if not found:
            raise ParamsError(f"{ckpt_dir}: no checkpoint (ckpt_*.npz) found")
    else:
        found = [file]
    seeds = _seed_count(run_dir, found)
    if isinstance(seed_index, bool) or not isinstance(seed_index, int) or seed_index < 0:
        raise ParamsError(f"seed index must be a non-negative integer, got {seed_index!r}")
    if seed_index >= seeds:
        raise ParamsError(f"seed index {seed_index} out of range: the run has {seeds} seed(s)")
    keys = jax.random.split(jax.random.key(0), seeds)
    template = jax.eval_shape(jax.vmap(train.init), keys)
    try:
        if file is None:
            update, state = ckpt.load_latest(ckpt_dir, template, warn=warn)
            file = ckpt.checkpoint_path(ckpt_dir, update)
        else:
            state = ckpt.load(file, template)
    except ckpt.CheckpointError as e:
        raise ParamsError(
            f"checkpoint does not match {run_dir / 'config.json'}: {_one_line(e)}"
        ) from None

    def pick(tree: Params) -> Params:
        return jax.tree.map(lambda x: np.asarray(x[seed_index]), tree)

    networks = {"actor_critic": pick(state.params.ac)}
    if getattr(state.bonus, "target_params", None) is not None:
        networks["rnd_predictor"] = pick(state.params.bonus)
        networks["rnd_target"] = pick(state.bonus.target_params)
    return AgentWeights(
        networks,
        f"{file} (seed {seed_index} of {seeds}, preset {cfg.name})",
        cfg.to_dict(),
    )


# --------------------------------------------------------------------------- .pth and exports


def load_pth_weights(path: str | Path) -> AgentWeights:
    """The networks of a notebook-format PyTorch checkpoint (``{"a2c_params": ...,
    "rnd_params": ...}``; needs torch)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such file")
    try:
        networks = convert.load_torch_checkpoint(path)
    except ImportError:
        raise ParamsError(
            "reading .pth files needs torch: pip install 'curio_jax[reference]'"
        ) from None
    except (OSError, ValueError) as e:
        raise ParamsError(_one_line(e)) from None
    networks = jax.tree.map(np.asarray, networks)
    return AgentWeights(networks, f"{path} (notebook .pth)")


def export(weights: AgentWeights, path: str | Path, source: str | None = None) -> Path:
    """Write a params-only export (see the module docstring) atomically; refuses to replace an
    existing file. Returns the path."""
    path = Path(path)
    if path.exists():
        raise ParamsError(f"{path} exists; choose another name or remove it first")
    if not path.parent.is_dir():
        raise ParamsError(f"directory {path.parent} does not exist")
    arrays: dict[str, np.ndarray] = {}
    for net, tree in weights.networks.items():
        for leaf_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            arrays[net + jax.tree_util.keystr(leaf_path)] = np.asarray(leaf, np.float32)
    meta = {
        "format": EXPORT_FORMAT,
        "networks": sorted(weights.networks),
        "source": source or weights.description,
        "config": weights.config,
    }
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_file(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    """{"['a']['b']": x} -> {"a": {"b": x}} (keystr paths of nested dicts)."""
    out: dict = {}
    for key, value in flat.items():
        parts = [p.strip("'\"") for p in key.strip("[]").split("][")]
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def is_export(path: Path) -> bool:
    """Whether `path` is a params-only export (an .npz with the export record)."""
    if not path.is_file() or path.suffix != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return _META in data.files
    except Exception:  # noqa: BLE001 - not a readable npz: not an export
        return False


def load_export(path: str | Path) -> AgentWeights:
    """The networks of a params-only export (ParamsError if it is not one or is damaged)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except Exception as e:  # noqa: BLE001
        raise ParamsError(f"{path}: unreadable export ({_one_line(e)})") from None
    if _META not in arrays:
        raise ParamsError(f"{path}: not a curio_jax params export")
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except ValueError:
        raise ParamsError(f"{path}: damaged export record") from None
    if meta.get("format") != EXPORT_FORMAT:
        raise ParamsError(f"{path}: export format {meta.get('format')!r}, expected {EXPORT_FORMAT}")
    networks = {}
    for net in meta["networks"]:
        flat = {k[len(net) :]: v for k, v in arrays.items() if k.startswith(net + "[")}
        networks[net] = _unflatten(flat)
    try:
        convert.flax_to_torch_state(networks)  # every network complete and shaped right
    except ValueError as e:
        raise ParamsError(f"{path}: {_one_line(e)}") from None
    return AgentWeights(networks, f"{path} (export of {meta.get('source')})", meta.get("config"))


def load_weights(
    path: str | Path, seed_index: int = 0, warn: Callable[[str], None] | None = None
) -> AgentWeights:
    """Weights from a run (directory, checkpoints/ or ckpt file), an export or a `.pth`."""
    path = Path(path)
    if path.suffix == ".pth":
        if seed_index:
            raise ParamsError("a .pth file holds one agent; --seed-index applies to runs only")
        return load_pth_weights(path)
    if is_export(path):
        if seed_index:
            raise ParamsError("an export holds one agent; --seed-index applies to runs only")
        return load_export(path)
    return load_run_weights(path, seed_index, warn)


# --------------------------------------------------------------------------- warm starts


def _fit(current: Params, given: Params, name: str, where: str) -> Params:
    """`given` (one agent's tree) broadcast over the leading batch axis of `current`, after
    checking that the structure and every shape agree (ParamsError naming the leaf)."""
    cur_leaves, cur_def = jax.tree_util.tree_flatten_with_path(current)
    giv_leaves, giv_def = jax.tree_util.tree_flatten(given)
    if giv_def != cur_def:
        raise ParamsError(f"{where}: {name} is not shaped like the run's network")
    out = []
    for (path, cur), giv in zip(cur_leaves, giv_leaves, strict=True):
        giv = np.asarray(giv, dtype=cur.dtype)
        if giv.shape != tuple(cur.shape[1:]):
            raise ParamsError(
                f"{where}: {name}{jax.tree_util.keystr(path)} has shape {giv.shape}, the run "
                f"needs {tuple(cur.shape[1:])}"
            )
        out.append(np.broadcast_to(giv, cur.shape).copy())
    return jax.tree_util.tree_unflatten(cur_def, out)


def with_weights(state: Any, weights: AgentWeights, rnd: bool, note: Callable[[str], None]) -> Any:
    """A batched learner state (host arrays, leading seed axis) whose every seed starts from
    `weights`: the actor-critic and, for an RND run, the RND predictor and target. Optimiser
    statistics, env states and keys stay as they are (fresh). ParamsError names the first
    network or leaf that does not fit."""
    where = weights.description
    params = state.params.replace(
        ac=_fit(state.params.ac, weights.actor_critic, "actor_critic", where)
    )
    bonus = state.bonus
    if rnd:
        if not weights.has_rnd:
            raise ParamsError(f"{where} has no RND networks for this RND run")
        nets = weights.networks
        params = params.replace(
            bonus=_fit(state.params.bonus, nets["rnd_predictor"], "rnd_predictor", where)
        )
        bonus = bonus.replace(
            target_params=_fit(bonus.target_params, nets["rnd_target"], "rnd_target", where)
        )
    elif weights.has_rnd:
        note(f"{where}: its RND networks are not used (this run has no RND)")
    return state.replace(params=params, bonus=bonus)


def check_weights(cfg: TrainConfig, weights: AgentWeights) -> None:
    """ParamsError, before any run starts, when `weights` cannot start a run of `cfg`."""
    abstract = jax.eval_shape(
        jax.vmap(make_train(cfg).init), jax.random.split(jax.random.key(0), 1)
    )
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), (abstract.params, abstract.bonus))
    with_weights(
        abstract.replace(params=zeros[0], bonus=zeros[1]),
        weights,
        has_rnd_networks(cfg),
        lambda _: None,
    )


def has_rnd_networks(cfg: TrainConfig) -> bool:
    """Whether runs of ``cfg`` carry the RND target and predictor (bonus.kind rnd or noveld):
    the networks an export holds besides the actor-critic."""
    return cfg.bonus.kind in NETWORK_BONUSES
