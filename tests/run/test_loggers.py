"""The loggers and the progress line of the run loop (curio_jax.run.loggers)."""

from __future__ import annotations

import io

from curio_jax.run.loggers import Progress, progress_line


def test_progress_rewrites_one_line_on_a_terminal_and_prints_lines_otherwise():
    tty = io.StringIO()
    p = Progress(tty, tty=True)
    p.update("a")
    p.update("b")
    p.info("note")
    p.update("c")
    p.end()
    assert tty.getvalue() == "\ra\x1b[K\rb\x1b[K\nnote\n\rc\x1b[K\n"
    plain = io.StringIO()
    p = Progress(plain, tty=False)
    p.update("a")
    p.info("note")
    p.update("b")
    p.end()
    assert plain.getvalue() == "a\nnote\nb\n"


def test_progress_line_shows_frames_speed_score_reward_and_eta():
    line = progress_line(
        update=50,
        total=100,
        frames_per_update=1000,
        frames_per_sec=2500.0,
        score=0.25,
        reward_int=1.5e-3,
        eta_seconds=3725,
        checkpointed=True,
    )
    assert line == (
        "[ 50.0%] frames 50,000/100,000 | 2,500 frames/s | ETA 1h02m | avg score 0.250 | r_int"
        " 1.50e-03 | update 50/100 | checkpoint"
    )
    assert "avg score n/a" in progress_line(1, 2, 1, 1.0, float("nan"), 0.0, 5)
