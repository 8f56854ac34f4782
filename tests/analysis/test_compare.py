"""`compare`: loading run directories, the statistics per run and per pair, incompatible pairs,
corrupt directories, the text report and the figure. Runs are synthetic, written in tmp_path."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import LOG_POINTS, write_run

from curio_jax.analysis import compare, runs, stats
from curio_jax.config import preset

N_BOOT = 200


GOOD_FINALS = [0.95, 0.96, 0.97, 0.93, 0.94, 0.96]
GOOD_SOLVES = [300_000, 250_000, 400_000, 350_000, 500_000, 300_000]
POOR_FINALS = [0.10, 0.92, 0.0, 0.5, 0.93, 0.2]
POOR_SOLVES = [None, 800_000, None, None, 900_000, None]


@pytest.fixture
def three_runs(tmp_path):
    a = write_run(
        tmp_path, "x100", preset_name="a2c-x100-8x8", finals=GOOD_FINALS, solves=GOOD_SOLVES
    )
    b = write_run(
        tmp_path, "a2c8", preset_name="notebook-a2c-8x8", finals=POOR_FINALS, solves=POOR_SOLVES
    )
    c = write_run(
        tmp_path, "a2c5", preset_name="notebook-a2c-5x5", finals=GOOD_FINALS, solves=GOOD_SOLVES
    )
    return a, b, c


def test_load_run(three_runs):
    run = compare.load_run(three_runs[1])
    assert run.size == 8 and run.solved_threshold == 0.91 and run.budget == 1_000_000
    assert run.preset == "notebook-a2c-8x8" and run.impl == "curio_jax"
    np.testing.assert_array_equal(run.seeds, np.arange(6))
    np.testing.assert_array_equal(run.final_scores, POOR_FINALS)
    times, events = run.solve_times()
    np.testing.assert_array_equal(times, [1e6, 8e5, 1e6, 1e6, 9e5, 1e6])
    np.testing.assert_array_equal(events, [False, True, False, False, True, False])
    assert "note" not in run.metrics  # a text column is ignored, not an error
    assert np.isnan(run.metrics["reward_int_mean"]).all()  # an empty numeric column is NaN
    frames, values = run.curve_matrix()
    assert frames.tolist() == [1_000_000 * i // LOG_POINTS for i in range(1, LOG_POINTS + 1)]
    assert np.isnan(values[:, 0]).all()
    np.testing.assert_allclose(values[:, -1], POOR_FINALS)


def test_budget_without_frames_per_seed_comes_from_the_config(tmp_path):
    # notebook-a2c-8x8: 32 envs x 16 steps = 512 frames per update; 1_000_000 frames are
    # 1953 whole updates = 999_936 frames per seed (TrainConfig.num_updates)
    d = write_run(tmp_path, "old", finals=[0.5, 0.7], solves=[None, 500_000], per_seed=False)
    run = compare.load_run(d)
    assert run.budget == 999_936
    assert run.solve_times()[0].tolist() == [999_936, 500_000]
    cfg = json.loads((d / "config.json").read_text())
    del cfg["total_frames"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(compare.RunDirError, match="total_frames"):
        compare.load_run(d)


def test_compare_runs_statistics(three_runs):
    a, b, _ = three_runs
    res = compare.compare_runs([a, b], n_boot=N_BOOT)
    json.dumps(res, allow_nan=False)  # strict JSON: inf / NaN became null
    assert res["warnings"] == []
    good, poor = res["runs"]
    assert (good["label"], poor["label"]) == ("x100", "a2c8")
    assert good["n_seeds"] == 6 and good["n_solved"] == 6 and good["solved_fraction"] == 1.0
    assert good["final_mean"]["value"] == pytest.approx(np.mean(GOOD_FINALS))
    assert good["final_iqm"]["value"] == pytest.approx(stats.iqm(GOOD_FINALS))
    assert good["final_mean"]["low"] <= good["final_mean"]["value"] <= good["final_mean"]["high"]
    # sorted solves: 250k 300k 300k 350k ... -> S <= 1/2 first at 300k (3 of 6)
    assert good["frames_to_solve_median"]["value"] == 300_000
    # 2 of 6 solved: the median is not reached; JSON null
    assert poor["n_solved"] == 2 and poor["frames_to_solve_median"]["value"] is None
    assert poor["km_curve"]["frames"] == [0, 800_000, 900_000, 1_000_000]
    np.testing.assert_allclose(poor["km_curve"]["solved_fraction"], [0, 1 / 6, 2 / 6, 2 / 6])
    # the score curve: mean over seeds at every logged frame count, NaN (null) before episodes
    curve = poor["curve"]
    assert curve["mean"][0] is None
    np.testing.assert_allclose(curve["mean"][-1], np.mean(POOR_FINALS))
    assert all(
        lo <= m <= hi
        for lo, m, hi in zip(curve["low"][1:], curve["mean"][1:], curve["high"][1:], strict=True)
    )

    (pair,) = res["pairs"]
    assert pair["comparable"] and (pair["a"], pair["b"]) == ("x100", "a2c8")
    poi = pair["probability_of_improvement"]
    # by hand, 6 x 6 = 36 pairs: every x100 score beats a2c8's 0.10, 0.0, 0.5 and 0.2 (24)
    # and 0.92 (6); against a2c8's 0.93, five win and x100's own 0.93 ties (counts 1/2):
    # 24 + 6 + 5.5 = 35.5
    assert poi["value"] == pytest.approx(35.5 / 36)
    assert poi["low"] <= poi["value"] <= poi["high"] <= 1.0
    assert pair["mann_whitney_p"] == pytest.approx(
        stats.mann_whitney(GOOD_FINALS, POOR_FINALS).pvalue
    )
    ta, ea = compare.load_run(a).solve_times()
    tb, eb = compare.load_run(b).solve_times()
    assert pair["logrank_p"] == pytest.approx(stats.logrank(ta, ea, tb, eb).pvalue)
    assert pair["logrank_p"] < 0.01
    diffs = pair["config_differences"]
    assert diffs == ["name: a2c-x100-8x8 vs notebook-a2c-8x8", "train.adv_coef_ext: 100.0 vs 1.0"]


def test_incompatible_size_is_warned_and_skipped(three_runs):
    res = compare.compare_runs(list(three_runs), n_boot=N_BOOT)
    assert [(p["a"], p["b"], p["comparable"]) for p in res["pairs"]] == [
        ("x100", "a2c8", True),
        ("x100", "a2c5", False),
        ("a2c8", "a2c5", False),
    ]
    for p in res["pairs"][1:]:
        assert "probability_of_improvement" not in p and "logrank_p" not in p
    assert len(res["warnings"]) == 2
    assert all("env.size: 8 vs 5" in w and "skipped" in w for w in res["warnings"])
    assert "not comparing x100 with a2c5" in res["warnings"][0]
    # a run's own statistics do not depend on which other runs it is compared with
    alone = compare.compare_runs([three_runs[0]], n_boot=N_BOOT)["runs"][0]
    assert alone["final_iqm"] == res["runs"][0]["final_iqm"]
    assert alone["frames_to_solve_median"] == res["runs"][0]["frames_to_solve_median"]


def test_a_field_missing_from_an_older_config_counts_as_its_default(tmp_path):
    old = write_run(tmp_path, "old", finals=[0.9, 0.8], solves=[100, None])
    cfg = json.loads((old / "config.json").read_text())
    del cfg["train"]["seed_batch"]  # a run directory written before the field existed
    (old / "config.json").write_text(json.dumps(cfg))
    same = write_run(tmp_path, "same", finals=[0.9, 0.8], solves=[100, None])
    res = compare.compare_runs([old, same], n_boot=N_BOOT)
    assert res["pairs"][0]["config_differences"] == []
    cfg["train"]["seed_batch"] = 2
    other = shutil.copytree(same, tmp_path / "other")
    (other / "config.json").write_text(json.dumps(cfg))
    res = compare.compare_runs([old, other], n_boot=N_BOOT)
    assert res["pairs"][0]["config_differences"] == ["train.seed_batch: None vs 2"]


def test_threshold_and_budget_differences(tmp_path):
    a = write_run(tmp_path, "a", finals=[0.9, 0.8], solves=[100, None])
    b = write_run(tmp_path, "b", finals=[0.9, 0.8], solves=[100, None], threshold=0.95)
    c = write_run(tmp_path, "c", finals=[0.9, 0.8], solves=[100, None], frames=2_000_000)
    res = compare.compare_runs([a, b, c], n_boot=N_BOOT)
    by_pair = {(p["a"], p["b"]): p for p in res["pairs"]}
    # different thresholds: final scores compared, frames-to-solve not
    assert by_pair["a", "b"]["comparable"] and by_pair["a", "b"]["logrank_p"] is None
    assert by_pair["a", "b"]["mann_whitney_p"] is not None
    assert by_pair["a", "c"]["comparable"] and by_pair["a", "c"]["logrank_p"] is not None
    assert by_pair["a", "c"]["config_differences"] == ["total_frames: 1000000 vs 2000000"]
    assert any("different solved thresholds (0.91 vs 0.95)" in w for w in res["warnings"])
    assert any("different budgets" in w for w in res["warnings"])
    # the notebook's own A2C and RND presets use different thresholds on 8x8 (0.91, 0.95)
    d = write_run(tmp_path, "rnd", preset_name="notebook-rnd-8x8", finals=[0.9], solves=[None])
    res = compare.compare_runs([a, d], n_boot=N_BOOT)
    (w,) = res["warnings"]
    assert "different solved thresholds" in w and "env.size" not in w
    assert res["pairs"][0]["logrank_p"] is None


def test_compare_is_deterministic_and_seeded(three_runs):
    a, b, _ = three_runs
    r1 = compare.compare_runs([a, b], n_boot=N_BOOT)
    assert r1 == compare.compare_runs([a, b], n_boot=N_BOOT)
    r2 = compare.compare_runs([a, b], n_boot=N_BOOT, seed=1)
    assert r1["runs"][1]["final_mean"] != r2["runs"][1]["final_mean"]


def test_format_table(three_runs):
    res = compare.compare_runs(list(three_runs), n_boot=N_BOOT)
    text = compare.format_table(res)
    lines = text.splitlines()
    assert any(line.startswith("x100") and "8x8" in line and "6/6" in line for line in lines)
    a2c8 = next(line for line in lines if line.startswith("a2c8"))
    assert "2/6" in a2c8 and "not reached" in a2c8
    assert any(line.startswith("x100") and "a2c8" in line and "0.99" in line for line in lines)
    assert sum(line.startswith("warning: not comparing") for line in lines) == 2
    differ = next(line for line in lines if line.strip().startswith("x100 vs a2c8: "))
    assert "train.adv_coef_ext: 100.0 vs 1.0" in differ


def test_plot_writes_png(three_runs, tmp_path):
    res = compare.compare_runs(list(three_runs[:2]), n_boot=N_BOOT)
    out = tmp_path / "cmp.png"
    compare.plot(res, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError, match="does not exist"):
        compare.plot(res, tmp_path / "nope" / "cmp.png")


def _drop(name):
    def corrupt(d: Path) -> None:
        (d / name).unlink()

    return corrupt


def _write(name, content):
    def corrupt(d: Path) -> None:
        data = content.encode() if isinstance(content, str) else content
        (d / name).write_bytes(data)

    return corrupt


def _edit_json(name, fn):
    def corrupt(d: Path) -> None:
        obj = json.loads((d / name).read_text())
        fn(obj)
        (d / name).write_text(json.dumps(obj))

    return corrupt


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (_drop("summary.json"), "missing summary.json"),
        (_drop("config.json"), "missing config.json"),
        (_drop("metrics.csv"), "missing metrics.csv"),
        (_write("metrics.csv", b"\x00\xff\xfe garbage \x81\x90\n\x00"), "metrics.csv"),
        (_write("metrics.csv", "lorem ipsum\ndolor sit amet\n"), "missing column"),
        (_write("metrics.csv", "seed,frames,avg_return_last100\n"), "no data rows"),
        (_write("metrics.csv", ""), "empty file"),
        (_write("metrics.csv", "seed,frames,avg_return_last100\n0,10,x\n"), "line 2.*not a num"),
        (_write("metrics.csv", "seed,frames,avg_return_last100\n0,10\n"), "line 2 has 2 fields"),
        (_write("metrics.csv", "seed,frames,avg_return_last100\n0,1.5,0.1\n"), "integer"),
        (_write("metrics.csv", "seed,frames,avg_return_last100\n9,10,0.1\n"), r"no rows for seed"),
        (_write("summary.json", "{not json"), "not valid JSON"),
        (_write("summary.json", "[]"), "expected a JSON object"),
        (_edit_json("summary.json", lambda s: s.update(frames_per_seed=0)), "frames_per_seed"),
        (
            _edit_json("summary.json", lambda s: s["seeds"][0].update(frames_to_solve=1_000_001)),
            r"frames_to_solve .* \[0, 1000000\]",
        ),
        (_edit_json("summary.json", lambda s: s.update(seeds=[])), "'seeds'"),
        (
            _edit_json("summary.json", lambda s: s["seeds"][0].update(frames_to_solve=10**9)),
            "frames_to_solve",
        ),
        (
            _edit_json(
                "summary.json", lambda s: s["seeds"][1].update(final_avg_return_last100="high")
            ),
            "final_avg_return_last100 must be null",
        ),
        (_edit_json("summary.json", lambda s: s["seeds"][1].update(seed=0)), "duplicate seed"),
        (_edit_json("config.json", lambda c: c.pop("env")), "env.size"),
        (_edit_json("config.json", lambda c: c.update(solved_threshold="high")), "solved_thr"),
    ],
)
def test_corrupt_run_dir_raises(tmp_path, corrupt, match):
    d = write_run(tmp_path, "run", finals=[0.5, 0.6], solves=[None, 100])
    corrupt(d)
    with pytest.raises(compare.RunDirError, match=match) as info:
        compare.load_run(d)
    assert "\n" not in str(info.value)  # one line, for the CLI
    with pytest.raises(compare.RunDirError):
        compare.compare_runs([d], n_boot=N_BOOT)


def test_missing_run_dir_and_bad_arguments(tmp_path):
    with pytest.raises(compare.RunDirError, match="no such run directory"):
        compare.load_run(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(compare.RunDirError, match="not a directory"):
        compare.load_run(tmp_path / "file")
    d = write_run(tmp_path, "run", finals=[0.5], solves=[None])
    with pytest.raises(ValueError, match="one or more"):
        compare.compare_runs([])
    with pytest.raises(ValueError, match="n_boot"):
        compare.compare_runs([d], n_boot=0)
    with pytest.raises(ValueError, match="alpha"):
        compare.compare_runs([d], alpha=2.0)


def test_duplicate_directory_names_get_distinct_labels(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = write_run(tmp_path / "x", "run", finals=[0.5, 0.7], solves=[None, 10])
    b = write_run(tmp_path / "y", "run", finals=[0.6, 0.8], solves=[None, 20])
    res = compare.compare_runs([a, b], n_boot=N_BOOT)
    labels = [r["label"] for r in res["runs"]]
    assert labels == ["x/run", "y/run"]
    assert math.isfinite(res["pairs"][0]["mann_whitney_p"])


@pytest.mark.parametrize("how", ["flag", "frames"])
def test_a_run_that_stops_at_solve_is_compared_on_frames_to_solve_only(tmp_path, how):
    """The torch reference stops each seed when it solves (the notebook's loop): its "final"
    scores are at the solve point, so final-score statistics against it are withheld."""
    jax_run = write_run(tmp_path, "jax", finals=GOOD_FINALS, solves=GOOD_SOLVES)
    ref = write_run(tmp_path, "ref", finals=[0.92] * 6, solves=GOOD_SOLVES, impl="torch_reference")
    summary = json.loads((ref / "summary.json").read_text())
    if how == "flag":
        summary["stops_at_solve"] = True
    else:  # older reference summaries: per-seed frames end at the solve point
        for rec in summary["seeds"]:
            rec["frames"] = rec["frames_to_solve"]
    (ref / "summary.json").write_text(json.dumps(summary))
    assert compare.load_run(ref).stops_at_solve and not compare.load_run(jax_run).stops_at_solve
    result = compare.compare_runs([jax_run, ref], n_boot=50)
    (pair,) = result["pairs"]
    assert pair["mann_whitney_p"] is None
    assert pair["probability_of_improvement"]["value"] is None
    assert pair["logrank_p"] == pytest.approx(1.0)  # identical solve times
    assert any("stopped at solve" in w for w in result["warnings"])
    assert "n/a" in compare.format_table(result)


def test_common_threshold_rescores_frames_to_solve(tmp_path):
    """Seed k's logged score is finals[k] * i / 8 at frames 1M * i / 8 (i >= 2)."""
    a = write_run(tmp_path, "a2c", finals=[0.96, 0.8], solves=[None, None])  # own 0.91
    b = write_run(
        tmp_path, "rnd", preset_name="notebook-rnd-8x8", finals=[0.96, 0.8], solves=[None, None]
    )
    run = compare.with_threshold(compare.load_run(a), 0.5)
    # 0.96 i / 8 > 0.5 first at i = 5; 0.8 i / 8 > 0.5 first at i = 6 (0.5 itself is not above)
    assert run.frames_to_solve == (625_000, 750_000) and run.solved_threshold == 0.5
    assert compare.with_threshold(compare.load_run(a), 0.9).frames_to_solve == (1_000_000, None)
    res = compare.compare_runs([a, b], n_boot=N_BOOT, threshold=0.9)
    assert res["settings"]["threshold"] == 0.9
    assert [r["own_solved_threshold"] for r in res["runs"]] == [0.91, 0.95]
    assert [r["n_solved"] for r in res["runs"]] == [1, 1]
    (pair,) = res["pairs"]
    assert pair["logrank_p"] == pytest.approx(1.0)  # identical solve times at the common one
    assert not any("threshold" in w for w in res["warnings"])
    assert "common threshold 0.9 (own thresholds: a2c 0.91, rnd 0.95)" in compare.format_table(res)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        compare.compare_runs([a], threshold=1.5)


def test_common_threshold_above_a_stopped_runs_own_is_refused(tmp_path):
    ref = write_run(tmp_path, "ref", finals=[0.92], solves=[500_000], impl="torch_reference")
    summary = json.loads((ref / "summary.json").read_text())
    summary["stops_at_solve"] = True
    (ref / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="stopped when they passed 0.91"):
        compare.compare_runs([ref], threshold=0.95)
    assert compare.compare_runs([ref], n_boot=10, threshold=0.5)["runs"][0]["n_solved"] == 1


def _unscore(run: Path, seeds: list[int]) -> Path:
    """As a run too short for those seeds to finish an episode: summary final score null."""
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    for rec in summary["seeds"]:
        if rec["seed"] in seeds:
            rec["final_avg_return_last100"] = None
    path.write_text(json.dumps(summary))
    return run


def test_seeds_without_a_finished_episode_are_left_out_of_the_final_score_statistics(
    three_runs, tmp_path
):
    a, b, _ = three_runs
    full = compare.compare_runs([a, b], n_boot=N_BOOT)
    _unscore(b, [0, 2])
    res = compare.compare_runs([a, b], n_boot=N_BOOT)
    run = res["runs"][1]
    assert [s["final"] for s in run["seeds"]][:3] == [None, 0.92, None]
    scored = [f for k, f in enumerate(POOR_FINALS) if k not in (0, 2)]
    assert run["final_mean"]["value"] == pytest.approx(np.mean(scored))
    assert run["final_iqm"]["value"] == pytest.approx(stats.iqm(scored))
    # frames-to-solve is unchanged: those seeds are unsolved either way
    assert run["frames_to_solve_median"] == full["runs"][1]["frames_to_solve_median"]
    (pair,) = res["pairs"]
    assert pair["logrank_p"] == pytest.approx(full["pairs"][0]["logrank_p"])
    assert pair["mann_whitney_p"] == pytest.approx(stats.mann_whitney(GOOD_FINALS, scored).pvalue)
    assert any("a2c8: seed(s) 0, 2 finished no episode" in w for w in res["warnings"])
    assert "n/a" not in compare.format_table(res).splitlines()[2]
    # a recorded run keeps the missing scores missing
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps(res))
    again = compare.compare_runs([a, f"{rec}:a2c8"], n_boot=N_BOOT)
    assert [s["final"] for s in again["runs"][1]["seeds"]] == [s["final"] for s in run["seeds"]]
    assert again["runs"][1]["final_mean"] == run["final_mean"]


