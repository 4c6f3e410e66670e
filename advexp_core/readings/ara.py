"""Readings of ARA (docs/method.md §3 and "Readings"): how many times a standard network's ARA the
other networks on screen score, as measured, and what one live measurement gives against a stored
standard network.

A ratio of at least `CLEAR_GAIN` reads as clearly more robust, one within `SIMILAR` either way as
no different. Every threshold is a constant here, justified in docs/method.md ("Readings").

Where the ratio's 95 % interval is known (docs/method.md §9: a bootstrap over the images), the verdict
reads the interval instead of the ratio: more robust only when the whole interval lies above 1 (clearly
so when its low end reaches `CLEAR_GAIN`), less robust only when it lies below 1, and "cannot tell at
this sample size" when it straddles 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from advexp_core.readings import Reading, near
from advexp_core.readings.intervals import ratio_with_interval

Interval = tuple[float, float]

CLEAR_GAIN = 2.0
"""A network whose ARA is at least this many times the standard one's is clearly more robust."""
SIMILAR = 1.25
"""Ratios between 1/SIMILAR and SIMILAR read as no difference (ARA from few images is rough)."""


@dataclass(frozen=True)
class AraNumbers:
    """One network's measured areas, as a table or a report holds them.

    Attributes:
        model_id: the network.
        robust: whether it has the paper's robust additions (or is robust by training).
        attack_ara, btr_ara: the areas (RMS units).
        images: where the areas were measured, in words (e.g. "359 digits test images").
    """

    model_id: str
    robust: bool
    attack_ara: float
    btr_ara: float
    images: str = ""


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else float("inf")


def _verdict(ratio: float) -> str:
    """An outcome key for one ratio to the standard network."""
    if ratio >= CLEAR_GAIN:
        return "higher"
    if ratio <= 1 / CLEAR_GAIN:
        return "lower"
    if 1 / SIMILAR < ratio < SIMILAR:
        return "similar"
    return "somewhat-higher" if ratio > 1 else "somewhat-lower"


def _close(ratio: float) -> bool:
    return any(near(ratio, t) for t in (CLEAR_GAIN, 1 / CLEAR_GAIN, SIMILAR, 1 / SIMILAR))


def ratios(
    rows: Sequence[AraNumbers],
    *,
    standard: str,
    source: str,
    intervals: Mapping[str, Mapping[str, Interval | None]] | None = None,
) -> Reading:
    """Each network's Attack and BTR ARA as a multiple of the standard one's, in one sentence.

    Without ``intervals`` the outcome is read from the robust networks' Attack ratios:
    ``robust-higher`` when every one is at least `CLEAR_GAIN`, ``no-gain`` when none exceeds
    `SIMILAR`, ``mixed`` otherwise. With them, from the ratios' intervals (`interval_words`).

    Args:
        rows: the networks on screen, the standard one among them.
        standard: the standard network's id.
        source: who measured the areas and on what, in words (starts the sentence).
        intervals: model id -> {"attack": interval, "btr": interval} of its ratios to the standard
            network on the same images (a paired bootstrap); None: the areas alone are known.
    """
    base = next((r for r in rows if r.model_id == standard), None)
    others = [r for r in rows if r.model_id != standard]
    if base is None or not others:
        return Reading("no-pair", f"{source}: there is no standard network and another to compare.")
    if not base.attack_ara > 0:
        return Reading("undefined", f"{source}: {standard}'s Attack ARA is 0, so no ratio to it is defined.")
    if intervals is not None:
        return _interval_ratios(base, others, source=source, intervals=intervals)
    parts = [
        f"{r.model_id} {_ratio(r.attack_ara, base.attack_ara):.1f}× (BTR {_ratio(r.btr_ara, base.btr_ara):.1f}×)"
        for r in others
    ]
    numbers = (
        f"{source}, against {standard} (Attack ARA {base.attack_ara:.4f}, BTR {base.btr_ara:.4f}) the Attack "
        f"ARA of " + ", ".join(parts)
    )
    robust = [_ratio(r.attack_ara, base.attack_ara) for r in others if r.robust] or [
        _ratio(r.attack_ara, base.attack_ara) for r in others
    ]
    close = any(_close(x) for x in robust)
    if min(robust) >= CLEAR_GAIN:
        return Reading(
            "robust-higher",
            f"{numbers}: the robust networks survive at least {min(robust):.1f}× the change the standard "
            f"one does (clearly more robust from {CLEAR_GAIN:g}×).",
            close,
        )
    if max(robust) < SIMILAR:
        return Reading(
            "no-gain",
            f"{numbers}: here the robust networks are no more robust than the standard one (a gain would "
            f"start at {SIMILAR:g}×).",
            close,
        )
    return Reading(
        "mixed",
        f"{numbers}: the robust networks gain {min(robust):.1f}× to {max(robust):.1f}×, not all of them "
        f"clearly (clearly more robust from {CLEAR_GAIN:g}×).",
        close,
    )


