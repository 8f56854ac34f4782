"""Studies end to end (docs/studies.md): a tiny study (2 arms x 2 slices of one seed, 1,024
frames each) run slice by slice in separate processes, one killed after a checkpoint and
resumed, reports what the same study run in one go reports; records that are tampered with,
copied or different are refused; `--max-minutes` refuses a slice that cannot finish; a bad
spec exits 2 naming the field. One module-scoped fixture runs the study both ways."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import jax
import pytest
from helpers import assert_usage_error, run_cli

from curio_jax import cli
from curio_jax.analysis import records
from curio_jax.config import config_fields

NUM_ENVS = next(k for k in config_fields() if k.rsplit(".", 1)[-1] == "num_envs")
ENTROPY = next(k for k in config_fields() if k.rsplit(".", 1)[-1] == "entropy_coef")
KILL_AT = 8  # of 32 updates (chunks of 4, a checkpoint after each)

SPEC = f"""
[study]
name = "tiny"
description = "two arms of the notebook's A2C, a few updates"
total_frames = 1024
seeds = 2
slice_seeds = 1
thresholds = [0.5]
metrics = ["entropy"]
n_boot = 200
checkpoint_every = 1
set = {{ "{NUM_ENVS}" = 2, log_every = 4 }}

[[arms]]
name = "a"
preset = "notebook-a2c-5x5"

[[arms]]
name = "b"
preset = "notebook-a2c-5x5"
set = {{ "{ENTROPY}" = 0.05 }}
"""

# A `curio-jax` child that kills itself (SIGKILL: no cleanup at all) right after the chunk
# ending at update N is written and checkpointed; the product reads no test switches.
_KILLER = """
import os, signal, sys
from curio_jax.cli import main
n, argv = int(sys.argv[1]), sys.argv[2:]

class Kill:
    def on_chunk(self, chunk):
        if chunk.update == n and chunk.checkpointed:
            os.kill(os.getpid(), signal.SIGKILL)

