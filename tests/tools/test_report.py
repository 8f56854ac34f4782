"""benchmarks/report.py's tables from records (no measuring): GPU records without a FLOP count
and with the device's peak memory, next to CPU records with both."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("curio_bench_report", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _train(device, flops, dev_mb, fps=1000.0, num_envs=512):
    return {
        "impl": "curio_jax",
        "preset": "notebook-rnd-8x8",
        "size": 8,
        "num_envs": num_envs,
        "seeds": 1,
        "micro_batch": 8192 if device.startswith("gpu") else 512,
        "seed_batch": 1,
        "frames_per_sec": fps,
        "compile_seconds": 5.0,
        "flops_per_frame": flops,
        "peak_rss_mb": 900.0,
        "peak_device_mb": dev_mb,
        "device": device,
        "matmul_gflops": 400.0,
        "fraction_of_matmul_rate": None if flops is None else fps * flops / 400e9,
    }


def test_gpu_rows_say_not_counted_and_show_device_memory(report):
    gpu = _train("gpu (NVIDIA H100 80GB HBM3) x1", None, 709.4, fps=2e6)
    cpu = _train("cpu (2 cores, x86_64)", 8.87e6, None, fps=30000.0)
    text = report.markdown("notebook-rnd-8x8", 8, [], [gpu, cpu])
    gpu_row = next(line for line in text.splitlines() if "2,000,000" in line)
    cpu_row = next(line for line in text.splitlines() if "30,000" in line)
    assert "not counted" in gpu_row and "709 MB device" in gpu_row and "auto (8192)" in gpu_row
    assert "8.87" in cpu_row and "67% of 400 GFLOP/s" in cpu_row and "device" not in cpu_row
    assert "gpu (NVIDIA H100 80GB HBM3) x1" in text and "cpu (2 cores, x86_64)" in text


def test_navix_ppo_anchor_rows_and_series(report, tmp_path):
    cj = dict(_train("cpu (2 cores, x86_64)", None, None, fps=8000.0, num_envs=16))
    cj.update(preset="ppo-8x8", over_navix_ppo=2.0)
    navix = {
        "impl": "navix_ppo",
        "preset": "ppo-8x8",
        "anchor": "navix-ppo",
        "size": 8,
        "num_envs": 16,
        "seeds": 1,
        "num_steps": 128,
        "epochs": 4,
        "minibatches": 4,
        "frames_per_sec": 4000.0,
        "compile_seconds": 30.0,
        "device": "cpu (2 cores, x86_64)",
    }
    preset, size, _, train = report.select([cj, navix], None)
    assert (preset, size, len(train)) == ("ppo-8x8", 8, 2)
    text = report.markdown(preset, size, [], train)
    rows = text.splitlines()
    cj_row = next(line for line in rows if line.startswith("| curio_jax"))
    nx_row = next(line for line in rows if line.startswith("| navix PPO"))
    assert "8,000 (2.00x navix PPO)" in cj_row
    assert "16 x 1 | 128 steps, 4 x 4 minibatches | 4,000 |" in nx_row
    assert rows.index(cj_row) < rows.index(nx_row)
    data = report.series([], train)
    assert [p[:2] for p in data["navix_ppo"]] == [(16, 4000.0)]
    pytest.importorskip("matplotlib")
    report.plot(preset, size, data, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