def _interval_ratios(
    base: AraNumbers,
    others: Sequence[AraNumbers],
    *,
    source: str,
    intervals: Mapping[str, Mapping[str, Interval | None]],
) -> Reading:
    """`ratios` read from each ratio's 95 % interval: ``robust-higher`` when every robust network's
    Attack interval lies above 1, ``no-gain`` when none does, ``mixed`` otherwise."""
    standard = base.model_id

    def text(r: AraNumbers, boundary: str) -> str:
        value = _ratio(
            r.attack_ara if boundary == "attack" else r.btr_ara,
            base.attack_ara if boundary == "attack" else base.btr_ara,
        )
        return ratio_with_interval(value, intervals.get(r.model_id, {}).get(boundary))

    parts = [f"{r.model_id} {text(r, 'attack')} (BTR {text(r, 'btr')})" for r in others]
    numbers = (
        f"{source}, against {standard} (Attack ARA {base.attack_ara:.4f}, BTR {base.btr_ara:.4f}) the Attack "
        f"ARA of " + ", ".join(parts) + " (95 % intervals, a paired bootstrap over the images)"
    )
    robust = [r for r in others if r.robust] or others
    words = {r.model_id: interval_words(intervals.get(r.model_id, {}).get("attack")) for r in robust}
    above = [m for m, (key, _) in words.items() if key in ("higher", "somewhat-higher")]
    listed = "; ".join(f"{m} {w}" for m, (_, w) in words.items())
    if len(above) == len(robust):
        return Reading(
            "robust-higher",
            f"{numbers}: every robust network is more robust than the standard one ({listed}).",
        )
    if not above:
        return Reading("no-gain", f"{numbers}: no robust network is shown to be more robust here ({listed}).")
    return Reading("mixed", f"{numbers}: only some robust networks are shown to be more robust ({listed}).")


def interval_words(interval: Interval | None) -> tuple[str, str]:
    """The outcome key and words for a ratio's interval to a standard network's area."""
    if interval is None:
        return "cannot-tell", "cannot tell: no interval"
    low, high = interval
    if low >= CLEAR_GAIN:
        return (
            "higher",
            f"clearly more robust (the interval starts at {low:.1f}×, from {CLEAR_GAIN:g}× clearly)",
        )
    if low > 1:
        return "somewhat-higher", "more robust (the interval lies above 1×)"
    if high <= 1 / CLEAR_GAIN:
        return "lower", "clearly less robust (the interval lies below 1/2×)"
    if high < 1:
        return "somewhat-lower", "less robust (the interval lies below 1×)"
    return "cannot-tell", "cannot tell at this sample size (the interval straddles 1×)"


def live(
    measured: AraNumbers,
    *,
    accuracy: float,
    reference: AraNumbers | None = None,
    ratio_interval: Interval | None = None,
) -> Reading:
    """One live measurement in words, against a stored standard network of the same family when there is one.

    Args:
        measured: this run's areas (``images``: how many images, of which set).
        accuracy: clean accuracy on those images.
        reference: the stored standard network's areas to compare with (None: no comparison).
        ratio_interval: the 95 % interval of the Attack ARA's ratio to the reference's
            (`experiments.ara.live_ratio_interval`); the verdict then reads it. None: the ratio alone.
    """
    numbers = (
        f"On {measured.images}, {measured.model_id} has Attack ARA {measured.attack_ara:.4f} and BTR ARA "
        f"{measured.btr_ara:.4f} (clean accuracy {accuracy:.0%})"
    )
    if reference is None:
        return Reading("measured", numbers + "; no stored standard network of its family to compare with.")
    if not reference.attack_ara > 0:
        return Reading("measured", numbers + f"; {reference.model_id}'s stored Attack ARA is 0, so no ratio.")
    ratio = _ratio(measured.attack_ara, reference.attack_ara)
    if reference.model_id == measured.model_id:
        spread = "" if ratio_interval is None else f", 95 % interval {_shown(ratio_interval, 2)}"
        return Reading(
            "same-network",
            f"{numbers}: {ratio:.2f}× its own stored Attack ARA {reference.attack_ara:.4f} ({reference.images}"
            f"{spread}; other images and search settings make the two differ).",
        )
    if ratio_interval is not None:
        return _live_interval(numbers, ratio, reference, ratio_interval)
    outcome = _verdict(ratio)
    words = {
        "higher": "clearly more robust than",
        "somewhat-higher": "somewhat more robust than",
        "similar": "about as robust as",
        "somewhat-lower": "somewhat less robust than",
        "lower": "clearly less robust than",
    }[outcome]
    text = (
        f"{numbers}: {ratio:.1f}× the Attack ARA {reference.attack_ara:.4f} of {reference.model_id} "
        f"({reference.images}), so it reads {words} that standard network (clear from {CLEAR_GAIN:g}×, "
        f"no difference within {SIMILAR:g}×; other images and search settings make this rough)."
    )
    return Reading(outcome, text, _close(ratio))


def _live_interval(numbers: str, ratio: float, reference: AraNumbers, interval: Interval) -> Reading:
    """The live reading from the ratio's interval (`interval_words`)."""
    outcome, words = interval_words(interval)
    return Reading(
        outcome,
        f"{numbers}: {ratio:.1f}× the Attack ARA {reference.attack_ara:.4f} of {reference.model_id} "
        f"({reference.images}); the ratio's 95 % interval is {_shown(interval, 1)} (this run's images "
        f"resampled, the stored area taken as fixed), so against that standard network it reads {words}.",
    )


def _shown(interval: Interval, digits: int) -> str:
    low, high = interval
    if not math.isfinite(high):
        return "unbounded (fewer than two images)"
    return f"[{low:.{digits}f}×, {high:.{digits}f}×]"
