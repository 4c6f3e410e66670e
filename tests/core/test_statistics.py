"""Intervals and verdicts for small counts: the Wilson interval is scipy's (and known values), the
rule-out count is the smallest n the Wilson bound allows, the paired bootstrap is reproducible by
its seed, and the three-way verdict and "most" follow the interval, not the share."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from advexp_core.base.statistics import (
    images_to_rule_out,
    majority,
    paired_bootstrap_ci,
    three_way,
    wilson_interval,
)
from advexp_core.readings import audit as readings

COUNTS = [(0, 8), (5, 8), (3, 5), (64, 103), (8, 8), (0, 1), (1, 1)]


@pytest.mark.parametrize(("k", "n"), COUNTS)
def test_the_interval_is_scipys_wilson_interval(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == (ci.low, ci.high)
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_known_values_and_the_ends() -> None:
    assert wilson_interval(0, 8) == (0.0, pytest.approx(0.3244, abs=1e-4))  # 1.96² / (8 + 1.96²)
    assert wilson_interval(8, 8) == (pytest.approx(0.6756, abs=1e-4), 1.0)
    assert wilson_interval(5, 8) == pytest.approx((0.3057, 0.8632), abs=1e-4)
    assert wilson_interval(3, 5) == pytest.approx((0.2307, 0.8824), abs=1e-4)
    assert wilson_interval(64, 103) == pytest.approx((0.5249, 0.7091), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing measured: every rate possible
    wide, narrow = wilson_interval(5, 8, 0.99), wilson_interval(5, 8, 0.8)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


@pytest.mark.parametrize(("k", "n", "confidence"), [(3, 2, 0.95), (-1, 4, 0.95), (1, 4, 1.0), (1, 4, 0.0)])
def test_impossible_counts_are_refused(k: int, n: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(k, n, confidence)


def test_images_to_rule_out_is_the_smallest_n_the_wilson_bound_allows() -> None:
    # The Wilson upper bound for 0 of n is z²/(n + z²): below 5% from n = 73 (the "rule of three",
    # 3/n, would say 60).
    assert images_to_rule_out(0.05) == 73
    for tolerance in (0.05, 0.1, 0.01, 0.3):
        n = images_to_rule_out(tolerance)
        assert wilson_interval(0, n)[1] < tolerance <= wilson_interval(0, n - 1)[1]
    assert images_to_rule_out(0.05, confidence=0.99) > 73
    with pytest.raises(ValueError, match="tolerance"):
        images_to_rule_out(0.0)


@pytest.mark.parametrize(
    ("k", "n", "outcome", "most"),
    [
        (0, 8, "inconclusive", False),  # up to 32% still possible
        (3, 5, "relies", False),  # at least 23%, but not shown to be most
        (5, 8, "relies", False),  # 62% observed; the interval reaches down to 31%
        (64, 103, "relies", True),  # the interval starts at 52.5%, above one half
        (0, 73, "does-not-rely", False),
        (0, 72, "inconclusive", False),
    ],
)
def test_three_way_verdicts_at_five_percent(k: int, n: int, outcome: str, most: bool) -> None:
    low, high = wilson_interval(k, n)
    assert three_way(low, high, 0.05) == outcome
    assert majority(low) is most


def test_three_way_borders() -> None:
    assert three_way(0.05, 0.5, 0.05) == "inconclusive"  # strictly above, strictly below
    assert three_way(0.0, 0.05, 0.05) == "inconclusive"
    assert three_way(0.051, 0.5, 0.05) == "relies" and three_way(0.0, 0.049, 0.05) == "does-not-rely"
    assert not majority(0.5) and majority(0.5001)


def test_the_paired_bootstrap_is_reproducible_with_its_seed() -> None:
    rng = np.random.default_rng(3)
    before = rng.normal(size=40)
    after = before - 1.0 + 0.5 * rng.normal(size=40)
    first = paired_bootstrap_ci(after, before, seed=7, n_resamples=2000)
    assert paired_bootstrap_ci(after, before, seed=7, n_resamples=2000) == first
    assert paired_bootstrap_ci(after, before, seed=8, n_resamples=2000) != first
    low, high = first
    assert low < float(np.mean(after - before)) < high < 0  # the mean change, clearly negative
    # Paired: a large spread shared by both conditions does not widen the interval of the difference.
    shift = 100.0 * rng.normal(size=40)
    shifted = paired_bootstrap_ci(after + shift, before + shift, seed=7, n_resamples=2000)
    assert shifted == pytest.approx(first)


def test_the_paired_bootstrap_with_a_constant_difference_and_too_few_images() -> None:
    assert paired_bootstrap_ci([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], seed=0) == (0.5, 0.5)
    median = lambda a, b, axis=-1: np.median(a - b, axis=axis)  # noqa: E731
    assert paired_bootstrap_ci([1.0, 5.0, 2.0], [0.0, 0.0, 0.0], median, seed=0, n_resamples=500)[0] >= 1.0
    with pytest.raises(ValueError, match="two images"):
        paired_bootstrap_ci([1.0], [0.0], seed=0)
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap_ci([1.0, 2.0], [0.0], seed=0)
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap_ci([1.0, float("nan")], [0.0, 0.0], seed=0)


def test_the_audit_sentence_for_no_change_on_eight_images_names_the_images_needed() -> None:
    r = readings.summary(removed=(0, 8), added=None, hidden=[])
    assert r.outcome == "inconclusive"
    assert r.text.startswith(
        "Removing the artifact changed 0% of decisions (0 of 8 images; 95% interval 0% to 32%): the network "
        "may still rely on it for up to 32% of its decisions; with no change on 73 images you could rule "
        "out more than 5%."
    )
    looser = readings.summary(removed=(0, 8), added=None, hidden=[], tolerance=0.1)
    assert f"no change on {images_to_rule_out(0.1)} images you could rule out more than 10%" in looser.text