def test_a_run_with_no_finished_episode_has_no_final_score_statistics(three_runs, tmp_path):
    a, b, _ = three_runs
    _unscore(b, list(range(len(POOR_FINALS))))
    res = compare.compare_runs([a, b], n_boot=N_BOOT)
    none = {"value": None, "low": None, "high": None}
    assert res["runs"][1]["final_mean"] == none and res["runs"][1]["final_iqm"] == none
    (pair,) = res["pairs"]
    assert pair["probability_of_improvement"] == none and pair["mann_whitney_p"] is None
    assert pair["logrank_p"] is not None
    compare.format_table(res)
    compare.plot(res, tmp_path / "none.png")
    assert (tmp_path / "none.png").stat().st_size > 0


# --------------------------------------------------------------------------- recorded runs


def _record(tmp_path, runs, threshold=None, name="rec.json"):
    """A compare JSON of ``runs`` (the same file `compare --json` writes)."""
    path = tmp_path / name
    path.write_text(json.dumps(compare.compare_runs(runs, n_boot=N_BOOT, threshold=threshold)))
    return path


def test_a_recorded_run_stands_in_for_its_run_directory(three_runs, tmp_path):
    """Pairs against ``FILE.json:LABEL`` give the log-rank p of the run directory it records;
    its curve, seeds and budget are the recorded ones."""
    a, b, _ = three_runs
    rec = _record(tmp_path, [a, b])
    live = compare.compare_runs([a, b], n_boot=N_BOOT)
    mixed = compare.compare_runs([a, f"{rec}:a2c8"], n_boot=N_BOOT)
    (pair,) = mixed["pairs"]
    assert pair["logrank_p"] == pytest.approx(live["pairs"][0]["logrank_p"])
    assert pair["config_differences"] == live["pairs"][0]["config_differences"]
    got = mixed["runs"][1]
    want = live["runs"][1]
    assert got["recorded"] is True and want["recorded"] is False
    assert got["label"] == "rec.json:a2c8"
    for key in ("seeds", "budget", "size", "n_solved", "curve", "km_curve", "preset"):
        assert got[key] == want[key], key
    assert got["frames_to_solve_median"] == want["frames_to_solve_median"]
    # a JSON written by this version says the run did not stop at solve: finals compared
    assert pair["mann_whitney_p"] == pytest.approx(live["pairs"][0]["mann_whitney_p"])
    assert any("rec.json:a2c8 is recorded" in w for w in mixed["warnings"])
    compare.plot(mixed, tmp_path / "mixed.png")
    assert (tmp_path / "mixed.png").stat().st_size > 0


