"""Whole commands reproduce the recorded outputs in tests/golden/ (tests/golden_runs.py).

Three regimes, by how this machine compares with the one in tests/golden/machine.json:

- Same JAX / jaxlib and CPU vector unit: the bytes must be identical (timing fields dropped).
- Same JAX / jaxlib, another CPU vector unit: XLA may sum in another order, so every number
  must agree to `RTOL` relative to its column's scale (the largest magnitude in that CSV
  column; the number itself in JSON), and everything discrete (headers, seeds, updates,
  frames, episode counts, strings, JSON keys) exactly. Scaling by the column, not the cell,
  matters where a loss is a small difference of large terms: measured on the recording
  machine with XLA held to AVX2 (`XLA_FLAGS=--xla_cpu_max_isa=AVX2`), the largest change
  was 1.7e-6 of a column's scale while a single cell (a loss_total near zero) moved 2.9e-5
  of itself; the CI machine's values of 2026-12 differ from these files by as little.
- Another JAX / jaxlib version: a release may change a kernel's rounding or a sampler, and an
  A2C run can then take another path from its first updates (Adam's first steps are close to
  sign(gradient), so a gradient component that rounds across zero moves its weight by a whole
  learning rate). Measured: from jaxlib 0.12.0.1 to 0.12.1, seed 0 of `train_a2c8` moved by up
  to 0.22 of its loss columns' spread within 12 updates while every other run agreed to 1e-4.
  So the schedule (headers, seed / update / frames columns, JSON keys, strings, integers) must
  still agree exactly, and every other number must lie within `LOOSE` of its golden column's
  spread (max - min, floored at `RTOL` of its scale) or `LOOSE` of itself in JSON. A
  reminder is printed that the strict check needs the recorded versions
  (re-record with `python tests/golden_runs.py tests/golden`, saying why in the commit).
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings

import pytest
from golden_runs import GOLDEN, OUTPUTS, machine, normalised, run_all

RTOL = 1e-4
LOOSE = 0.5
# CSV columns that are the schedule, not a result: equal whatever the machine.
SCHEDULE = ("seed", "update", "frames")


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    run_all(out)
    return out


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _near(a, b, tol: float, where: str) -> None:
    assert _number(a) and _number(b), f"{where}: {a!r} vs golden {b!r}"
    if math.isnan(b) or math.isnan(a):
        assert math.isnan(a) and math.isnan(b), f"{where}: {a} vs golden {b}"
        return
    assert abs(a - b) <= tol, f"{where}: {a} vs golden {b} (tolerance {tol:.3g})"


def _json_close(a, b, rel: float, where: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} vs golden {sorted(b)}"
        for k in a:
            _json_close(a[k], b[k], rel, f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} items vs golden {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _json_close(x, y, rel, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        _near(a, b, rel * abs(b) if _number(b) else 0.0, where)
    else:
        assert a == b, f"{where}: {a!r} vs golden {b!r}"


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _csv_close(got: str, want: str, same_jax: bool, where: str) -> None:
    g, w = _rows(got), _rows(want)
    assert g[0] == w[0], f"{where}: header {g[0]} vs golden {w[0]}"
    assert len(g) == len(w), f"{where}: {len(g) - 1} rows vs golden {len(w) - 1}"
    for j, name in enumerate(w[0]):
        col_g = [r[j] for r in g[1:]]
        col_w = [r[j] for r in w[1:]]
        if name in SCHEDULE:
            assert col_g == col_w, f"{where}: column {name} {col_g} vs golden {col_w}"
            continue
        want_vals = [float(v) for v in col_w]
        finite = [v for v in want_vals if math.isfinite(v)]
        scale = max((abs(v) for v in finite), default=0.0)
        spread = max(finite) - min(finite) if finite else 0.0
        tol = RTOL * scale if same_jax else LOOSE * max(spread, RTOL * scale)
        for i, (x, y) in enumerate(zip(col_g, want_vals, strict=True)):
            _near(float(x), y, tol, f"{where}[row {i + 1}].{name}")


@pytest.mark.slow  # whole CLI runs (about 2.5 minutes); tests/test_golden_presets.py is quick
@pytest.mark.parametrize("src", sorted(OUTPUTS))
def test_command_outputs_match_the_golden_files(produced, src):
    got = normalised(produced / src, produced)
    want = (GOLDEN / OUTPUTS[src]).read_bytes()
    here, recorded = machine(), json.loads((GOLDEN / "machine.json").read_text())
    if here == recorded:
        assert got == want, f"{src} differs from tests/golden/{OUTPUTS[src]}"
        return
    same_jax = (here["jax"], here["jaxlib"]) == (recorded["jax"], recorded["jaxlib"])
    if not same_jax:
        warnings.warn(
            f"golden outputs were recorded with jax/jaxlib {recorded['jax']}/"
            f"{recorded['jaxlib']}, this is {here['jax']}/{here['jaxlib']}: only the loose "
            "comparison ran (tests/test_golden.py)",
            stacklevel=1,
        )
    if src.endswith(".csv"):
        _csv_close(got.decode(), want.decode(), same_jax, src)
    else:
        _json_close(json.loads(got), json.loads(want), RTOL if same_jax else LOOSE, src)
