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
