"""The seed loop (TrainSettings.seed_batch): seeds run k at a time inside one program compute what
the all-at-once vmap computes (to float rounding), and with k = 1 exactly what single-seed runs
compute; the size's resolution and its errors."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from fake_env import Corridor

from curio_jax import cli
from curio_jax.config import TrainSettings, preset, seed_batch_size
from curio_jax.core.train import make_train
from curio_jax.parallel.program import seed_loop

SEEDS, UPDATES = 4, 3


def _train():
    cfg = preset("notebook-rnd-5x5").with_overrides(
        {"train.num_envs": 8, "train.rollout_size": 4, "total_frames": 8 * 4 * UPDATES}
    )
    return make_train(cfg, env=Corridor(length=3, max_steps=4))


def _states(train, seeds=SEEDS):
    keys = jax.random.split(jax.random.key(7), seeds)
    return jax.jit(jax.vmap(train.init))(keys)


def _chunk(train, seed_batch, seeds=SEEDS):
    step = jax.vmap(lambda s: train.run_chunk(s, UPDATES))
    return jax.jit(seed_loop(step, seeds, seed_batch))


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _discrete(state):
    """Every integer / boolean leaf of a state (env states, counters) and the key data."""
    out = [x for x in _leaves(state.replace(key=None)) if x.dtype.kind in "iub"]
    return out + [np.asarray(jax.random.key_data(state.key))]


@pytest.mark.parametrize("seed_batch", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_seed_loop_equals_one_vmap(seed_batch):
    train = _train()
    state = _states(train)
    all_state, all_m = _chunk(train, SEEDS)(state)
    loop_state, loop_m = _chunk(train, seed_batch)(state)
    for a, b in zip(_discrete(all_state), _discrete(loop_state), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_leaves(all_state.params), _leaves(loop_state.params), strict=True):
        assert a.shape == b.shape and a.shape[0] == SEEDS
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(_leaves(all_m), _leaves(loop_m), strict=True):
        assert a.shape == b.shape and a.shape[:2] == (SEEDS, UPDATES)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # the seeds differ from each other, so a mix-up of the seed order would show
    p = _leaves(loop_state.params)[0]
    assert not np.array_equal(p[0], p[1])


def test_seed_batch_one_is_bit_identical_to_single_seed_runs():
    """With one seed per step of the loop, seed i of a 4-seed program computes exactly what a
    1-seed program started from seed i's state computes (CPU)."""
    train = _train()
    state = _states(train)
    loop_state, loop_m = _chunk(train, 1)(state)
    single = _chunk(train, 1, seeds=1)
    for i in range(SEEDS):
        mine = jax.tree.map(lambda x, i=i: x[i : i + 1], state)
        s_state, s_m = single(mine)
        for a, b in zip(_leaves(s_state.params), _leaves(loop_state.params), strict=True):
            np.testing.assert_array_equal(a[0], b[i])
        for a, b in zip(_leaves(s_m), _leaves(loop_m), strict=True):
            np.testing.assert_array_equal(a[0], b[i])


def test_seed_loop_rejects_a_size_that_does_not_divide():
    with pytest.raises(ValueError, match="does not divide"):
        seed_loop(lambda s: s, 4, 3)


@pytest.mark.parametrize(
    "seed_batch, batch, backend, devices, expected",
    [
        (None, 16, "cpu", 1, 1),  # CPU, one device: one seed at a time
        (None, 16, "gpu", 1, 16),  # accelerators: all at once
        (None, 16, "cpu", 4, 16),  # several devices: the seeds are split between them
        (0, 16, "cpu", 1, 16),
        (4, 16, "cpu", 1, 4),
        (16, 16, "cpu", 4, 16),  # all at once is fine on several devices
    ],
)
def test_seed_batch_size(seed_batch, batch, backend, devices, expected):
    a2c = TrainSettings(seed_batch=seed_batch)
    assert seed_batch_size(a2c, batch, backend, devices) == expected


@pytest.mark.parametrize(
    "seed_batch, batch, devices, match",
    [
        (3, 16, 1, r"does not divide the 16 learner states.*divisors near it: \[2, 4\]"),
        (32, 16, 1, "does not divide"),
        (4, 16, 2, "needs one device"),
    ],
)
def test_seed_batch_size_errors(seed_batch, batch, devices, match):
    with pytest.raises(ValueError, match=match):
        seed_batch_size(TrainSettings(seed_batch=seed_batch), batch, "cpu", devices)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_invalid_seed_batch_in_config(bad):
    with pytest.raises(ValueError, match="seed_batch must be None"):
        TrainSettings(seed_batch=bad)


@pytest.mark.parametrize(
    "argv, contains",
    [
        (["train", "--preset", "notebook-rnd-5x5", "--seeds", "4", "--seed-batch", "3"], "divide"),
        (["train", "--preset", "notebook-rnd-5x5", "--seed-batch", "-1"], "non-negative"),
        (["train", "--preset", "notebook-rnd-5x5", "--devices", "64"], "are visible"),
        (
            [
                "sweep",
                "--preset",
                "notebook-rnd-5x5",
                "--set",
                "lr=1e-4,2e-4",
                "--seeds",
                "4",
                "--seed-batch",
                "3",
            ],
            "does not divide",
        ),
        (["bench", "train", "--seeds", "4", "--seed-batch", "3"], "divisors near it"),
        (["bench", "train", "--seed-batch", "x"], "'auto' or integers"),
    ],
)
def test_cli_rejects_bad_layouts_before_writing(argv, contains, tmp_path, capsys):
    out = tmp_path / "run"
    if argv[0] in ("train", "sweep"):
        argv = [*argv, "--out", str(out)]
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and contains in err[0], err
    assert not out.exists()  # nothing was written


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_train_records_the_seed_batch(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--preset", "notebook-a2c-5x5", "--seeds", "2", "--total-frames", "512"]
    cli.main([*argv, "--seed-batch", "2", "--no-tensorboard", "--no-gif", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert summary["seed_batch"] == 2 and config["train"]["seed_batch"] == 2
