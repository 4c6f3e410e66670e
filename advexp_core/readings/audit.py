"""Readings of a shortcut audit (docs/audit.md): does this network's decision rest on the artifact
the user marked, measured by removing or pasting it (`advexp_core.experiments.audit`), and would each
explanation have told you?

The answer comes from the intervention; a map is graded against it. The thresholds are those of the
ground-truth readings (docs/method.md §6): a map "shows" the artifact when its share of mass on it is
at least the artifact's share of the image (what an even spread would put there). Whether the network
relies on the artifact is read from the Wilson interval of the share of decisions that removing it
changed, against a tolerance (`advexp_core.base.statistics`, docs/method.md §9): a few images
give a wide interval, and the verdict then says it cannot tell rather than "does not decide by it".
"""

from __future__ import annotations

from collections.abc import Sequence

from advexp_core.base.statistics import (
    CONFIDENCE,
    TOLERANCE,
    Outcome,
    images_to_rule_out,
    majority,
    three_way,
    wilson_interval,
)
from advexp_core.readings import Reading
from advexp_core.readings.groundtruth import map_verdict


def intervention(
    names: Sequence[str],
    *,
    decided: int,
    confidence: float,
    decided_after: int | None,
    confidence_after: float | None,
    intervention: str,
    near_tie: bool = False,
) -> Reading:
    """Does the decision on this image follow the artifact?

    Args:
        names: the class names.
        decided, confidence: the class decided before the intervention and its probability.
        decided_after, confidence_after: the same after it (None: no intervention).
        intervention: "removed", "added" or "none".
        near_tie: the top two probabilities lay within `readings.groundtruth.TIE` before or after
            (the reading is then flagged: either side is noise).

    Outcomes: "follows-artifact", "ignores-artifact", "not-measured".
    """
    now = f"{names[decided]} ({confidence:.0%})"
    if decided_after is None or confidence_after is None or intervention == "none":
        return Reading(
            "not-measured",
            f"The network says {now}. No artifact is marked here and none was pasted, so nothing was measured.",
        )
    other_text = f"{names[decided_after]} ({confidence_after:.0%})"
    what = "removing the marked artifact" if intervention == "removed" else "pasting the artifact on"
    if decided_after != decided:
        return Reading(
            "follows-artifact",
            f"The decision follows the artifact here: the network says {now}, and {what} changes that to {other_text}.",
            near_tie,
        )
    return Reading(
        "ignores-artifact",
        f"The decision does not follow the artifact here: the network says {now}, and {what} leaves it at {other_text}.",
        near_tie,
    )


def map_against_reliance(
    method: str, *, share: float | None, area: float, relies: bool | None, intervention: str
) -> Reading:
    """Would this map (of the decided class, on the image as it is) have told you?

    Args:
        method: the explainer's title.
        share: the share of the map's mass on the artifact (None: no artifact marked, or an empty map).
        area: the artifact's share of the image's pixels.
        relies: the intervention changed the decision (None: nothing measured).
        intervention: "removed", "added" or "none".

    Outcomes: "warned", "misleading", "false-alarm", "consistent"; "cannot-show" (the decision
    changes when the artifact is pasted on, which no map of the image without it can show);
    "nothing-to-show"; "empty".
    """
    if intervention != "removed":
        if relies:
            return Reading(
                "cannot-show",
                f"{method}: the artifact is not in this image, so no map of it can show that pasting it "
                "on changes the decision.",
            )
        return Reading("nothing-to-show", f"{method}: no artifact in this image to show.")
    return map_verdict(method, share=share, area=area, relies=relies, noun="artifact")


def percent(value: float) -> str:
    """A share as a percentage: whole percents, with one decimal below 10 % (an interval's end near
    a 5 % tolerance must not round onto it)."""
    return f"{value:.1%}" if 0 < value < 0.1 else f"{value:.0%}"


def tolerance_text(tolerance: float) -> str:
    """The tolerance as written in a sentence: "5%", "2.5%"."""
    return f"{tolerance * 100:g}%"


def interval_text(low: float, high: float, confidence: float = CONFIDENCE) -> str:
    """The interval in words: "95% interval a to b"."""
    return f"{confidence:.0%} interval {percent(low)} to {percent(high)}"


def number_with_interval(value: float | None, interval: Sequence[float | None] | None) -> str:
    """A number with its interval for a one-line summary, "0.62 [0.31, 0.86]" ("n/a" without a number)."""
    if value is None:
        return "n/a"
    if interval is None or None in interval:
        return f"{value:.2f}"
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def _verdict(k: int, n: int, tolerance: float, confidence: float) -> tuple[Outcome, bool]:
    """The three-way outcome of k changes in n, and whether "most" may be said."""
    low, high = wilson_interval(k, n, confidence)
    return three_way(low, high, tolerance), majority(low)


