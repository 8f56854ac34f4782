"""Every preset's core update against the golden records of `tests/golden_presets.py`
(recorded before the core was reshaped around learner x bonus).

On the recording machine and JAX release (tests/golden/presets.json's "machine") every metric
of every update and every parameter group's SHA-256 must be the same bits. Elsewhere the
numbers must agree to 1e-4 of each metric's scale (another CPU), or only the structure and the
schedule (another JAX release; see tests/test_golden.py for why an update may then take another
path). The default suite checks one case (PPO-RND with the subset draw: the shared loss pieces,
the PPO learner and the RND bonus); `pytest -m slow` checks them all (about 17 s of compiling
each on a 2-core CPU).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from golden_presets import GOLDEN_FILE, cases, run_case
from golden_runs import machine

RECORDED = json.loads(GOLDEN_FILE.read_text())
QUICK = ("ppo-rnd-5x5+subset",)  # the default draw; the mask's numbers: tests/reference


def _regime(name: str) -> str:
    here = machine()
    there = RECORDED["cases"][name].get("machine", RECORDED["machine"])
    if here == there:
        return "bits"
    if (here["jax"], here["jaxlib"]) == (there["jax"], there["jaxlib"]):
        return "cpu"
    return "jax"


def _check(name: str) -> None:
    got, want = run_case(name), dict(RECORDED["cases"][name])
    want.pop("machine", None)
    assert set(got["metrics"]) == set(want["metrics"]), name
    assert {g: p["leaves"] for g, p in got["params"].items()} == {
        g: p["leaves"] for g, p in want["params"].items()
    }, name
    regime = _regime(name)
    if regime == "bits":
        # compared as JSON text: the same bits print the same, and NaN (no episode yet) equals
        # itself there
        same = json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
        assert same, f"{name}: not bit-identical to the golden record"
        return
    assert got["metrics"]["frames"] == want["metrics"]["frames"], name
    if regime == "jax":
        return
    for metric, values in want["metrics"].items():
        scale = max(1e-6, float(np.max(np.abs(values))))
        np.testing.assert_allclose(
            got["metrics"][metric], values, rtol=0, atol=1e-4 * scale, err_msg=f"{name} {metric}"
        )


def test_the_golden_file_covers_every_case():
    assert set(RECORDED["cases"]) == set(cases())


@pytest.mark.parametrize("name", QUICK)
def test_preset_update_matches_its_golden_record(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(cases()) - set(QUICK)))
def test_every_preset_update_matches_its_golden_record(name):
    _check(name)
