"""Helpers shared by several test modules: running the CLI in-process and counting traces."""

from __future__ import annotations

from typing import Any

from curio_jax import cli


def run_cli(argv, capsys, **hooks):
    """`curio-jax ARGV` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(argv, **hooks)
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(argv, capsys, contains=None):
    """ARGV exits 2 with one line on stderr, no traceback, containing `contains`."""
    code, _, err = run_cli(argv, capsys)
    assert code == 2, (argv, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err
    if contains:
        assert contains in lines[0], lines[0]


def count_update_traces(train: Any) -> dict[str, int]:
    """Wrap ``train.update`` (on this instance) so every trace through it is counted in the
    returned dict's ``"n"``: ``run_chunk`` calls ``self.update`` once per trace of its scan
    body, so the count is the number of times XLA saw a new update program."""
    count = {"n": 0}
    original = train.update

    def counting(state):
        count["n"] += 1
        return original(state)

    train.update = counting
    return count
