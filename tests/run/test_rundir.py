"""The run directory's parts (curio_jax.run.rundir): metrics.csv by column name, truncation on
resume, atomic writes and the directory lock."""

from __future__ import annotations

import json

import pytest

from curio_jax.config import preset
from curio_jax.core.metrics import metric_columns
from curio_jax.run.errors import RunError
from curio_jax.run.rundir import (
    MetricsCSV,
    RunSettings,
    prepare_run_dir,
    read_rows,
    resolve_settings,
    run_record,
    write_run_files,
)


def test_truncate_metrics_keeps_whole_rows_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    header = ",".join(metric_columns())
    tail = ",".join(["0.5"] * (len(metric_columns()) - 3))
    lines = [header] + [f"{s},{u},{u * 10},{tail}" for u in (2, 4, 6) for s in (0, 1)]
    lines.append("0,8,80,0.5,0.5")  # a row cut short by a kill
    path.write_text("\r\n".join(lines))
    logs: list[str] = []
    MetricsCSV(path).truncate(4, 2, [2, 4, 6, 8], log=logs.append)
    rows = read_rows(path)
    assert [(r["seed"], r["update"]) for r in rows] == [
        ("0", "2"),
        ("1", "2"),
        ("0", "4"),
        ("1", "4"),
    ]
    assert path.read_text().splitlines() == lines[:5] and not logs
    path.write_text("\r\n".join(lines[:3]))  # rows of update 4 lost
    MetricsCSV(path).truncate(4, 2, [2, 4, 6, 8], log=logs.append)
    assert len(logs) == 1 and "lacks 2 row(s)" in logs[0]


def _saved_run(out, cfg):
    settings = RunSettings(seeds=2, seed=0)
    out.mkdir()
    write_run_files(out, cfg, run_record(cfg, settings))
    return settings


def test_extend_is_refused_where_the_budget_shapes_learning(tmp_path):
    """PPO anneals its learning rate over the budget: a longer budget would have changed the
    updates already done, so such a run is not extended (and nothing is touched)."""
    ppo = preset("ppo-5x5")
    assert ppo.budget_shapes_learning and not preset("notebook-rnd-5x5").budget_shapes_learning
    out = tmp_path / "ppo"
    settings = _saved_run(out, ppo)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    longer = ppo.with_overrides({"total_frames": 2 * ppo.total_frames})
    with pytest.raises(RunError, match=r"annealed over its budget \(ppo.anneal_lr\)"):
        prepare_run_dir(out, longer, settings, resume=True, overwrite=False, extend=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(RunError, match="it needs --resume"):
        prepare_run_dir(out, longer, settings, resume=False, overwrite=False, extend=True)

    # without annealing the same PPO run is extended: config.json and run.json say so
    flat = ppo.with_overrides({"ppo.anneal_lr": False})
    out = tmp_path / "flat"
    settings = _saved_run(out, flat)
    longer = flat.with_overrides({"total_frames": 2 * flat.total_frames})
    prepare_run_dir(out, longer, settings, resume=True, overwrite=False, extend=True).release()
    assert json.loads((out / "config.json").read_text())["total_frames"] == longer.total_frames
    assert json.loads((out / "run.json").read_text())["extended"] == [
        {"from_total_frames": flat.total_frames, "to_total_frames": longer.total_frames}
    ]


def test_resolve_settings_takes_what_is_not_given_from_the_saved_run():
    saved = {
        "seeds": 4,
        "seed": 100,
        "checkpoint_every": 2,
        "keep_checkpoints": 5,
        "stop_when_solved": True,
        "chunk_updates": 8,
    }
    assert resolve_settings(saved, tensorboard=False) == RunSettings(
        seeds=4,
        seed=100,
        checkpoint_every=2,
        keep_checkpoints=5,
        tensorboard=False,
        stop_when_solved=True,
    )
    # given values win; a run.json without the field gives the default
    got = resolve_settings({"seeds": 4, "seed": 100}, seeds=2, stop_when_solved=None)
    assert got == RunSettings(seeds=2, seed=100)
    assert resolve_settings(None, seed=None) == RunSettings()
    with pytest.raises(ValueError, match="unknown run setting"):
        resolve_settings(None, seedz=1)