def test_a_recorded_run_from_an_older_json_is_compared_on_frames_to_solve_only(
    three_runs, tmp_path
):
    a, b, _ = three_runs
    rec = _record(tmp_path, [b])
    data = json.loads(rec.read_text())
    del data["runs"][0]["stops_at_solve"]  # as JSONs written before compare recorded it
    rec.write_text(json.dumps(data))
    res = compare.compare_runs([a, f"{rec}:a2c8"], n_boot=N_BOOT)
    (pair,) = res["pairs"]
    assert pair["mann_whitney_p"] is None and pair["logrank_p"] is not None
    assert any("does not say whether it stopped at solve" in w for w in res["warnings"])
    assert not any("stopped at solve (" in w for w in res["warnings"])


def test_a_recorded_run_keeps_its_threshold(three_runs, tmp_path):
    """Its frames-to-solve exist only at the threshold it was recorded at; its own threshold
    is the recorded one."""
    a, b, _ = three_runs
    rec = _record(tmp_path, [b], threshold=0.5)
    res = compare.compare_runs([a, f"{rec}:a2c8"], n_boot=N_BOOT, threshold=0.5)
    assert [r["own_solved_threshold"] for r in res["runs"]] == [0.91, 0.91]
    assert res["runs"][1]["solved_threshold"] == 0.5
    with pytest.raises(ValueError, match="recorded at threshold 0.5"):
        compare.compare_runs([a, f"{rec}:a2c8"], n_boot=N_BOOT, threshold=0.9)
    with pytest.raises(compare.RunDirError, match="no recorded curve of 'entropy'"):
        compare.compare_runs([f"{rec}:a2c8"], n_boot=N_BOOT, metrics=["entropy"])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.pop("runs"), "not a JSON written by `curio-jax compare --json`"),
        (lambda d: d["runs"][0].update(budget="many"), "'budget' should be a frame count"),
        (lambda d: d["runs"][0].update(seeds=[]), "'seeds' should be a list of seeds"),
        (lambda d: d["runs"][0]["seeds"][0].pop("final"), "a malformed seed record"),
        (lambda d: d["runs"][0].pop("curve"), "no mean score curve"),
    ],
)
def test_a_corrupt_recorded_json_raises(three_runs, tmp_path, edit, match):
    rec = _record(tmp_path, [three_runs[1]])
    data = json.loads(rec.read_text())
    edit(data)
    rec.write_text(json.dumps(data))
    with pytest.raises(compare.RunDirError, match=match):
        compare.load(f"{rec}:a2c8")


