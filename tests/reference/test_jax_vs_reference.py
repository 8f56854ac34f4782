"""JAX vs the PyTorch reference on the notebook's RND agent, DoorKey-5x5: a small version of the
README's reproducibility comparison (item 4 there: 8 reference seeds against 32 JAX seeds).

Slow (about 8 minutes on 2 cores): ``pytest -m slow tests/test_jax_vs_reference.py``.

Three reference seeds (the notebook's loop: it stops at the first logged update whose average
score is above 0.91) against eight vmapped JAX seeds, through the same `compare` pipeline as the
README. The test is the log-rank test on frames-to-solve (unsolved seeds censored at the
budget); with so few seeds it only catches gross differences (a broken port or a learning bug
would show up as one side not solving, or solving far later), which is its purpose.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from curio_jax import config  # noqa: E402
from curio_jax.analysis import compare  # noqa: E402
from curio_jax.reference import train as reference_train  # noqa: E402
from curio_jax.run import loop as runner  # noqa: E402
from curio_jax.run.rundir import RunSettings  # noqa: E402

FRAMES = 512_000


@pytest.mark.slow
def test_jax_and_reference_solve_rnd_5x5_alike(tmp_path):
    ref_dir, jax_dir = tmp_path / "reference", tmp_path / "jax"
    code = reference_train.main(
        [
            "--preset=notebook-rnd-5x5",
            "--seed=10,11,12",
            f"--total-frames={FRAMES}",
            f"--out={ref_dir}",
            "--quiet",
        ]
    )
    assert code == 0
    cfg = config.preset("notebook-rnd-5x5").replace(total_frames=FRAMES)
    settings = RunSettings(seeds=8, seed=0, tensorboard=False)
    runner.train_run(cfg, jax_dir, settings, plot=False)

    result = compare.compare_runs([jax_dir, ref_dir], n_boot=500)
    print("\n" + compare.format_table(result))
    jax_run, ref_run = result["runs"]
    assert jax_run["impl"] == "curio_jax" and ref_run["impl"] == "torch_reference"
    (pair,) = result["pairs"]
    assert pair["comparable"] and pair["logrank_p"] is not None
    # both sides learn: most seeds solve within the budget
    assert jax_run["n_solved"] >= 6, jax_run["seeds"]
    assert ref_run["n_solved"] >= 2, ref_run["seeds"]
    # and not distinguishably differently (5% level would flag 1 in 20 healthy runs; 1%)
    assert pair["logrank_p"] > 0.01, json.dumps(pair)
