"""Numbers printed with their intervals, the three-way reading of a comparison, and the ARA readings
that follow a ratio's interval rather than the ratio (docs/method.md §9)."""

from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from advexp_core.base.statistics import wilson_interval
from advexp_core.readings import ara
from advexp_core.readings.ara import AraNumbers
from advexp_core.readings.intervals import (
    compare,
    count_with_interval,
    percent_with_interval,
    ratio_with_interval,
    with_interval,
)


@pytest.mark.parametrize(
    ("k", "n", "shown"),
    [
        (64, 103, "64/103 (62 % [52 %, 71 %])"),
        (0, 8, "0/8 (0 % [0 %, 32 %])"),
        (1, 103, "1/103 (1.0 % [0.2 %, 5.3 %])"),
    ],
)
def test_counts_read_with_scipys_wilson_interval(k: int, n: int, shown: str) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert count_with_interval(k, n, (ci.low, ci.high)) == shown


def test_numbers_with_intervals() -> None:
    assert with_interval(0.8617, [0.8301, 0.8899]) == "0.86 [0.83, 0.89]"
    assert with_interval(0.8617, None) == "0.86" and with_interval(None, [0.1, 0.2]) == "—"
    assert with_interval(0.5, [None, 0.7]) == "0.50"
    assert percent_with_interval(0.62, (0.52, 0.71)) == "62 % [52 %, 71 %]"
    assert with_interval(-0.14, (-0.19, -0.09), signed=True) == "-0.14 [-0.19, -0.09]"
    assert with_interval(0.05, (0.04, 0.05), signed=True) == "+0.05 [+0.04, +0.05]"
    assert ratio_with_interval(3.63, (3.52, 3.74)) == "3.6× [3.5×, 3.7×]"


def test_a_comparison_reads_its_interval_against_zero() -> None:
    assert compare(0.01, 0.2) == "favours-robust"
    assert compare(-0.2, -0.01) == "favours-standard"
    assert compare(-0.05, 0.1) == "cannot-tell" and compare(0.0, 0.1) == "cannot-tell"
    assert compare(1.2, 3.0, zero=1.0) == "favours-robust"  # a ratio against 1


STANDARD = AraNumbers("std", False, 0.01, 0.02, "100 test images")


@pytest.mark.parametrize(
    ("interval", "outcome", "words"),
    [
        ((2.5, 3.6), "higher", "clearly more robust"),
        ((1.2, 4.0), "somewhat-higher", "more robust (the interval lies above 1×)"),
        ((0.7, 4.0), "cannot-tell", "cannot tell at this sample size"),
        ((0.6, 0.9), "somewhat-lower", "less robust"),
        ((0.0, math.inf), "cannot-tell", "unbounded (fewer than two images)"),
    ],
)
def test_a_live_run_reads_the_ratios_interval(interval, outcome, words) -> None:
    r = ara.live(
        AraNumbers("rob", True, 0.03, 0.05, "5 test images"),
        accuracy=0.8,
        reference=STANDARD,
        ratio_interval=interval,
    )
    assert r.outcome == outcome and words in r.sentence
    assert "3.0× the Attack ARA 0.0100 of std (100 test images)" in r.sentence  # the ratio, then its interval


def test_the_shipped_table_reads_each_ratios_interval() -> None:
    rows = [STANDARD, AraNumbers("adv", False, 0.015, 0.03), AraNumbers("rob", True, 0.05, 0.1)]
    above = {
        "adv": {"attack": (1.2, 1.9), "btr": (1.1, 2.0)},
        "rob": {"attack": (4.1, 6.0), "btr": (4.0, 6.2)},
    }
    r = ara.ratios(rows, standard="std", source="On 100 test images", intervals=above)
    assert r.outcome == "robust-higher"
    assert (
        "rob 5.0× [4.1×, 6.0×] (BTR 5.0× [4.0×, 6.2×])" in r.sentence and "clearly more robust" in r.sentence
    )
    straddles = dict(above)
    straddles["rob"] = {"attack": (0.8, 6.0), "btr": (0.7, 6.0)}
    r = ara.ratios(rows, standard="std", source="Here", intervals=straddles)
    assert r.outcome == "no-gain" and "rob cannot tell at this sample size" in r.sentence
