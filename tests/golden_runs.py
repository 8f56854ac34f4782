"""Golden outputs that pin the behaviour of whole commands across refactors.

`COMMANDS` are small `curio-jax` runs (a few chunks, 2 seeds; a sweep of 2 points; an `eval`
JSON; a `compare` JSON). Their outputs were recorded in `tests/golden/` before the package was
restructured; `tests/test_golden.py` reruns the commands and requires the same bytes, after
dropping the fields that measure time (`TIMING_FIELDS`).

Re-recorded on 2026-12-06 with the same code under jaxlib 0.12.1 (a fresh install's version;
the files from 0.12.0.1 still matched it within the loose regime of tests/test_golden.py).

Regenerate (only for an intended change of behaviour or of the JAX release, saying why in the
commit):
    python tests/golden_runs.py tests/golden
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"

# (name, argv with {out} for the scratch directory)
COMMANDS = (
    (
        "train_rnd5",
        "train --preset notebook-rnd-5x5 --seeds 2 --total-frames 6144 --log-every 4 "
        "--checkpoint-every 1 --no-tensorboard --out {out}/rnd5",
    ),
    (
        "train_a2c8",
        "train --preset notebook-a2c-8x8 --seeds 2 --total-frames 6144 --log-every 4 "
        "--no-tensorboard --out {out}/a2c8",
    ),
    (
        "sweep_rnd5",
        "sweep --preset notebook-rnd-5x5 --set adv_coef_int=1,10 --seeds 2 --total-frames 12288 "
        "--log-every 8 --no-tensorboard --out {out}/sweep",
    ),
    ("eval_rnd5", "eval --checkpoint {out}/rnd5 --size 5 --episodes 8 --json {out}/eval.json"),
    (
        "compare_sweep",
        "compare {out}/sweep/adv_coef_int=1.0 {out}/sweep/adv_coef_int=10.0 "
        "--json {out}/compare.json",
    ),
)

# output file (relative to the scratch directory) -> golden file name
OUTPUTS = {
    "rnd5/metrics.csv": "rnd5_metrics.csv",
    "rnd5/summary.json": "rnd5_summary.json",
    "a2c8/metrics.csv": "a2c8_metrics.csv",
    "a2c8/summary.json": "a2c8_summary.json",
    "sweep/adv_coef_int=1.0/metrics.csv": "sweep_p1_metrics.csv",
    "sweep/adv_coef_int=1.0/summary.json": "sweep_p1_summary.json",
    "sweep/adv_coef_int=10.0/metrics.csv": "sweep_p10_metrics.csv",
    "sweep/adv_coef_int=10.0/summary.json": "sweep_p10_summary.json",
    "sweep/sweep.json": "sweep.json",
    "eval.json": "eval.json",
    "compare.json": "compare.json",
}

TIMING_FIELDS = ("seconds", "frames_per_sec", "compile_seconds", "device")


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING_FIELDS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def normalised(path: Path, out: Path) -> bytes:
    """The file's bytes; JSON files without their timing fields, re-serialised canonically,
    with the scratch directory `out` written as "{out}"."""
    if path.suffix == ".json":
        obj = _strip(json.loads(path.read_text().replace(str(out), "{out}")))
        return (json.dumps(obj, indent=1) + "\n").encode()
    return path.read_bytes()


def machine() -> dict:
    """What the golden bytes depend on besides the code."""
    import jax
    import jaxlib

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                cpu = " ".join(sorted(f for f in flags if f.startswith(("avx", "fma", "amx"))))
                break
    except OSError:
        pass
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "machine": platform.machine(),
        "cpu_vector_flags": cpu,
    }


def run_all(out: Path) -> None:
    from curio_jax.cli import main

    for name, argv in COMMANDS:
        code = main(argv.format(out=out).split())
        if code != 0:
            raise RuntimeError(f"golden command {name} exited {code}")


def record(dest: Path) -> None:
    import tempfile

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run_all(Path(tmp))
        for src, name in OUTPUTS.items():
            (dest / name).write_bytes(normalised(Path(tmp) / src, Path(tmp)))
    (dest / "machine.json").write_text(json.dumps(machine(), indent=1) + "\n")


if __name__ == "__main__":
    record(Path(sys.argv[1]) if len(sys.argv) > 1 else GOLDEN)
