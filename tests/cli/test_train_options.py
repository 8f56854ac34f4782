"""`train --set / --config / --init-from / --wandb`, `presets`, `export`, and
`python -m curio_jax`: what they record, replay and refuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import assert_usage_error, run_cli

from curio_jax import config
from curio_jax.cli import train as cli_train
from curio_jax.run import params as params_mod
from curio_jax.run.rundir import read_rows

LEGACY = Path(__file__).parents[1] / "legacy_runs"
TINY = [
    "--preset=notebook-a2c-5x5",
    "--seeds=2",
    "--num-envs=2",
    "--log-every=4",
    "--no-tensorboard",
    "--no-gif",
]


@pytest.fixture(scope="module")
def set_run(tmp_path_factory):
    """A tiny run with two --set overrides (one also given by a named option)."""
    out = tmp_path_factory.mktemp("set") / "run"
    argv = [
        "train",
        *TINY,
        "--set",
        "train.lr=3e-4",
        "--set",
        "total_frames=512",
        "--out",
        str(out),
    ]
    code = _main(argv)
    assert code == 0
    return out


def _main(argv, **hooks):
    from curio_jax.cli import main

    return main(argv, **hooks)


def test_set_converts_validates_and_records_the_field(set_run):
    cfg = json.loads((set_run / "config.json").read_text())
    assert cfg["train"]["lr"] == 3e-4 and cfg["total_frames"] == 512
    assert cfg["train"]["num_envs"] == 2 and cfg["name"] == "notebook-a2c-5x5"


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_config_file_replays_a_run_exactly(set_run, tmp_path):
    out = tmp_path / "replay"
    code = _main(
        ["train", "--config", str(set_run / "config.json"), "--seeds=2", "--out", str(out)]
    )
    assert code == 0
    assert (out / "config.json").read_text() == (set_run / "config.json").read_text()
    assert (out / "metrics.csv").read_bytes() == (set_run / "metrics.csv").read_bytes()


@pytest.mark.parametrize(
    "extra, contains",
    [
        (["--set", "train.lr=fast"], "train.lr: 'fast' is not a valid float"),
        (["--set", "lr=0.1"], "unknown config field 'lr' (did you mean train.lr?)"),
        (["--set", "train.num_envs=0"], "TrainSettings.num_envs must be an integer >= 1"),
        (["--set", "env.autoreset=never"], "is not one of next_step, same_step"),
        (["--set", "total_frames"], "--set expects KEY=VALUE"),
        (["--set", "rnd.enabled=maybe"], "rnd.enabled: 'maybe' is not a valid bool"),
        (["--set", "bonus.kind=curiosity"], "BonusConfig.kind must be one of none, rnd"),
        (["--set", "bonus.kind=e3b", "--set", "bonus.e3b_lambda=-1"], "e3b_lambda must be > 0"),
        (["--set", "bonus.kind=e3b", "--set", "bonus.e3b_dim=0"], "e3b_dim must be an integer"),
        (["--set", "bonus.noveld_alpha=-0.5"], "noveld_alpha must be finite and >= 0"),
    ],
)
def test_bad_set_values_exit_2_naming_the_field(extra, contains, capsys, tmp_path):
    assert_usage_error(["train", *TINY, *extra, "--out", str(tmp_path / "x")], capsys, contains)
    assert not (tmp_path / "x").exists()


def test_an_old_field_name_works_and_prints_one_line_naming_the_new(capsys, tmp_path):
    """The old name is taken (its value reaches the config: here the error it causes) after
    one note naming the new field."""
    argv = ["train", *TINY, "--set", "a2c.num_envs=0", "--out", str(tmp_path / "x")]
    code, _, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2, err
    assert (
        lines[0] == "curio-jax: note: a2c.num_envs is now train.num_envs (the old name still works)"
    )
    assert "TrainSettings.num_envs must be an integer >= 1" in lines[1]


def test_a_config_file_with_the_old_names_replays_with_one_note(tmp_path, capsys):
    old = json.loads((LEGACY / "ppo-rnd-5x5" / "config.json").read_text())
    assert "rnd" in old and "num_envs" in old["a2c"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    from curio_jax.cli.common import read_config_file

    cfg = read_config_file(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "old names" in err[0] and "bonus.kind" in err[0]
    assert cfg.train.num_envs == old["a2c"]["num_envs"] and cfg.bonus.kind == "rnd"
    assert cfg.bonus.feature_dim == old["rnd"]["feature_dim"]


def test_bad_config_files_exit_2(tmp_path, capsys):
    missing = tmp_path / "none.json"
    assert_usage_error(["train", "--config", str(missing)], capsys, "No such file")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_usage_error(["train", "--config", str(bad)], capsys, "not JSON")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"a2c": {"speed": 3}}))
    assert_usage_error(["train", "--config", str(wrong)], capsys, "--config")
    code, _, err = run_cli(
        ["train", "--config", str(wrong), "--preset", "notebook-a2c-5x5"], capsys
    )
    assert code == 2 and "not allowed with argument" in err


def test_wandb_without_the_extra_exits_2_with_the_install_command(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli_train, "missing_modules", lambda names: list(names))
    assert_usage_error(
        ["train", *TINY, "--wandb", "proj", "--out", str(tmp_path / "w")],
        capsys,
        "pip install 'curio_jax[wandb]'",
    )


def test_wandb_run_id_is_kept_and_resume_continues_it(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "w"
    argv = ["train", *TINY, "--total-frames=256", "--wandb", "curio-test", "--out", str(out)]
    assert _main(argv) == 0
    first = json.loads((out / "wandb.json").read_text())
    assert first["project"] == "curio-test" and first["id"]
    assert any((out / "wandb").glob(f"offline-run-*-{first['id']}"))
    # a longer budget on resume is refused (config differs), the same budget resumes
    assert _main(["train", "--resume", "--out", str(out)]) == 0
    assert json.loads((out / "wandb.json").read_text()) == first


def test_presets_lists_one_line_each_and_fields(capsys):
    code, out, _ = run_cli(["presets"], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == len(config.preset_names())
    for name, line in zip(config.preset_names(), lines, strict=True):
        assert line.startswith(name) and config.preset_description(name) in line
    code, out, _ = run_cli(["presets", "--fields", "notebook-rnd-8x8"], capsys)
    assert code == 0 and any(
        line.split()[:2] == ["train.lr", "0.0001"] for line in out.splitlines()
    )
    assert_usage_error(["presets", "--fields", "nope"], capsys, "unknown preset")


def test_every_preset_has_a_description():
    assert all(config.preset_description(n) for n in config.preset_names())


def test_export_eval_and_pth_round_trip(set_run, tmp_path, capsys):
    agent = tmp_path / "agent.npz"
    code, out, _ = run_cli(
        ["export", str(set_run), "--seed-index", "1", "--out", str(agent)], capsys
    )
    assert code == 0 and "actor_critic" in out
    exported = params_mod.load_weights(agent)
    from_run = params_mod.load_weights(set_run, seed_index=1)
    assert exported.networks.keys() == from_run.networks.keys() == {"actor_critic"}
    assert jax.tree.all(jax.tree.map(np.array_equal, exported.actor_critic, from_run.actor_critic))
    assert exported.config == from_run.config
    code, out, _ = run_cli(
        ["eval", "--checkpoint", str(agent), "--size", "5", "--episodes", "2"], capsys
    )
    assert code == 0 and "success rate" in out
    assert_usage_error(["export", str(set_run), "--out", str(agent)], capsys, "exists")
    pytest.importorskip("torch")
    pth = tmp_path / "agent.pth"
    assert run_cli(["export", str(agent), "--out", str(pth)], capsys)[0] == 0
    back = params_mod.load_weights(pth)
    assert jax.tree.all(
        jax.tree.map(lambda a, b: np.array_equal(a, b), back.actor_critic, from_run.actor_critic)
    )


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_init_from_starts_every_seed_from_the_given_networks(set_run, tmp_path, capsys):
    weights = params_mod.load_weights(set_run, seed_index=1)
    out = tmp_path / "warm"
    argv = ["train", *TINY, "--total-frames=256", "--init-from", str(set_run), "--init-seed=1"]
    code, stdout, _ = run_cli([*argv, "--out", str(out)], capsys)
    assert code == 0 and "starting every seed from" in stdout
    run = json.loads((out / "run.json").read_text())
    assert "seed 1 of 2" in run["init_from"]
    fresh = tmp_path / "fresh"
    assert run_cli(["train", *TINY, "--total-frames=256", "--out", str(fresh)], capsys)[0] == 0
    assert read_rows(out / "metrics.csv") != read_rows(fresh / "metrics.csv")
    # the state a warm run starts from: every seed holds the given networks
    template = _tiny_state(2)
    warm = params_mod.with_weights(template, weights, rnd=False, note=print)
    for s in range(2):
        assert jax.tree.all(
            jax.tree.map(
                lambda a, b, s=s: np.array_equal(a[s], b), warm.params.ac, weights.actor_critic
            )
        )
    assert_usage_error(
        ["train", "--resume", "--out", str(out), "--init-from", str(set_run)], capsys
    )


def test_init_from_refuses_networks_that_do_not_fit(set_run, tmp_path, capsys):
    rnd = ["--preset=notebook-rnd-5x5", "--seeds=1", "--num-envs=2", "--total-frames=256"]
    assert_usage_error(
        ["train", *rnd, "--init-from", str(set_run), "--out", str(tmp_path / "r")],
        capsys,
        "has no RND networks",
    )
    assert not (tmp_path / "r").exists()
    assert_usage_error(
        ["train", *TINY, "--init-from", str(tmp_path / "none"), "--out", str(tmp_path / "n")],
        capsys,
        "--init-from",
    )


def _tiny_state(seeds):
    from curio_jax.core.train import make_train

    cfg = config.preset("notebook-a2c-5x5").with_overrides({"train.num_envs": 2})
    train = make_train(cfg)
    return jax.device_get(jax.vmap(train.init)(jax.random.split(jax.random.key(0), seeds)))


def test_python_dash_m_runs_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "curio_jax", "presets"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "notebook-rnd-5x5" in proc.stdout
