"""The command line: bad input exits 2 with one line on stderr and no traceback."""

from __future__ import annotations

import json

import pytest
from helpers import assert_usage_error, run_cli, write_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curio_jax import cli
from curio_jax.cli.common import config_from_args


@pytest.mark.parametrize(
    "argv, contains",
    [
        ([], "required"),
        (["nonsense"], "invalid choice"),
        (["train"], "--preset"),
        (["train", "--preset", "no-such-preset"], "unknown preset"),
        (["train", "--preset", "notebook-rnd-5x5", "--seeds", "0"], "positive integer"),
        (["train", "--preset", "notebook-rnd-5x5", "--seeds", "-3"], "positive integer"),
        (["train", "--preset", "notebook-rnd-5x5", "--num-envs", "x"], "positive integer"),
        (["train", "--preset", "notebook-rnd-5x5", "--total-frames", "10"], "total_frames"),
        (["bench", "env", "--sizes", "4"], ">= 5"),
        (["bench", "env", "--sizes", "a,b"], "integers"),
        (["bench", "env", "--num-envs", "0"], "positive"),
        (["bench", "env", "--impls", "gym"], "unknown impl"),
        (["bench", "train", "--micro-batch", "x"], "'auto' or integers"),
        (["bench", "train", "--micro-batch", "-8"], "'auto' or integers"),
        (["bench", "train", "--num-envs", "100", "--micro-batch", "3"], "divisors near it"),
        (["bench", "train", "--rounds", "0"], "positive integer"),
        (["bench", "train", "--anchor", "navix-ppo"], "needs a PPO preset"),
        (["bench", "train", "--preset", "rnd-paper-5x5", "--anchor", "navix-ppo"], "PPO preset"),
        (["bench", "train", "--preset", "ppo-5x5", "--anchor", "cleanrl"], "invalid choice"),
        (["train", "--preset", "notebook-rnd-5x5", "--micro-batch", "-1"], "non-negative"),
        (["train", "--preset", "notebook-rnd-5x5", "--micro-batch", "100"], "does not divide"),
        (["compare"], "RUN"),
        (["compare", "x", "--threshold", "1.5"], "number in [0, 1]"),
        (["compare", "x", "--until", "0"], "--until"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, contains, capsys):
    assert_usage_error(argv, capsys, contains)


def test_compare_missing_or_corrupt_run_dir(tmp_path, capsys):
    assert_usage_error(["compare", str(tmp_path / "nope")], capsys, "no such run directory")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    assert_usage_error(["compare", str(bad)], capsys)


def test_output_file_in_missing_directory(tmp_path, capsys):
    assert_usage_error(
        ["bench", "env", "--json", str(tmp_path / "missing" / "x.json")], capsys, "does not exist"
    )


_TOKENS = st.one_of(
    st.text(min_size=0, max_size=6),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["-1", "0", "nan", "1e9", "--", "-", "5,,", ",", "3.5"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    option=st.sampled_from(["--seeds", "--num-envs", "--total-frames", "--seed", "--preset"]),
    value=_TOKENS,
)
def test_train_arguments_fuzzed(option, value, capsys):
    """Random values for train's options: either rejected with exit 2 and one line, or (rarely)
    valid, which the parser alone decides without starting a run."""
    parser = cli.build_parser()
    argv = ["train", "--preset", "notebook-a2c-5x5", option, value]
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        err = capsys.readouterr().err
        assert e.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        return
    # parsed: the config step must accept or reject it as one line too
    try:
        config_from_args(args)
    except cli.UsageError as e:
        assert "\n" not in str(e)


def test_compare_writes_json(tmp_path, capsys):
    a = write_run(tmp_path, "a", finals=[0.9, 0.8, 0.7], solves=[100, 200, None])
    b = write_run(tmp_path, "b", finals=[0.2, 0.3, 0.1], solves=[None, None, None])
    out = tmp_path / "cmp.json"
    code, stdout, _ = run_cli(
        ["compare", str(a), str(b), "--json", str(out), "--n-boot", "200"], capsys
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert [r["label"] for r in result["runs"]] == ["a", "b"]
    assert "P(A > B)" in stdout
    # the JSON it wrote serves as a recorded run: FILE.json:LABEL
    code, stdout, _ = run_cli(["compare", str(a), f"{out}:b", "--n-boot", "200"], capsys)
    assert code == 0
    assert "cmp.json:b is recorded" in stdout
    assert_usage_error(["compare", f"{out}:c"], capsys, "no run labelled 'c' (labels: a, b)")


def test_compare_pools_runs_and_reads_unfinished_ones(tmp_path, capsys):
    a = write_run(tmp_path, "a", finals=[0.9, 0.8], solves=[100, None], base_seed=0)
    b = write_run(tmp_path, "b", finals=[0.2, 0.3], solves=[None, None], base_seed=7)
    (b / "summary.json").unlink()  # b is still running
    out = tmp_path / "cmp.json"
    assert_usage_error(["compare", f"{a}+{b}"], capsys, "--unfinished")
    code, stdout, _ = run_cli(
        ["compare", f"{a}+{b}", "--unfinished", "--json", str(out), "--n-boot", "200"], capsys
    )
    assert code == 0 and "a+b is unfinished" in stdout
    (run,) = json.loads(out.read_text())["runs"]
    assert run["label"] == "a+b" and run["n_seeds"] == 4 and run["unfinished"] is True
    assert [p["seeds"] for p in run["pooled_from"]] == [[0, 1], [0, 1]]
    # read until half the budget (write_run logs 8 rows over 1,000,000 frames)
    code, stdout, _ = run_cli(
        ["compare", str(a), "--until", "500000", "--json", str(out), "--n-boot", "200"], capsys
    )
    (run,) = json.loads(out.read_text())["runs"]
    assert code == 0 and run["budget"] == 500_000 and run["read_until"] == 500_000


# --------------------------------------------------------------------------- train: bad input


def _rejects_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return True
    return False


_NOT_INT = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["1.5", "1e3", "nan", "inf", "-", "0x10", "", "  ", "1,2", "½", "--"]),
).filter(_rejects_int)
_NOT_POSITIVE = st.one_of(_NOT_INT, st.integers(max_value=0).map(str))
_NOT_NONNEG = st.one_of(_NOT_INT, st.integers(max_value=-1).map(str))
# with --num-envs 4 one update is 4 x 16 = 64 frames: fewer cannot make a single update
_TOO_FEW_FRAMES = st.integers(1, 63).map(str)
_OUT_KINDS = ("empty", "nul", "file", "under_file", "foreign_dir", "resume_missing")
_FLAGS = ("--resume", "--overwrite", "--no-tensorboard")

_INVALID_TRAIN = {
    "--preset": st.text(max_size=12).filter(lambda s: s not in config_presets()),
    "--seeds": _NOT_POSITIVE,
    "--seed": _NOT_NONNEG,
    "--num-envs": _NOT_POSITIVE,
    "--total-frames": st.one_of(_NOT_POSITIVE, _TOO_FEW_FRAMES),
    "--log-every": _NOT_POSITIVE,
    "--checkpoint-every": _NOT_POSITIVE,
    "--keep-checkpoints": _NOT_POSITIVE,
    "--out": st.tuples(st.sampled_from(_OUT_KINDS), st.text(st.characters(), max_size=5)),
    "flag-with-value": st.tuples(st.sampled_from(_FLAGS), st.text(max_size=4)),
    "resume+overwrite": st.just(None),
    "unknown-option": st.text(st.characters(categories=["Ll"]), min_size=1, max_size=8),
}


def config_presets():
    from curio_jax import config

    return config.PRESETS


def _bad_out(kind: str, suffix: str, scratch) -> list[str]:
    suffix = suffix.replace("\x00", "").replace("/", "_")
    if kind == "empty":
        return ["--out="]
    if kind == "nul":
        return [f"--out={scratch / 'a'}\x00{suffix}"]
    a_file = scratch / "a_file"
    a_file.write_text("not a directory")
    if kind == "file":
        return [f"--out={a_file}"]
    if kind == "under_file":
        return [f"--out={a_file / ('x' + suffix)}"]
    foreign = scratch / "foreign"
    foreign.mkdir(exist_ok=True)
    (foreign / "notes.txt").write_text("keep me")
    if kind == "foreign_dir":  # exists, is not a run directory, no --resume/--overwrite
        return [f"--out={foreign}"]
    return ["--resume", f"--out={scratch / ('missing' + suffix)}"]  # nothing to resume


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bad=st.lists(st.sampled_from(sorted(_INVALID_TRAIN)), min_size=1, max_size=2, unique=True),
    data=st.data(),
)
def test_train_rejects_any_invalid_value_with_one_line(bad, data, tmp_path_factory, capsys):
    """Every `train` option with a random invalid value (one or two at a time, the others
    valid): exit 2, exactly one line on stderr, nothing on stdout, no traceback, no run
    directory created and nothing written."""
    scratch = tmp_path_factory.mktemp("fuzz")
    target = scratch / "run"
    opts = {
        "--preset": "notebook-a2c-5x5",
        "--num-envs": "4",
        "--total-frames": "128",
        "--log-every": "1",
        "--out": str(target),
    }
    extra: list[str] = []
    for name in bad:
        value = data.draw(_INVALID_TRAIN[name], label=name)
        if name == "--out":
            del opts["--out"]
            extra += _bad_out(*value, scratch)
        elif name == "flag-with-value":
            extra.append(f"{value[0]}={value[1]}")
        elif name == "resume+overwrite":
            extra += ["--resume", "--overwrite"]
        elif name == "unknown-option":
            extra.append(f"--x-{value}=1")
        else:
            opts[name] = value
    argv = ["train", *(f"{k}={v}" for k, v in opts.items()), *extra]
    before = {p: p.stat().st_mtime_ns for p in scratch.rglob("*")}
    code, out, err = run_cli(argv, capsys)
    assert code == 2, (argv, code, out, err)
    assert out == "", (argv, out)
    assert len(err.strip().splitlines()) == 1, (argv, err)
    assert "Traceback" not in err
    assert not target.exists()
    assert {p: p.stat().st_mtime_ns for p in scratch.rglob("*")} == before


@pytest.mark.parametrize(
    "argv, contains",
    [
        (["train", "--preset", "notebook-a2c-5x5", "--out", ""], "empty"),
        (["train", "--preset", "notebook-a2c-5x5", "--log-every", "0"], "positive integer"),
        (["train", "--preset", "notebook-a2c-5x5", "--keep-checkpoints", "-1"], "positive"),
        (["train", "--preset", "notebook-a2c-5x5", "--resume", "--overwrite"], "not allowed"),
        (["train", "--resume"], "--out"),
    ],
)
def test_train_usage_errors(argv, contains, capsys):
    assert_usage_error(argv, capsys, contains)


def test_train_resume_of_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert_usage_error(["train", "--resume", "--out", str(tmp_path)], capsys, "not a run directory")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("weird", ["a\x1eb", "a\nb", "a\rb", "a\x0bb", "a\u2028b"])
def test_error_messages_stay_one_line_with_control_characters(weird, tmp_path, capsys):
    """Found by the fuzz test: a path with a record separator (which str.splitlines treats as a
    line break) once split the one-line error in two."""
    missing = tmp_path / f"missing{weird}"
    assert_usage_error(["train", "--resume", "--out", str(missing)], capsys, "cannot resume")
