"""Seed-parallel statistics: hand-computed cases, agreement with scipy, bootstrap sanity, input
validation and a few properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as scipy_stats
from hypothesis import given, settings
from hypothesis import strategies as st

from curio_jax.analysis import stats

# --------------------------------------------------------------------------- IQM


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([7.0], 7.0),  # n=1: nothing trimmed
        ([1, 2, 30], 11.0),  # n=3: floor(0.75) = 0 trimmed, plain mean
        ([4, 1, 3, 2], 2.5),  # n=4: one off each end -> mean(2, 3)
        ([5, 1, 4, 2, 3], 3.0),  # n=5: one off each end -> mean(2, 3, 4)
        ([1, 2, 3, 4, 5, 100], 3.5),  # n=6: the outlier is trimmed -> mean(2, 3, 4, 5)
        ([0, 0, 1, 2, 3, 4, 100, 100], 2.5),  # n=8: two off each end -> mean(1, 2, 3, 4)
    ],
)
def test_iqm_hand_computed(x, expected):
    assert stats.iqm(x) == pytest.approx(expected, abs=1e-12)


def test_iqm_matches_scipy_trim_mean_for_every_n():
    rng = np.random.default_rng(0)
    for n in range(1, 41):
        x = rng.standard_cauchy(n)
        assert abs(stats.iqm(x) - scipy_stats.trim_mean(x, 0.25)) <= 1e-10, n


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
    st.floats(-1e3, 1e3),
)
def test_iqm_properties(xs, shift):
    x = np.array(xs)
    v = stats.iqm(x)
    assert x.min() - 1e-9 <= v <= x.max() + 1e-9
    assert stats.iqm(x[::-1]) == pytest.approx(v, rel=1e-12, abs=1e-9)
    assert stats.iqm(x + shift) == pytest.approx(v + shift, rel=1e-9, abs=1e-6)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_true_mean_of_large_normal_sample():
    x = np.random.default_rng(1).normal(3.0, 1.0, size=2000)
    est = stats.bootstrap_ci(x, np.mean, n_boot=2000, rng=2)
    assert est.value == pytest.approx(x.mean())
    assert est.low < 3.0 < est.high
    # width of a 95% interval of a mean: 2 * 1.96 * sigma / sqrt(n)
    assert est.high - est.low == pytest.approx(2 * 1.96 / math.sqrt(2000), rel=0.15)


def test_bootstrap_ci_coverage_is_near_nominal():
    rng = np.random.default_rng(3)
    hits = 0
    trials = 100
    for _ in range(trials):
        x = rng.normal(0.0, 1.0, size=30)
        est = stats.bootstrap_ci(x, np.mean, n_boot=400, rng=rng)
        hits += est.low <= 0.0 <= est.high
    # nominal 0.95; the percentile bootstrap with n=30 undercovers slightly
    assert 0.85 <= hits / trials <= 1.0


def test_bootstrap_ci_alpha_and_iqm():
    x = np.random.default_rng(4).normal(size=50)
    wide = stats.bootstrap_ci(x, stats.iqm, alpha=0.05, rng=0)
    narrow = stats.bootstrap_ci(x, stats.iqm, alpha=0.5, rng=0)
    assert wide.value == narrow.value == pytest.approx(stats.iqm(x))
    assert wide.low < narrow.low <= narrow.high < wide.high


def test_bootstrap_ci_stratified_resamples_within_tasks():
    tasks = [np.zeros(3), np.ones(3)]
    # within each task every resample is identical, so the pooled mean is always 0.5
    strat = stats.bootstrap_ci(tasks, np.mean, n_boot=500, rng=0)
    assert strat == (0.5, 0.5, 0.5)
    pooled = stats.bootstrap_ci(np.concatenate(tasks), np.mean, n_boot=500, rng=0)
    assert pooled.value == 0.5 and pooled.high - pooled.low > 0.3


def test_bootstrap_ci_is_deterministic_given_seed():
    x = np.arange(10.0)
    a = stats.bootstrap_ci(x, rng=7)
    assert a == stats.bootstrap_ci(x, rng=7)
    assert a == stats.bootstrap_ci(x, rng=np.random.default_rng(7))
    assert a != stats.bootstrap_ci(x, rng=8)
    assert stats.bootstrap_ci(x) == stats.bootstrap_ci(x, rng=0)  # default: seed 0


def test_percentile_interval_handles_inf():
    assert stats.percentile_interval([1.0, 2.0, 3.0], alpha=0.5) == (1.5, 2.5)
    low, high = stats.percentile_interval([1.0, 2.0, math.inf], alpha=0.05)
    assert low == pytest.approx(1.05) and high == math.inf
    assert stats.percentile_interval([math.inf] * 4) == (math.inf, math.inf)


# --------------------------------------------------------------------------- two samples


def test_probability_of_improvement_hand_computed():
    # x=1 beats none of (2, 2, 5); x=2 ties twice (2 * 0.5); x=3 beats 2 and 2 -> 3 / 9
    est = stats.probability_of_improvement([1, 2, 3], [2, 2, 5], n_boot=300)
    assert est.value == pytest.approx(1 / 3, abs=1e-12)
    assert 0.0 <= est.low <= est.value <= est.high <= 1.0
    assert stats.probability_of_improvement([5, 6], [1, 2, 3]).value == 1.0
    assert stats.probability_of_improvement([1, 1], [1, 1, 1]) == (0.5, 0.5, 0.5)


def test_probability_of_improvement_is_mann_whitney_u_over_nm():
    rng = np.random.default_rng(5)
    for n, m in [(5, 7), (16, 16), (30, 3)]:
        x = rng.integers(0, 4, n).astype(float)  # many ties
        y = rng.integers(0, 5, m).astype(float)
        u = scipy_stats.mannwhitneyu(x, y).statistic
        poi = stats.probability_of_improvement(x, y, n_boot=10).value
        assert abs(poi - u / (n * m)) <= 1e-10
        assert abs(stats.mann_whitney(x, y).statistic - u) <= 1e-10


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=1, max_size=12),
    st.lists(st.integers(-3, 3), min_size=1, max_size=12),
)
def test_probability_of_improvement_is_complementary(xs, ys):
    a = stats.probability_of_improvement(xs, ys, n_boot=5).value
    b = stats.probability_of_improvement(ys, xs, n_boot=5).value
    assert a + b == pytest.approx(1.0, abs=1e-12)


def test_mann_whitney_matches_scipy():
    rng = np.random.default_rng(6)
    cases = [
        (rng.normal(size=8), rng.normal(1.0, size=6)),  # exact method
        (rng.normal(size=40), rng.normal(0.3, size=35)),  # asymptotic
        (rng.integers(0, 3, 12).astype(float), rng.integers(0, 3, 9).astype(float)),  # ties
    ]
    for x, y in cases:
        ref = scipy_stats.mannwhitneyu(x, y, alternative="two-sided")
        got = stats.mann_whitney(x, y)
        assert abs(got.statistic - ref.statistic) <= 1e-10
        assert abs(got.pvalue - ref.pvalue) <= 1e-10
    assert stats.mann_whitney([1, 2, 3], [4, 5, 6]).pvalue == pytest.approx(0.1)
    assert math.isnan(stats.mann_whitney([2, 2], [2, 2, 2]).pvalue)  # no information


def test_permutation_test_against_exact_enumeration():
    # 8 values split 4/4: C(8, 4) = 70 splits; only the observed one and its mirror reach
    # |mean difference| = 4, so the exact two-sided p-value is 2 / 70.
    res = stats.permutation_test([1, 2, 3, 4], [5, 6, 7, 8], n_perm=20_000, rng=0)
    assert res.statistic == -4.0
    assert res.pvalue == pytest.approx(2 / 70, abs=0.005)
    less = stats.permutation_test([1, 2, 3, 4], [5, 6, 7, 8], n_perm=20_000, alternative="less")
    assert less.pvalue == pytest.approx(1 / 70, abs=0.004)
    greater = stats.permutation_test([1, 2, 3, 4], [5, 6, 7, 8], n_perm=2000, alternative="greater")
    assert greater.pvalue > 0.95


def test_permutation_test_same_distribution_and_custom_statistic():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=20), rng.normal(size=20)
    assert stats.permutation_test(x, y, n_perm=2000, rng=1).pvalue > 0.05
    med = stats.permutation_test(
        x + 3.0, y, statistic=lambda a, b: np.median(a) - np.median(b), n_perm=2000, rng=1
    )
    assert med.pvalue == pytest.approx(1 / 2001)  # nothing as extreme: the smallest p possible
    again = stats.permutation_test(x, y, n_perm=500, rng=3)
    assert again == stats.permutation_test(x, y, n_perm=500, rng=3)


# --------------------------------------------------------------------------- censored times

# Five seeds: solved at 1, censored at 2, solved at 3 and 4, censored at 5. By hand:
#   t=1: 5 at risk, 1 solves -> S = 4/5 = 0.8
#   t=3: 3 at risk, 1 solves -> S = 0.8 * 2/3 = 0.5333
#   t=4: 2 at risk, 1 solves -> S = 0.5333 * 1/2 = 0.2667  (first S <= 0.5: median 4)
KM_TIMES = [4, 2, 1, 5, 3]
KM_EVENTS = [True, False, True, False, True]


def test_kaplan_meier_hand_computed():
    km = stats.kaplan_meier(KM_TIMES, KM_EVENTS)
    np.testing.assert_array_equal(km.times, [1, 3, 4])
    np.testing.assert_array_equal(km.at_risk, [5, 3, 2])
    np.testing.assert_array_equal(km.events, [1, 1, 1])
    np.testing.assert_allclose(km.solved_fraction, [0.2, 1 - 0.8 * 2 / 3, 1 - 0.8 / 3], atol=1e-12)
    np.testing.assert_allclose(
        km.at([0, 1, 2.5, 3, 10]), [0, 0.2, 0.2, 1 - 0.8 * 2 / 3, 1 - 0.8 / 3]
    )
    assert km.max_time == 5
    assert stats.km_median(KM_TIMES, KM_EVENTS) == 4.0


def test_kaplan_meier_matches_scipy_ecdf():
    rng = np.random.default_rng(9)
    t = rng.integers(1, 20, 25).astype(float)
    e = rng.random(25) < 0.6
    ref = scipy_stats.ecdf(scipy_stats.CensoredData(uncensored=t[e], right=t[~e]))
    km = stats.kaplan_meier(t, e)
    np.testing.assert_allclose(km.at(km.times), ref.cdf.evaluate(km.times), atol=1e-10)


def test_kaplan_meier_without_censoring_is_the_empirical_cdf():
    t = np.array([10, 20, 20, 30, 50, 50, 50, 90])
    km = stats.kaplan_meier(t, np.ones(8, bool))
    np.testing.assert_allclose(km.at(km.times), [(t <= u).mean() for u in km.times], atol=1e-12)
    # exactly half solved by 20: the median is the first frame count where S <= 1/2
    assert stats.km_median([1, 2, 3, 4], [1, 1, 1, 1]) == 2.0


def test_km_median_when_fewer_than_half_solve():
    # one solve, three censored at the budget 100: S = 3/4 at the end -> never reaches 1/2
    assert stats.km_median([40, 100, 100, 100], [1, 0, 0, 0]) == math.inf
    # censoring early can push the estimate over one half although only 2 of 5 solved:
    # t=10: S=4/5; two censored at 15; t=20: 2 at risk, 1 solves -> S = 0.4 -> median 20
    assert stats.km_median([10, 15, 15, 20, 100], [1, 0, 0, 1, 0]) == 20.0
    assert stats.km_median([100, 100], [0, 0]) == math.inf


def test_km_median_ci():
    est = stats.km_median_ci(KM_TIMES, KM_EVENTS, n_boot=500, rng=0)
    assert est.value == 4.0
    assert est.low <= est.value and est.high == math.inf  # many replicates solve < half
    assert est == stats.km_median_ci(KM_TIMES, KM_EVENTS, n_boot=500, rng=0)
    all_same = stats.km_median_ci([7, 7, 7], [1, 1, 1], n_boot=100)
    assert all_same == (7.0, 7.0, 7.0)
    t = np.random.default_rng(2).integers(100, 200, 40).astype(float)
    tight = stats.km_median_ci(t, np.ones(40, bool), n_boot=500, rng=1)
    assert 100 <= tight.low <= tight.value <= tight.high <= 200


def test_logrank_hand_computed():
    # a: solved at 1 and 3, censored at 5; b: solved at 2, 4 and 6.
    #   u=1: n_a=3 n_b=3 d=1 d_a=1  E_a = 1/2  V = 1/4
    #   u=2: n_a=2 n_b=3 d=1 d_a=0  E_a = 2/5  V = 6/25
    #   u=3: n_a=2 n_b=2 d=1 d_a=1  E_a = 1/2  V = 1/4
    #   u=4: n_a=1 n_b=2 d=1 d_a=0  E_a = 1/3  V = 2/9
    #   u=6: n_a=0 n_b=1 d=1        E_a = 0    V = 0
    # O_a - E_a = 2 - 26/15 = 4/15; V = 433/450; chi2 = (16/225) / (433/450) = 32/433
    res = stats.logrank([1, 3, 5], [1, 1, 0], [2, 4, 6], [1, 1, 1])
    assert res.statistic == pytest.approx(32 / 433, abs=1e-12)
    assert res.pvalue == pytest.approx(math.erfc(math.sqrt(16 / 433)), abs=1e-12)


def test_logrank_tied_solves_hand_computed():
    # two seeds of each group, all solve at 5: u=5: n=4, d=4, n_a=2 -> E_a = 2, O_a = 2,
    # V = 4 * 1/2 * 1/2 * 0/3 = 0 -> no information
    assert all(math.isnan(v) for v in stats.logrank([5, 5], [1, 1], [5, 5], [1, 1]))
    # a: solve at 1 and 1; b: solve at 1, censored at 9.  u=1: n=4, d=3, n_a=2, n_b=2:
    # E_a = 3/2, V = 3 * 1/2 * 1/2 * 1/3 = 1/4, O_a - E_a = 1/2 -> chi2 = 1
    res = stats.logrank([1, 1], [1, 1], [1, 9], [1, 0])
    assert res.statistic == pytest.approx(1.0, abs=1e-12)
    assert res.pvalue == pytest.approx(math.erfc(math.sqrt(0.5)), abs=1e-12)


def test_logrank_matches_scipy():
    if not hasattr(scipy_stats, "logrank"):
        pytest.skip("scipy.stats.logrank needs scipy >= 1.11")
    rng = np.random.default_rng(10)
    for trial in range(5):
        na, nb = rng.integers(3, 25, 2)
        ta = rng.integers(1, 15, na).astype(float)
        tb = rng.integers(3, 18, nb).astype(float)
        ea, eb = rng.random(na) < 0.7, rng.random(nb) < 0.5
        ea[0] = eb[0] = True
        ref = scipy_stats.logrank(
            scipy_stats.CensoredData(uncensored=ta[ea], right=ta[~ea]),
            scipy_stats.CensoredData(uncensored=tb[eb], right=tb[~eb]),
        )
        got = stats.logrank(ta, ea, tb, eb)
        assert abs(got.statistic - ref.statistic**2) <= 1e-10, trial
        assert abs(got.pvalue - ref.pvalue) <= 1e-10, trial


def test_logrank_no_solves_is_undefined():
    res = stats.logrank([100, 100], [0, 0], [100], [0])
    assert math.isnan(res.statistic) and math.isnan(res.pvalue)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: stats.iqm([]), "x is empty"),
        (lambda: stats.iqm([1.0, math.nan]), "x contains NaN"),
        (lambda: stats.iqm([1.0, math.inf]), "x contains inf"),
        (lambda: stats.iqm([[1.0, 2.0]]), "1-D"),
        (lambda: stats.iqm(["a"]), "array of numbers"),
        (lambda: stats.bootstrap_ci([], np.mean), "empty"),
        (lambda: stats.bootstrap_ci([1.0, math.nan]), "NaN"),
        (lambda: stats.bootstrap_ci([[1.0], []]), r"x\[1\] is empty"),
        (lambda: stats.bootstrap_ci([1.0, 2.0], n_boot=0), "n_boot"),
        (lambda: stats.bootstrap_ci([1.0, 2.0], alpha=1.5), "alpha"),
        (lambda: stats.bootstrap_ci([1.0, 2.0], rng="seed"), "rng"),
        (lambda: stats.probability_of_improvement([], [1.0]), "x is empty"),
        (lambda: stats.probability_of_improvement([1.0], [math.nan]), "y contains NaN"),
        (lambda: stats.mann_whitney([1.0], []), "y is empty"),
        (lambda: stats.permutation_test([1.0], [2.0], n_perm=0), "n_perm"),
        (lambda: stats.permutation_test([1.0], [2.0], alternative="up"), "alternative"),
        (lambda: stats.permutation_test([], [2.0]), "x is empty"),
        (lambda: stats.kaplan_meier([1.0, 2.0], [1]), "different lengths"),
        (lambda: stats.kaplan_meier([], []), "empty"),
        (lambda: stats.kaplan_meier([1.0, math.nan], [1, 0]), "NaN"),
        (lambda: stats.kaplan_meier([-1.0], [1]), ">= 0"),
        (lambda: stats.kaplan_meier([1.0], [2]), "booleans or 0/1"),
        (lambda: stats.km_median([1.0, 2.0], [1, 0, 1]), "different lengths"),
        (lambda: stats.km_median_ci([1.0], [1], n_boot=-3), "n_boot"),
        (lambda: stats.logrank([1.0], [1], [2.0, 3.0], [1]), "group b .* different lengths"),
        (lambda: stats.logrank([], [], [2.0], [1]), "group a .* empty"),
        (lambda: stats.percentile_interval([]), "empty"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- Holm


def test_holm_by_hand():
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> kept at 0.06
    got = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.3, 0.6]), [0.6, 0.6])
    np.testing.assert_allclose(stats.holm([0.9, 0.8]), [1.0, 1.0])  # capped at 1
    # a test without information is left out of the family
    np.testing.assert_allclose(stats.holm([0.02, math.nan, 0.01]), [0.02, math.nan, 0.02])
    assert stats.holm([]).shape == (0,)
    for bad in ([1.5], [-0.1], [[0.1]]):
        with pytest.raises(ValueError, match="pvalues"):
            stats.holm(bad)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=8),
    st.sampled_from([0.01, 0.05, 0.1]),
)
def test_holm_rejects_what_the_step_down_procedure_rejects(p, alpha):
    """Reject where the adjusted p <= alpha: the same set as Holm's procedure run by hand
    (walk up the sorted p-values, reject while (m - k + 1) p_(k) <= alpha)."""
    adjusted = stats.holm(p)
    assert np.all(adjusted >= np.asarray(p) - 1e-15) and np.all(adjusted <= 1.0)
    order = np.argsort(p, kind="stable")
    by_hand = np.zeros(len(p), bool)
    for k, i in enumerate(order):
        if (len(p) - k) * p[i] > alpha:
            break
        by_hand[i] = True
    np.testing.assert_array_equal(adjusted <= alpha, by_hand)
