"""PyTorch state_dict <-> Flax params (curio_jax.run.convert) against the torch reference networks.

Forward parity is measured on real MiniGrid DoorKey observations (gymnasium, random actions) in
float32 as max|a - b| / max|b|.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("minigrid")

from curio_jax.core import networks  # noqa: E402
from curio_jax.reference.agents import ActorCritic, RNDModule, make_minigrid_env  # noqa: E402
from curio_jax.run import convert  # noqa: E402

torch.set_num_threads(1)  # tiny batches: one thread is fastest and robust to a busy machine
FORWARD_RTOL = 1e-5


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def doorkey_obs() -> np.ndarray:
    """At least 100 distinct real observations [K, 7, 7, 3] uint8 from 5x5 and 8x8 DoorKey
    stepped with random actions (gymnasium MiniGrid; egocentric views repeat a lot)."""
    rng = np.random.default_rng(0)
    out = []
    for size in (5, 8):
        env = make_minigrid_env(size, 8)
        obs, _ = env.reset(seed=size)
        for _ in range(64):
            out.append(obs)
            obs, *_ = env.step(rng.integers(0, 7, size=8))
        env.close()
    obs = np.concatenate(out)
    _, first = np.unique(obs.reshape(len(obs), -1), axis=0, return_index=True)
    obs = obs[np.sort(first)]
    assert obs.dtype == np.uint8 and obs.shape[1:] == (7, 7, 3) and len(obs) >= 100
    return obs


def torch_modules(seed: int = 0, hidden_dim: int = 64):
    torch.manual_seed(seed)
    return ActorCritic(7, hidden_dim), RNDModule()


def torch_checkpoint_arrays(ac, rnd) -> dict[str, dict[str, np.ndarray]]:
    return {
        "a2c_params": {k: v.numpy().copy() for k, v in ac.state_dict().items()},
        "rnd_params": {k: v.numpy().copy() for k, v in rnd.state_dict().items()},
    }


def flax_init(seed: int = 0, hidden_dim: int = 64) -> dict:
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = networks.dummy_obs()[None]
    return {
        "actor_critic": networks.ActorCritic(7, hidden_dim).init(k1, x)["params"],
        "rnd_target": networks.RNDTarget().init(k2, x)["params"],
        "rnd_predictor": networks.RNDPredictor().init(k3, x)["params"],
    }


def torch_outputs(ac, rnd, obs: np.ndarray) -> dict[str, np.ndarray]:
    x = torch.as_tensor(obs, dtype=torch.float32).permute(0, 3, 1, 2)
    rnd.eval()
    with torch.no_grad():
        logits, v_ext, v_int = ac.forward_raw(x)
        r_int = rnd(x)
    return {"logits": logits, "value_ext": v_ext, "value_int": v_int, "reward_int": r_int}


def flax_outputs(params: dict, obs: np.ndarray, hidden_dim: int = 64) -> dict[str, np.ndarray]:
    x = jnp.asarray(obs)
    logits, v_ext, v_int = networks.ActorCritic(7, hidden_dim).apply(
        {"params": params["actor_critic"]}, x
    )
    t = networks.RNDTarget().apply({"params": params["rnd_target"]}, x)
    p = networks.RNDPredictor().apply({"params": params["rnd_predictor"]}, x, deterministic=True)
    r_int = jnp.mean(jnp.square(t - p), axis=-1)
    return {"logits": logits, "value_ext": v_ext, "value_int": v_int, "reward_int": r_int}


def assert_same_tree(a, b) -> None:
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype == np.float32
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --------------------------------------------------------------------------- round trips


def test_torch_flax_torch_round_trip_is_exact():
    ac, rnd = torch_modules(1)
    state = torch_checkpoint_arrays(ac, rnd)
    back = convert.flax_to_torch_state(convert.torch_state_to_flax(state))
    assert list(back) == ["a2c_params", "rnd_params"]
    for group in state:
        assert list(back[group]) == list(state[group])  # same keys, same order as state_dict()
        for key, value in state[group].items():
            assert back[group][key].shape == value.shape, key
            np.testing.assert_array_equal(back[group][key], value, err_msg=key)


def test_flax_torch_flax_round_trip_is_exact():
    params = flax_init(2)
    back = convert.torch_state_to_flax(convert.flax_to_torch_state(params))
    assert_same_tree(back, jax.tree.map(np.asarray, params))


def test_converted_flax_tree_matches_the_flax_modules():
    ac, rnd = torch_modules(0)
    converted = convert.torch_state_to_flax(torch_checkpoint_arrays(ac, rnd))
    ref = flax_init(0)
    for name in ref:
        shapes_ref = jax.tree.map(lambda x: tuple(x.shape), ref[name])
        shapes_got = jax.tree.map(lambda x: tuple(x.shape), converted[name])
        assert shapes_got == shapes_ref, name


def test_first_dense_rows_follow_the_documented_flatten_orders():
    """flax kernel row h*256 + w*64 + c == torch weight column c*16 + h*4 + w."""
    ac, rnd = torch_modules(0)
    state = torch_checkpoint_arrays(ac, rnd)
    cols = np.arange(1024, dtype=np.float32)
    state["a2c_params"]["policy_head.0.weight"] = np.tile(cols, (64, 1))
    state["rnd_params"]["target.1.weight"] = np.tile(cols, (256, 1))
    flax = convert.torch_state_to_flax(state)
    for kernel in (
        flax["actor_critic"]["policy_hidden"]["kernel"],
        flax["rnd_target"]["out"]["kernel"],
    ):
        for h, w, c in [(0, 0, 1), (0, 1, 0), (1, 0, 0), (3, 2, 63), (2, 3, 5)]:
            assert kernel[h * 256 + w * 64 + c, 0] == c * 16 + h * 4 + w
    # the second dense layers are plain transposes
    w2 = state["a2c_params"]["policy_head.2.weight"]
    np.testing.assert_array_equal(flax["actor_critic"]["policy_out"]["kernel"], w2.T)
    wc = state["a2c_params"]["features.2.weight"]  # [out, in, kh, kw]
    np.testing.assert_array_equal(
        flax["actor_critic"]["torso"]["conv1"]["kernel"][1, 0, 5, 7], wc[7, 5, 1, 0]
    )


# --------------------------------------------------------------------------- forward parity


@pytest.mark.parametrize("hidden_dim", [64, 32])
def test_torch_init_converted_to_flax_gives_the_same_outputs(doorkey_obs, hidden_dim):
    ac, rnd = torch_modules(3, hidden_dim)
    params = convert.torch_state_to_flax(torch_checkpoint_arrays(ac, rnd))
    ref = torch_outputs(ac, rnd, doorkey_obs)
    got = flax_outputs(params, doorkey_obs, hidden_dim)
    for name in ref:
        assert got[name].shape == ref[name].shape, name
        err = rel_err(got[name], ref[name])
        print(f"torch->flax {name}: max rel err {err:.2e}")
        assert err <= FORWARD_RTOL, (name, err)
    # not a vacuous comparison: the networks do respond to the observation
    assert np.std(np.asarray(ref["logits"]), axis=0).max() > 1e-3
    assert np.std(np.asarray(ref["reward_int"])) > 0


def test_flax_init_converted_to_torch_gives_the_same_outputs(doorkey_obs):
    params = flax_init(4)
    state = convert.flax_to_torch_state(params)
    ac, rnd = ActorCritic(), RNDModule()
    ac.load_state_dict({k: torch.from_numpy(v) for k, v in state["a2c_params"].items()})
    rnd.load_state_dict({k: torch.from_numpy(v) for k, v in state["rnd_params"].items()})
    ref = flax_outputs(params, doorkey_obs)
    got = torch_outputs(ac, rnd, doorkey_obs)
    for name in ref:
        err = rel_err(got[name], ref[name])
        print(f"flax->torch {name}: max rel err {err:.2e}")
        assert err <= FORWARD_RTOL, (name, err)


def test_a_wrong_flatten_order_would_be_detected(doorkey_obs):
    """Guards the forward test's power: skipping the row permutation breaks parity."""
    ac, rnd = torch_modules(5)
    params = convert.torch_state_to_flax(torch_checkpoint_arrays(ac, rnd))
    w = ac.state_dict()["policy_head.0.weight"].numpy()
    params["actor_critic"]["policy_hidden"]["kernel"] = w.T  # torch row order, unpermuted
    ref = torch_outputs(ac, rnd, doorkey_obs)
    got = flax_outputs(params, doorkey_obs)
    assert rel_err(got["logits"], ref["logits"]) > 1e-2


