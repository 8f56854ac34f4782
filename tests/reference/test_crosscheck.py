"""`curio-jax crosscheck`: the quick run passes, and the checks do fail when something differs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("minigrid")

from curio_jax import cli  # noqa: E402
from curio_jax.analysis import evaluate as ev  # noqa: E402
from curio_jax.cli import eval as cli_eval  # noqa: E402
from curio_jax.reference import crosscheck as cc  # noqa: E402

torch.set_num_threads(1)


@pytest.mark.slow  # every group runs in the default suite on its own (test_ppo_parity, ...)
def test_crosscheck_quick_passes(capsys):
    code = cli.main(["crosscheck", "--quick"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    lines = [ln for ln in out.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert len(lines) == 11 and all(ln.startswith("PASS") for ln in lines), out
    names = " ".join(lines)
    groups = ("(a) env lockstep 16x16", "(b) network", "(c) update step rnd", "(d) eval")
    for group in (*groups, "(e) PPO update ppo ", "(e) PPO update ppo-rnd"):
        assert group in names
    assert "11/11 checks passed" in out
    # the measured numbers are printed, e.g. "max rel err logits 2.9e-07"
    assert "max rel err logits" in out and "steps" in out


def test_lockstep_reports_the_first_mismatch(monkeypatch):
    real = cc.replay

    where = {}

    def off_by_one_reward(env, layouts, actions):
        obs, rew, term, trunc, first = real(env, layouts, actions)
        rew = rew.copy()
        i, t = np.argwhere(term)[0]  # the first episode's step that reached the goal
        rew[i, t] += np.float32(1e-3)
        where["at"] = f"episode {i} step {t} "
        return obs, rew, term, trunc, first

    monkeypatch.setattr(cc, "replay", off_by_one_reward)
    r = cc.lockstep(5, n_random=2, n_scripted=3, seed=3)  # the quick run's shapes: no compile
    assert r.goals >= 3 and r.steps > 60
    assert r.mismatch is not None and "reward" in r.mismatch and where["at"] in r.mismatch


def test_backend_parity_reports_a_difference(monkeypatch):
    params = cc.random_actor_critic(seed=1)
    real = ev.run_minigrid

    def one_wrong_action(*args, **kwargs):
        eps = real(*args, **kwargs)
        eps.actions[0, 5] = (eps.actions[0, 5] + 1) % 7
        return eps

    monkeypatch.setattr(ev, "run_minigrid", one_wrong_action)
    r = cc.eval_backend_parity(params, 5, episodes=10, seed=0)  # the quick run's shapes
    assert r.difference is not None and "step 5" in r.difference


def test_failing_or_crashing_checks_give_exit_status_1(monkeypatch, capsys):
    def broken(quick):
        raise RuntimeError("simulated\nsecond line")

    monkeypatch.setattr(cc, "_lockstep_checks", lambda quick: [cc.Check("a", True, "ok")])
    monkeypatch.setattr(cc, "_network_check", broken)
    monkeypatch.setattr(cc, "_update_checks", lambda quick: [cc.Check("c", False, "2e-3")])
    monkeypatch.setattr(cc, "_backend_checks", lambda quick: [])
    monkeypatch.setattr(cc, "_ppo_checks", lambda quick: [])
    code = cli.main(["crosscheck", "--quick"])
    out = capsys.readouterr().out
    assert code == 1
    assert "PASS  a" in out and "FAIL  c" in out
    assert "FAIL  (b) network parity" in out and "RuntimeError: simulated" in out
    assert "second line" not in out and "Traceback" not in out
    assert "1/3 checks passed" in out


def test_missing_reference_extra_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(cli_eval, "missing_modules", lambda: ["torch"])
    code = cli.main(["crosscheck"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "curio_jax[reference]" in err


@pytest.mark.slow
def test_full_crosscheck_passes(capsys):
    """The full run (about 40k lockstep steps, all learner variants, three sizes of eval)."""
    code = cli.main(["crosscheck"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "13/13 checks passed" in out