def test_an_unknown_recorded_label_lists_the_known_ones(three_runs, tmp_path):
    rec = _record(tmp_path, [three_runs[0], three_runs[1]])
    with pytest.raises(compare.RunDirError, match=r"no run labelled 'nope' \(labels: x100, a2c8\)"):
        compare.load(f"{rec}:nope")
    # neither a directory nor FILE.json:LABEL of an existing file: the run-directory error
    with pytest.raises(compare.RunDirError, match="no such run directory"):
        compare.load(f"{tmp_path / 'absent.json'}:a2c8")


# --------------------------------------------------------------------------- pooled runs


def _halves(tmp_path, *, bases=(0, 3), numbers=(None, None), **kw):
    """POOR_* as one 6-seed run and as two 3-seed runs (`curio-jax train` numbering, base
    seeds ``bases``; or the reference's own ``numbers``)."""
    whole = write_run(tmp_path, "whole", finals=POOR_FINALS, solves=POOR_SOLVES)
    halves = [
        write_run(
            tmp_path,
            f"part{k}",
            finals=POOR_FINALS[3 * k : 3 * k + 3],
            solves=POOR_SOLVES[3 * k : 3 * k + 3],
            base_seed=bases[k],
            seed_numbers=numbers[k],
            **kw,
        )
        for k in range(2)
    ]
    return whole, halves


