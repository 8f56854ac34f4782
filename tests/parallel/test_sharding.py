"""Scale-out with jax.sharding: seeds and envs across devices, and two processes through
jax.distributed, all on CPU.

Every multi-device run is a `curio-jax train` subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (the rest of the suite keeps one
device). Runs compared: 4 seeds x 8 envs of notebook-rnd-5x5 (dropout and the notebook's
misaligned intrinsic permutation included), 4 updates, same base seed:

- ``one``: one device; ``seeds``: 4 devices, one seed each; ``envs``: 4 devices, every seed's
  8 envs split 2 per device (the loss batch split along samples, gradients summed across
  devices); ``procs``: 2 processes x 2 devices through jax.distributed on localhost.

Tolerance, and why not bit for bit: XLA's CPU reductions give last-bit differences when the
per-device batch changes (tests/test_sweep.py shows it on one device: a row sum of [8, 64, 7]
differs from the same rows inside [24, 64, 7]), and env sharding splits the loss sums into
per-device partial sums. RMSprop divides by sqrt(v) + eps, which magnifies such differences in
parameters whose gradients are tiny, so after 4 updates parameters agree to ~1e-4 of each
leaf's scale (measured: 7.6e-5 seeds, 8.2e-5 envs, 8.1e-6 processes vs 4 devices); the bound
used is 1e-3. Everything discrete (env states, actions taken, episode counters, keys) is equal.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_usage_error

from curio_jax.parallel import sharding
from curio_jax.run import checkpoint as ckpt

ARGS = [
    "--preset=notebook-rnd-5x5",
    "--seeds=4",
    "--num-envs=8",
    f"--total-frames={4 * 8 * 16}",
    "--log-every=2",
    "--no-tensorboard",
    "--no-gif",
]
PARAM_RTOL = 1e-3


def env_for(devices: int, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CURIO_JAX_")}
    e.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return e


def cli(env: dict[str, str], *args: str, timeout: int = 400) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "curio_jax", "train", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def final_state(run: Path) -> dict[str, np.ndarray]:
    arrays = ckpt.read_arrays(ckpt.list_checkpoints(run / "checkpoints")[-1][1])
    arrays.pop(ckpt.META_KEY)
    return arrays


def assert_close_runs(a: Path, b: Path) -> None:
    xa, xb = final_state(a), final_state(b)
    assert xa.keys() == xb.keys()
    for k in xa:
        assert xa[k].shape == xb[k].shape and xa[k].dtype == xb[k].dtype, k
        if xa[k].dtype.kind == "f":
            scale = max(float(np.max(np.abs(xb[k]))), 1e-6)
            err = float(np.max(np.abs(xa[k] - xb[k]))) / scale
            assert err <= PARAM_RTOL, (k, err)
        else:  # env state, actions' consequences, counters, PRNG keys: exact
            assert np.array_equal(xa[k], xb[k]), k
    ra = list(csv.DictReader(open(a / "metrics.csv")))
    rb = list(csv.DictReader(open(b / "metrics.csv")))
    assert len(ra) == len(rb) == 8
    for x, y in zip(ra, rb, strict=True):
        for col in ("seed", "update", "frames", "episodes"):
            assert x[col] == y[col]
        for col in ("avg_return_last100", "loss_total", "entropy", "loss_rnd"):
            fx, fy = float(x[col]), float(y[col])
            assert (np.isnan(fx) and np.isnan(fy)) or abs(fx - fy) <= 1e-4 * max(1.0, abs(fy))
    sa = json.loads((a / "summary.json").read_text())["seeds"]
    sb = json.loads((b / "summary.json").read_text())["seeds"]
    assert [s["frames_to_solve"] for s in sa] == [s["frames_to_solve"] for s in sb]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    four = env_for(4)
    done = {}
    for name, extra in (("one", ["--devices=1"]), ("seeds", []), ("envs", ["--env-shards=4"])):
        r = cli(four, *ARGS, *extra, f"--out={root / name}")
        assert r.returncode == 0, r.stderr[-3000:]
        done[name] = (root / name, r.stdout + r.stderr)
    return done


@pytest.mark.slow  # three 4-device CLI runs (about 3 minutes on 2 cores)
def test_seed_sharded_run_matches_one_device(runs):
    one, _ = runs["one"]
    seeds, log = runs["seeds"]
    assert "4 devices (4 seed shard(s) x 1 env shard(s), 1 process(es))" in log
    summary = json.loads((seeds / "summary.json").read_text())
    assert summary["devices"] == 4 and summary["micro_batch"] > 0
    assert_close_runs(seeds, one)


@pytest.mark.slow  # three 4-device CLI runs (about 3 minutes on 2 cores)
def test_env_sharded_agent_matches_one_device_with_the_same_envs(runs):
    one, _ = runs["one"]
    envs, log = runs["envs"]
    assert "4 devices (1 seed shard(s) x 4 env shard(s)" in log
    summary = json.loads((envs / "summary.json").read_text())
    assert summary["env_shards"] == 4
    assert_close_runs(envs, one)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # three 4-device CLI runs (about 3 minutes on 2 cores)
def test_two_processes_with_jax_distributed_match_one_process(runs, tmp_path):
    seeds, _ = runs["seeds"]
    out = tmp_path / "procs"
    port = _free_port()
    procs = []
    for pid in (1, 0):
        e = env_for(
            2,
            CURIO_JAX_COORDINATOR=f"127.0.0.1:{port}",
            CURIO_JAX_NUM_PROCESSES="2",
            CURIO_JAX_PROCESS_ID=str(pid),
        )
        cmd = [sys.executable, "-m", "curio_jax", "train", *ARGS, f"--out={out}"]
        procs.append(
            subprocess.Popen(
                cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=400)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    assert [p.returncode for p in procs] == [0, 0], logs
    worker, primary = logs
    assert "4 devices (4 seed shard(s) x 1 env shard(s), 2 process(es))" in primary
    assert "process 0 wrote the results" in worker
    assert "Traceback" not in worker + primary
    assert_close_runs(out, seeds)  # same devices, split over two processes


def test_seed_count_must_fit_the_devices(tmp_path):
    r = cli(
        env_for(4),
        *[a for a in ARGS if not a.startswith("--seeds")],
        "--seeds=3",
        f"--out={tmp_path / 'x'}",
        timeout=120,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "multiple of the seed shards (4" in lines[0]
    assert "--seeds 4" in lines[0]
    assert not (tmp_path / "x" / "checkpoints").exists()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"devices": 2}, "only 1 are visible"),
        ({"env_shards": 2}, "must divide the device count"),
        ({"devices": 0}, "positive integer"),
    ],
)
def test_layout_errors_name_the_numbers(kwargs, fragment):
    with pytest.raises(sharding.ShardingError, match=fragment):
        sharding.make_layout(4, 8, **kwargs)


def test_one_device_needs_no_mesh():
    layout = sharding.make_layout(3, 5)
    assert layout.mesh is None and layout.describe() == "1 device"


def test_partial_distributed_settings_are_refused(monkeypatch):
    monkeypatch.setenv(sharding.ENV_COORDINATOR, "127.0.0.1:1")
    monkeypatch.delenv(sharding.ENV_NUM_PROCESSES, raising=False)
    monkeypatch.delenv(sharding.ENV_PROCESS_ID, raising=False)
    with pytest.raises(sharding.ShardingError, match="needs all of"):
        sharding.initialize()
    with pytest.raises(sharding.ShardingError, match="not in"):
        sharding.initialize("127.0.0.1:1", 2, 5)


def test_bench_train_refuses_cells_that_do_not_fit_the_devices(capsys):
    argv = ["bench", "train", "--preset=notebook-rnd-5x5", "--devices=1,4", "--seeds=2"]
    assert_usage_error(argv, capsys, contains="devices=4")
