"""Evaluation (curio_jax.analysis.evaluate) without the reference extra: action sampling,
parameters from run directories, the jax backend and `curio-jax eval` on a run directory."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from helpers import run_cli

from curio_jax.analysis import evaluate as ev


def test_sample_actions_is_the_inverse_cdf_of_the_softmax():
    probs = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    logits = jax.numpy.asarray(np.log(probs))
    u = jax.numpy.asarray([0.0, 0.05, 0.11, 0.29, 0.31, 0.59, 0.61, 0.999])
    got = ev.sample_actions(jax.numpy.broadcast_to(logits, (8, 4)), u)
    assert got.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # uniform input -> the softmax distribution (200k draws: +-0.004 is > 5 standard errors)
    uu = jax.random.uniform(jax.random.key(0), (200_000,))
    draws = np.asarray(ev.sample_actions(jax.numpy.broadcast_to(logits, (200_000, 4)), uu))
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=0.004)


def test_run_directory_params_by_seed_index(run_dir):
    d, state = run_dir
    for source in (d, d / "checkpoints", d / "checkpoints" / "ckpt_000000001.npz"):
        loaded = ev.load_run_params(source, seed_index=1)
        want = jax.tree.map(lambda x: np.asarray(x[1]), state.params.ac)
        for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(a, b)
        assert "seed 1 of 2" in loaded.description
    with pytest.raises(ev.ParamsError, match="out of range: the run has 2 seed"):
        ev.load_run_params(d, seed_index=2)


def test_run_directory_problems_are_one_line_errors(run_dir, tmp_path):
    d, _ = run_dir
    # a config that does not fit the checkpoint
    bad = tmp_path / "bad"
    (bad / "checkpoints").mkdir(parents=True)
    cfg = json.loads((d / "config.json").read_text())
    cfg["train"]["hidden_dim"] = 32
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "checkpoints" / "ckpt_000000001.npz").write_bytes(
        (d / "checkpoints" / "ckpt_000000001.npz").read_bytes()
    )
    with pytest.raises(ev.ParamsError, match="does not match") as info:
        ev.load_run_params(bad)
    assert "hidden" in str(info.value) or "policy_hidden" in str(info.value)
    assert "\n" not in str(info.value)
    # a corrupt newer checkpoint is skipped with a warning (read-only: nothing renamed)
    (bad / "config.json").write_text((d / "config.json").read_text())
    corrupt = bad / "checkpoints" / "ckpt_000000002.npz"
    corrupt.write_bytes(b"not a zip file")
    warnings = []
    loaded = ev.load_run_params(bad, warn=warnings.append)
    assert "ckpt_000000001.npz" in loaded.description and len(warnings) == 1
    assert corrupt.exists()
    with pytest.raises(ev.ParamsError, match="no config.json"):
        ev.load_run_params(tmp_path)
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    (tmp_path / "empty" / "config.json").write_text((d / "config.json").read_text())
    with pytest.raises(ev.ParamsError, match="no checkpoint"):
        ev.load_run_params(tmp_path / "empty")


def test_jax_backend_metrics_and_the_eval_cli_on_a_run(run_dir, tmp_path, capsys):
    d, state = run_dir
    params = ev.load_run_params(d, seed_index=0).params
    metrics, eps = ev.evaluate(params, 5, episodes=6, seed=2)
    assert metrics["episodes"] == 6 and metrics["backend"] == "jax"
    assert metrics["success_rate"] == float(np.mean(eps.terminated))
    np.testing.assert_allclose(metrics["mean_return"], float(np.mean(eps.returns)), rtol=1e-6)
    again, _ = ev.evaluate(params, 5, episodes=6, seed=2)
    assert again == metrics  # same seed, same episodes
    out_json = tmp_path / "m.json"
    argv = ["eval", "--checkpoint", str(d), "--size", "5", "--episodes", "6", "--seed", "2"]
    code, out, _ = run_cli([*argv, "--json", str(out_json)], capsys)
    assert code == 0 and "success rate" in out
    written = json.loads(out_json.read_text())
    assert {k: written[k] for k in metrics} == metrics
    with pytest.raises(ValueError, match="backend"):
        ev.evaluate(params, 5, backend="torch")
    with pytest.raises(ValueError, match="episodes"):
        ev.evaluate(params, 5, episodes=0)
