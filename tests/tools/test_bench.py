"""`bench train`'s bookkeeping (cells, rounds, medians, ratios) with the measuring worker
replaced by a fake: what is timed is covered by the benchmark itself, not by tests."""

from __future__ import annotations

import inspect

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
            "preset": kw["preset"],
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


# --------------------------------------------------------------------------- --anchor navix-ppo


@pytest.fixture
def fake_anchor(fake_worker, monkeypatch):
    """The fake worker, with `bench_navix_ppo` cells answering scripted navix records."""
    worker = bench.run_isolated  # the fixture's fake
    navix_speeds = iter([500.0, 700.0, 600.0, 100.0])

    def run_isolated(fn_name, **kw):
        if fn_name != "bench_navix_ppo":
            rec = worker(fn_name, **kw)
            if fn_name == "bench_train_cell":
                rec["devices"] = kw["devices"]
            return rec
        fake_worker.append((fn_name, kw))
        return {
            "impl": "navix_ppo",
            "size": kw["size"],
            "num_envs": kw["num_envs"],
            "seeds": 1,
            "num_steps": kw["num_steps"],
            "epochs": kw["epochs"],
            "minibatches": kw["minibatches"],
            "frames_per_sec": next(navix_speeds),
            "compile_seconds": 20.0,
            "device": "cpu",
        }

    monkeypatch.setattr(bench, "run_isolated", run_isolated)
    return fake_worker


def test_anchor_times_navix_ppo_with_both_encoders_matched_to_the_preset(fake_anchor):
    lines: list[str] = []
    recs = bench.bench_train(
        "ppo-8x8", [16, 64], [1], updates=3, anchor="navix-ppo", log=lines.append
    )
    names = [name for name, _ in fake_anchor if name != "matmul_gflops"]
    # one round: the curio_jax cells, then navix per num_envs with each encoder
    assert names == ["bench_train_cell"] * 2 + ["bench_navix_ppo"] * 4
    navix_calls = [kw for name, kw in fake_anchor if name == "bench_navix_ppo"]
    common = {"size": 8, "num_steps": 128, "epochs": 4, "minibatches": 4, "updates": 3}
    assert navix_calls == [
        {**common, "num_envs": n, "encoder": enc} for n in (16, 64) for enc in ("notebook", "conv")
    ]
    # the worker's keyword arguments are exactly bench_navix_ppo's
    inspect.signature(bench.bench_navix_ppo).bind(**navix_calls[0])
    small, large, nx16, nx16conv, nx64, nx64conv = recs
    assert (small["impl"], nx16["impl"], nx16["preset"], nx16["anchor"]) == (
        "curio_jax",
        "navix_ppo",
        "ppo-8x8",
        "navix-ppo",
    )
    assert (nx16["num_envs"], nx64conv["num_envs"]) == (16, 64)
    # navix speeds in call order: 500 (16, notebook), 700 (16, conv), 600, 100
    assert small["over_navix_ppo"] == pytest.approx(1000.0 / 500.0)
    assert small["over_navix_ppo_conv"] == pytest.approx(1000.0 / 700.0)
    assert large["over_navix_ppo"] == pytest.approx(3000.0 / 600.0)
    assert large["over_navix_ppo_conv"] == pytest.approx(3000.0 / 100.0)
    assert any("navix_ppo  ppo-8x8  notebook encoder  envs    16" in line for line in lines)
    assert any(
        "curio_jax / navix PPO (conv encoder)  envs    64" in line and "30.00x" in line
        for line in lines
    )


def test_anchor_rounds_take_the_median_and_only_one_seed_cells_get_the_ratio(fake_anchor):
    recs = bench.bench_train("ppo-rnd-5x5", [16], [1, 4], rounds=2, anchor="navix-ppo", log=print)
    names = [name for name, _ in fake_anchor if name != "matmul_gflops"]
    assert names == ["bench_train_cell"] * 2 + ["bench_navix_ppo"] * 2 + (
        ["bench_train_cell"] * 2 + ["bench_navix_ppo"] * 2
    )
    one_seed, four_seeds, navix, navix_conv = recs
    assert navix["frames_per_sec_rounds"] == [500.0, 600.0]
    assert navix["frames_per_sec"] == 550.0
    assert navix_conv["frames_per_sec"] == 400.0  # median of 700 and 100
    assert one_seed["over_navix_ppo"] == pytest.approx(one_seed["frames_per_sec"] / 550.0)
    assert "over_navix_ppo" not in four_seeds  # not matched: 4 seeds vs navix's one


def test_several_presets_are_timed_side_by_side_with_their_ratio_to_the_first(fake_worker):
    lines: list[str] = []
    recs = bench.bench_train("ppo-16x16,ppo-rnd-16x16", [128], [1], rounds=2, log=lines.append)
    cells = [kw["preset"] for name, kw in fake_worker if name != "matmul_gflops"]
    assert cells == ["ppo-16x16", "ppo-rnd-16x16"] * 2  # round-robin over the presets too
    ppo, rnd = recs
    # speeds in call order: 1000 (ppo), 3000 (rnd), 2000 (ppo), 9000 (rnd)
    assert (ppo["frames_per_sec"], rnd["frames_per_sec"]) == (1500.0, 6000.0)
    assert "over_baseline" not in ppo
    assert (rnd["baseline"], rnd["over_baseline"]) == ("ppo-16x16", pytest.approx(4.0))
    assert any("ppo-rnd-16x16" in line and "4.00x" in line for line in lines)


@pytest.mark.parametrize(
    "preset, match", [("ppo-16x16,nope", "nope"), ("ppo-16x16,ppo-16x16", "repeated")]
)
def test_unknown_or_repeated_presets_are_refused_before_timing(fake_worker, preset, match):
    with pytest.raises(ValueError, match=match):
        bench.bench_train(preset, [32], [1], log=print)
    assert fake_worker == []


@pytest.mark.parametrize(
    "preset, anchor, match",
    [
        ("notebook-rnd-8x8", "navix-ppo", "PPO preset"),
        ("rnd-paper-5x5", "navix-ppo", "algorithm='a2c'"),
        ("ppo-5x5", "cleanrl", "unknown anchor"),
    ],
)
def test_anchor_needs_a_ppo_preset_and_a_known_anchor(fake_worker, preset, anchor, match):
    with pytest.raises(ValueError, match=match):
        bench.bench_train(preset, [32], [1], anchor=anchor, log=print)
    assert fake_worker == []  # refused before anything is timed
