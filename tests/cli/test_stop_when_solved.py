"""`train --stop-when-solved`: the run ends at the first chunk after which every seed has
solved, with the same rows a full run logs up to there; the summary says so, --resume keeps
the setting and does not train on, and compare reads the run as one that stops at solve."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli

from curio_jax.run.rundir import read_rows

# A threshold of 0 is passed by the first finished episode with any reward: a few chunks on
# DoorKey-5x5 with 4 envs, far inside the budget of 64 chunks.
ARGS = [
    "train",
    "--preset=notebook-a2c-5x5",
    "--seeds=2",
    "--num-envs=4",
    "--log-every=8",
    "--no-tensorboard",
    "--no-gif",
    "--set",
    "solved_threshold=0.0",
]
FRAMES_PER_CHUNK = 4 * 16 * 8  # envs x the preset's rollout of 16 x updates per chunk
BUDGET = 64 * FRAMES_PER_CHUNK


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    out = tmp_path_factory.mktemp("stop") / "run"
    code, stdout, err = run_cli(
        [*ARGS, "--total-frames", str(BUDGET), "--stop-when-solved", "--out", str(out)],
        _NoCapture(),
    )
    assert code == 0, err
    return out, stdout


class _NoCapture:
    """run_cli's capsys for a module-scoped fixture: nothing captured."""

    def readouterr(self):
        return "", ""


def test_the_run_stops_when_every_seed_has_solved(stopped):
    out, _ = stopped
    summary = json.loads((out / "summary.json").read_text())
    rows = read_rows(out / "metrics.csv")
    last = max(int(r["update"]) for r in rows)
    assert summary["stops_at_solve"] is True
    assert summary["updates"] == last < 64 * 8
    assert summary["frames"] == last * 4 * 16 * 2
    assert summary["frames_per_seed"] == BUDGET  # the budget, where compare censors
    solves = [s["frames_to_solve"] for s in summary["seeds"]]
    assert all(f is not None for f in solves)
    # it stopped at the first chunk after which both had solved
    assert max(solves) == last * 4 * 16
    assert json.loads((out / "run.json").read_text())["stop_when_solved"] is True
    assert (out / "checkpoints" / f"ckpt_{last:09d}.npz").is_file()


def test_rows_equal_a_full_run_up_to_the_stop(stopped, tmp_path, capsys):
    out, _ = stopped
    rows = read_rows(out / "metrics.csv")
    last = max(int(r["update"]) for r in rows)
    full = tmp_path / "full"
    code, _, err = run_cli(
        [*ARGS, "--total-frames", str(last * 4 * 16), "--out", str(full)], capsys
    )
    assert code == 0, err
    assert (full / "metrics.csv").read_bytes() == (out / "metrics.csv").read_bytes()
    summary = json.loads((full / "summary.json").read_text())
    assert "stops_at_solve" not in summary  # unchanged for runs without the option
    assert "stop_when_solved" not in json.loads((full / "run.json").read_text())


def test_solving_in_the_last_chunk_is_not_a_stop_at_solve(stopped, tmp_path, capsys):
    """A run whose seeds all solve in its final chunk ran its whole budget: its scores are
    scores at the budget, so summary.json does not say stops_at_solve."""
    out, _ = stopped
    last = max(int(r["update"]) for r in read_rows(out / "metrics.csv"))
    edge = tmp_path / "edge"
    code, _, err = run_cli(
        [*ARGS, "--total-frames", str(last * 4 * 16), "--stop-when-solved", "--out", str(edge)],
        capsys,
    )
    assert code == 0, err
    assert (edge / "metrics.csv").read_bytes() == (out / "metrics.csv").read_bytes()
    summary = json.loads((edge / "summary.json").read_text())
    assert summary["stops_at_solve"] is False
    assert summary["updates"] == last
    assert all(s["frames_to_solve"] is not None for s in summary["seeds"])


def test_resume_of_a_stopped_run_does_not_train_on(stopped, capsys):
    out, _ = stopped
    before = (out / "metrics.csv").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    code, _, err = run_cli(["train", "--resume", "--out", str(out), "--no-gif"], capsys)
    assert code == 0, err
    assert (out / "metrics.csv").read_bytes() == before
    again = json.loads((out / "summary.json").read_text())
    for name in ("stops_at_solve", "updates", "frames", "seeds", "frames_per_seed"):
        assert again[name] == summary[name], name


def test_compare_reads_it_as_stopping_at_solve(stopped, tmp_path, capsys):
    out, _ = stopped
    code, _, err = run_cli(
        ["compare", str(out), str(out), "--json", str(tmp_path / "c.json")], capsys
    )
    assert code == 0, err
    result = json.loads((tmp_path / "c.json").read_text())
    assert any("stopped at solve" in w for w in result["warnings"])
    code, _, err = run_cli(["compare", str(out), "--threshold", "0.5"], capsys)
    assert code != 0 and "stopped when they passed 0" in err


def test_a_sweep_stops_once_every_point_has_solved(tmp_path):
    from curio_jax.config import preset
    from curio_jax.run import sweep
    from curio_jax.run.loggers import Progress
    from curio_jax.run.rundir import RunSettings

    cfg = preset("notebook-a2c-5x5").with_overrides(
        {"train.num_envs": 4, "log_every": 8, "total_frames": BUDGET, "solved_threshold": 0.0}
    )
    settings = RunSettings(seeds=2, tensorboard=False, stop_when_solved=True)
    out = tmp_path / "sweep"
    summaries = sweep.sweep_run(
        cfg,
        [sweep.Axis("lr", (7e-4, 1e-3))],
        out,
        settings,
        progress=Progress(stream=open("/dev/null", "w"), tty=False),  # noqa: SIM115
        plot=False,
    )
    assert json.loads((out / "sweep.json").read_text())["stop_when_solved"] is True
    for s in summaries:
        assert s["stops_at_solve"] is True and s["updates"] < 64 * 8
        assert all(x["frames_to_solve"] is not None for x in s["seeds"])
    assert summaries[0]["updates"] == summaries[1]["updates"]  # one program, one stop
