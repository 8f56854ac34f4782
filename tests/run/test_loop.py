"""`curio-jax train` end to end: run directory contents, SIGKILL + --resume bit-identical to an
uninterrupted run, corrupt-checkpoint fallback, refusals that change nothing, the non-finite
stop; plus the host-loop helpers (progress line, finiteness check, metrics.csv truncation).

The training runs are subprocesses of one tiny config (notebook-a2c-5x5, 2 seeds x 4 envs,
24 updates in chunks of 4, a checkpoint every 2 chunks) sharing a persistent JAX compilation
cache, so only the first one compiles.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from curio_jax import cli
from curio_jax.core.metrics import averaged_names, metric_columns
from curio_jax.run import checkpoint as ckpt
from curio_jax.run.errors import NonFiniteError
from curio_jax.run.loop import check_finite
from curio_jax.run.rundir import DirLock, read_rows

SEEDS, ENVS, ROLLOUT, UPDATES, CHUNK = 2, 4, 16, 24, 4
FPU = ENVS * ROLLOUT


def train_args(updates: int = UPDATES, checkpoint_every: int = 2) -> list[str]:
    return [
        "--preset=notebook-a2c-5x5",
        f"--seeds={SEEDS}",
        f"--num-envs={ENVS}",
        f"--total-frames={updates * FPU}",
        f"--log-every={CHUNK}",
        f"--checkpoint-every={checkpoint_every}",
        "--keep-checkpoints=2",
        "--no-gif",
    ]


TRAIN_ARGS = train_args()
LOGGED = list(range(CHUNK, UPDATES + 1, CHUNK))  # 4, 8, ..., 24
HAS_TB = importlib.util.find_spec("tensorboardX") is not None


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def env():
    """The children's environment: the session's compilation cache (tests/conftest.py) comes
    with os.environ."""
    e = dict(os.environ)
    e.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    return e


def train(env, *args, timeout=240):
    cmd = [sys.executable, "-m", "curio_jax", "train", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


# A training child with hooks injected into the run loop (the product reads no test switches):
#   argv: MODE N train-arguments...; MODE "pause": after the chunk ending at update N is fully
#   written, print a marker and sleep (the test then kills it); "poison": set one parameter of
#   seed 0 to NaN at the end of the chunk ending at update N. Ctrl-C is handled as in a terminal:
#   a shell that starts a job in the background (CI started with `&`, nohup) passes SIGINT on as
#   ignored, and Python leaves it so, which would make the Ctrl-C test wait out the pause.
_CHILD = """
import signal, sys, time
import numpy as np
from curio_jax.cli import main
signal.signal(signal.SIGINT, signal.default_int_handler)
mode, n, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

class Pause:
    def on_chunk(self, chunk):
        if chunk.update == n:
            print(f"test hook: paused after update {n}", flush=True)
            time.sleep(300)

def poison(update, states):
    if update != n:
        return states
    import jax
    leaves, treedef = jax.tree_util.tree_flatten(states[0].params)
    leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].set(np.nan)
    return [states[0].replace(params=jax.tree_util.tree_unflatten(treedef, leaves))] + states[1:]

