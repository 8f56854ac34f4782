"""One source of truth: a field added to the metrics container (curio_jax.core.metrics) reaches
metrics.csv, TensorBoard and `compare`; a field added to the coefficients container
(curio_jax.core.hparams) reaches `sweep --set`, its help text and the config it reads."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest

from curio_jax import cli, config
from curio_jax.analysis.compare import compare_runs
from curio_jax.core import hparams as hparams_mod
from curio_jax.core import metrics as metrics_mod
from curio_jax.parallel import program as program_mod
from curio_jax.run import loggers, sweep
from curio_jax.run.loggers import Progress
from curio_jax.run.loop import train_run
from curio_jax.run.rundir import RunSettings, read_rows

CFG = config.preset("notebook-rnd-5x5").with_overrides(
    {"train.num_envs": 2, "total_frames": 18 * 32, "log_every": 6}
)


class Probe(metrics_mod.UpdateMetrics):
    probe: jax.Array = metrics_mod.metric("probe/value")


class Recorder:
    """A stand-in TensorBoard writer that records the tags it is given."""

    tags: list[str] = []

    def __init__(self, directory, purge_step=None):
        pass

    def add_scalar(self, tag, value, global_step):
        Recorder.tags.append(tag)

    def flush(self):
        pass

    def close(self):
        pass


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_a_new_metric_field_reaches_csv_tensorboard_and_compare(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(metrics_mod, "UpdateMetrics", Probe)
    original = program_mod.make_train

    def make_train(cfg, env=None, **kwargs):  # the update that produces the new field
        train = original(cfg, env, **kwargs)
        update = train.update

        def with_probe(state):
            state, m = update(state)
            values = {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
            return state, Probe(**values, probe=2.0 * m.loss_total)

        train.update = with_probe
        return train

    monkeypatch.setattr(program_mod, "make_train", make_train)
    monkeypatch.setattr(loggers, "summary_writer", lambda: (Recorder, "test"))
    Recorder.tags = []
    out = tmp_path / "run"
    quiet = Progress(stream=open("/dev/null", "w"), tty=False)  # noqa: SIM115
    train_run(CFG, out, RunSettings(seeds=2), progress=quiet, plot=False)

    rows = read_rows(out / "metrics.csv")
    assert list(rows[0]) == [*metrics_mod.INDEX_COLUMNS, *metrics_mod.metric_names()]
    assert list(rows[0])[-1] == "probe" and len(rows) == 3 * 2
    for r in rows:  # the chunk mean of 2 x loss, written under its own name
        np.testing.assert_allclose(float(r["probe"]), 2.0 * float(r["loss_total"]), rtol=1e-5)
    assert Recorder.tags.count("probe/value") == 3 * 2

    result = compare_runs([out], n_boot=50, metrics=["probe"])
    curve = result["runs"][0]["metric_curves"]["probe"]
    assert curve["frames"] == [192, 384, 576] and all(v is not None for v in curve["mean"])
    code = cli.main(["compare", str(out), "--metric", "probe", "--json", str(tmp_path / "c.json")])
    assert (
        code == 0
        and "probe" in json.loads((tmp_path / "c.json").read_text())["settings"]["metrics"]
    )
    capsys.readouterr()


def test_metrics_rows_are_written_by_name_and_a_missing_one_is_an_error(tmp_path):
    from curio_jax.run.rundir import MetricsCSV

    csv = MetricsCSV(tmp_path / "metrics.csv")
    row = dict.fromkeys(metrics_mod.metric_columns(), 0)
    csv.rewrite([row])
    del row["entropy"]
    with pytest.raises(ValueError, match=r"missing \['entropy'\]"):
        csv.rewrite([row])


def test_a_new_coefficient_reaches_sweep_its_help_and_the_config(monkeypatch, capsys):
    class MoreHyperparams(hparams_mod.Hyperparams):
        probe_coef: jax.Array = hparams_mod.coefficient("a2c.rmsprop_eps", "a probe coefficient")

    monkeypatch.setattr(hparams_mod, "Hyperparams", MoreHyperparams)
    assert hparams_mod.sweepable()["probe_coef"] == "a2c.rmsprop_eps"
    assert "probe_coef (a2c.rmsprop_eps): a probe coefficient" in hparams_mod.describe()
    hp = MoreHyperparams.from_config(CFG)
    assert float(hp.probe_coef) == np.float32(CFG.a2c.rmsprop_eps)

    axis = sweep.parse_set("probe_coef=1e-7,1e-6", CFG)
    assert axis == sweep.Axis("probe_coef", (1e-7, 1e-6))
    assert sweep.point_config(CFG, {"probe_coef": 1e-6}).a2c.rmsprop_eps == 1e-6
    assert sweep.parse_set("a2c.rmsprop_eps=1e-7", CFG).name == "probe_coef"  # dotted spelling

    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    assert "probe_coef" in capsys.readouterr().out.replace("\n", " ")
