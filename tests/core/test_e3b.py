"""E3B building blocks (curio_jax.core.e3b): Sherman-Morrison against explicit inverses, the
per-env episode resets, the bonus ordering, the inverse-dynamics loss, determinism and a traced
ridge."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from curio_jax.core.e3b import (
    E3BNetwork,
    EllipticalState,
    elliptical_bonus,
    inverse_dynamics_loss,
    sherman_morrison,
)

LAM = 0.1


def _explicit_inverse(phis: np.ndarray, lam: float) -> np.ndarray:
    """``inv(lam * I + sum phi phi^T)`` in float64, ``phis [n, d]``."""
    phis = np.asarray(phis, np.float64)
    return np.linalg.inv(lam * np.eye(phis.shape[-1]) + phis.T @ phis)


def _rel_err(a, ref) -> float:
    return float(np.abs(np.asarray(a, np.float64) - ref).max() / np.abs(ref).max())


def test_sherman_morrison_one_update_matches_inverse():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 8, 8))
    c = np.eye(8) + a @ a.transpose(0, 2, 1)  # two SPD matrices
    u = rng.normal(size=(2, 8))
    got = sherman_morrison(jnp.asarray(np.linalg.inv(c), jnp.float32), jnp.asarray(u, jnp.float32))
    want = np.linalg.inv(c + u[:, :, None] * u[:, None, :])
    for k in range(2):
        assert _rel_err(got[k], want[k]) < 1e-5
    np.testing.assert_array_equal(got, np.swapaxes(got, -1, -2))  # stays exactly symmetric


@pytest.mark.parametrize(("n_distinct", "scale"), [(None, 1.0), (5, 3.0)])
def test_inverse_tracks_explicit_inverse_over_a_1000_step_episode(n_distinct, scale):
    """float32 rank-one updates against float64 inv(lam I + sum phi phi^T), 1e-4 of the
    inverse's scale: i.i.d. Gaussian embeddings, and a few repeated directions (ill-conditioned
    C, cond ~ 1e6) as a grid world gives. Raw (unnormalised) embeddings."""
    t, b, d = 1000, 2, 16
    key = jax.random.key(1)
    if n_distinct is None:
        phi = jax.random.normal(key, (t, b, d)) * scale / np.sqrt(d)
    else:
        base = jax.random.normal(key, (n_distinct, d)) * scale / np.sqrt(d)
        phi = base[jax.random.randint(jax.random.key(2), (t, b), 0, n_distinct)]
    state, bonus = elliptical_bonus(
        EllipticalState.create(b, d, LAM), phi, jnp.zeros((t, b), bool), LAM
    )
    phi64 = np.asarray(phi, np.float64)
    for e in range(b):
        assert _rel_err(state.cinv[e], _explicit_inverse(phi64[:, e], LAM)) < 1e-4
    # spot-check the bonus read before each update: b_t = phi_t^T inv(C_{<t}) phi_t, to 1e-4 of
    # the bonus scale |phi|^2 / lam (a repeated direction's small bonus is a difference of
    # large numbers and has fewer correct digits of its own)
    for s in (0, 1, 17, 500, 999):
        ref = _explicit_inverse(phi64[:s, 0], LAM)
        want = phi64[s, 0] @ ref @ phi64[s, 0]
        scale = phi64[s, 0] @ phi64[s, 0] / LAM
        assert abs(float(bonus[s, 0]) - want) < 1e-4 * scale


def test_matrix_resets_after_every_done_and_nowhere_else():
    """Per-env done patterns (terminated or truncated alike: `done` is their union): the state
    after a scan ending on a done step is exactly the fresh I/lam; ending on any other step it is
    not, and it equals the explicit inverse of that env's embeddings since its last done."""
    t, b, d = 12, 3, 4
    terminated = np.zeros((t, b), bool)
    truncated = np.zeros((t, b), bool)
    terminated[3, 0] = truncated[7, 0] = True  # env 0: a terminal end, then a time limit
    terminated[[0, 11], 1] = truncated[1, 1] = True  # env 1: back to back, and on the last step
    # env 2: never done
    done = terminated | truncated
    phi = jax.random.normal(jax.random.key(3), (t, b, d))
    fresh = np.eye(d, dtype=np.float32) / np.float32(LAM)
    for stop in range(1, t + 1):
        state, _ = elliptical_bonus(
            EllipticalState.create(b, d, LAM), phi[:stop], jnp.asarray(done[:stop]), LAM
        )
        for e in range(b):
            cinv = np.asarray(state.cinv[e])
            if done[stop - 1, e]:
                np.testing.assert_array_equal(cinv, fresh)
            else:
                assert not np.array_equal(cinv, fresh)
                ends = np.flatnonzero(done[: stop - 1, e])
                start = ends[-1] + 1 if len(ends) else 0
                ref = _explicit_inverse(np.asarray(phi)[start:stop, e], LAM)
                assert _rel_err(cinv, ref) < 1e-5