# --------------------------------------------------------------------------- files


def test_checkpoint_file_round_trip(tmp_path):
    ac, rnd = torch_modules(6)
    path = tmp_path / "seed.pth"
    torch.save({"a2c_params": ac.state_dict(), "rnd_params": rnd.state_dict()}, path)
    params = convert.load_torch_checkpoint(path)
    assert set(params) == {"actor_critic", "rnd_target", "rnd_predictor"}
    out = tmp_path / "back.pth"
    convert.save_torch_checkpoint(out, params)
    loaded = torch.load(out, weights_only=True)
    ac2, rnd2 = ActorCritic(), RNDModule()
    ac2.load_state_dict(loaded["a2c_params"])  # strict: exactly the seed's keys and shapes
    rnd2.load_state_dict(loaded["rnd_params"])
    for a, b in ((ac, ac2), (rnd, rnd2)):
        for (k, v), (k2, v2) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert k == k2
            assert torch.equal(v, v2), k


def test_a2c_only_checkpoint(tmp_path):
    ac, _ = torch_modules(7)
    path = tmp_path / "a2c.pth"
    torch.save({"a2c_params": ac.state_dict()}, path)
    params = convert.load_torch_checkpoint(path)
    assert set(params) == {"actor_critic"}
    assert set(convert.flax_to_torch_state(params)) == {"a2c_params"}