sys.exit(main(argv, callbacks=[Kill()]))
"""


def _env() -> dict:
    e = dict(os.environ)
    cache = jax.config.jax_compilation_cache_dir  # the session's (tests/conftest.py)
    e.update(
        JAX_PLATFORMS="cpu",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2]), e.get("PYTHONPATH", "")]),
        **(
            {
                "JAX_COMPILATION_CACHE_DIR": cache,
                "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
            }
            if cache
            else {}
        ),
    )
    return e


def _cli(*args: str, child: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "curio_jax", *args]
    if child is not None:
        cmd = [sys.executable, "-c", child, *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)


def _write_spec(folder: Path) -> Path:
    folder.mkdir(parents=True)
    spec = folder / "study.toml"
    spec.write_text(SPEC)
    return spec


def _timeless(result: dict) -> dict:
    """A compare JSON without what depends on the machine's speed."""
    out = json.loads(json.dumps(result))
    for r in out["runs"]:
        r.pop("frames_per_sec", None)
        r.pop("seconds", None)
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(slice-by-slice folder, one-go folder, work folders): the tiny study run both ways and
    reported."""
    root = tmp_path_factory.mktemp("study")
    # one go, in this process
    one = _write_spec(root / "one")
    code, out, err = _one_go(one, root / "work-one")
    assert code == 0, err
    # slice by slice, each in its own process; a/s1 killed after a checkpoint, then resumed
    sliced = _write_spec(root / "sliced")
    work = root / "work-sliced"
    p = _cli("study", "run", str(sliced), "--work", str(work), "--slice", "a/s0")
    assert p.returncode == 0, p.stderr
    p = _cli(str(KILL_AT), "study", "run", str(sliced), "--work", str(work), "--slice", "1",
             child=_KILLER)  # fmt: skip
    assert p.returncode == -9, (p.returncode, p.stderr)
    killed = work / "a" / "s1"
    assert not (sliced.parent / "records" / "a" / "s1.json").exists()
    assert (killed / "checkpoints").is_dir() and not (killed / "summary.json").exists()
    p = _cli("study", "run", str(sliced), "--work", str(work))
    assert p.returncode == 0, p.stderr
    assert "resuming from ckpt_" in p.stdout and "recorded a/s1" in p.stdout
    assert "records: 4/4 slices; complete: a, b" in p.stdout
    return sliced.parent, one.parent, work


def _one_go(spec: Path, work: Path):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["study", "run", str(spec), "--work", str(work)])
    return code, out.getvalue(), err.getvalue()


def test_sliced_killed_and_resumed_reports_what_one_go_reports(study, capsys):
    sliced, one, _ = study
    for folder in (sliced, one):
        code, out, err = run_cli(["study", "report", str(folder / "study.toml")], capsys)
        assert code == 0, err
        assert "tiny: 4/4 slices; complete: a, b" in out
    a = json.loads((sliced / "report" / "tiny.json").read_text())
    b = json.loads((one / "report" / "tiny.json").read_text())
    assert [r["label"] for r in a["runs"]] == ["a", "b"]
    assert a["runs"][0]["path"] == "records/a/s0.json+records/a/s1.json"
    assert a["runs"][0]["n_seeds"] == 2 and a["runs"][0]["budget"] == 1024
    assert "entropy" in a["runs"][0]["metric_curves"]
    assert _timeless(a) == _timeless(b)
    # the same records, slice by slice (their content; provenance differs)
    for rec in sorted((one / "records").glob("*/*.json")):
        other = sliced / rec.relative_to(one)
        assert records.same_record(records.read_record(rec), records.read_record(other)), rec
    md = (sliced / "report" / "tiny.md").read_text()
    assert "| a | notebook-a2c-5x5 | 2 |" in md and "Records: 4/4 slices" in md


def test_compare_reads_records_and_pools_them(study, capsys):
    sliced, _, _ = study
    rec = sliced / "records"
    code, out, err = run_cli(
        ["compare", str(rec / "a"), f"{rec / 'b' / 's0.json'}+{rec / 'b' / 's1.json'}",
         "--n-boot", "50"], capsys)  # fmt: skip
    assert code == 0, err
    assert "a/s0.json+a/s1.json" in out and "b/s0.json+b/s1.json" in out
    # a seed counted twice: the same record twice, or a copy of it
    shutil.copy(rec / "a" / "s0.json", sliced / "copy.json")
    for twice in (f"{rec / 'a' / 's0.json'}+{rec / 'a' / 's0.json'}",
                  f"{rec / 'a' / 's0.json'}+{sliced / 'copy.json'}"):  # fmt: skip
        code, _, err = run_cli(["compare", twice], capsys)
        assert code == 2 and ("pooled twice" in err or "base seed" in err), err


def _copy(study_folder: Path, dest: Path) -> Path:
    shutil.copytree(study_folder, dest, ignore=shutil.ignore_patterns("report"))
    return dest / "study.toml"


def test_a_tampered_or_duplicated_record_is_refused(study, tmp_path, capsys):
    sliced, _, _ = study
    spec = _copy(sliced, tmp_path / "t")
    s0 = tmp_path / "t" / "records" / "a" / "s0.json"
    rec = json.loads(s0.read_text())
    line = rec["content"]["rows"]["lines"][-1].split(",")
    line[3] = "0.99"  # a better final score
    rec["content"]["rows"]["lines"][-1] = ",".join(line)
    s0.write_text(json.dumps(rec, indent=1))
    assert_usage_error(["study", "report", str(spec)], capsys, "does not match its content_sha256")
    assert_usage_error(["compare", str(s0)], capsys, "does not match its content_sha256")

    spec = _copy(sliced, tmp_path / "d")
    arm = tmp_path / "d" / "records" / "a"
    shutil.copy(arm / "s0.json", arm / "s1.json")  # s0's seeds stored as s1
    assert_usage_error(["study", "report", str(spec)], capsys, "stored as tiny/a/s1")
    shutil.copy(sliced / "records" / "a" / "s1.json", arm / "s1.json")
    shutil.copy(arm / "s0.json", arm / "s2.json")  # a slice the spec does not have
    assert_usage_error(["study", "report", str(spec)], capsys, "not a slice of arm a")


def test_a_different_record_of_a_slice_is_refused_never_overwritten(study, tmp_path):
    sliced, _, _ = study
    path = tmp_path / "s0.json"
    rec = records.read_record(sliced / "records" / "a" / "s0.json")
    assert records.write_record(path, rec) is True
    before = path.read_bytes()
    rerun = json.loads(json.dumps(rec))
    rerun["provenance"]["date"] = "another day"  # provenance is not content
    assert records.write_record(path, rerun) is False
    rerun["content"]["summary"]["seeds"][0]["final_avg_return_last100"] = 0.5
    rerun["content_sha256"] = records.content_digest(rerun["content"])
    with pytest.raises(records.RecordError, match=r"different record of a/s0 .* kept"):
        records.write_record(path, rerun)
    assert path.read_bytes() == before


def test_a_rerun_slice_gives_the_same_record(study, tmp_path, capsys):
    sliced, _, work = study
    spec = _copy(sliced, tmp_path / "again")
    args = ["study", "run", str(spec), "--work", str(work), "--slice", "b/s1", "--again"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert "b/s1: the same record as the stored" in out
    # a stored record that differs (a spec changed under it, a different machine) is kept
    s1 = tmp_path / "again" / "records" / "b" / "s1.json"
    rec = json.loads(s1.read_text())
    rec["content"]["summary"]["frames"] += 1
    rec["content_sha256"] = records.content_digest(rec["content"])
    s1.write_text(json.dumps(rec, indent=1))
    before = s1.read_bytes()
    code, out, err = run_cli(args, capsys)
    assert code == 1 and "holds a different record of b/s1" in err, err
    assert str(work / "b" / "s1-again" / "record.json") in err
    assert s1.read_bytes() == before


def test_max_minutes_does_not_start_a_slice_that_cannot_finish(study, tmp_path, capsys):
    sliced, _, _ = study
    spec = _copy(sliced, tmp_path / "m")
    (tmp_path / "m" / "records" / "b" / "s1.json").unlink()
    work = tmp_path / "work"
    code, out, err = run_cli(
        ["study", "run", str(spec), "--work", str(work), "--max-minutes", "0.0001"], capsys
    )
    assert code == 0, err
    assert "not starting b/s1: it needs about" in out and "measured on its arm's records" in out
    assert "3 recorded before, 1 not started (time)" in out
    assert not (tmp_path / "m" / "records" / "b" / "s1.json").exists()
    assert not (work / "b" / "s1").exists()
    # an arm never measured: the spec's estimate decides
    (tmp_path / "m" / "records" / "b" / "s0.json").unlink()
    text = spec.read_text().replace('name = "b"\n', 'name = "b"\nframes_per_sec = 1.0\n')
    spec.write_text(text)
    code, out, err = run_cli(
        ["study", "run", str(spec), "--work", str(work), "--max-minutes", "10"], capsys
    )
    assert code == 0, err
    assert "not starting b/s0: it needs about 17.1 min (1 frames/s estimated in the spec)" in out


BAD_SPECS = [
    ('preset = "notebook-a2c-5x5"', 'preset = "nope"', "arm 'a'.preset: unknown preset 'nope'"),
    ("thresholds = [0.5]", "thresholds = [1.5]", "study.thresholds[0] must be a number in [0, 1]"),
    ('name = "b"', 'name = "a"', "two arms are named 'a'"),
    (
        "seeds = 2\nslice_seeds = 1",
        "seeds = 3\nslice_seeds = 2",
        "seeds (3) is not a multiple of slice_seeds (2)",
    ),
    ("n_boot = 200", "n_boot = 200\nbogus = 1", "[study]: unknown field 'bogus'"),
    ('name = "b"', 'name = "b"\nlr = 1', "arm 'b': unknown field 'lr'"),
    ("log_every = 4", "log_evry = 4", "unknown config field 'log_evry'"),
    ('metrics = ["entropy"]', 'metrics = ["entropi"]', "unknown metric 'entropi'"),
    (
        'name = "b"',
        'name = "b"\ngroup = "tune"',
        "arm 'a' (group main) and arm 'b' (group tune) share base seed(s) 0..1",
    ),
    ("[study]", "[study", "not valid TOML"),
    ("n_boot = 200", 'n_boot = 200\nbaseline = "c"', "study.baseline must name an arm (a, b)"),
    ('name = "b"', 'name = "b"\ntunes = "a"', "arm 'b'.tunes names 'a' of its own group"),
    ('name = "b"', 'name = "b"\ntunes = "z"', "arm 'b'.tunes must name an arm that runs"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_SPECS)
def test_a_bad_spec_exits_2_naming_the_field(tmp_path, capsys, old, new, message):
    assert old in SPEC
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC.replace(old, new, 1))
    assert_usage_error(["study", "status", str(spec)], capsys, message)
    assert_usage_error(["study", "run", str(spec)], capsys, message)


def test_the_report_tests_against_the_baseline_and_picks_the_tunes(study, tmp_path, capsys):
    """`baseline`: every other arm of its group log-rank tested against it, Holm-corrected, and
    the arms that solved tested pairwise; `tunes`: the candidate the tuning rule picks."""
    sliced, _, _ = study
    spec = _copy(sliced, tmp_path / "t")
    spec.write_text(spec.read_text().replace("n_boot = 200", 'n_boot = 200\nbaseline = "b"'))
    code, out, err = run_cli(["study", "report", str(spec)], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "t" / "report" / "tiny.json").read_text())
    tests = result["study"]["tests"]
    pair = next(p for p in result["pairs"] if {p["a"], p["b"]} == {"a", "b"})
    assert tests["baseline"] == "b"
    assert tests["against_baseline"] == [
        {"a": "a", "b": "b", "logrank_p": pair["logrank_p"], "holm_p": pair["logrank_p"]}
    ]  # a family of one: Holm leaves it as it is (None where no seed solved either way)
    md = (tmp_path / "t" / "report" / "tiny.md").read_text()
    m = int(pair["logrank_p"] is not None)  # a test without a p-value is not in Holm's family
    assert f"against b, Holm-corrected over the {m} tests with a p-value" in md and "| a | " in md
    assert "entropy at the end [95% CI]" in md and "frames/s |" in md

    def run(label, solved, median, final):
        return {"label": label, "n_solved": solved, "frames_to_solve_median": {"value": median},
                "final_mean": {"value": final}}  # fmt: skip

    runs = [run("t1", 2, 9e5, 0.5), run("t2", 2, 4e5, 0.4), run("t3", 1, None, 0.9),
            run("u1", 0, None, 0.1), run("u2", 0, None, 0.3)]  # fmt: skip
    arms = {"t1": "a", "t2": "a", "t3": "a", "u1": "b", "u2": "b"}
    toml = SPEC.replace('name = "b"', 'name = "b"\ngroup = "final"\nbase_seed = 100', 1)
    for lab, target in arms.items():
        toml += f'\n[[arms]]\nname = "{lab}"\npreset = "notebook-a2c-5x5"\ngroup = "tune"\n'
        toml += f'base_seed = 50\ntunes = "{"b" if target == "b" else "a"}"\n'
    toml = toml.replace('name = "a"\n', 'name = "a"\ngroup = "final"\nbase_seed = 100\n', 1)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "study.toml").write_text(toml)
    from curio_jax.study.report import group_tests
    from curio_jax.study.spec import load_spec

    got = group_tests(load_spec(tmp_path / "p" / "study.toml"), {"runs": runs, "pairs": []},
                      {"t1", "t2", "t3", "u1"})  # fmt: skip
    assert got["picks"] == [
        # most solved, then the lower median: t2 over t1 (t3 solved fewer, whatever its final)
        {"for": "a", "pick": "t2", "candidates": ["t1", "t2", "t3"], "complete": True,
         "any_solved": True},
        # none solved: the higher final mean; u2 has no complete records yet
        {"for": "b", "pick": "u2", "candidates": ["u1", "u2"], "complete": False,
         "any_solved": False},
    ]  # fmt: skip


def test_disjoint_groups_may_be_set_apart_by_base_seed(tmp_path, capsys):
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC.replace('name = "b"', 'name = "b"\ngroup = "tune"\nbase_seed = 100'))
    code, out, err = run_cli(["study", "status", str(spec)], capsys)
    assert code == 0, err
    assert "b/s1" in out and "from base seed 101" in out


def test_a_slice_is_named_or_numbered(tmp_path, capsys):
    spec = tmp_path / "study.toml"
    spec.write_text(SPEC)
    assert_usage_error(["study", "run", str(spec), "--slice", "c/s0"], capsys, "no such slice")
    assert_usage_error(["study", "run", str(spec), "--slice", "4"], capsys, "has 4 slices")


REPO = Path(__file__).parents[2]


@pytest.mark.parametrize(
    "spec", sorted(p.relative_to(REPO).as_posix() for p in (REPO / "studies").glob("*/study.toml"))
)
def test_the_repositorys_studies_load_and_their_records_still_hold(spec):
    """Every committed spec is valid, and every committed record is still one of its slices
    with the config the spec gives it as this code resolves it (a change to a preset or a
    default that a running study depends on fails here, not sessions later in its report)."""
    from curio_jax.study.report import arm_records
    from curio_jax.study.spec import load_spec

    s = load_spec(REPO / spec)
    for arm in s.arms:
        if arm.cfg is not None:
            found = arm_records(s, arm)  # raises StudyError on any mismatch
            assert len(found.done) + len(found.missing) == len(arm.slices)