def test_a_pooled_run_is_the_run_of_all_its_seeds(three_runs, tmp_path):
    """Two 3-seed runs of one config pooled (DIR+DIR) give the statistics of one 6-seed run:
    the same final scores, solves, curve and log-rank p against another run."""
    good = three_runs[0]
    whole, (p0, p1) = _halves(tmp_path)
    spec = f"{p0}+{p1}"
    pooled = compare.load(spec)
    np.testing.assert_array_equal(pooled.seeds, np.arange(6))  # renumbered: both were 0..2
    assert pooled.parts == ((p0, (0, 1, 2)), (p1, (0, 1, 2)))
    np.testing.assert_array_equal(pooled.final_scores, POOR_FINALS)
    assert pooled.frames_to_solve == tuple(POOR_SOLVES)
    assert pooled.budget == 1_000_000 and not pooled.stops_at_solve
    assert pooled.metrics["seed"].tolist() == whole_seed_column(compare.load(whole))
    live = compare.compare_runs([good, whole], n_boot=N_BOOT, metrics=["entropy"])
    got = compare.compare_runs([good, spec], n_boot=N_BOOT, metrics=["entropy"])
    assert got["runs"][1]["label"] == "part0+part1"
    assert got["runs"][1]["pooled_from"] == [
        {"path": str(p0), "seeds": [0, 1, 2]},
        {"path": str(p1), "seeds": [0, 1, 2]},
    ]
    for key in ("n_seeds", "n_solved", "final_mean", "final_iqm", "frames_to_solve_median"):
        assert got["runs"][1][key] == live["runs"][1][key], key
    for key in ("curve", "km_curve", "metric_curves", "seeds"):
        assert got["runs"][1][key] == live["runs"][1][key], key
    assert got["pairs"][0]["logrank_p"] == pytest.approx(live["pairs"][0]["logrank_p"])
    assert got["pairs"][0]["mann_whitney_p"] == pytest.approx(live["pairs"][0]["mann_whitney_p"])
    assert got["warnings"] == live["warnings"] == []
    # all frames over all seconds: 3M frames at 80k/s twice
    assert got["runs"][1]["frames_per_sec"] == pytest.approx(80_000)
    assert got["runs"][1]["seconds"] == pytest.approx(25.0)  # 12.5 s each
    # a common threshold re-scores the pool like the whole run; the JSON reads back as a run
    at = compare.compare_runs([good, spec], n_boot=N_BOOT, threshold=0.5)
    want = compare.compare_runs([good, whole], n_boot=N_BOOT, threshold=0.5)
    assert at["runs"][1]["seeds"] == want["runs"][1]["seeds"]
    rec = tmp_path / "pooled.json"
    rec.write_text(json.dumps(got))
    again = compare.compare_runs([good, f"{rec}:part0+part1"], n_boot=N_BOOT)
    assert again["pairs"][0]["logrank_p"] == pytest.approx(got["pairs"][0]["logrank_p"])


