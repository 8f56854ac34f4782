"""The Python API: what the command line does, as functions (`import curio_jax as cj`).

    cj.train_run("notebook-rnd-5x5", "runs/q", seeds=4)       # = curio-jax train
    cj.sweep("notebook-rnd-5x5", {"adv_coef_int": [1, 10]}, "runs/s", seeds=8)
    cj.compare(["runs/a", "runs/b"], threshold=0.95)            # = curio-jax compare --json
    cj.evaluate("runs/q", episodes=100)                         # = curio-jax eval --json
    cj.export("runs/q", "agent.npz")                            # = curio-jax export

Configs are presets by name or `TrainConfig`s (`cj.preset(name).with_overrides({...})`).
Errors are exceptions: `RunError` (the request cannot be honoured, nothing changed),
`RunFailure` (the run could not go on), `ParamsError`, `RunDirError`, `ValueError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from curio_jax.analysis import compare as _compare
from curio_jax.analysis import evaluate as _evaluate
from curio_jax.config import TrainConfig, preset
from curio_jax.run import loop, rundir
from curio_jax.run import params as _params
from curio_jax.run import sweep as _sweep
from curio_jax.run.loggers import Callback, Progress

__all__ = ["compare", "evaluate", "export", "load_weights", "sweep", "train_run"]


def _config(cfg: TrainConfig | str) -> TrainConfig:
    return preset(cfg) if isinstance(cfg, str) else cfg


def _progress(progress: bool) -> Progress:
    return Progress() if progress else Progress(stream=open("/dev/null", "w"), tty=False)  # noqa: SIM115


def train_run(
    cfg: TrainConfig | str | None,
    out: str | Path,
    *,
    seeds: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    init_from: str | Path | _params.AgentWeights | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    plot: bool = True,
    **settings: Any,
) -> dict:
    """Train `seeds` seeds (default 1) of `cfg` in one program into the run directory `out`
    (created, or continued with `resume`); returns summary.json as a dict. `seed`: the base
    seed (default 0). `init_from`: a run, checkpoint, export or `.pth` every seed starts from.
    `settings`: the other fields of `curio_jax.run.rundir.RunSettings` (checkpoint_every,
    keep_checkpoints, tensorboard, devices, env_shards, stop_when_solved). `callbacks`: objects
    with `on_chunk(chunk)`, called after every chunk (e.g.
    `curio_jax.run.loggers.WandbLogger`).

    With `resume`, as `curio-jax train --resume`: `cfg` may be None (the saved config), and
    the settings not given are the saved run.json's (`curio_jax.run.rundir.resolve_settings`)."""
    saved_run = None
    if resume:
        saved_cfg, saved_run = rundir.read_saved_run(Path(out))
        cfg = saved_cfg if cfg is None else cfg
    elif cfg is None:
        raise ValueError("train_run needs a config (a preset name or a TrainConfig)")
    if init_from is not None and not isinstance(init_from, _params.AgentWeights):
        init_from = _params.load_weights(init_from)
    return loop.train_run(
        _config(cfg),
        Path(out),
        rundir.resolve_settings(saved_run, seeds=seeds, seed=seed, **settings),
        resume=resume,
        overwrite=overwrite,
        progress=_progress(progress),
        plot=plot,
        callbacks=callbacks,
        init_from=init_from,
    )


def sweep(
    cfg: TrainConfig | str,
    grid: Mapping[str, Sequence[float]],
    out: str | Path,
    *,
    seeds: int = 1,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    vmap_grid: bool = False,
    progress: bool = True,
    **settings: Any,
) -> list[dict]:
    """A grid of traced coefficients (`{"adv_coef_int": [0.1, 1, 10], ...}`, names of
    `curio_jax.core.hparams.Hyperparams`) x `seeds` seeds as one compiled program, one run
    directory per grid point under `out`; returns each point's summary (grid order)."""
    cfg = _config(cfg)
    axes = [_sweep.parse_set(f"{k}={','.join(map(str, v))}", cfg) for k, v in grid.items()]
    return _sweep.sweep_run(
        cfg,
        axes,
        Path(out),
        rundir.RunSettings(seeds=seeds, seed=seed, **settings),
        resume=resume,
        overwrite=overwrite,
        progress=_progress(progress),
        vmap_grid=vmap_grid,
    )


def compare(
    run_dirs: Sequence[str | Path],
    *,
    threshold: float | None = None,
    metrics: Sequence[str] = (),
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Statistics over the seeds of finished runs (the JSON `curio-jax compare` writes)."""
    return _compare.compare_runs(
        list(run_dirs), n_boot=n_boot, seed=seed, threshold=threshold, metrics=metrics
    )


def load_weights(source: str | Path, seed_index: int = 0) -> _params.AgentWeights:
    """One agent's networks from a run, a checkpoint, an export or a notebook `.pth`."""
    return _params.load_weights(source, seed_index)


def evaluate(
    source: str | Path | _params.AgentWeights,
    *,
    size: int | None = None,
    episodes: int = 100,
    backend: str = "jax",
    seed: int = 0,
    seed_index: int = 0,
) -> dict:
    """Play `episodes` episodes with a trained agent (actions sampled as the notebook does):
    {"episodes", "success_rate", "mean_return", "mean_length", "backend"}. `size` defaults
    to the size the agent was trained on (required for a `.pth`)."""
    weights = (
        source if isinstance(source, _params.AgentWeights) else load_weights(source, seed_index)
    )
    if size is None:
        if weights.config is None:
            raise ValueError(f"{weights.description}: say which DoorKey size to play (size=...)")
        size = int(weights.config["env"]["size"])
    metrics, _ = _evaluate.evaluate(
        weights.actor_critic, size, episodes, backend=backend, seed=seed
    )
    return {**metrics, "size": size, "seed": seed}


def export(source: str | Path, out: str | Path, *, seed_index: int = 0) -> Path:
    """Write one agent's networks to `out`: a params-only `.npz` export, or the notebook's
    `.pth` format (needs torch). Refuses to replace an existing file."""
    from curio_jax.run import convert

    out = Path(out)
    weights = load_weights(source, seed_index)
    if out.suffix == ".pth":
        if out.exists():
            raise _params.ParamsError(f"{out} exists; choose another name or remove it first")
        convert.save_torch_checkpoint(out, weights.networks)
        return out
    return _params.export(weights, out)
