"""NovelD building blocks (curio_jax.core.noveld): the observation hash, the per-env episodic
first-visit indicator, and the reward formula."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from curio_jax.core.noveld import EpisodicVisits, first_visits, noveld_reward, obs_hash


def _fnv1a_fmix(data: bytes) -> int:
    """Plain-Python reference of obs_hash on one observation's bytes."""
    h = 2166136261
    for c in data:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_hash_matches_reference_for_each_dtype():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 11, (2, 3, 7, 7, 3), dtype=np.uint8)
    h = obs_hash(jnp.asarray(img))
    assert h.dtype == jnp.uint32 and h.shape == (2, 3)
    assert int(h[1, 2]) == _fnv1a_fmix(img[1, 2].tobytes())
    words = rng.integers(-(2**31), 2**31 - 1, (4, 5), dtype=np.int32)  # little-endian bytes
    assert int(obs_hash(jnp.asarray(words), obs_ndim=1)[3]) == _fnv1a_fmix(words[3].tobytes())
    flags = words > 0
    want = _fnv1a_fmix(flags.astype(np.uint8).tobytes())
    assert int(obs_hash(jnp.asarray(flags), obs_ndim=2)) == want


def test_hash_equal_for_equal_and_distinct_for_any_single_byte_change():
    """20,000 random pairs differing in one byte (random position, random new value): no
    collision (guaranteed: every FNV-1a step and the finaliser are bijections). Equal
    observations hash equal."""
    n = 20_000
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (n, 7, 7, 3), dtype=np.uint8)
    b = a.copy().reshape(n, -1)
    pos = rng.integers(0, b.shape[1], n)
    b[np.arange(n), pos] = (b[np.arange(n), pos] + rng.integers(1, 256, n)).astype(np.uint8)
    b = b.reshape(a.shape)
    ha, hb = obs_hash(jnp.asarray(a)), obs_hash(jnp.asarray(b))
    assert not np.any(np.asarray(ha) == np.asarray(hb))
    np.testing.assert_array_equal(obs_hash(jnp.asarray(a.copy())), ha)
    # the low bits (the bucket) are spread out too: 20k random observations fill 2**14 buckets
    # about as a uniform hash would (expected distinct ~ K (1 - exp(-n/K)) ~ 11,600)
    distinct = len(np.unique(np.asarray(ha) % 2**14))
    assert 11_000 < distinct < 12_200, distinct


def _hashes_of(seq):
    """Observation ids -> hashes of tiny synthetic observations ([T, B] -> uint32 [T, B]); the
    ids used here (1 to 7) land in distinct buckets of the tables below (256 buckets)."""
    obs = jnp.asarray(seq, jnp.uint8)[..., None, None, None] * jnp.ones((1, 1, 3), jnp.uint8)
    return obs_hash(obs)


def test_hand_built_ids_do_not_collide_in_256_buckets():
    buckets = np.asarray(_hashes_of(np.arange(1, 8)[:, None]))[:, 0] % 256
    assert len(set(buckets.tolist())) == 7


def test_first_visits_per_episode_and_per_env():
    """Two envs, observation ids by hand; env 0 ends an episode at step 2, env 1 at step 4.
    A revisit within an episode is not first; after its own done the env starts over; the other
    env is unaffected."""
    ids = np.array(
        [
            [1, 1],  # t0: both new
            [2, 1],  # t1: env 1 revisits 1
            [1, 2],  # t2: env 0 revisits 1 (done), env 1 new 2
            [1, 2],  # t3: env 0 new episode: 1 is new again; env 1 revisits 2
            [2, 1],  # t4: env 0 new 2 in this episode; env 1 revisits 1 (done)
            [2, 1],  # t5: env 0 revisits 2; env 1 new episode: 1 new
        ]
    )
    done = np.zeros(ids.shape, bool)
    done[2, 0] = done[4, 1] = True
    want = np.array(
        [[1, 1], [1, 0], [0, 1], [1, 0], [1, 0], [0, 1]],
        bool,
    )
    v = EpisodicVisits.create(2, 256)
    v, first = first_visits(v, _hashes_of(ids), jnp.asarray(done))
    np.testing.assert_array_equal(first, want)
    # the state carries over to the next rollout: env 0 has seen {1, 2}, env 1 {1}
    v, first = first_visits(v, _hashes_of([[1, 2], [3, 1]]), jnp.zeros((2, 2), bool))
    np.testing.assert_array_equal(first, [[False, True], [True, False]])
    assert v.visited().sum(axis=1).tolist() == [3, 2]


