"""Readings of saliency under attack (docs/method.md §4 and "Readings"): did the decision flip and
does the saved PNG still fool the network, is the change visible, and for each map: did it move,
and does it point at the perturbation that caused the new decision.

Every threshold is a constant here, justified in docs/method.md ("Readings").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from advexp_core.readings import Reading, near

INVISIBLE_LINF_255 = 4.0
"""Largest change (of 255 levels) under which a change is too small to see (the per-metric reading's level)."""
INVISIBLE_SSIM = 0.95
"""Image SSIM from which the image structure reads "very close" to the clean one."""
DECISION_TIE = 0.02
"""Probability gap between the top two classes under which a decision is a near tie."""
MAP_KEPT_SPEARMAN = 0.8
"""Rank correlation from which a map's pixel ranking "barely moved"."""
MAP_KEPT_SSIM = 0.9
"""Map SSIM from which the clean and attacked maps "look the same"."""
MAP_KEPT_SHIFT = 0.05
"""Centre-of-mass shift, as a share of the image side, under which the map stayed in place."""
MOVED_TO_GOAL = 0.2
"""Gain in rank correlation with the goal map from which the map moved toward the goal."""
POINTING_RATIO = 1.5
"""A map points at δ when the share of |δ|² in its top k is at least this many times k (chance)."""


def _top(predictions: Sequence[Mapping[str, Any]]) -> str:
    p = predictions[0]
    return f"{p['label']} ({p['probability']:.1%})"


def _tie(predictions: Sequence[Mapping[str, Any]]) -> bool:
    return (
        len(predictions) > 1 and predictions[0]["probability"] - predictions[1]["probability"] < DECISION_TIE
    )


def decision(
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    png_after: Sequence[Mapping[str, Any]],
    *,
    success: bool,
    png_success: bool,
) -> Reading:
    """Did the attack change the decision, and does the lossless 8-bit PNG still do it.

    Args:
        before, after, png_after: top-k predictions (`reports.predictions`) of the clean image,
            of x + δ in floats, and of x + δ read back from its 8-bit PNG.
        success, png_success: whether each changed the decision as the attack asked.
    """
    change = f"{_top(before)} → {_top(after)}"
    if not success:
        return Reading(
            "not-flipped",
            f"The decision did not change within this budget ({change}): there is nothing here for a "
            "map to have missed. A larger ε or more steps may flip it.",
            _tie(after),
        )
    if png_success:
        return Reading(
            "flipped",
            f"The decision changed: {change}. Saved as an 8-bit PNG the attack still works (the network "
            f"reads {_top(png_after)}).",
            _tie(after) or _tie(png_after),
        )
    return Reading(
        "flipped-not-png",
        f"The decision changed: {change}, but only in floating point: saved as an 8-bit PNG the image "
        f"is read as {_top(png_after)} again, so the downloaded file does not fool the network.",
        _tie(after) or _tie(png_after),
    )


def visibility(perturbation: Mapping[str, float | None]) -> Reading:
    """Is the change visible: largest change against `INVISIBLE_LINF_255` and SSIM against `INVISIBLE_SSIM`.

    Args:
        perturbation: ``linf_255`` and ``ssim`` as in a report (None: not measured).
    """
    linf, ssim = perturbation.get("linf_255"), perturbation.get("ssim")
    if linf is None or ssim is None:
        return Reading("unmeasured", "The size of the change was not measured.")
    numbers = f"largest change {linf:.1f}/255, SSIM {ssim:.3f}"
    close = near(linf, INVISIBLE_LINF_255) or near(ssim, INVISIBLE_SSIM, margin=0.005)
    if linf == 0:
        return Reading("unchanged", "The image did not change at all.")
    if linf <= INVISIBLE_LINF_255 and ssim >= INVISIBLE_SSIM:
        return Reading(
            "invisible",
            f"The change is too small to see ({numbers}): nothing a person would notice explains "
            "a new decision.",
            close,
        )
    return Reading(
        "visible",
        f"The change may be visible ({numbers}; invisible would be at most {INVISIBLE_LINF_255:g}/255 "
        f"with SSIM at least {INVISIBLE_SSIM}): look at the attacked picture before reading it as hidden.",
        close,
    )


def _moved(values: Mapping[str, float | None], side: int) -> tuple[bool, bool, list[str]]:
    """Whether the map moved, whether a deciding number is near its threshold, and the numbers quoted."""
    rho, ssim, shift = values.get("spearman"), values.get("ssim"), values.get("center_shift_px")
    kept, close, quoted = True, False, []
    if rho is not None and not math.isnan(rho):
        kept &= rho >= MAP_KEPT_SPEARMAN
        close |= near(rho, MAP_KEPT_SPEARMAN)
        quoted.append(f"rank correlation {rho:.2f}")
    if ssim is not None and not math.isnan(ssim):
        kept &= ssim >= MAP_KEPT_SSIM
        close |= near(ssim, MAP_KEPT_SSIM)
        quoted.append(f"map SSIM {ssim:.2f}")
    if shift is not None and not math.isnan(shift):
        limit = MAP_KEPT_SHIFT * side
        kept &= shift <= limit
        close |= near(shift, limit)
        quoted.append(f"centre moved {shift:.1f} px")
    return not kept, close, quoted


def map_change(values: Mapping[str, float | None], *, k: float, side: int) -> Reading:
    """One map's verdict: did it move, and does it point at the perturbation (four outcomes).

    Moved: rank correlation below `MAP_KEPT_SPEARMAN`, map SSIM below `MAP_KEPT_SSIM` or a centre
    shift over `MAP_KEPT_SHIFT` of the side. Points at δ: the share of |δ|² inside the attacked map's
    top k (the map that explains the new decision) is at least `POINTING_RATIO` × k.

    Args:
        values: the map metrics of one method as in a report (None where undefined).
        k: the top-k share of pixels the metrics used.
        side: the image side in pixels (the shift threshold is relative to it).
    """
    moved, close, quoted = _moved(values, side)
    if not quoted:
        return Reading("undefined", "The maps are flat, so how far they moved is undefined.")
    share = values.get("delta_energy_in_attacked_topk")
    if share is None or math.isnan(share):
        share = values.get("delta_energy_in_topk")
    numbers = ", ".join(quoted)
    if share is None or math.isnan(share):
        return Reading(
            "moved" if moved else "kept",
            f"The map {'moved' if moved else 'barely moved'} ({numbers}); there is no perturbation to locate.",
            close,
        )
    points = share >= POINTING_RATIO * k
    close |= near(share, POINTING_RATIO * k)
    where = f"{share:.0%} of |δ|² lies in its top {k:.0%} of pixels ({k:.0%} would be chance)"
    if moved and points:
        outcome, text = "followed", f"The map moved ({numbers}) and followed the perturbation: {where}."
    elif moved:
        outcome, text = (
            "moved-elsewhere",
            f"The map moved ({numbers}) but nothing in it points at the perturbation that caused the new "
            f"decision: {where}.",
        )
    elif points:
        outcome, text = (
            "kept-on-delta",
            f"The map barely moved ({numbers}), and the perturbation sits where it points: {where}. It "
            "shows where the change was made, though not that the decision changed.",
        )
    else:
        outcome, text = (
            "missed",
            f"The map barely moved ({numbers}) and does not point at the perturbation: {where}. It did "
            "not notice what changed the decision.",
        )
    return Reading(outcome, text, close)


def maps_overall(verdicts: Mapping[str, Reading], titles: Mapping[str, str]) -> Reading:
    """One sentence over every map of the run: how many of each outcome, named by method."""
    if not verdicts:
        return Reading("none", "No map was computed.")
    groups: dict[str, list[str]] = {}
    for method, reading in verdicts.items():
        groups.setdefault(reading.outcome, []).append(titles.get(method, method))
    words = {
        "missed": "barely moved and missed the perturbation",
        "kept-on-delta": "barely moved but covers the perturbation",
        "moved-elsewhere": "moved without pointing at the perturbation",
        "followed": "followed the perturbation",
        "moved": "moved",
        "kept": "barely moved",
        "undefined": "is flat",
    }
    parts = [f"{', '.join(names)} {words.get(outcome, outcome)}" for outcome, names in groups.items()]
    pointing = len(groups.get("followed", [])) + len(groups.get("kept-on-delta", []))
    n = len(verdicts)
    tail = (
        f"none of the {n} points at the perturbation that caused the decision"
        if not pointing
        else f"{pointing} of the {n} point at the perturbation"
    )
    return Reading(
        "some-point" if pointing else "none-point",
        f"On this image: {'; '.join(parts)}. In all, {tail}.",
        any(r.near_threshold for r in verdicts.values()),
    )


def manipulation(
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    *,
    label_kept: bool,
    to_goal_before: float | None,
    to_goal_after: float | None,
    linf_255: float | None,
) -> Reading:
    """Keep-the-label, move-the-map: did the decision stay, and did the map move toward the goal.

    Moved toward the goal: the map's rank correlation with the goal map rose by at least
    `MOVED_TO_GOAL`.

    Args:
        before, after: top-k predictions of the clean and the manipulated image.
        label_kept: whether the top-1 class stayed.
        to_goal_before, to_goal_after: rank correlation of the clean / manipulated map with the goal.
        linf_255: the largest pixel change in 255 levels.
    """
    decision = f"Decision {'kept' if label_kept else 'changed'}: {_top(before)} → {_top(after)}."
    if to_goal_before is None or to_goal_after is None:
        return Reading("undefined", f"{decision} The map's similarity to the goal is undefined (a flat map).")
    gain = to_goal_after - to_goal_before
    numbers = f"rank correlation with the goal {to_goal_before:.2f} → {to_goal_after:.2f}" + (
        f", largest pixel change {linf_255:.1f}/255" if linf_255 is not None else ""
    )
    close = near(gain, MOVED_TO_GOAL)
    moved = gain >= MOVED_TO_GOAL
    if label_kept and moved:
        return Reading(
            "moved-kept",
            f"{decision} The map moved toward the goal ({numbers}): on this image the map "
            "could be steered without changing what the network decides.",
            close,
        )
    if label_kept:
        return Reading(
            "not-moved",
            f"{decision} The map did not move toward the goal ({numbers}): this run did not "
            "manage to steer the map. More steps or a larger ε may.",
            close,
        )
    return Reading(
        "label-lost",
        f"{decision} ({numbers}): this is not a map manipulation that keeps the label.",
        close,
    )
