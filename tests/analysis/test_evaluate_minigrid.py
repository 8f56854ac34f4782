"""Evaluation against gymnasium MiniGrid and the PyTorch reference (the reference extra).

The central check: a PyTorch model trained a few updates by the reference, saved in the
notebook's checkpoint format and converted, plays identical episodes (actions, rewards,
lengths) in the JAX backend and in gymnasium MiniGrid when both start from the same layouts and
sample actions from the same uniforms; frames drawn by curio_jax match MiniGrid's own render.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("minigrid")

from helpers import run_cli  # noqa: E402

from curio_jax import config  # noqa: E402
from curio_jax.analysis import evaluate as ev  # noqa: E402
from curio_jax.analysis import render  # noqa: E402
from curio_jax.envs import make_doorkey  # noqa: E402
from curio_jax.envs import minigrid_bridge as mb  # noqa: E402
from curio_jax.run import convert  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained_pth(tmp_path_factory):
    """(path, agent): an A2C+RND reference agent trained 4 updates on DoorKey-5x5 (4 envs),
    saved as the notebook saves it: {"a2c_params": ..., "rnd_params": ...} state dicts."""
    from curio_jax.reference import init_random, make_agent, make_minigrid_env
    from curio_jax.reference.train import train_loop

    cfg = config.preset("notebook-rnd-5x5").with_overrides({"train.num_envs": 4})
    env = make_minigrid_env(5, 4)
    try:
        init_random(env, 3)
        agent = make_agent(cfg, env)
        before = {k: v.clone() for k, v in agent.model.state_dict().items()}
        res = train_loop(
            env, agent, rollout_size=16, log_every=2, solved_score=2.0, max_updates=4, log=None
        )
    finally:
        env.close()
    assert res.updates == 4
    after = agent.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it did learn something
    path = tmp_path_factory.mktemp("weights") / "doorkey.pth"
    torch.save({"a2c_params": after, "rnd_params": agent.rnd_module.state_dict()}, path)
    return path, agent


def test_reference_model_plays_identical_episodes_in_both_backends(trained_pth):
    path, agent = trained_pth
    loaded = ev.load_torch_params(path)
    # the conversion is the reference's own weights
    want = convert.actor_critic_to_flax({k: v.numpy() for k, v in agent.model.state_dict().items()})
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    params, size = loaded.params, 5
    # 8 layouts from curio_jax's reset, 8 from MiniGrid's, one uniform stream per batch
    u_a, u_b = ev.uniform_stream(11, 8, size), ev.uniform_stream(12, 8, size)
    lay_a = ev.sample_layouts(11, 8, size)
    mg_b = ev.run_minigrid(params, size, u_b, seed=12)
    pairs = [
        (ev.run_jax(params, lay_a, u_a), ev.run_minigrid(params, size, u_a, layouts=lay_a)),
        (ev.run_jax(params, mg_b.layouts, u_b), mg_b),
    ]
    goals = steps = 0
    for jx, mg in pairs:
        assert ev.first_difference(jx, mg) is None
        np.testing.assert_array_equal(jx.lengths, mg.lengths)
        np.testing.assert_array_equal(jx.actions, mg.actions)
        np.testing.assert_array_equal(jx.rewards, mg.rewards)
        np.testing.assert_array_equal(jx.terminated, mg.terminated)
        np.testing.assert_array_equal(jx.truncated, mg.truncated)
        assert np.all(jx.terminated ^ jx.truncated)  # every episode ended exactly one way
        goals += int(mg.terminated.sum())
        steps += int(mg.lengths.sum())
    assert goals >= 1, "the batches must include a goal (rewards > 0) to compare"
    assert steps >= 2000
    # the comparison can fail: other uniforms -> other episodes
    other = ev.run_jax(params, lay_a, ev.uniform_stream(13, 8, size))
    assert ev.first_difference(other, pairs[0][1]) is not None


def test_evaluate_metrics_and_validation(trained_pth):
    params = ev.load_torch_params(trained_pth[0]).params
    metrics, eps = ev.evaluate(params, 5, episodes=6, backend="jax", seed=4)
    assert set(metrics) == {"episodes", "success_rate", "mean_return", "mean_length", "backend"}
    assert metrics["episodes"] == 6 and metrics["backend"] == "jax"
    assert metrics["success_rate"] == pytest.approx(np.mean(eps.terminated))
    assert metrics["mean_length"] == pytest.approx(np.mean(eps.lengths))
    assert metrics["mean_return"] == pytest.approx(np.mean(eps.rewards.sum(1)))
    assert 1 <= metrics["mean_length"] <= 250
    # padding after the end: action -1, reward 0; every step before it is a real action
    for i, n in enumerate(eps.lengths):
        assert np.all(eps.actions[i, n:] == -1) and np.all(eps.rewards[i, n:] == 0)
        assert np.all((eps.actions[i, :n] >= 0) & (eps.actions[i, :n] < 7))
    again, _ = ev.evaluate(params, 5, episodes=6, backend="jax", seed=4)
    assert again == metrics  # same seed, same numbers
    with pytest.raises(ValueError, match="backend"):
        ev.evaluate(params, 5, backend="torch")
    with pytest.raises(ValueError, match="size"):
        ev.evaluate(params, 4)
    with pytest.raises(ValueError, match="episodes"):
        ev.evaluate(params, 5, episodes=0)
    with pytest.raises(ValueError, match="uniforms"):
        ev.run_jax(params, eps.layouts, np.full((6, 250), 1.0, np.float32))
    with pytest.raises(ev.ParamsError, match="actions"):
        bad = jax.tree.map(np.asarray, params)
        bad["policy_out"] = {"kernel": np.zeros((64, 5), np.float32), "bias": np.zeros(5)}
        ev.actor_critic_for(bad)


def test_eval_cli_writes_json_and_gif(trained_pth, tmp_path, capsys, pil_image):
    out_json, out_gif = tmp_path / "m.json", tmp_path / "ep.gif"
    argv = ["eval", "--torch-weights", str(trained_pth[0]), "--size", "5", "--episodes", "6"]
    argv += ["--seed", "2", "--json", str(out_json), "--gif", str(out_gif)]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    metrics = json.loads(out_json.read_text())
    assert set(metrics) >= {"episodes", "success_rate", "mean_return", "mean_length", "backend"}
    assert metrics["episodes"] == 6 and metrics["backend"] == "jax" and metrics["size"] == 5
    want, eps = ev.evaluate(ev.load_torch_params(trained_pth[0]).params, 5, 6, seed=2)
    for k, v in want.items():
        assert metrics[k] == v
    assert "success rate" in out
    with pil_image.open(out_gif) as im:
        assert im.format == "GIF" and im.n_frames >= 2 and im.size == (160, 160)
        first = np.asarray(im.convert("RGB"))
    start = render.render_frame(make_doorkey(5).reset_to(eps.layouts[0]))
    assert np.abs(first.astype(int) - start).mean() < 1.0


def test_eval_cli_run_directory_minigrid_backend(run_dir, tmp_path, capsys):
    out_json = tmp_path / "m.json"
    argv = ["eval", "--checkpoint", str(run_dir[0]), "--size", "6", "--episodes", "2"]
    argv += ["--seed-index", "1", "--backend", "minigrid", "--json", str(out_json)]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    metrics = json.loads(out_json.read_text())
    assert metrics["backend"] == "minigrid" and metrics["episodes"] == 2
    assert 1 <= metrics["mean_length"] <= 360
    assert "seed 1 of 2" in out


def _bad_pth(tmp_path, kind):
    p = tmp_path / f"{kind}.pth"
    if kind == "garbage":
        p.write_bytes(b"\x00 definitely not a checkpoint")
    elif kind == "five_actions":
        from curio_jax.reference import ActorCritic

        torch.save({"a2c_params": ActorCritic(action_dim=5).state_dict()}, p)
    elif kind == "missing_key":
        from curio_jax.reference import ActorCritic

        sd = ActorCritic().state_dict()
        del sd["policy_head.2.bias"]
        torch.save({"a2c_params": sd}, p)
    return p


@pytest.mark.parametrize(
    "argv, contains",
    [
        (["eval", "--torch-weights", "W", "--size", "4"], ">= 5"),
        (["eval", "--torch-weights", "W", "--size", "5", "--episodes", "0"], "positive"),
        (["eval", "--size", "5"], "--checkpoint --torch-weights"),
        (["eval", "--torch-weights", "W", "--checkpoint", "D", "--size", "5"], "not allowed"),
        (["eval", "--torch-weights", "W", "--size", "5", "--backend", "torch"], "invalid choice"),
        (["eval", "--torch-weights", "W", "--size", "5", "--seed-index", "1"], "--seed-index"),
        (["eval", "--torch-weights", "NOPE", "--size", "5"], "no such file"),
        (["eval", "--torch-weights", "garbage", "--size", "5"], "not a PyTorch checkpoint"),
        (["eval", "--torch-weights", "five_actions", "--size", "5"], "5 actions"),
        (["eval", "--torch-weights", "missing_key", "--size", "5"], "policy_head.2.bias"),
        (["eval", "--checkpoint", "D", "--size", "5"], "no config.json"),
        (["eval", "--checkpoint", "RUN", "--size", "5", "--seed-index", "7"], "out of range"),
    ],
)
def test_eval_cli_bad_input_exits_2_with_one_line(
    argv, contains, tmp_path, run_dir, trained_pth, capsys
):
    w = trained_pth[0]
    subst = {"W": str(w), "D": str(tmp_path), "RUN": str(run_dir[0]), "NOPE": str(tmp_path / "x")}
    for kind in ("garbage", "five_actions", "missing_key"):
        if kind in argv:
            subst[kind] = str(_bad_pth(tmp_path, kind))
    code, _, err = run_cli([subst.get(a, a) for a in argv], capsys)
    assert code == 2, (argv, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert contains in lines[0], lines[0]


def _scripted_frames(size: int, seed: int):
    """(curio_jax frames, MiniGrid frames, layout) of a scripted episode that picks up the key,
    unlocks, closes and reopens the door, drops and re-picks the key and reaches the goal."""
    from curio_jax.reference.crosscheck import ScriptedEpisode

    mg = mb.make_minigrid_doorkey(size, render_mode="rgb_array")
    mg.reset(seed=seed)
    layout = mb.minigrid_layout(mg)
    ref = [mg.render()]
    ep = ScriptedEpisode(mg)
    step = ep.env.step

    def recording_step(a):
        out = step(a)
        ref.append(mg.render())
        return out

    ep.env.step = recording_step
    ep.run(np.random.default_rng(seed))
    mg.close()
    assert ep.terminated[-1]
    ours = render.episode_frames(layout, ep.actions, tile_size=32, mark_carrying=False)
    return ours, ref, layout


@pytest.mark.parametrize("size, seed", [(5, 3), (8, 1)])
def test_frames_match_minigrid_render(size, seed):
    """Pixel-identical to MiniGrid's own render (rgb_array, highlight on) on every frame of a
    scripted episode, except inside the locked door (our keyhole is drawn differently)."""
    ours, ref, layout = _scripted_frames(size, seed)
    assert len(ours) == len(ref) >= 20
    t = 32
    door = (
        slice(layout.door_y * t, (layout.door_y + 1) * t),
        slice(layout.wall_x * t, (layout.wall_x + 1) * t),
    )
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert a.shape == b.shape == (size * t, size * t, 3)
        diff = np.any(a != b, axis=-1)
        diff[door] = False
        assert not diff.any(), f"frame {i}: {int(diff.sum())} pixels differ outside the door"
