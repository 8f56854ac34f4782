"""`bench train`'s bookkeeping (cells, rounds, medians, ratios) with the measuring worker
replaced by a fake: what is timed is covered by the benchmark itself, not by tests."""

from __future__ import annotations

import pytest

from curio_jax.tools import bench


@pytest.fixture
def fake_worker(monkeypatch):
    """run_isolated -> scripted records; returns the list of calls in order."""
    calls: list[tuple[str, dict]] = []
    speeds = iter([1000.0, 3000.0, 2000.0, 9000.0, 4000.0, 5000.0])

    def run_isolated(fn_name, **kw):
        calls.append((fn_name, kw))
        if fn_name == "matmul_gflops":
            return {"gflops": 100.0}
        return {
            "impl": "curio_jax",
            "num_envs": kw["num_envs"],
            "seeds": kw["seeds"],
            "micro_batch": 512,
            "seed_batch": kw["seed_batch"] or 1,
            "frames_per_sec": next(speeds),
            "compile_seconds": 5.0 + len(calls),
            "flops_per_frame": 1e7 if kw.get("count_flops", True) else None,
            "peak_rss_mb": 100.0 * len(calls),
            "peak_device_mb": None,
        }

    monkeypatch.setattr(bench, "run_isolated", run_isolated)
    return calls


def test_rounds_run_round_robin_and_report_medians(fake_worker):
    lines: list[str] = []
    recs = bench.bench_train("notebook-rnd-8x8", [32, 512], [1], rounds=3, log=lines.append)
    cells = [(kw["num_envs"], kw["seeds"]) for name, kw in fake_worker if name != "matmul_gflops"]
    assert cells == [(32, 1), (512, 1)] * 3  # round-robin, not cell after cell
    small, large = recs
    assert small["frames_per_sec_rounds"] == [1000.0, 2000.0, 4000.0]
    assert small["frames_per_sec"] == 2000.0  # the median
    assert large["frames_per_sec_rounds"] == [3000.0, 9000.0, 5000.0]
    assert large["frames_per_sec"] == 5000.0
    assert large["fraction_of_matmul_rate"] == pytest.approx(5000 * 1e7 / 100e9)
    assert small["peak_rss_mb"] == max(r * 100.0 for r in (2, 4, 6))  # the largest of 3 runs
    assert any("median of 3: 1,000-4,000" in line for line in lines)


def test_one_round_keeps_the_single_figure(fake_worker):
    (rec,) = bench.bench_train("notebook-rnd-8x8", [32], [16], seed_batches=(0,), log=print)
    assert rec["frames_per_sec"] == 1000.0 and "frames_per_sec_rounds" not in rec
    assert [kw.get("seed_batch") for name, kw in fake_worker if name != "matmul_gflops"] == [0]


def test_rounds_must_be_positive():
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        bench.bench_train("notebook-rnd-8x8", [32], [1], rounds=0)


def test_no_flops_leaves_the_fraction_out_and_logs_each_cell_as_measured(fake_worker):
    lines: list[str] = []
    recs = bench.bench_train(
        "notebook-rnd-8x8", [32, 512], [1], count_flops=False, log=lines.append
    )
    assert all(kw["count_flops"] is False for n, kw in fake_worker if n != "matmul_gflops")
    assert all(r["flops_per_frame"] is None and r["fraction_of_matmul_rate"] is None for r in recs)
    # one progress line per cell, printed before the summary lines
    progress = [i for i, line in enumerate(lines) if "round 1/1" in line]
    summary = [i for i, line in enumerate(lines) if "FLOPs not counted" in line]
    assert len(progress) == 2 and len(summary) == 2 and max(progress) < min(summary)


def test_peak_device_memory_is_the_largest_round(fake_worker, monkeypatch):
    peaks = iter([700.0, 900.0, 800.0])
    worker = bench.run_isolated  # the fixture's fake

    def run_isolated(fn_name, **kw):
        rec = worker(fn_name, **kw)
        if fn_name != "matmul_gflops":
            rec["peak_device_mb"] = next(peaks)
        return rec

    monkeypatch.setattr(bench, "run_isolated", run_isolated)
    lines: list[str] = []
    (rec,) = bench.bench_train("notebook-rnd-8x8", [512], [1], rounds=3, log=lines.append)
    assert rec["peak_device_mb"] == 900.0
    assert "peak device memory 900 MB" in lines[-1]


def test_peak_device_mb_is_none_on_cpu():
    import jax

    if jax.default_backend() != "cpu":
        pytest.skip("an accelerator keeps memory statistics")
    assert bench.peak_device_mb() is None
