"""Whole commands reproduce the outputs recorded before the restructuring (tests/golden_runs.py).

On the machine and JAX version that recorded them the bytes must be identical (timing fields
dropped). Elsewhere (another jaxlib, another CPU vector unit) XLA may round differently, so
there every CSV cell and JSON number must agree to 1e-4 relative and everything discrete
(seeds, updates, frames, episode counts, solved frames, strings) exactly."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from golden_runs import GOLDEN, OUTPUTS, machine, normalised, run_all

RTOL = 1e-4


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    run_all(out)
    return out


def _close(a, b, where: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), where
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=RTOL), where
    else:
        assert a == b, where


def _cells(text: str) -> list[list]:
    def cell(s: str):
        try:
            return int(s)
        except ValueError:
            try:
                return float(s)
            except ValueError:
                return s

    return [[cell(c) for c in row] for row in csv.reader(io.StringIO(text))]


@pytest.mark.parametrize("src", sorted(OUTPUTS))
def test_command_outputs_match_the_golden_files(produced, src):
    got = normalised(produced / src, produced)
    want = (GOLDEN / OUTPUTS[src]).read_bytes()
    if machine() == json.loads((GOLDEN / "machine.json").read_text()):
        assert got == want, f"{src} differs from tests/golden/{OUTPUTS[src]}"
    elif src.endswith(".csv"):
        _close(_cells(got.decode()), _cells(want.decode()), src)
    else:
        _close(json.loads(got), json.loads(want), src)