def whole_seed_column(run):
    return run.metrics["seed"].tolist()


def test_a_pool_keeps_seed_numbers_that_differ(tmp_path):
    """The reference numbers its seeds itself (e.g. 10 and 11 in two processes): kept."""
    _, (p0, p1) = _halves(
        tmp_path, bases=(None, None), numbers=([10, 11, 12], [13, 14, 15]), impl="torch-reference"
    )
    pooled = compare.load(f"{p0}+{p1}")
    assert pooled.seeds.tolist() == [10, 11, 12, 13, 14, 15] and pooled.impl == "torch-reference"
    assert sorted(set(pooled.metrics["seed"].astype(int).tolist())) == pooled.seeds.tolist()


def test_a_pool_stops_at_solve_if_any_part_did(tmp_path):
    """Reference seeds run one per process: one that solved stopped there (its summary says
    stops_at_solve), one that did not ran to the budget (it does not). The pool stopped at
    solve, so its final scores are not compared; its frames-to-solve are."""
    _, (p0, p1) = _halves(
        tmp_path, bases=(None, None), numbers=([10, 11, 12], [13, 14, 15]), impl="torch-reference"
    )
    summary = json.loads((p0 / "summary.json").read_text())
    (p0 / "summary.json").write_text(json.dumps({**summary, "stops_at_solve": True}))
    pooled = compare.load(f"{p0}+{p1}")
    assert pooled.stops_at_solve and not compare.load(p1).stops_at_solve
    assert pooled.frames_to_solve == tuple(POOR_SOLVES)


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ("same-base", "share seed numbers and nothing shows they are different seeds"),
        ("no-run-json", "share seed numbers and nothing shows they are different seeds"),
        ("same-dir", "the same run directory is pooled twice"),
        ("other-preset", r"cannot pool .* they differ in .*name: notebook-a2c-8x8 vs"),
        ("other-budget", "they differ in total_frames: 1000000 vs 500000"),
        ("recorded", "is a recorded run; only run directories can be pooled"),
        ("one-part", "an empty name in a pooled run"),
        ("missing-part", "no such run directory"),
    ],
)
def test_a_pool_that_could_mislead_is_refused(tmp_path, setup, match):
    _, (p0, p1) = _halves(tmp_path, bases=(0, 0) if setup == "same-base" else (0, 3))
    second = p1
    if setup == "no-run-json":
        (p0 / "run.json").unlink()
    elif setup == "same-dir":
        second = p0
    elif setup == "other-preset":
        second = write_run(
            tmp_path, "x", preset_name="a2c-x100-8x8", finals=[0.5], solves=[None], base_seed=9
        )
    elif setup == "other-budget":
        second = write_run(tmp_path, "y", finals=[0.5], solves=[None], frames=500_000, base_seed=9)
    elif setup == "recorded":
        second = f"{_record(tmp_path, [p1])}:part1"
    elif setup == "one-part":
        second = ""
    elif setup == "missing-part":
        second = tmp_path / "absent"
    with pytest.raises(compare.RunDirError, match=match):
        compare.compare_runs([f"{p0}+{second}"], n_boot=N_BOOT)