def test_done_empties_only_that_env_and_dummy_step_is_marked_but_not_first():
    """Next-step autoreset: done at t1 (env 0); t2 is the dummy transition whose next_obs is
    the reset observation 7: reported not first, but marked, so returning to 7 pays nothing."""
    ids = np.array([[7, 7], [5, 5], [7, 7], [7, 7]])
    done = np.zeros(ids.shape, bool)
    done[1, 0] = True
    is_reset = np.zeros(ids.shape, bool)
    is_reset[2, 0] = True
    v = EpisodicVisits.create(2, 256)
    v, first = first_visits(v, _hashes_of(ids), jnp.asarray(done), jnp.asarray(is_reset))
    np.testing.assert_array_equal(first, [[1, 1], [1, 1], [0, 0], [0, 0]])
    assert v.episode.tolist() == [2, 1]
    # without is_reset the dummy step reports the reset observation as a first visit
    _, first = first_visits(EpisodicVisits.create(2, 256), _hashes_of(ids), jnp.asarray(done))
    assert bool(first[2, 0]) and not bool(first[2, 1])


def test_bucket_collision_is_a_missed_bonus_never_a_spurious_one():
    """With K = 1 every observation shares the bucket: only the episode's first step is new."""
    ids = np.array([[1], [2], [3], [4]])
    done = np.array([[False], [True], [False], [False]])
    _, first = first_visits(EpisodicVisits.create(1, 1), _hashes_of(ids), jnp.asarray(done))
    np.testing.assert_array_equal(first[:, 0], [True, False, True, False])


def test_reward_formula_by_hand():
    n_next = jnp.array([[1.0, 0.2], [0.5, 2.0]])
    n_cur = jnp.array([[1.0, 1.0], [2.0, 2.0]])
    first = jnp.array([[True, True], [True, False]])
    got = noveld_reward(n_next, n_cur, first, 0.5)
    # 1 - 0.5 = 0.5; 0.2 - 0.5 < 0 -> 0; 0.5 - 1 < 0 -> 0; 2 - 1 = 1 but not first -> 0
    np.testing.assert_allclose(got, [[0.5, 0.0], [0.0, 0.0]], rtol=1e-6)
    got = noveld_reward(n_next, n_cur, first, 0.1)
    np.testing.assert_allclose(got, [[0.9, 0.1], [0.3, 0.0]], rtol=1e-6)
    assert got.dtype == jnp.float32


def test_determinism():
    def run():
        key = jax.random.key(3)
        obs = jax.random.randint(key, (30, 4, 7, 7, 3), 0, 3).astype(jnp.uint8)
        h = obs_hash(obs)
        done = jnp.zeros((30, 4), bool).at[11, 2].set(True)
        v, first = first_visits(EpisodicVisits.create(4, 256), h, done)
        n = jax.random.uniform(jax.random.key(4), (2, 30, 4))
        return h, v.table, first, noveld_reward(n[0], n[1], first, 0.5)

    for x, y in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(x, y)


def test_alpha_traced_through_jit_and_vmap_compiles_once():
    n_next = jax.random.uniform(jax.random.key(5), (6, 3))
    n_cur = jax.random.uniform(jax.random.key(6), (6, 3))
    first = jax.random.bernoulli(jax.random.key(7), 0.5, (6, 3))
    traces = []

    def f(alpha):
        traces.append(None)
        return noveld_reward(n_next, n_cur, first, alpha)

    jf = jax.jit(f)
    r1, r2 = jf(jnp.float32(0.5)), jf(jnp.float32(0.1))
    assert len(traces) == 1
    np.testing.assert_allclose(r1, f(0.5), rtol=1e-6)
    traces.clear()
    vf = jax.jit(jax.vmap(f))
    r = vf(jnp.array([0.5, 0.1], jnp.float32))
    vf(jnp.array([0.3, 0.2], jnp.float32))
    assert len(traces) == 1
    np.testing.assert_allclose(r[0], r1, rtol=1e-6)
    np.testing.assert_allclose(r[1], r2, rtol=1e-6)
    assert bool(jnp.all(r[1] >= r[0]))  # a smaller alpha never pays less


def test_first_visits_jit_carries_no_retrace():
    traces = []

    @jax.jit
    def f(v, h, d):
        traces.append(None)
        return first_visits(v, h, d)

    v = EpisodicVisits.create(2, 256)
    h = _hashes_of([[1, 2], [3, 4]])
    v, a = f(v, h, jnp.zeros((2, 2), bool))
    v, b = f(v, h, jnp.zeros((2, 2), bool))
    assert len(traces) == 1
    assert bool(a.all()) and not bool(b.any())


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="integer type"):
        obs_hash(jnp.zeros((2, 7, 7, 3), jnp.float32))
    with pytest.raises(ValueError, match="obs_ndim"):
        obs_hash(jnp.zeros((7, 7, 3), jnp.uint8), obs_ndim=4)
    with pytest.raises(ValueError, match="num_buckets"):
        EpisodicVisits.create(2, 0)
    with pytest.raises(ValueError, match="envs"):
        first_visits(EpisodicVisits.create(3, 8), jnp.zeros((4, 2), jnp.uint32), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="share a shape"):
        noveld_reward(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros((3, 2), bool), 0.5)
