"""A small version of the README's "What makes the notebook's RND agent work" study, run with the
same tools: one `curio-jax sweep` of the notebook's plain A2C on DoorKey-5x5 over the extrinsic
advantage weight (x1, the notebook's A2C; x100, the weight its RND agent uses), 4 seeds each,
then `compare`.

Slow (about 6 minutes on 2 cores): ``pytest -m slow tests/test_ablation.py``.

What it holds: the x100 weight alone, without any intrinsic reward, makes A2C solve 5x5 at
least as reliably and no later than x1 (the README's 32/16-seed runs measure by how much).
"""

from __future__ import annotations

import pytest

from curio_jax import cli
from curio_jax.analysis import compare

FRAMES = 614_400


@pytest.mark.slow
def test_x100_extrinsic_weight_alone_speeds_up_a2c_on_5x5(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = cli.main(
        [
            "sweep",
            "--preset=notebook-a2c-5x5",
            "--set=adv_coef_ext=1,100",
            "--seeds=4",
            f"--total-frames={FRAMES}",
            "--no-tensorboard",
            f"--out={out}",
        ]
    )
    assert code == 0
    result = compare.compare_runs(
        [out / "adv_coef_ext=1.0", out / "adv_coef_ext=100.0"], n_boot=500
    )
    capsys.readouterr()
    print("\n" + compare.format_table(result))
    x1, x100 = result["runs"]
    (pair,) = result["pairs"]
    assert pair["config_differences"] and "train.adv_coef_ext" in pair["config_differences"][0]
    assert x100["n_solved"] >= 3, x100["seeds"]
    assert x100["n_solved"] >= x1["n_solved"]
    m1 = x1["frames_to_solve_median"]["value"]
    m100 = x100["frames_to_solve_median"]["value"]
    assert m100 is not None and (m1 is None or m100 <= m1), (m1, m100)