# --------------------------------------------------------------------------- unfinished runs


FULL = 1_024_000  # whole updates of notebook-a2c-8x8 (512 frames), 8 logged rows of 250


def _unfinished(tmp_path, name="going", finals=GOOD_FINALS, solves=GOOD_SOLVES):
    """A `curio-jax train` run directory whose run has not written summary.json yet."""
    d = write_run(tmp_path, name, finals=finals, solves=solves, base_seed=0, frames=FULL)
    (d / "summary.json").unlink()
    return d


def test_an_unfinished_run_is_refused_unless_asked_for(tmp_path):
    d = _unfinished(tmp_path)
    with pytest.raises(compare.RunDirError, match="missing summary.json .*--unfinished"):
        compare.compare_runs([d], n_boot=N_BOOT)
    res = compare.compare_runs([d], n_boot=N_BOOT, unfinished=True)
    (run,) = res["runs"]
    assert run["unfinished"] is True and run["planned_budget"] == FULL
    assert run["budget"] == FULL  # every seed has logged its last row
    assert any(
        "going is unfinished: read up to 1024000 of its 1024000" in w for w in res["warnings"]
    )
    # read to its end, it has the statistics of the finished run with the same rows, its
    # frames-to-solve found by the runner's rule (first logged average above 0.91)
    done = write_run(tmp_path, "done", finals=GOOD_FINALS, solves=GOOD_SOLVES, frames=FULL)
    rescored = compare.with_threshold(compare.load_run(done), 0.91)
    assert compare.load_run(d, unfinished=True).frames_to_solve == rescored.frames_to_solve
    finished = compare.compare_runs([done], n_boot=N_BOOT, threshold=0.91)["runs"][0]
    for key in ("seeds", "final_mean", "final_iqm", "n_solved", "curve", "km_curve", "budget"):
        assert run[key] == finished[key], key


def test_an_unfinished_run_ends_where_every_seed_has_logged(tmp_path):
    """Seeds log in step in one program, but the reader may catch a chunk half written: the
    run is cut at the last frame count of its slowest seed, a torn last line is dropped, and
    what happened after the cut (a solve, a score) does not count."""
    d = _unfinished(tmp_path, finals=[0.99, 0.2], solves=[None, None])
    lines = (d / "metrics.csv").read_text().splitlines()
    # seed 1 is one row behind seed 0; then a torn row of seed 1
    seed1 = [i for i, line in enumerate(lines) if line.startswith("1,")]
    del lines[seed1[-1]]
    lines.append("1,2000,1024000,0.5")
    (d / "metrics.csv").write_text("\n".join(lines) + "\n")
    run = compare.load_run(d, unfinished=True)
    cut = FULL * (LOG_POINTS - 1) // LOG_POINTS
    assert run.budget == cut and run.summary["planned_frames_per_seed"] == FULL
    assert run.metrics["frames"].max() == cut
    # seed 0 passes 0.95 only on its last row (0.99 at the end), after the cut
    assert run.frames_to_solve == (None, None)
    np.testing.assert_allclose(run.final_scores, [0.99 * 7 / 8, 0.2 * 7 / 8], rtol=1e-5)
    with pytest.raises(compare.RunDirError, match="line .* has 4 fields"):
        runs._read_metrics(d)  # in a finished run a torn line is an error


def test_an_unfinished_run_needs_its_run_json_and_rows_of_every_seed(tmp_path):
    d = _unfinished(tmp_path, finals=[0.5, 0.6], solves=[None, None])
    (d / "run.json").write_text(json.dumps({"seeds": 3, "seed": 0}))
    with pytest.raises(compare.RunDirError, match=r"no rows yet for seed\(s\) \[2\]"):
        compare.load_run(d, unfinished=True)
    (d / "run.json").unlink()
    with pytest.raises(compare.RunDirError, match="run.json: missing|missing run.json"):
        compare.load_run(d, unfinished=True)


def test_unfinished_parts_pool_to_the_least_frame_count_any_part_reached(tmp_path):
    """Two programs of one config read while they run (or one finished): every part is read
    to the least frame count any part has reached, as one unfinished run."""
    ahead = _unfinished(tmp_path, "ahead", finals=[0.99, 0.2], solves=[None, None])
    behind = _unfinished(tmp_path, "behind", finals=[0.5, 0.6], solves=[None, None])
    (behind / "run.json").write_text(json.dumps({"seeds": 2, "seed": 7}))
    lines = (behind / "metrics.csv").read_text().splitlines()
    (behind / "metrics.csv").write_text("\n".join(lines[:-2]) + "\n")  # seed 1's last two rows
    cut = FULL * (LOG_POINTS - 2) // LOG_POINTS
    pooled = compare.load(f"{ahead}+{behind}", unfinished=True)
    assert pooled.budget == cut and pooled.summary["unfinished"] is True
    assert pooled.metrics["frames"].max() == cut
    assert pooled.seeds.tolist() == [0, 1, 2, 3]
    # seed 0 of "ahead" reaches 0.99 only at the end: after the cut it neither solves nor counts
    assert pooled.frames_to_solve == (None, None, None, None)
    want = [f * (LOG_POINTS - 2) / LOG_POINTS for f in (0.99, 0.2, 0.5, 0.6)]
    np.testing.assert_allclose(pooled.final_scores, want, rtol=1e-5)
    finished = write_run(tmp_path, "done", finals=[0.5], solves=[None], frames=FULL, base_seed=9)
    assert compare.load(f"{finished}+{behind}", unfinished=True).budget == cut


