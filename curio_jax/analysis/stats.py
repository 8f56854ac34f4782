"""Seed-parallel statistics for comparing RL runs (host side, numpy; scipy only where named).

The methodology follows rliable (Agarwal et al., 2021, "Deep RL at the Edge of the Statistical
Precipice"): report aggregate scores with percentile-bootstrap confidence intervals over seeds,
prefer the interquartile mean (IQM) to the mean or median, and compare two agents with the
probability of improvement. Frames-to-solve is a time-to-event quantity: a seed that never
solved within the frame budget is right-censored at that budget, so it is summarised with a
Kaplan-Meier curve and compared with a log-rank test rather than by dropping (or imputing) the
unsolved seeds.

Conventions
- Every sample is a 1-D array with one value per seed (a list of such arrays, one per task, where
  a function says "stratified").
- Every function rejects empty input, NaN / inf (where values must be finite) and mismatched
  lengths with a ValueError that names the argument.
- Every random function takes ``rng``: a ``numpy.random.Generator`` or an integer seed. The
  default (``None``) is seed 0, so that a report is reproducible unless asked otherwise.
- Intervals are ``Estimate(value, low, high)``: the statistic on the data and the two-sided
  ``1 - alpha`` percentile-bootstrap interval. Tests return ``TestResult(statistic, pvalue)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import numpy as np
from scipy.stats import mannwhitneyu

__all__ = [
    "Estimate",
    "TestResult",
    "KaplanMeier",
    "iqm",
    "bootstrap_ci",
    "probability_of_improvement",
    "mann_whitney",
    "permutation_test",
    "kaplan_meier",
    "km_median",
    "km_median_ci",
    "logrank",
    "holm",
    "percentile_interval",
]

Rng = np.random.Generator | int | None
Alternative = Literal["two-sided", "greater", "less"]


class Estimate(NamedTuple):
    """A point estimate and its two-sided percentile-bootstrap interval."""

    value: float
    low: float
    high: float


class TestResult(NamedTuple):
    """A test statistic and its p-value."""

    __test__ = False  # not a pytest test class, whatever module imports it

    statistic: float
    pvalue: float


class KaplanMeier(NamedTuple):
    """The Kaplan-Meier estimate of the "solved by frames f" curve.

    At the distinct event times ``times`` (ascending), ``solved_fraction[i]`` = 1 - S(times[i])
    is the estimated fraction of seeds solved by ``times[i]`` frames; the curve is a right-
    continuous step function, 0 before ``times[0]`` and constant after ``times[-1]`` (up to the
    largest observed time, beyond which it is undefined)."""

    times: np.ndarray  # float [K] distinct event (solve) times, ascending
    solved_fraction: np.ndarray  # float [K] 1 - S(t) just after each event time
    at_risk: np.ndarray  # int [K] seeds still unsolved and uncensored just before each time
    events: np.ndarray  # int [K] seeds solving at each time
    max_time: float  # the largest observed time (event or censoring)

    def at(self, frames: float | np.ndarray) -> np.ndarray:
        """The estimated solved fraction at ``frames`` (right-continuous step function)."""
        f = np.asarray(frames, dtype=float)
        idx = np.searchsorted(self.times, f, side="right")
        padded = np.concatenate([[0.0], self.solved_fraction])
        return padded[idx]


# --------------------------------------------------------------------------- validation


def _as_sample(x: object, name: str, *, finite: bool = True) -> np.ndarray:
    """A non-empty 1-D float array without NaN (and without inf when ``finite``)."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a 1-D array of numbers ({e})") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per seed), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: at least one value (seed) is needed")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}")
    if finite and np.isinf(arr).any():
        raise ValueError(f"{name} contains inf at index {int(np.flatnonzero(np.isinf(arr))[0])}")
    return arr