def _save(path, obj) -> None:
    torch.save(obj, path)


def _modified(mutate):
    ac, rnd = torch_modules(8)
    obj = {"a2c_params": ac.state_dict(), "rnd_params": rnd.state_dict()}
    mutate(obj)
    return obj


BAD_CHECKPOINTS = {
    "missing_policy_bias": (
        lambda o: o["a2c_params"].pop("policy_head.2.bias"),
        "policy_head.2.bias",
    ),
    "conv_shape": (
        lambda o: o["a2c_params"].__setitem__("features.2.weight", torch.zeros(32, 16, 3, 3)),
        "features.2.weight",
    ),
    "value_head_width": (
        lambda o: o["a2c_params"].__setitem__("value_extr_head.0.weight", torch.zeros(32, 1024)),
        "value_extr_head.0.weight",
    ),
    "predictor_shape": (
        lambda o: o["rnd_params"].__setitem__("predictor.4.weight", torch.zeros(128, 256)),
        "predictor.4.weight",
    ),
    "target_missing": (lambda o: o["rnd_params"].pop("target.1.weight"), "target.1.weight"),
    "extra_key": (
        lambda o: o["a2c_params"].__setitem__("policy_head.4.weight", torch.zeros(3)),
        "policy_head.4.weight",
    ),
    "no_a2c_params": (lambda o: o.pop("a2c_params"), "a2c_params"),
    "unknown_group": (lambda o: o.__setitem__("optimizer", {}), "optimizer"),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_names_the_first_offending_key(tmp_path, case):
    mutate, key = BAD_CHECKPOINTS[case]
    path = tmp_path / f"{case}.pth"
    _save(path, _modified(mutate))
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as info:
        convert.load_torch_checkpoint(path)
    assert str(path) in str(info.value)


def test_non_checkpoint_files_are_rejected(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("this is not a pytorch file\n")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        convert.load_torch_checkpoint(text)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match="a2c_params"):
        convert.load_torch_checkpoint(tensor)
    bare = tmp_path / "bare_state_dict.pth"  # a state_dict, not the notebook's wrapper
    torch.save(ActorCritic().state_dict(), bare)
    with pytest.raises(ValueError, match="a2c_params"):
        convert.load_torch_checkpoint(bare)
    with pytest.raises(FileNotFoundError):
        convert.load_torch_checkpoint(tmp_path / "missing.pth")


def test_bad_flax_trees_are_rejected():
    params = jax.tree.map(np.asarray, flax_init(9))
    broken = {**params, "actor_critic": dict(params["actor_critic"])}
    del broken["actor_critic"]["policy_out"]
    with pytest.raises(ValueError, match="policy_out"):
        convert.flax_to_torch_state(broken)
    wrong = jax.tree.map(lambda x: x, params)
    wrong["rnd_predictor"]["dense1"]["kernel"] = np.zeros((256, 128), np.float32)
    with pytest.raises(ValueError, match="dense1/kernel"):
        convert.flax_to_torch_state(wrong)
    with pytest.raises(ValueError, match="rnd_predictor"):
        convert.flax_to_torch_state({k: v for k, v in params.items() if k != "rnd_predictor"})


def test_convert_does_not_import_torch():
    code = "import sys, curio_jax.run.convert; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- the notebook's agent


def _notebook_agent():
    """The notebook author's trained DoorKey-16x16 agent (a2c_rnd_16x16_weights.pth, MIT): input
    data for checks, not part of the repository. Found at $CURIO_JAX_NOTEBOOK_AGENT or
    tests/data/a2c_rnd_16x16_weights.pth (git-ignored); the checks skip without it."""
    import os
    from pathlib import Path

    path = Path(
        os.environ.get("CURIO_JAX_NOTEBOOK_AGENT")
        or Path(__file__).parents[1] / "data" / "a2c_rnd_16x16_weights.pth"
    )
    if not path.is_file():
        pytest.skip(
            f"the notebook's trained 16x16 agent is not at {path} (set CURIO_JAX_NOTEBOOK_AGENT "
            "to its a2c_rnd_16x16_weights.pth to run this check)"
        )
    return path


def test_the_notebook_authors_agent_converts_and_solves_16x16():
    """The real file: every tensor converts, the converted networks give torch's outputs, and
    the converted policy solves DoorKey-16x16 in the JAX env as the author reports (0.995 of 200
    episodes in MiniGrid)."""
    from curio_jax.analysis import evaluate as ev
    from curio_jax.run.params import load_weights

    path = _notebook_agent()
    weights = load_weights(path)
    assert sorted(weights.networks) == ["actor_critic", "rnd_predictor", "rnd_target"]
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = ActorCritic()
    model.load_state_dict(state["a2c_params"])
    model.eval()
    obs = np.random.default_rng(0).integers(0, 11, size=(16, 7, 7, 3)).astype(np.float32)
    with torch.no_grad():
        logits_t, v_ext_t, v_int_t = model.forward_raw(torch.as_tensor(obs).permute(0, 3, 1, 2))
    net = ev.actor_critic_for(weights.actor_critic)
    logits, v_ext, v_int = net.apply({"params": weights.actor_critic}, jnp.asarray(obs))
    np.testing.assert_allclose(logits, logits_t.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(v_ext, v_ext_t.numpy(), rtol=1e-4, atol=1e-4)
    metrics, _ = ev.evaluate(weights.actor_critic, 16, episodes=20, seed=0)
    assert metrics["success_rate"] >= 0.9, metrics
