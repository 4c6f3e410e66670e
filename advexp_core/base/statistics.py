"""Intervals and verdicts for rates measured on a handful of images (docs/method.md §9).

A shortcut audit counts how many of n decisions an intervention changed; n is often 5 or 8, so the
share alone says little: "0 of 8 changed" is compatible with a network that relies on the artifact
for a third of its decisions. Every rate is therefore reported with its Wilson score interval
(Wilson 1927; Brown, Cai & DasGupta 2001 show it keeps close to its nominal coverage at k = 0, k = n
and small n, where the normal approximation collapses to a zero-width interval), a difference of
paired measurements (the same images before and after) with a seeded paired bootstrap (Efron &
Tibshirani 1993), and a verdict reads the interval against a tolerance, with three outcomes:
"relies" (the whole interval lies above it), "does-not-rely" (the whole interval lies below it) and
"inconclusive" (it straddles it: more images are needed).

The computations are scipy's (`scipy.stats.binomtest`, `scipy.stats.bootstrap`); this module fixes
the conventions (empty samples, the confidence level, the tolerance) in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
"""The intervals' confidence level."""

TOLERANCE = 0.05
"""Default tolerance: a share of decisions below which reliance on an artifact counts as negligible."""

MOST = 0.5
"""A share is "most" only when its interval lies entirely above this."""

BOOTSTRAP_RESAMPLES = 9999  # scipy's default; the BCa interval's ends settle to about 0.5 % of their width
BOOTSTRAP_BATCH = 1000  # resamples per vectorised call: bounds the memory to ~1000 × n numbers

Outcome = Literal["relies", "does-not-rely", "inconclusive"]
OUTCOMES: tuple[Outcome, ...] = ("relies", "does-not-rely", "inconclusive")


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion k/n (Wilson 1927), via scipy.

    Args:
        k: successes (here: decisions changed, maps that hid the artifact, correct decisions).
        n: trials (images); n = 0 gives (0.0, 1.0): nothing measured, every rate possible.
        confidence: the confidence level, in (0, 1).

    Returns:
        (low, high), both in [0, 1]; low = 0 when k = 0 and high = 1 when k = n.

    Raises:
        ValueError: k outside 0..n, n < 0, or a confidence outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}.")
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"a count of {k} out of {n} is not a proportion.")
    if n == 0:
        return 0.0, 1.0
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def images_to_rule_out(tolerance: float, confidence: float = CONFIDENCE) -> int:
    """The fewest images on which no change rules out a rate of ``tolerance`` or more: the smallest n
    whose Wilson upper bound for 0 of n lies below it (73 for 5 % at 95 %; the "rule of three",
    3/n, would say 60).

    Raises:
        ValueError: a tolerance outside (0, 1).
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must lie between 0 and 1, got {tolerance}.")

    def rules_out(n: int) -> bool:
        return wilson_interval(0, n, confidence)[1] < tolerance

    high = 1
    while not rules_out(high):  # the upper bound falls monotonically with n: double, then bisect
        high *= 2
    low = high // 2  # low does not rule it out (or is 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if rules_out(middle) else (middle, high)
    return high


def mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean of a − b along ``axis`` (the default statistic of `paired_bootstrap_ci`)."""
    return np.mean(a - b, axis=axis)


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    statistic: Callable[..., np.ndarray] = mean_difference,
    *,
    seed: int,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """A BCa bootstrap interval of a statistic of two paired samples (Efron & Tibshirani 1993), via
    `scipy.stats.bootstrap` with ``paired=True``: each resample draws images, keeping each image's
    two values together.

    Args:
        a, b: one value per image under each condition (e.g. the margin after and before).
        statistic: ``statistic(a, b, axis=-1)``, vectorised along ``axis``; default the mean of a − b.
        seed: the resampling's seed (a `numpy.random.Generator` is made from it): same seed, same interval.
        n_resamples: bootstrap resamples.
        confidence: the confidence level.

    Returns:
        (low, high). When every image gives the same a − b, every resample gives the same
        statistic and the interval is that single value (scipy's BCa is undefined there).

    Raises:
        ValueError: samples of different lengths, fewer than two images, or values that are not finite.

    Shapes: a, b (N,).
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be two equal 1-D arrays, got {x.shape} and {y.shape}.")
    if len(x) < 2:
        raise ValueError(f"a bootstrap needs at least two images, got {len(x)}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("the samples hold values that are not finite.")
    differences = x - y
    if np.all(differences == differences[0]):
        value = float(statistic(x, y, axis=-1))
        return value, value
    result = stats.bootstrap(
        (x, y), statistic, paired=True, vectorized=True, n_resamples=n_resamples,
        batch=BOOTSTRAP_BATCH, confidence_level=confidence, rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def three_way(low: float, high: float, tolerance: float = TOLERANCE) -> Outcome:
    """Read an interval of a rate against a tolerance: "relies" when even its low end exceeds it,
    "does-not-rely" when even its high end lies below it, "inconclusive" when it straddles it."""
    if low > tolerance:
        return "relies"
    if high < tolerance:
        return "does-not-rely"
    return "inconclusive"


def majority(low: float) -> bool:
    """Whether a share may be called "most": only when its interval's low end exceeds one half."""
    return low > MOST


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CONFIDENCE",
    "MOST",
    "OUTCOMES",
    "TOLERANCE",
    "Outcome",
    "images_to_rule_out",
    "majority",
    "mean_difference",
    "paired_bootstrap_ci",
    "three_way",
    "wilson_interval",
]