def _as_rng(rng: Rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy Generator, an integer seed or None, got {rng!r}")


def _check_boot(n: int, alpha: float, name: str = "n_boot") -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _as_survival(times: object, events: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, events): times finite and >= 0, events boolean (or 0/1), equal lengths."""
    t = _as_sample(times, f"{name} times")
    if (t < 0).any():
        raise ValueError(f"{name} times must be >= 0, got {t[t < 0][0]!r}")
    e_raw = np.asarray(events)
    if e_raw.ndim == 0:
        e_raw = e_raw.reshape(1)
    if e_raw.ndim != 1:
        raise ValueError(f"{name} events must be 1-D, got shape {e_raw.shape}")
    if e_raw.dtype != bool:
        try:
            e_num = e_raw.astype(float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} events must be booleans or 0/1") from None
        if not np.isin(e_num, (0.0, 1.0)).all():
            raise ValueError(f"{name} events must be booleans or 0/1, got {e_raw!r}")
        e_raw = e_num.astype(bool)
    if e_raw.shape != t.shape:
        raise ValueError(
            f"{name} times and events have different lengths ({t.size} vs {e_raw.size})"
        )
    return t, e_raw


# --------------------------------------------------------------------------- percentiles


def percentile_interval(replicates: object, alpha: float = 0.05) -> tuple[float, float]:
    """The ``alpha / 2`` and ``1 - alpha / 2`` quantiles of bootstrap replicates.

    Linear interpolation between order statistics (numpy's default method), except that +inf
    replicates (for example a median frames-to-solve that was never reached) are handled: an
    interpolation that touches +inf gives +inf instead of numpy's NaN."""
    r = np.sort(np.asarray(replicates, dtype=float).ravel())
    if r.size == 0:
        raise ValueError("replicates is empty")
    if np.isnan(r).any():
        raise ValueError("replicates contain NaN")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")

    def q(p: float) -> float:
        pos = p * (r.size - 1)
        i = int(math.floor(pos))
        frac = pos - i
        lo = float(r[i])
        if frac == 0.0 or i + 1 >= r.size:
            return lo
        hi = float(r[i + 1])
        if hi == lo:
            return lo
        if math.isinf(hi) or math.isinf(lo):
            return hi if math.isinf(hi) else lo
        return lo + frac * (hi - lo)

    return q(alpha / 2), q(1.0 - alpha / 2)


# --------------------------------------------------------------------------- aggregates


def _iqm_sorted(s: np.ndarray) -> float:
    cut = int(0.25 * s.size)  # scipy.stats.trim_mean's rule: floor(0.25 n) off each side
    return float(np.mean(s[cut : s.size - cut]))


def iqm(x: object) -> float:
    """Interquartile mean: the mean of the middle values after removing 25% from each end.

    Exactly ``scipy.stats.trim_mean(x, 0.25)``, the definition rliable uses: floor(n / 4)
    values are removed from each end, so n = 1..3 gives the plain mean, n = 4 the mean of the
    middle two, n = 5 of the middle three (no fractional weighting of the boundary values).

    x: [n] finite values (one per seed)."""
    return _iqm_sorted(np.sort(_as_sample(x, "x")))


def bootstrap_ci(
    x: object,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    alpha: float = 0.05,
    rng: Rng = None,
) -> Estimate:
    """Percentile-bootstrap interval of ``statistic`` over seeds.

    x: [n] one value per seed, or a list of per-task arrays [n_k] (stratified bootstrap, as
      rliable: each replicate resamples seeds with replacement within every task independently
      and applies ``statistic`` to the concatenation of the resampled tasks).
    statistic: maps a 1-D array to a number (np.mean, iqm, np.median, ...).
    Returns Estimate(statistic(x), low, high) with the two-sided 1 - alpha interval."""
    _check_boot(n_boot, alpha)
    if not callable(statistic):
        raise ValueError(f"statistic must be callable, got {statistic!r}")
    if isinstance(x, (list, tuple)) and len(x) > 0 and all(np.ndim(t) == 1 for t in x):
        tasks = [_as_sample(t, f"x[{k}]") for k, t in enumerate(x)]
    elif isinstance(x, (list, tuple)) and len(x) == 0:
        raise ValueError("x is empty: at least one value (seed) is needed")
    else:
        tasks = [_as_sample(x, "x")]
    gen = _as_rng(rng)
    point = float(statistic(np.concatenate(tasks)))
    idx = [gen.integers(0, t.size, size=(n_boot, t.size)) for t in tasks]
    reps = np.empty(n_boot)
    for b in range(n_boot):
        reps[b] = statistic(np.concatenate([t[i[b]] for t, i in zip(tasks, idx, strict=True)]))
    if np.isnan(reps).any():
        raise ValueError("statistic returned NaN on a bootstrap replicate")
    low, high = percentile_interval(reps, alpha)
    return Estimate(point, low, high)


# --------------------------------------------------------------------------- two samples


def _poi(x: np.ndarray, y: np.ndarray) -> float:
    greater = np.count_nonzero(x[:, None] > y[None, :])
    ties = np.count_nonzero(x[:, None] == y[None, :])
    return float((greater + 0.5 * ties) / (x.size * y.size))


def probability_of_improvement(
    x: object,
    y: object,
    n_boot: int = 2000,
    alpha: float = 0.05,
    rng: Rng = None,
) -> Estimate:
    """P(X > Y) + 0.5 P(X = Y) for a random seed of X against a random seed of Y.

    This is the Mann-Whitney U statistic of x divided by n m. The interval is a percentile
    bootstrap that resamples the seeds of x and of y independently (rliable's convention).

    x: [n], y: [m] finite final scores (higher is better)."""
    xs, ys = _as_sample(x, "x"), _as_sample(y, "y")
    _check_boot(n_boot, alpha)
    gen = _as_rng(rng)
    ix = gen.integers(0, xs.size, size=(n_boot, xs.size))
    iy = gen.integers(0, ys.size, size=(n_boot, ys.size))
    reps = np.array([_poi(xs[ix[b]], ys[iy[b]]) for b in range(n_boot)])
    low, high = percentile_interval(reps, alpha)
    return Estimate(_poi(xs, ys), low, high)


def mann_whitney(x: object, y: object) -> TestResult:
    """Two-sided Mann-Whitney U test (scipy.stats.mannwhitneyu, method "auto": exact for small
    samples without ties, otherwise the normal approximation with tie and continuity
    corrections).

    Returns TestResult(U of x, p-value). When every value of both samples is the same the test
    is undefined and the p-value is NaN (as scipy)."""
    xs, ys = _as_sample(x, "x"), _as_sample(y, "y")
    if np.all(np.concatenate([xs, ys]) == xs[0]):
        return TestResult(0.5 * xs.size * ys.size, math.nan)
    res = mannwhitneyu(xs, ys, alternative="two-sided")
    return TestResult(float(res.statistic), float(res.pvalue))


def _mean_diff(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(x) - np.mean(y))


def permutation_test(
    x: object,
    y: object,
    statistic: Callable[[np.ndarray, np.ndarray], float] = _mean_diff,
    n_perm: int = 10_000,
    alternative: Alternative = "two-sided",
    rng: Rng = None,
) -> TestResult:
    """Monte-Carlo permutation test of "x and y come from the same distribution".

    statistic(x, y) -> number; the default is mean(x) - mean(y). The pooled seeds are shuffled
    ``n_perm`` times and split into groups of the original sizes. The p-value counts the
    observed arrangement among the permutations, p = (1 + #{extreme}) / (1 + n_perm), so it is
    never 0. "two-sided" compares |T|, "greater" T >= T_obs, "less" T <= T_obs.

    x: [n], y: [m] finite values."""
    xs, ys = _as_sample(x, "x"), _as_sample(y, "y")
    if not isinstance(n_perm, (int, np.integer)) or isinstance(n_perm, bool) or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm!r}")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    if not callable(statistic):
        raise ValueError(f"statistic must be callable, got {statistic!r}")
    gen = _as_rng(rng)
    observed = float(statistic(xs, ys))
    if math.isnan(observed):
        raise ValueError("statistic returned NaN on the data")
    pooled = np.concatenate([xs, ys])
    n = xs.size
    perm = np.empty(n_perm)
    for b in range(n_perm):
        p = gen.permutation(pooled)
        perm[b] = statistic(p[:n], p[n:])
    # Floating-point slack so that arrangements equal to the observed one count as extreme.
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "two-sided":
        extreme = np.count_nonzero(np.abs(perm) >= abs(observed) - tol)
    elif alternative == "greater":
        extreme = np.count_nonzero(perm >= observed - tol)
    else:
        extreme = np.count_nonzero(perm <= observed + tol)
    return TestResult(observed, float((1.0 + extreme) / (1.0 + n_perm)))


# --------------------------------------------------------------------------- censored times


def _count_at(sorted_values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """How many entries of ``sorted_values`` equal each of ``points``."""
    return np.searchsorted(sorted_values, points, side="right") - np.searchsorted(
        sorted_values, points, side="left"
    )


def _km(t: np.ndarray, e: np.ndarray) -> KaplanMeier:
    order = np.argsort(t, kind="stable")
    t, e = t[order], e[order]
    times = np.unique(t[e])
    # at risk just before time u: seeds whose time is >= u (censored at u still count at u)
    at_risk = t.size - np.searchsorted(t, times, side="left")
    events = _count_at(t[e], times)
    survival = np.cumprod(1.0 - events / at_risk)
    return KaplanMeier(
        times=times,
        solved_fraction=1.0 - survival,
        at_risk=at_risk.astype(int),
        events=events.astype(int),
        max_time=float(t[-1]),
    )


def kaplan_meier(times: object, events: object) -> KaplanMeier:
    """Kaplan-Meier estimate of the fraction of seeds solved by f frames.

    times: [n] frames at which each seed solved, or its frame budget if it never did.
    events: [n] True where the seed solved (an event), False where it is censored at ``times``.
    A seed that solves exactly at another seed's censoring time counts as solved before the
    censoring (the usual convention)."""
    t, e = _as_survival(times, events, "frames-to-solve")
    return _km(t, e)


def _median_from(km: KaplanMeier) -> float:
    reached = np.flatnonzero(km.solved_fraction >= 0.5 - 1e-12)
    return float(km.times[reached[0]]) if reached.size else math.inf


def km_median(times: object, events: object) -> float:
    """Median frames-to-solve from the Kaplan-Meier curve: the smallest event time by which the
    estimated solved fraction reaches 1/2 (S(t) <= 0.5). ``math.inf`` when the curve never
    reaches 1/2, i.e. when (after accounting for censoring) fewer than half the seeds solved."""
    t, e = _as_survival(times, events, "frames-to-solve")
    return _median_from(_km(t, e))


def km_median_ci(
    times: object,
    events: object,
    n_boot: int = 2000,
    alpha: float = 0.05,
    rng: Rng = None,
) -> Estimate:
    """Median frames-to-solve with a percentile-bootstrap interval over seeds: each replicate
    resamples (time, event) pairs with replacement. Replicates in which fewer than half solved
    have median +inf, so an interval bound may be +inf ("not reached within the budget")."""
    t, e = _as_survival(times, events, "frames-to-solve")
    _check_boot(n_boot, alpha)
    gen = _as_rng(rng)
    idx = gen.integers(0, t.size, size=(n_boot, t.size))
    reps = np.array([_median_from(_km(t[i], e[i])) for i in idx])
    low, high = percentile_interval(reps, alpha)
    return Estimate(_median_from(_km(t, e)), low, high)


def _chi2_1_sf(x: float) -> float:
    """Survival function of the chi-square distribution with one degree of freedom."""
    return math.erfc(math.sqrt(x / 2.0))


def logrank(
    times_a: object,
    events_a: object,
    times_b: object,
    events_b: object,
) -> TestResult:
    """Two-sided log-rank test that two groups have the same frames-to-solve distribution.

    At every distinct event time u with n_a, n_b seeds at risk (n = n_a + n_b) and d solves
    (d_a of them in group a): E_a += d n_a / n, V += d (n_a / n) (n_b / n) (n - d) / (n - 1).
    The statistic is (O_a - E_a)^2 / V ~ chi-square(1); scipy.stats.logrank reports its signed
    square root. Returns TestResult(chi-square, p). When V = 0 (no solves, or never both groups
    at risk at a solve) the test carries no information: statistic and p are NaN (as scipy)."""
    ta, ea = _as_survival(times_a, events_a, "group a frames-to-solve")
    tb, eb = _as_survival(times_b, events_b, "group b frames-to-solve")
    t = np.concatenate([ta, tb])
    e = np.concatenate([ea, eb])
    u = np.unique(t[e])
    n_a = ta.size - np.searchsorted(np.sort(ta), u, side="left")
    n_b = tb.size - np.searchsorted(np.sort(tb), u, side="left")
    d_a = _count_at(np.sort(ta[ea]), u)  # solves of group a at each u
    d = _count_at(np.sort(t[e]), u)  # solves of both groups at each u
    n = (n_a + n_b).astype(float)
    expected_a = float(np.sum(d * n_a / n))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(n > 1, (n - d) / np.maximum(n - 1, 1), 0.0)
    variance = float(np.sum(d * (n_a / n) * (n_b / n) * ratio))
    if variance <= 0.0:
        return TestResult(math.nan, math.nan)
    chi2 = (float(np.sum(d_a)) - expected_a) ** 2 / variance
    return TestResult(chi2, _chi2_1_sf(chi2))


def holm(pvalues: object) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (Holm 1979), in the order given.

    Sorted ascending, the k-th smallest of m becomes max over j <= k of min(1, (m - j + 1) p_(j)):
    reject where the adjusted p is below alpha, and the family-wise error rate is at most alpha
    under any dependence between the tests. NaN entries (a test without information, as
    `logrank` returns) stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be a 1-D array, got shape {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"pvalues must lie in [0, 1], got {p.tolist()}")
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out
