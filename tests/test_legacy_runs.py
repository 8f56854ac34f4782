"""Run directories written by the code before the core was reshaped around learner x bonus
(`tests/legacy_runs/`, old config names such as ``a2c.num_envs`` and ``rnd.bonus``, old
checkpoint leaf names such as ``.target_params`` and ``.visits.counts``) still load, resume
and compare.

Each fixture is a finished 2-seed run of 8 updates (tiny networks: hidden_dim 8, RND features
8) logged every 2 updates, kept with its update-4 checkpoint only. Resuming a copy without its
summary from that checkpoint must reproduce the recorded metrics.csv: byte for byte on the
machine and JAX release of tests/legacy_runs/machine.json, to 1e-4 of each column's scale on
another CPU, and only its schedule under another JAX release (see tests/test_golden.py).

Made with (before the reshaping; `--set` lists per directory in each config.json)::

    curio-jax train --preset P --set ... --num-envs N --total-frames 512 --seeds 2 \\
        --log-every 2 --checkpoint-every 1 --keep-checkpoints 10 --no-tensorboard --no-gif
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from golden_runs import machine

LEGACY = Path(__file__).parent / "legacy_runs"
QUICK = ("ppo-rnd-5x5",)
ALL = sorted(p.name for p in LEGACY.iterdir() if p.is_dir())


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _check_resume(name: str, tmp_path: Path) -> None:
    from curio_jax.cli import main

    src, copy = LEGACY / name, tmp_path / name
    shutil.copytree(src, copy)
    (copy / "summary.json").unlink()  # as if stopped after the update-4 checkpoint
    rc = main(["train", "--resume", "--out", str(copy), "--no-tensorboard", "--no-gif"])
    assert rc == 0
    got, want = _rows(copy / "metrics.csv"), _rows(src / "metrics.csv")
    assert got[0] == want[0] and len(got) == len(want)
    assert [r[:3] for r in got] == [r[:3] for r in want]  # seed, update, frames
    here, recorded = machine(), json.loads((LEGACY / "machine.json").read_text())
    if here == recorded:
        assert (copy / "metrics.csv").read_bytes() == (src / "metrics.csv").read_bytes()
    elif (here["jax"], here["jaxlib"]) == (recorded["jax"], recorded["jaxlib"]):
        g = np.array([[float(v) for v in r[3:]] for r in got[1:]])
        w = np.array([[float(v) for v in r[3:]] for r in want[1:]])
        scale = np.maximum(np.nanmax(np.abs(w), axis=0), 1e-6)
        bad = np.abs(g - w) > 1e-4 * scale
        assert not np.any(bad & ~(np.isnan(g) & np.isnan(w))), f"{name}: metrics moved"
    want_summary = json.loads((src / "summary.json").read_text())
    got_summary = json.loads((copy / "summary.json").read_text())
    assert got_summary["seeds"] == want_summary["seeds"]


@pytest.mark.parametrize("name", QUICK)
def test_a_run_written_by_the_previous_code_resumes_to_its_numbers(name, tmp_path):
    _check_resume(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(ALL) - set(QUICK)))
def test_every_legacy_run_resumes_to_its_numbers(name, tmp_path):
    _check_resume(name, tmp_path)


def _compared() -> dict:
    from golden_runs import _strip

    from curio_jax.api import compare

    result = compare([LEGACY / name for name in ALL], n_boot=200)
    return json.loads(json.dumps(_strip(result)).replace(str(LEGACY), "{legacy}"))


def test_legacy_runs_compare_as_before():
    """`compare` of the four directories equals what the previous code computed
    (tests/legacy_runs/compare.json, timing fields dropped)."""
    want, got = json.loads((LEGACY / "compare.json").read_text()), _compared()
    # the names of differing config fields follow the config's current names; their number
    # and the statistics do not change
    for w, g in zip(want["pairs"], got["pairs"], strict=True):
        assert len(w.pop("config_differences")) == len(g.pop("config_differences"))
    assert got == want


if __name__ == "__main__":  # record compare.json (only with the code that wrote the runs)
    (LEGACY / "compare.json").write_text(json.dumps(_compared(), indent=1, sort_keys=True) + "\n")
