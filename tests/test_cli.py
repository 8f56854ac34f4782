"""The command line: bad input exits 2 with one line on stderr and no traceback."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curio_jax import cli


def run_cli(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(argv, capsys, contains=None):
    code, _, err = run_cli(argv, capsys)
    assert code == 2, (argv, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err
    if contains:
        assert contains in lines[0], lines[0]


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
        (["compare"], "RUN_DIR"),
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
        cli._config_from_args(args)
    except cli.UsageError as e:
        assert "\n" not in str(e)


def test_compare_writes_json(tmp_path, capsys):
    from test_compare import write_run

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
