"""The Python API (`import curio_jax as cj`): the functions the command line calls."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import curio_jax as cj


def test_train_compare_evaluate_export_through_the_package(tmp_path):
    cfg = cj.preset("notebook-a2c-5x5").with_overrides(
        {"train.num_envs": 2, "total_frames": 18 * 32, "log_every": 6}
    )
    out = tmp_path / "run"
    summary = cj.train_run(cfg, out, seeds=2, progress=False, plot=False, tensorboard=False)
    assert summary == json.loads((out / "summary.json").read_text())
    assert len(summary["seeds"]) == 2 and summary["frames"] == 2 * 18 * 32
    # resumed as `train --resume` resumes: the saved config and run.json's seeds
    again = cj.train_run(None, out, resume=True, progress=False, plot=False, tensorboard=False)
    assert again["seeds"] == summary["seeds"]

    result = cj.compare([out], n_boot=100)
    assert result["runs"][0]["n_seeds"] == 2

    metrics = cj.evaluate(out, episodes=3)
    assert metrics["size"] == 5 and metrics["episodes"] == 3 and metrics["backend"] == "jax"

    path = cj.export(out, tmp_path / "agent.npz", seed_index=1)
    weights = cj.load_weights(path)
    direct = cj.load_weights(out, seed_index=1)
    assert jax.tree.all(jax.tree.map(np.array_equal, weights.actor_critic, direct.actor_critic))
    assert cj.evaluate(weights, episodes=3) == cj.evaluate(direct, episodes=3)
    with pytest.raises(cj.run.params.ParamsError, match="exists"):
        cj.export(out, path)


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cj.nope  # noqa: B018
    assert {"make_train", "train_run", "compare", "evaluate", "export"} <= set(dir(cj))