def test_bonus_of_new_episode_starts_over_and_dummy_step_pays_zero():
    """The same embedding repeated: it pays |phi|^2/lam the first time in each episode, less
    after; the autoreset dummy step (is_reset) pays 0 but is counted (the next step pays less)."""
    d = 4
    u = jnp.ones((d,)) * 0.5  # |u|^2 = 1
    phi = jnp.broadcast_to(u, (6, 1, d))
    done = jnp.array([False, True, False, False, False, False])[:, None]
    is_reset = jnp.array([False, False, True, False, False, False])[:, None]
    _, bonus = elliptical_bonus(EllipticalState.create(1, d, LAM), phi, done, LAM, is_reset)
    b = np.asarray(bonus[:, 0])
    first = 1.0 / LAM
    second = first / (1.0 + first)  # u^T (C + u u^T)^{-1} u = s / (1 + s), s = u^T C^-1 u
    np.testing.assert_allclose(b[:2], [first, second], rtol=1e-6)
    assert b[2] == 0.0  # dummy transition: reset observation, new episode
    np.testing.assert_allclose(b[3], second, rtol=1e-6)  # the reset obs was counted
    assert b[3] > b[4] > b[5] > 0


def test_unseen_direction_pays_more_than_a_repeated_one():
    d = 8
    e = jnp.eye(d)
    phi = jnp.stack([e[0], e[0], e[0], e[1]])[:, None]  # three times e0, then e1
    _, bonus = elliptical_bonus(
        EllipticalState.create(1, d, LAM), phi, jnp.zeros((4, 1), bool), LAM
    )
    b = np.asarray(bonus[:, 0])
    assert b[0] > b[1] > b[2]
    assert b[3] > 5 * b[2]
    np.testing.assert_allclose(b[3], 1.0 / LAM, rtol=1e-6)  # orthogonal: untouched by e0


def _batch(key, n=64):
    """Synthetic transitions whose action is recoverable: it increments the object channel of
    cell (action, 0); the rest of the image is random."""
    k1, k2 = jax.random.split(key)
    obs = jax.random.randint(k1, (n, 7, 7, 3), 0, 10).astype(jnp.uint8)
    action = jax.random.randint(k2, (n,), 0, 7)
    next_obs = obs.at[jnp.arange(n), action, 0, 0].add(1)
    return obs, next_obs, action


