"""`curio-jax sweep`: a grid of traced hyperparameters x seeds as one compiled program.

The central check: a 3-point grid x 8 seeds traces the update once, and every grid point's
metrics.csv and final learner state equal, bit for bit, a separate `curio-jax train` run of that
point's configuration with the same base seed. Plus resume, refusals and `compare` on the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_usage_error, count_update_traces

from curio_jax import cli, config
from curio_jax.core import train as train_mod
from curio_jax.core.hparams import Hyperparams, sweepable
from curio_jax.parallel import program as program_mod
from curio_jax.run import checkpoint as ckpt
from curio_jax.run import loop as runner
from curio_jax.run import sweep
from curio_jax.run.loggers import Progress
from curio_jax.run.rundir import RunSettings

SEEDS, ENVS, ROLLOUT, UPDATES, CHUNK = 8, 4, 16, 6, 2
FRAMES = UPDATES * ENVS * ROLLOUT
BASE = config.preset("notebook-rnd-5x5").with_overrides(
    {"train.num_envs": ENVS, "total_frames": FRAMES, "log_every": CHUNK}
)
VALUES = (1.0, 10.0, 100.0)
SETTINGS = RunSettings(seeds=SEEDS, seed=3, checkpoint_every=1, tensorboard=False)


def quiet() -> Progress:
    return Progress(stream=open("/dev/null", "w"), tty=False)  # noqa: SIM115


def final_state(run_dir: Path) -> dict[str, np.ndarray]:
    arrays = ckpt.read_arrays(ckpt.list_checkpoints(run_dir / "checkpoints")[-1][1])
    arrays.pop(ckpt.META_KEY)
    return arrays


def slice_group(state: dict[str, np.ndarray], g: int) -> dict[str, np.ndarray]:
    return {k: v[g * SEEDS : (g + 1) * SEEDS] for k, v in state.items()}


def count_programs(mp: pytest.MonkeyPatch) -> list[tuple[train_mod.Train, dict]]:
    """Record every Train the program builder makes, with a count of its update traces."""
    made: list[tuple[train_mod.Train, dict]] = []
    original = program_mod.make_train

    def counting_make_train(cfg, env=None, **kwargs):
        t = original(cfg, env, **kwargs)
        made.append((t, count_update_traces(t)))
        return t

    mp.setattr(program_mod, "make_train", counting_make_train)
    return made


@pytest.fixture(scope="module")
def swept(tmp_path_factory, request):
    """The 3-point sweep over adv_coef_ext, counting how often the update is traced."""
    mp = pytest.MonkeyPatch()
    made = count_programs(mp)
    try:
        out = tmp_path_factory.mktemp("sweep") / "s"
        axes = [sweep.parse_set("adv_coef_ext=" + ",".join(map(str, VALUES)), BASE)]
        summaries = sweep.sweep_run(BASE, axes, out, SETTINGS, progress=quiet(), plot=False)
    finally:
        mp.undo()
    return out, summaries, made


def test_grid_compiles_once(swept):
    _, summaries, made = swept
    assert len(summaries) == 3
    assert len(made) == 1, "one Train (one program) for the whole grid"
    assert made[0][1]["n"] == 1, "the update was traced once for 3 points x 8 seeds"


@pytest.mark.parametrize("g", range(len(VALUES)))
def test_each_grid_point_equals_a_separate_run_bit_for_bit(swept, tmp_path, g):
    out, summaries, _ = swept
    point = out / sweep.point_dir_name({"adv_coef_ext": VALUES[g]})
    single_cfg = BASE.with_overrides({"train.adv_coef_ext": VALUES[g]})
    single = tmp_path / "single"
    summary = runner.train_run(single_cfg, single, SETTINGS, progress=quiet(), plot=False)

    assert (point / "metrics.csv").read_bytes() == (single / "metrics.csv").read_bytes()
    assert json.loads((point / "config.json").read_text()) == single_cfg.to_dict()
    assert summaries[g]["seeds"] == summary["seeds"]
    mine, theirs = slice_group(final_state(out), g), final_state(single)
    assert mine.keys() == theirs.keys()
    for k in theirs:
        assert mine[k].dtype == theirs[k].dtype and np.array_equal(mine[k], theirs[k]), k
    # the points really differ (the grid is not one config three times)
    if g > 0:
        other = out / sweep.point_dir_name({"adv_coef_ext": VALUES[0]})
        assert (point / "metrics.csv").read_bytes() != (other / "metrics.csv").read_bytes()


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_vmap_grid_compiles_once_and_matches_single_runs_to_rounding(swept, tmp_path):
    """--vmap-grid: one batch of 3 x 8; not bitwise (XLA CPU reductions depend on the batch
    size), but the same learning to float rounding after 6 updates."""
    out, _, _ = swept
    with pytest.MonkeyPatch.context() as mp:
        made = count_programs(mp)
        vm = tmp_path / "vm"
        axes = [sweep.Axis("adv_coef_ext", VALUES)]
        sweep.sweep_run(BASE, axes, vm, SETTINGS, progress=quiet(), plot=False, vmap_grid=True)
    assert len(made) == 1 and made[0][1]["n"] == 1
    assert json.loads((vm / "sweep.json").read_text())["vmap_grid"] is True
    a, b = final_state(vm), final_state(out)
    for k in b:
        if np.issubdtype(b[k].dtype, np.floating):
            scale = max(float(np.max(np.abs(b[k]))), 1e-6)
            assert np.max(np.abs(a[k] - b[k])) <= 1e-4 * scale, k
        else:
            assert np.array_equal(a[k], b[k]), k


def test_sweep_json_records_the_grid(swept):
    out, _, _ = swept
    record = json.loads((out / "sweep.json").read_text())
    dirs = [sweep.point_dir_name({"adv_coef_ext": v}) for v in VALUES]
    assert [p["dir"] for p in record["points"]] == dirs
    assert all((out / d / "summary.json").is_file() for d in dirs)
    assert record["seeds"] == SEEDS and record["seed"] == SETTINGS.seed
    assert record["vmap_grid"] is False
    assert config.TrainConfig.from_dict(record["config"]) == BASE


def test_resume_after_losing_the_last_checkpoint_is_bit_identical(swept, tmp_path):
    import shutil

    out, _, _ = swept
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    update, newest = ckpt.list_checkpoints(copy / "checkpoints")[-1]
    assert update == UPDATES
    newest.unlink()  # as if killed after the update-4 checkpoint
    summaries = sweep.sweep_run(
        BASE,
        [sweep.Axis("adv_coef_ext", VALUES)],
        copy,
        SETTINGS,
        resume=True,
        progress=quiet(),
        plot=False,
    )
    assert len(summaries) == 3
    for v in VALUES:
        name = sweep.point_dir_name({"adv_coef_ext": v})
        assert (copy / name / "metrics.csv").read_bytes() == (
            out / name / "metrics.csv"
        ).read_bytes()
    a, b = final_state(copy), final_state(out)
    assert all(np.array_equal(a[k], b[k]) for k in b)


def test_resume_refuses_a_different_grid(swept, tmp_path):
    import shutil

    out, _, _ = swept
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = sorted(p.name for p in copy.rglob("*"))
    with pytest.raises(sweep.SweepError, match="axes"):
        sweep.sweep_run(BASE, [sweep.Axis("adv_coef_ext", (1.0, 2.0))], copy, SETTINGS, resume=True)
    assert sorted(p.name for p in copy.rglob("*")) == before


def test_resume_compares_the_config_by_value(swept, tmp_path):
    """A sweep.json written before a config field existed (here rnd.bonus) still resumes (the
    field's default applies); a config that differs in value is refused, naming the field."""
    import shutil

    out, _, _ = swept
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    record = json.loads((copy / "sweep.json").read_text())
    del record["config"]["bonus"]["noveld_alpha"]  # a field at its default value
    (copy / "sweep.json").write_text(json.dumps(record, indent=2))
    summaries = sweep.sweep_run(
        BASE, [sweep.Axis("adv_coef_ext", VALUES)], copy, SETTINGS, resume=True, progress=quiet()
    )
    assert len(summaries) == 3
    other = BASE.with_overrides({"bonus.gamma_int": 0.9})
    with pytest.raises(sweep.SweepError, match=r"config \(bonus.gamma_int\)"):
        sweep.sweep_run(other, [sweep.Axis("adv_coef_ext", VALUES)], copy, SETTINGS, resume=True)


def test_existing_directory_needs_overwrite(swept, capsys):
    out, _, _ = swept
    argv = ["sweep", "--preset=notebook-rnd-5x5", "--set=lr=0.1,0.2", f"--out={out}"]
    assert_usage_error(argv, capsys, contains="--overwrite")


# --------------------------------------------------------------------------- parsing, refusals


@pytest.mark.parametrize("name", ["num_envs", "train.num_envs", "train.rollout_size", "env.size"])
def test_untraceable_fields_are_refused_with_the_alternative(name):
    with pytest.raises(sweep.SweepError) as e:
        sweep.parse_set(f"{name}=1,2", BASE)
    msg = str(e.value)
    assert "cannot sweep" in msg and "Sweepable: lr" in msg
    if name != "num_envs":  # a real config field: say why and what to do instead
        assert "not a traced value" in msg and "curio-jax train" in msg


def test_short_and_dotted_names_mean_the_same():
    assert sweep.parse_set("lr=1e-3,2e-3", BASE) == sweep.parse_set("train.lr=0.001,0.002", BASE)
    assert sweep.parse_set("bonus.gamma_int=0.9", BASE).name == "gamma_int"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("lr", "NAME=V1,V2"),
        ("lr=0.1,abc", "'abc' is not a number"),
        ("lr=0.1,nan", "finite"),
        ("lr=0.1,0.1", "repeated"),
        ("bogus=1", "not a config field"),
    ],
)
def test_bad_set_values_name_the_problem(text, fragment):
    with pytest.raises(sweep.SweepError, match=fragment):
        sweep.parse_set(text, BASE)