def ties_could_tip(k: int, n: int, ties: int, tolerance: float, confidence: float) -> bool:
    """Whether the verdict (its outcome, or "most") would read differently had any of ``ties``
    near-tie decisions gone the other way.

    A count moves in whole decisions, and only a decision on a near tie can go either way with
    another seed or thread count: that, not a relative distance, is how near a count lies to its
    threshold.
    """
    now = _verdict(k, n, tolerance, confidence)
    others = range(max(0, k - ties), min(n, k + ties) + 1)
    return any(_verdict(j, n, tolerance, confidence) != now for j in others)


def _removal(
    changed: int, n: int, ties: int, tolerance: float, confidence: float
) -> tuple[str, Outcome, bool]:
    """The removal clause, its three-way outcome, and whether its near ties could tip it."""
    low, high = wilson_interval(changed, n, confidence)
    outcome = three_way(low, high, tolerance)
    close = ties_could_tip(changed, n, ties, tolerance, confidence)
    tol = tolerance_text(tolerance)
    text = (
        f"removing the artifact changed {percent(changed / n)} of decisions "
        f"({changed} of {n} images; {interval_text(low, high, confidence)})"
    )
    if outcome == "relies":
        if majority(low):
            text += f": the network decides by the artifact on most of these images (at least {percent(low)})"
        else:
            text += f": the network relies on it for at least {percent(low)} of its decisions on these images"
    elif outcome == "does-not-rely":
        text += f": the network relies on it for at most {percent(high)} of its decisions, under the {tol} tolerance"
    elif changed == 0:
        text += (
            f": the network may still rely on it for up to {percent(high)} of its decisions; with no "
            f"change on {images_to_rule_out(tolerance, confidence)} images you could rule out more than {tol}"
        )
    else:
        text += (
            f": the network may rely on it for as few as {percent(low)} or as many as {percent(high)} "
            f"of its decisions; {n} images cannot tell whether that is more than {tol}"
        )
    return text, outcome, close


def summary(
    *,
    removed: tuple[int, int] | None,
    added: tuple[int, int] | None,
    hidden: Sequence[tuple[str, int, int]],
    ties: int = 0,
    tolerance: float = TOLERANCE,
    confidence: float = CONFIDENCE,
) -> Reading:
    """The audit in plain words, each rate with its Wilson interval (docs/method.md §9).

    Args:
        removed: (decisions changed, images) when the artifact was removed; None: no image had one.
        added: the same for pasting it on; None: nothing pasted.
        hidden: per explainer (title, maps that hid it, maps graded): on the images whose decision
            changed when the artifact was removed, how many of its maps gave the artifact less than
            its share of the image.
        ties: how many of the removal's decisions were near ties before or after (the top two
            probabilities within `readings.groundtruth.TIE`); the reading is flagged near its
            threshold when flipping some of them would change the verdict.
        tolerance: a share of decisions below which reliance counts as negligible.
        confidence: the intervals' confidence level.

    Outcomes, read from the removal's interval against the tolerance (`statistics.three_way`):
    "relies" (its low end is above the tolerance; the sentence says "most" only when it is above
    one half), "does-not-rely" (its high end is below it), "inconclusive" (it straddles it; with no
    change the sentence says how many images would rule it out). Without a removal: "added-only"
    (something pasted, nothing removed) or "nothing-measured".
    """
    parts: list[str] = []
    close = False
    outcome: str = "added-only"
    if removed is not None and removed[1]:
        clause, outcome, close = _removal(*removed, ties, tolerance, confidence)
        parts.append(clause)
    if added is not None and added[1]:
        k, n = added
        interval = interval_text(*wilson_interval(k, n, confidence), confidence)
        parts.append(f"pasting it on changed {percent(k / n)} ({k} of {n}; {interval})")
    if not parts:
        return Reading(
            "nothing-measured",
            "Nothing was measured: mark the artifact on at least one image, or paste one on.",
        )
    graded = [(t, h, n) for t, h, n in hidden if n]
    if graded:
        hides = []
        for t, h, n in graded:
            low, high = wilson_interval(h, n, confidence)
            hides.append(
                f"the {t} map would have hidden it on {percent(h / n)} [{percent(low)}, {percent(high)}] of {n} images"
            )
        parts.append("on the images whose decision it changed, " + ", ".join(hides))
    text = "; ".join(parts)
    return Reading(outcome, text[0].upper() + text[1:] + ".", close)
