"""Readings of the explainers' agreement (docs/method.md §5 and "Readings"): the off-diagonal values
of one agreement matrix (mean, least and most alike pair) and whether the explainers agree.

The outcome is decided by the mean over every pair of methods against `AGREE` and `DISAGREE`, one
pair of thresholds per agreement measure (their scales and chance levels differ). Every threshold
is a constant here, justified in docs/method.md ("Readings").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from advexp_core.readings import Reading, near

AGREE = {"spearman": 0.6, "topk_intersection": 0.5, "ssim": 0.5}
"""Mean off-diagonal value from which the explainers agree, per measure."""
DISAGREE = {"spearman": 0.3, "topk_intersection": 0.3, "ssim": 0.2}
"""Mean off-diagonal value below which the explainers disagree, per measure."""
MEASURE_WORDS = {"spearman": "rank correlation", "topk_intersection": "top-20 % overlap", "ssim": "map SSIM"}
CHANCE = {"topk_intersection": "0.2 is chance"}
"""What an unrelated pair of maps scores, where the measure has a known chance level."""


def _pairs(matrix: Sequence[Sequence[float | None]], names: Sequence[str]) -> list[tuple[float, str, str]]:
    """(value, method, method) of every pair off the diagonal whose value is defined."""
    out = []
    for i, j in itertools.combinations(range(len(names)), 2):
        value = matrix[i][j]
        if value is not None and math.isfinite(value):
            out.append((float(value), names[i], names[j]))
    return out


def agreement(matrix: Sequence[Sequence[float | None]], names: Sequence[str], *, measure: str) -> Reading:
    """Do the explainers agree under one measure: the pairs' mean against `AGREE` / `DISAGREE`.

    Args:
        matrix: the methods × methods matrix of the measure (1 on the diagonal; None or NaN where
            a map is flat).
        names: the methods' display names, in the matrix's order.
        measure: ``spearman``, ``topk_intersection`` or ``ssim``.
    """
    pairs = _pairs(matrix, names)
    word = MEASURE_WORDS.get(measure, measure)
    if len(names) < 2:
        return Reading("single", "Only one explainer was run, so there is no pair to compare.")
    if not pairs:
        return Reading("undefined", f"The {word} is undefined for every pair (flat maps).")
    mean = sum(v for v, _, _ in pairs) / len(pairs)
    agree, disagree = AGREE[measure], DISAGREE[measure]
    outcome = "agree" if mean >= agree else "disagree" if mean < disagree else "partly"
    verdict = {"agree": "agree", "disagree": "disagree", "partly": "agree only partly"}[outcome]
    chance = f"; {CHANCE[measure]}" if measure in CHANCE else ""
    rule = f"(agreeing from a mean of {agree:g}, disagreeing below {disagree:g}{chance})"
    close = near(mean, agree) or near(mean, disagree)
    if len(pairs) == 1:
        value, a, b = pairs[0]
        return Reading(outcome, f"{a} and {b} {verdict}: their {word} is {value:.2f} {rule}.", close)
    low, high = min(pairs), max(pairs)
    text = (
        f"The explainers {verdict}: their {word} off the diagonal averages {mean:.2f} over {len(pairs)} "
        f"pairs, from {low[0]:.2f} ({low[1]} vs {low[2]}, the least alike) to {high[0]:.2f} ({high[1]} vs "
        f"{high[2]}, the most alike) {rule}."
    )
    return Reading(outcome, text, close)


def every_measure(
    matrices: Mapping[str, Sequence[Sequence[float | None]]], names: Sequence[str]
) -> dict[str, Reading]:
    """The `agreement` reading of each measure of a compare-explainers report's ``agreement``."""
    return {measure: agreement(matrix, names, measure=measure) for measure, matrix in matrices.items()}