def test_invalid_grid_point_names_the_point_and_field():
    with pytest.raises(sweep.SweepError, match=r"gamma=1\.5.*gamma"):
        sweep.SweepPlan.build(BASE, [sweep.parse_set("gamma=0.9,1.5", BASE)])


def test_repeated_axis_is_refused():
    axes = [sweep.parse_set("lr=0.1", BASE), sweep.parse_set("train.lr=0.2", BASE)]
    with pytest.raises(sweep.SweepError, match="more than once"):
        sweep.grid(axes)


def test_grid_is_the_cartesian_product_in_axis_order():
    axes = [sweep.Axis("lr", (1.0, 2.0)), sweep.Axis("gamma", (0.9, 0.99, 0.999))]
    points = sweep.grid(axes)
    assert len(points) == 6
    assert points[0] == {"lr": 1.0, "gamma": 0.9} and points[-1] == {"lr": 2.0, "gamma": 0.999}
    names = [sweep.point_dir_name(p) for p in points]
    assert len(set(names)) == 6 and names[1] == "lr=1.0,gamma=0.99"


def test_every_hyperparam_field_is_sweepable_and_nothing_else():
    fields = set(Hyperparams.__dataclass_fields__)
    assert set(sweepable()) == fields
    ppo = sweep._flat_names(config.preset("ppo-rnd-5x5").to_dict())
    cfg_fields = set(sweep._flat_names(BASE.to_dict())) | set(ppo)
    assert set(sweepable().values()) <= cfg_fields


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["sweep", "--set=num_envs=32,64", "--preset=notebook-rnd-5x5", "--out=x"], "cannot"),
        (["sweep", "--set=lr=0.1", "--out=x"], "--preset"),
        (["sweep", "--preset=notebook-rnd-5x5", "--out=x"], "at least one --set"),
        (["sweep", "--preset=nope", "--set=lr=0.1", "--out=x"], "unknown preset"),
        (
            ["sweep", "--preset=notebook-rnd-5x5", "--set=lr=0.1", "--out=x", "--seeds=0"],
            "positive",
        ),
        (["sweep", "--resume", "--out=/nonexistent/dir"], "sweep.json"),
    ],
)
def test_cli_refusals_are_one_line_exit_2(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_usage_error(argv, capsys, contains=fragment)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_cli_sweep_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "sweep",
        "--preset=notebook-a2c-5x5",
        "--set=entropy_coef=0.0,0.01",
        "--seeds=2",
        f"--num-envs={ENVS}",
        f"--total-frames={16 * ENVS * ROLLOUT}",  # 256 steps: every env ends an episode
        "--log-every=8",
        "--no-tensorboard",
        f"--out={out}",
    ]
    code = cli.main(argv)
    printed = capsys.readouterr().out
    assert code == 0
    assert "2 grid points x 2 seeds" in printed
    names = ["entropy_coef=0.0", "entropy_coef=0.01"]
    for name in names:
        summary = json.loads((out / name / "summary.json").read_text())
        assert len(summary["seeds"]) == 2
        assert (out / name / "curves.png").is_file()
        cfg = json.loads((out / name / "config.json").read_text())
        assert cfg["train"]["entropy_coef"] == float(name.split("=")[1])
    # each point is a run directory for `compare`, which names the swept difference
    code = cli.main(["compare", *(str(out / n) for n in names), "--n-boot=50"])
    table = capsys.readouterr().out
    assert code == 0
    assert "train.entropy_coef" in table


def test_update_proportion_sweeps_only_with_the_mask():
    from curio_jax.config import preset
    from curio_jax.run.sweep import SweepError, parse_set

    cfg = preset("ppo-rnd-5x5")
    with pytest.raises(SweepError, match="bonus_sample=subset"):
        parse_set("update_proportion=0.25,0.5", cfg)
    axis = parse_set("update_proportion=0.25,0.5", cfg.with_overrides({"ppo.bonus_sample": "mask"}))
    assert axis.values == (0.25, 0.5)