def test_inverse_dynamics_loss_falls_under_adam():
    net = E3BNetwork(num_actions=7, embed_dim=32, hidden_dim=64)
    obs, next_obs, action = _batch(jax.random.key(4))
    weight = jnp.ones(obs.shape[0]).at[:8].set(0.0)  # masked samples do not count
    params = net.init(jax.random.key(5), obs[:1], next_obs[:1])["params"]
    opt = optax.adam(1e-3)

    @jax.jit
    def step(params, opt_state):
        loss, g = jax.value_and_grad(inverse_dynamics_loss)(
            params, net, obs, next_obs, action, weight
        )
        updates, opt_state = opt.update(g, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = opt.init(params)
    losses = []
    for _ in range(50):
        params, opt_state, loss = step(params, opt_state)
        losses.append(float(loss))
    final = float(inverse_dynamics_loss(params, net, obs, next_obs, action, weight))
    assert losses[0] > 1.0
    assert final < 0.2 * losses[0], (losses[0], final)


def test_inverse_dynamics_loss_is_the_weighted_mean_cross_entropy():
    net = E3BNetwork(num_actions=7, embed_dim=8, hidden_dim=16)
    obs, next_obs, action = _batch(jax.random.key(6), n=5)
    params = net.init(jax.random.key(7), obs[:1], next_obs[:1])["params"]
    logits = net.apply({"params": params}, obs, next_obs)
    ce = -np.asarray(jax.nn.log_softmax(logits))[np.arange(5), np.asarray(action)]
    w = jnp.array([1.0, 0.0, 2.0, 1.0, 0.0])
    got = inverse_dynamics_loss(params, net, obs, next_obs, action, w)
    np.testing.assert_allclose(got, (ce * np.asarray(w)).sum() / 4.0, rtol=1e-5)
    zero = inverse_dynamics_loss(params, net, obs, next_obs, action, jnp.zeros(5))
    assert float(zero) == 0.0  # max(sum(w), 1) keeps an all-masked batch finite


def test_network_parameters_and_shapes():
    net = E3BNetwork(num_actions=7, embed_dim=16, hidden_dim=32)
    o = jnp.zeros((7, 7, 3), jnp.uint8)
    params = net.init(jax.random.key(0), o, o)["params"]
    assert set(params) == {"torso", "phi", "idm_hidden", "idm_out"}
    assert params["phi"]["kernel"].shape == (1024, 16)
    assert params["idm_hidden"]["kernel"].shape == (32, 32)
    x = jnp.zeros((3, 2, 7, 7, 3), jnp.uint8)
    assert net.apply({"params": params}, x, method=E3BNetwork.embed).shape == (3, 2, 16)
    assert net.apply({"params": params}, x, x).shape == (3, 2, 7)


def test_same_key_bit_identical():
    def run(key):
        net = E3BNetwork(num_actions=7, embed_dim=16, hidden_dim=32)
        k1, k2 = jax.random.split(key)
        obs = jax.random.randint(k1, (20, 4, 7, 7, 3), 0, 10).astype(jnp.uint8)
        params = net.init(k2, obs[0, 0], obs[0, 0])["params"]
        phi = net.apply({"params": params}, obs, method=E3BNetwork.embed)
        done = jnp.zeros((20, 4), bool).at[9, 1].set(True)
        state, bonus = elliptical_bonus(EllipticalState.create(4, 16, LAM), phi, done, LAM)
        return state.cinv, bonus

    a, b = run(jax.random.key(8)), run(jax.random.key(8))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = run(jax.random.key(9))
    assert not np.array_equal(a[1], c[1])


def test_traced_lambda_jit_and_vmap_compile_once():
    t, b, d = 10, 2, 4
    phi = jax.random.normal(jax.random.key(10), (t, b, d))
    done = jnp.zeros((t, b), bool).at[4, 0].set(True).at[t - 1, 0].set(True)
    traces = []

    def f(lam):
        traces.append(None)
        state = EllipticalState.create(b, d, lam)
        return elliptical_bonus(state, phi, done, lam)

    jf = jax.jit(f)
    _, b1 = jf(jnp.float32(0.1))
    _, b2 = jf(jnp.float32(1.0))
    assert len(traces) == 1
    np.testing.assert_allclose(b1, f(0.1)[1], rtol=1e-6)
    assert float(b1[0, 0]) > float(b2[0, 0])  # a smaller ridge pays more

    traces.clear()
    vf = jax.jit(jax.vmap(f))
    lams = jnp.array([0.1, 1.0], jnp.float32)
    states, bonus = vf(lams)
    vf(lams * 2)
    assert len(traces) == 1
    assert bonus.shape == (2, t, b)
    np.testing.assert_allclose(bonus[0], b1, rtol=1e-6)
    np.testing.assert_allclose(bonus[1], b2, rtol=1e-6)
    np.testing.assert_array_equal(states.cinv[1, 0], np.eye(d, dtype=np.float32))  # reset: I/1


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="phi_next must be"):
        elliptical_bonus(
            EllipticalState.create(2, 4, LAM), jnp.zeros((3, 2)), jnp.zeros((3, 2)), LAM
        )
    with pytest.raises(ValueError, match="state.cinv must be"):
        elliptical_bonus(
            EllipticalState.create(3, 4, LAM), jnp.zeros((3, 2, 4)), jnp.zeros((3, 2), bool), LAM
        )
    with pytest.raises(ValueError, match="cinv must be"):
        sherman_morrison(jnp.zeros((4, 4)), jnp.zeros(3))
