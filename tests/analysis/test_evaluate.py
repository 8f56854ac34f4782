"""Evaluation (curio_jax.analysis.evaluate), frames and GIFs (curio_jax.analysis.render) and
`curio-jax eval`.

The central check: a PyTorch model trained a few updates by the reference, saved in the seed's
checkpoint format and converted, plays identical episodes (actions, rewards, lengths) in the
JAX backend and in gymnasium MiniGrid when both start from the same layouts and sample actions
from the same uniforms.
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
from curio_jax.core.train import make_train  # noqa: E402
from curio_jax.envs import DoorKeyLayout, make_doorkey  # noqa: E402
from curio_jax.envs import minigrid_bridge as mb  # noqa: E402
from curio_jax.run import checkpoint as ckpt  # noqa: E402
from curio_jax.run import convert  # noqa: E402

torch.set_num_threads(1)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trained_pth(tmp_path_factory):
    """(path, agent): an A2C+RND reference agent trained 4 updates on DoorKey-5x5 (4 envs),
    saved as the seed saves it: {"a2c_params": ..., "rnd_params": ...} state dicts."""
    from curio_jax.reference import init_random, make_agent, make_minigrid_env
    from curio_jax.reference.train import train_loop

    cfg = config.preset("notebook-rnd-5x5").with_overrides({"a2c.num_envs": 4})
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


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """(run dir, state): a `curio-jax train`-style run directory with 2 seeds and one
    checkpoint (the initial learner state; loading does not care how far it trained)."""
    cfg = config.preset("notebook-a2c-5x5").with_overrides({"a2c.num_envs": 2, "total_frames": 32})
    train = make_train(cfg)
    state = jax.jit(jax.vmap(train.init))(jax.random.split(jax.random.key(5), 2))
    d = tmp_path_factory.mktemp("run") / "a2c-run"
    d.mkdir()
    (d / "config.json").write_text(cfg.to_json())
    (d / "run.json").write_text(json.dumps({"seeds": 2, "seed": 5, "chunk_updates": 100}))
    ckpt.save(d / "checkpoints", 1, state)
    return d, state


@pytest.fixture
def pil_image():
    """PIL.Image (pillow is optional: the GIF tests skip without it)."""
    return pytest.importorskip("PIL.Image")


# --------------------------------------------------------------------------- sampling


def test_sample_actions_is_the_inverse_cdf_of_the_softmax():
    probs = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    logits = jax.numpy.asarray(np.log(probs))
    u = jax.numpy.asarray([0.0, 0.05, 0.11, 0.29, 0.31, 0.59, 0.61, 0.999])
    got = ev.sample_actions(jax.numpy.broadcast_to(logits, (8, 4)), u)
    assert got.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # uniform input -> the softmax distribution (200k draws: +-0.004 is > 5 standard errors)
    uu = jax.random.uniform(jax.random.key(0), (200_000,))
    draws = np.asarray(ev.sample_actions(jax.numpy.broadcast_to(logits, (200_000, 4)), uu))
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=0.004)


# --------------------------------------------------------------------------- backends


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


# --------------------------------------------------------------------------- run directories


def test_run_directory_params_by_seed_index(run_dir):
    d, state = run_dir
    for source in (d, d / "checkpoints", d / "checkpoints" / "ckpt_000000001.npz"):
        loaded = ev.load_run_params(source, seed_index=1)
        want = jax.tree.map(lambda x: np.asarray(x[1]), state.params.ac)
        for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(want), strict=True):
            np.testing.assert_array_equal(a, b)
        assert "seed 1 of 2" in loaded.description
    with pytest.raises(ev.ParamsError, match="out of range: the run has 2 seed"):
        ev.load_run_params(d, seed_index=2)


def test_run_directory_problems_are_one_line_errors(run_dir, tmp_path):
    d, _ = run_dir
    # a config that does not fit the checkpoint
    bad = tmp_path / "bad"
    (bad / "checkpoints").mkdir(parents=True)
    cfg = json.loads((d / "config.json").read_text())
    cfg["a2c"]["hidden_dim"] = 32
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "checkpoints" / "ckpt_000000001.npz").write_bytes(
        (d / "checkpoints" / "ckpt_000000001.npz").read_bytes()
    )
    with pytest.raises(ev.ParamsError, match="does not match") as info:
        ev.load_run_params(bad)
    assert "hidden" in str(info.value) or "policy_hidden" in str(info.value)
    assert "\n" not in str(info.value)
    # a corrupt newer checkpoint is skipped with a warning (read-only: nothing renamed)
    (bad / "config.json").write_text((d / "config.json").read_text())
    corrupt = bad / "checkpoints" / "ckpt_000000002.npz"
    corrupt.write_bytes(b"not a zip file")
    warnings = []
    loaded = ev.load_run_params(bad, warn=warnings.append)
    assert "ckpt_000000001.npz" in loaded.description and len(warnings) == 1
    assert corrupt.exists()
    with pytest.raises(ev.ParamsError, match="no config.json"):
        ev.load_run_params(tmp_path)
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    (tmp_path / "empty" / "config.json").write_text((d / "config.json").read_text())
    with pytest.raises(ev.ParamsError, match="no checkpoint"):
        ev.load_run_params(tmp_path / "empty")


# --------------------------------------------------------------------------- command line


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


# --------------------------------------------------------------------------- frames


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


def test_agent_points_in_its_direction_and_door_states_differ():
    env = make_doorkey(5)
    centres = {}
    for d in range(4):
        lay = DoorKeyLayout(
            size=5, wall_x=2, door_y=2, agent_x=1, agent_y=2, agent_dir=d, key_x=1, key_y=3
        )
        img = render.render_frame(env.reset_to(lay), tile_size=32, highlight=False)
        cell = img[64:96, 32:64].astype(int)
        red = (cell[..., 0] > 200) & (cell[..., 1] < 80) & (cell[..., 2] < 80)
        ys, xs = np.nonzero(red)
        assert red.sum() > 100
        centres[d] = (xs.mean() - 15.5, ys.mean() - 15.5)  # centroid offset from the centre
    # the triangle's mass sits towards its base: its tip points the other way
    tips = {d: (-cx, -cy) for d, (cx, cy) in centres.items()}
    assert tips[0][0] > 2 and abs(tips[0][1]) < 1  # east: +x
    assert tips[1][1] > 2 and abs(tips[1][0]) < 1  # south: +y (image rows grow downwards)
    assert tips[2][0] < -2 and abs(tips[2][1]) < 1  # west
    assert tips[3][1] < -2 and abs(tips[3][0]) < 1  # north
    tiles = [render._tile(f"door_{s}", 32, False, -1, False) for s in ("open", "closed", "locked")]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(tiles[i].astype(int) - tiles[j]).mean() > 10


# --------------------------------------------------------------------------- GIFs and grids


def test_save_gif_roundtrip_and_bad_input(tmp_path, pil_image):
    frames = [np.full((16, 24, 3), v, np.uint8) for v in (0, 80, 160, 240)]
    frames[2][4:8, 4:8] = (255, 0, 0)
    path = tmp_path / "a.gif"
    render.save_gif(frames, path, fps=5)
    with pil_image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 4 and im.info["duration"] == 200
        for i, f in enumerate(frames):
            im.seek(i)
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), f)
    with pytest.raises(ValueError, match="no frames"):
        render.save_gif([], path)
    with pytest.raises(ValueError, match="differs"):
        render.save_gif([frames[0], np.zeros((8, 8, 3), np.uint8)], path)
    with pytest.raises(ValueError, match="fps"):
        render.save_gif(frames, path, fps=0)
    with pytest.raises(ValueError, match="uint8"):
        render.save_gif([np.zeros((8, 8), np.float32)], path)


def test_grid_frames_layout_hold_and_borders():
    a = [np.full((10, 12, 3), v, np.uint8) for v in (10, 20, 30)]
    b = [np.full((10, 12, 3), 200, np.uint8)]
    c = [np.full((10, 12, 3), v, np.uint8) for v in (50, 60)]
    out = render.grid_frames([a, b, c], cols=2, gap=4, borders=[None, (0, 255, 0), (255, 0, 0)])
    assert len(out) == 3
    assert out[0].shape == (2 * 14 + 4, 2 * 16 + 4, 3)
    last = out[-1]
    assert np.all(last[4:14, 4:16] == 30)  # episode a at its last frame
    assert np.all(last[4:14, 20:32] == 200)  # episode b held
    assert np.all(last[18:28, 4:16] == 60)  # episode c held (second row)
    assert tuple(last[3, 25]) == (0, 255, 0)  # b's border (ended from the start)
    assert tuple(out[0][17, 10]) == (255, 255, 255)  # c has not ended at t=0: no border
    assert tuple(out[1][17, 10]) == (255, 0, 0)  # ... and has at t=1
    with pytest.raises(ValueError, match="borders"):
        render.grid_frames([a, b], cols=2, borders=[None])