def _reference_rows(seed, n, budget):
    return [
        {
            "seed": seed,
            "update": 10 * i,
            "frames": budget * i // LOG_POINTS,
            "avg_return_last100": 0.1 * i,
            "episodes": 7 * i,
            "loss_total": 0.5,
            "entropy": 1.9,
        }
        for i in range(1, n + 1)
    ]


def test_an_unfinished_reference_run_is_read_without_torch(tmp_path, monkeypatch):
    """What `python -m curio_jax.reference.train --out DIR` leaves part-way (layout:
    curio_jax.analysis.reference_runs) reads with torch absent: a finished seed's rows from
    its seed file, a running one's from the rows file beside its checkpoint, a seed not
    started left out; a checkpoint without its rows file is refused, naming the fix."""
    budget = 1000
    cfg = preset("notebook-rnd-8x8").to_dict()
    cfg["total_frames"] = budget
    d = tmp_path / "ref"
    (d / "seeds").mkdir(parents=True)
    (d / "checkpoints").mkdir()
    (d / "reference_run.json").write_text(
        json.dumps({"preset": "notebook-rnd-8x8", "seeds": [10, 11, 12], "config": cfg})
    )
    (d / "seeds" / "seed_10.json").write_text(
        json.dumps({"seed": 10, "metrics": _reference_rows(10, LOG_POINTS, budget)})
    )
    (d / "checkpoints" / "seed_11.pt").write_bytes(b"not read")
    rows = d / "checkpoints" / "seed_11.rows.json"
    rows.write_text(json.dumps(_reference_rows(11, 3, budget)))
    monkeypatch.setitem(sys.modules, "torch", None)  # as if the reference extra were absent
    run = compare.load_run(d, unfinished=True)
    assert run.impl == "torch_reference" and run.seeds.tolist() == [10, 11]
    assert run.budget == budget * 3 // LOG_POINTS
    assert run.summary["seeds_ended"] == [10] and run.summary["seeds_not_started"] == [12]
    np.testing.assert_allclose(run.final_scores, [0.3, 0.3])
    with pytest.raises(compare.RunDirError, match="missing summary.json .*--unfinished"):
        compare.load_run(d)
    rows.write_text("[{")
    with pytest.raises(compare.RunDirError, match="seed_11.rows.json: not valid JSON"):
        compare.load_run(d, unfinished=True)
    rows.unlink()
    with pytest.raises(compare.RunDirError, match="seed_11.pt has no seed_11.rows.json .*--resume"):
        compare.load_run(d, unfinished=True)


def test_until_reads_every_run_up_to_one_budget(tmp_path):
    """A long run read --until the budget of a shorter one: its rows after that point, and a
    solve or a score logged there, do not count; a run within the budget is left as it is."""
    long = write_run(tmp_path, "long", finals=[0.99, 0.4], solves=[FULL, None], frames=FULL)
    short = write_run(tmp_path, "short", finals=[0.5], solves=[None], frames=FULL // 2)
    half = FULL // 2
    res = compare.compare_runs([long, short], n_boot=N_BOOT, until=half)
    a, b = res["runs"]
    assert a["budget"] == b["budget"] == half
    assert a["read_until"] == half and a["full_budget"] == FULL and "read_until" not in b
    assert [s["frames_to_solve"] for s in a["seeds"]] == [None, None]  # 0.99 only at the end
    finals = [s["final"] for s in a["seeds"]]
    np.testing.assert_allclose(finals, [0.99 * 4 / 8, 0.4 * 4 / 8], rtol=1e-5)
    assert "unfinished" not in a
    assert any("long is read up to 512000 of the 1024000 frames" in w for w in res["warnings"])
    assert not any("different budgets" in w for w in res["warnings"])
    # the same numbers as a run that had stopped there (the long run's first half)
    stopped = write_run(tmp_path, "stopped", finals=[0.99, 0.4], solves=[None, None], frames=FULL)
    lines = (stopped / "metrics.csv").read_text().splitlines()
    kept = [line for line in lines[1:] if int(line.split(",")[2]) <= half]
    cut = compare.read_until(compare.load_run(long), half)
    assert cut.metrics["frames"].tolist() == [float(line.split(",")[2]) for line in kept]
    with pytest.raises(ValueError, match="positive integer"):
        compare.read_until(cut, 0)


def test_until_refuses_a_recorded_run_it_would_cut(tmp_path):
    run = write_run(tmp_path, "r", finals=[0.5, 0.6], solves=[None, None], frames=FULL)
    rec = f"{_record(tmp_path, [run])}:r"
    assert compare.compare_runs([rec], n_boot=N_BOOT, until=FULL)["runs"][0]["budget"] == FULL
    with pytest.raises(compare.RunDirError, match="a recorded run cannot be read up to 1000"):
        compare.compare_runs([rec], n_boot=N_BOOT, until=1000)