hooks = {"callbacks": [Pause()]} if mode == "pause" else {"state_hook": poison}
sys.exit(main(argv, **hooks))
"""


def hooked(mode: str, update: int, *args: str) -> list[str]:
    return [sys.executable, "-c", _CHILD, mode, str(update), *args]


def in_process(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, *capsys.readouterr()


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def state_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays = ckpt.read_arrays(path)
    arrays.pop(ckpt.META_KEY)
    return arrays


def assert_same_final_state(a: Path, b: Path) -> None:
    la, lb = ckpt.list_checkpoints(a / "checkpoints"), ckpt.list_checkpoints(b / "checkpoints")
    assert [u for u, _ in la] == [u for u, _ in lb]
    xa, xb = state_arrays(la[-1][1]), state_arrays(lb[-1][1])
    assert xa.keys() == xb.keys()
    for k in xa:
        assert xa[k].dtype == xb[k].dtype and xa[k].shape == xb[k].shape, k
        assert xa[k].tobytes() == xb[k].tobytes(), k


def per_seed(run: Path) -> list:
    return json.loads((run / "summary.json").read_text())["seeds"]


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def read_events(directory: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in the TFRecord event files of a directory."""
    from tensorboardX.proto import event_pb2

    out = []
    for f in sorted(directory.glob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
    return out


@pytest.fixture(scope="module")
def full_run(env, tmp_path_factory):
    """The uninterrupted reference run."""
    out = tmp_path_factory.mktemp("runs") / "full"
    r = train(env, *TRAIN_ARGS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r.stdout


# --------------------------------------------------------------------------- end to end


def test_train_writes_the_run_directory(full_run):
    out, stdout = full_run
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["name"] == "notebook-a2c-5x5" and cfg["train"]["num_envs"] == ENVS
    assert cfg["total_frames"] == UPDATES * FPU and cfg["log_every"] == CHUNK
    run = json.loads((out / "run.json").read_text())
    assert (run["seeds"], run["seed"], run["chunk_updates"]) == (SEEDS, 0, CHUNK)

    rows = read_rows(out / "metrics.csv")
    assert tuple(rows[0]) == metric_columns()
    assert [(int(r["update"]), int(r["seed"])) for r in rows] == [
        (u, s) for u in LOGGED for s in range(SEEDS)
    ]
    assert all(int(r["frames"]) == int(r["update"]) * FPU for r in rows)
    last = [r for r in rows if int(r["update"]) == UPDATES]
    assert all(int(r["episodes"]) > 0 for r in last)  # 5x5 episodes end within 250 steps

    summary = json.loads((out / "summary.json").read_text())
    for field in ("frames", "seconds", "frames_per_sec", "compile_seconds"):
        assert isinstance(summary[field], (int, float)) and summary[field] > 0, field
    assert summary["frames"] == SEEDS * UPDATES * FPU and summary["segments"] == 1
    assert summary["micro_batch"] == FPU  # small batch: one pass (automatic on CPU)
    assert [s["seed"] for s in summary["seeds"]] == list(range(SEEDS))
    for s, rec in enumerate(summary["seeds"]):
        final = float(next(r for r in last if int(r["seed"]) == s)["avg_return_last100"])
        assert rec["final_avg_return_last100"] == pytest.approx(final)
        assert rec["frames_to_solve"] is None or rec["frames_to_solve"] % FPU == 0

    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")] == [16, 24]  # keep 2

    progress = [line for line in stdout.splitlines() if "frames/s" in line and "ETA" in line]
    assert len(progress) == len(LOGGED)  # not a TTY: one plain line per chunk
    assert "avg score" in progress[-1] and "r_int" in progress[-1] and "1,536/1,536" in progress[-1]
    assert sum("checkpoint" in line for line in progress) == 3
    if HAS_TB:
        events = read_events(out / "tb" / "seed_1")
        tags = {t for t, _, _ in events}
        assert "episode/avg_return_last100" in tags and "loss/policy" in tags
        assert not any(t.startswith("rnd/") for t in tags)  # plain A2C
        steps = sorted({s for t, s, _ in events if t == "loss/policy"})
        assert steps == [u * FPU for u in LOGGED]
        value = next(v for t, s, v in events if t == "loss/policy" and s == UPDATES * FPU)
        row = next(r for r in last if r["seed"] == "1")
        assert value == pytest.approx(float(row["loss_policy"]), rel=1e-6)
    else:
        assert "TensorBoard logging off" in stdout and not (out / "tb").exists()


class Paused:
    """A training subprocess held by the pause hook right after update `update` was written."""

    def __init__(self, env, out: Path, update: int):
        cmd = hooked("pause", update, "train", *TRAIN_ARGS, "--out", str(out))
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        marker = f"test hook: paused after update {update}"
        deadline = time.monotonic() + 240
        for line in self.proc.stdout:
            self.lines.append(line)
            if marker in line or time.monotonic() > deadline:
                break
        if not any(marker in x for x in self.lines):
            self.stop()
            pytest.fail("the run did not reach the pause:\n" + "".join(self.lines))

    def signal(self, sig: int) -> str:
        """Send `sig`, wait for the process; its remaining output."""
        self.proc.send_signal(sig)
        rest = self.proc.stdout.read()
        self.proc.wait(timeout=60)
        return rest

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def test_sigkill_then_resume_is_bit_identical(env, full_run, tmp_path):
    full, _ = full_run
    out = tmp_path / "killed"
    paused = Paused(env, out, 12)
    try:
        paused.signal(signal.SIGKILL)
    finally:
        paused.stop()
    proc = paused.proc
    assert proc.returncode == -signal.SIGKILL
    # mid-run state: a checkpoint at 8, rows written past it, no summary
    assert [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")] == [8]
    assert max(int(r["update"]) for r in read_rows(out / "metrics.csv")) == 12
    assert not (out / "summary.json").exists()

    r = train(env, "--resume", "--out", str(out))  # options come from the saved run
    assert r.returncode == 0, r.stderr
    assert "resuming from ckpt_000000008.npz (update 8/24)" in r.stdout
    assert_same_final_state(full, out)
    assert (out / "metrics.csv").read_bytes() == (full / "metrics.csv").read_bytes()
    assert per_seed(out) == per_seed(full)
    assert json.loads((out / "summary.json").read_text())["segments"] == 2


def test_ctrl_c_says_where_to_resume(env, tmp_path):
    out = tmp_path / "interrupted"
    paused = Paused(env, out, 8)
    try:
        rest = paused.signal(signal.SIGINT)
    finally:
        paused.stop()
    assert paused.proc.returncode == 130
    assert "interrupted at update 8; the last good state is checkpoint update 8" in rest
    assert f"curio-jax train --resume --out {out}" in rest
    assert [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")] == [8]


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_corrupt_newest_checkpoint_falls_back_and_is_kept(env, full_run, tmp_path):
    full, _ = full_run
    out = copy_run(full, tmp_path / "corrupt")
    newest = out / "checkpoints" / "ckpt_000000024.npz"
    flip_byte(newest)
    damaged = newest.read_bytes()
    r = train(env, "--resume", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert (
        "ckpt_000000024.npz.corrupt" in r.stdout and "fell back to ckpt_000000016.npz" in r.stdout
    )
    assert (out / "checkpoints" / "ckpt_000000024.npz.corrupt").read_bytes() == damaged
    assert_same_final_state(full, out)  # updates 17..24 recomputed identically
    assert (out / "metrics.csv").read_bytes() == (full / "metrics.csv").read_bytes()
    assert per_seed(out) == per_seed(full)


def test_no_readable_checkpoint_refuses_and_changes_nothing(env, full_run, tmp_path):
    full, _ = full_run
    out = copy_run(full, tmp_path / "all_corrupt")
    for _, p in ckpt.list_checkpoints(out / "checkpoints"):
        flip_byte(p)
    before = snapshot(out)
    r = train(env, "--resume", "--out", str(out))
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "none of the 2 checkpoint(s)" in err[0], r.stderr
    assert "Traceback" not in r.stderr
    after = snapshot(out)
    after.pop(".lock", None)
    assert after == before


def test_resuming_a_finished_run_only_rewrites_summary_and_plot(env, full_run, tmp_path):
    full, _ = full_run
    out = copy_run(full, tmp_path / "done")
    (out / "summary.json").unlink()
    (out / "curves.png").unlink()
    before = snapshot(out)
    r = train(env, "--resume", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "frames/s |" not in r.stdout  # no chunk ran
    after = snapshot(out)
    assert {k: after[k] for k in before} == before
    old, new = (json.loads((d / "summary.json").read_text()) for d in (full, out))
    for field in ("seeds", "frames", "seconds", "frames_per_sec", "compile_seconds", "segments"):
        assert new[field] == old[field], field
    assert (out / "curves.png").is_file()


def test_overwrite_replaces_an_existing_run(env, full_run, tmp_path):
    full, _ = full_run
    out = copy_run(full, tmp_path / "again")
    r = train(env, *train_args(updates=8, checkpoint_every=1), "--overwrite", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert [u for u, _ in ckpt.list_checkpoints(out / "checkpoints")] == [4, 8]
    assert json.loads((out / "summary.json").read_text())["frames_per_seed"] == 8 * FPU
    assert max(int(r["update"]) for r in read_rows(out / "metrics.csv")) == 8


def test_non_finite_parameter_stops_with_exit_1_and_keeps_the_good_checkpoint(env, tmp_path):
    out = tmp_path / "nan"
    cmd = hooked("poison", 12, "train", *TRAIN_ARGS, "--out", str(out))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "non-finite parameter params.ac[" in err[0] and "after update 12 (seed 0)" in err[0]
    assert "checkpoint update 8" in err[0]
    ckpts = ckpt.list_checkpoints(out / "checkpoints")
    assert [u for u, _ in ckpts] == [8]
    arrays = state_arrays(ckpts[-1][1])
    np.testing.assert_array_equal(arrays[".update"], [8] * SEEDS)
    params = [v for k, v in arrays.items() if k.startswith(".params.")]
    assert params and all(np.isfinite(v).all() for v in params)
    assert max(int(r["update"]) for r in read_rows(out / "metrics.csv")) == 8
    assert not (out / "summary.json").exists()


def test_config_mismatch_on_resume_names_the_fields(full_run, capsys):
    full, _ = full_run
    before = snapshot(full)
    argv = ["train", "--resume", "--out", str(full), "--preset", "notebook-a2c-5x5"]
    code, out, err = in_process([*argv, "--num-envs", "8", "--seeds", "3"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    for field in ("train.num_envs", "total_frames", "log_every", "run.seeds"):
        assert field in err
    assert "train.num_envs (saved 4, given 8)" in err
    code, _, err = in_process(
        ["train", "--resume", "--out", str(full), "--total-frames", str(48 * FPU)], capsys
    )
    assert code == 2 and "total_frames (saved 1536, given 3072)" in err
    assert "seeds" not in err.split("differs")[1]  # unspecified options default to the saved
    assert snapshot(full) == before


@pytest.mark.slow  # the default suite keeps a lighter sibling (README: the slow suite)
def test_extend_trains_a_finished_run_on_as_a_longer_run(env, full_run, tmp_path, capsys):
    """A run whose budget (22 updates) is not a whole number of chunks, extended to 24: it
    gets back on the chunk grid and ends bit-identical to the run started with 24 updates
    (one more metrics row, at its old end); its old summary is kept."""
    full, _ = full_run
    out = tmp_path / "short"
    r = train(env, *train_args(updates=22), "--out", str(out))
    assert r.returncode == 0, r.stderr
    old_summary = (out / "summary.json").read_text()
    before = snapshot(out)
    argv = ["train", "--resume", "--out", str(out)]
    # without --extend a larger budget is refused as before, with the hint; a smaller one too
    code, _, err = in_process([*argv, f"--total-frames={UPDATES * FPU}"], capsys)
    assert code == 2 and "add --extend" in err
    code, _, err = in_process([*argv, f"--total-frames={20 * FPU}", "--extend"], capsys)
    assert code == 2 and "--extend needs a --total-frames above the saved budget (1408" in err
    code, _, err = in_process([*argv, "--extend"], capsys)
    assert code == 2 and "it needs --resume and the new --total-frames" in err
    assert snapshot(out) == before

    r = train(env, "--resume", "--out", str(out), f"--total-frames={UPDATES * FPU}", "--extend")
    assert r.returncode == 0, r.stderr
    (u_full, last_full), (u_out, last_out) = (
        ckpt.list_checkpoints(d / "checkpoints")[-1] for d in (full, out)
    )
    xa, xb = state_arrays(last_full), state_arrays(last_out)
    assert u_full == u_out == UPDATES and xa.keys() == xb.keys()
    assert all(xa[k].tobytes() == xb[k].tobytes() for k in xa)
    rows = [r for r in read_rows(out / "metrics.csv") if int(r["update"]) != 22]
    want = read_rows(full / "metrics.csv")
    assert [r for r in rows if r["update"] != "24"] == [r for r in want if r["update"] != "24"]
    # the row at 24 is the end of a 2-update chunk (23-24) there, of a 4-update one (21-24)
    # here: its per-update means differ, what it reads at update 24 does not
    same = [c for c in metric_columns() if c not in averaged_names()]
    assert [[r[c] for c in same] for r in rows if r["update"] == "24"] == [
        [r[c] for c in same] for r in want if r["update"] == "24"
    ]
    assert per_seed(out) == per_seed(full)
    assert (out / "summary_1408.json").read_text() == old_summary
    assert json.loads((out / "config.json").read_text())["total_frames"] == UPDATES * FPU
    run = json.loads((out / "run.json").read_text())
    assert run["extended"] == [{"from_total_frames": 1408, "to_total_frames": UPDATES * FPU}]


def test_existing_directory_is_never_overwritten_without_the_flag(full_run, tmp_path, capsys):
    full, _ = full_run
    before = snapshot(full)
    code, out, err = in_process(["train", *TRAIN_ARGS, "--out", str(full)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--resume" in err and "--overwrite" in err
    assert snapshot(full) == before
    other = tmp_path / "not_a_run"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    code, _, err = in_process(["train", *TRAIN_ARGS, "--out", str(other), "--overwrite"], capsys)
    assert code == 2 and "does not look like a run directory" in err
    assert (other / "thesis.tex").read_text() == "precious"


def test_a_run_directory_in_use_is_refused(full_run, capsys):
    full, _ = full_run
    lock = DirLock(full)
    try:
        code, _, err = in_process(["train", "--resume", "--out", str(full)], capsys)
    finally:
        lock.release()
    assert code == 2 and "in use by another process" in err


# --------------------------------------------------------------------------- finiteness


def _metrics(n=3, seeds=2):
    return SimpleNamespace(**{t: np.zeros((seeds, n), np.float32) for t in averaged_names()})


def test_check_finite_names_the_first_bad_update_term_and_seed():
    params = {"w": np.ones((2, 3), np.float32)}
    check_finite(_metrics(), params, first_update=10)  # all finite: no error
    m = _metrics()
    m.loss_policy[1, 2] = np.nan
    m.grad_norm_ac[0, 1] = np.inf
    with pytest.raises(NonFiniteError, match=r"grad_norm_ac \(inf\) at update 12 \(seed 0\)"):
        check_finite(m, params, first_update=10)
    bad = {"a": np.ones((2, 2), np.float32), "w": np.ones((2, 3), np.float32)}
    bad["w"][1, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"params\['w'\] after update 13 \(seed 1\)"):
        check_finite(_metrics(), bad, first_update=10)
