"""Readings of adversarial explanations (docs/method.md §2 and "Readings"): on each network, how
many explanations succeeded and how structured δ is; across a standard and a robust network,
whether this run shows the paper's contrast (a robust network's δ draws, a standard one's is noise).

Structure is `explanations.low_frequency_share`: the share of δ's energy at low spatial frequencies,
read against the same share for white noise of the same size (``structure_noise`` in a report).
Every threshold is a constant here, justified in docs/method.md ("Readings").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from advexp_core.methods.explanations import LOW_FREQUENCY_CUTOFF
from advexp_core.readings import Reading, near

STRUCTURED = 3.0
"""δ is structured when its low-frequency share is at least this many times white noise's."""
NOISE_LIKE = 2.0
"""δ is noise-like when its low-frequency share is below this many times white noise's."""
CONTRAST = 1.5
"""The robust network's structure ratio must be at least this many times the standard one's."""


def _share(t: Mapping[str, Any]) -> float:
    value = t.get("structure")
    return math.nan if value is None else float(value)


def mean_structure(targets: Sequence[Mapping[str, Any]]) -> float:
    """Mean low-frequency share of δ over the targets where it is defined (NaN when none is)."""
    shares = [s for s in (_share(t) for t in targets) if math.isfinite(s)]
    return sum(shares) / len(shares) if shares else math.nan


def _targets_text(targets: Sequence[Mapping[str, Any]]) -> str:
    """Each target with its probability at the saved x+δ, marked when it is not the top class."""
    parts = []
    for t in targets:
        p = t.get("probability_after_png", t["probability_after"])
        mark = "" if t.get("target_is_top_after_png", True) else ", not its top class"
        parts.append(f"{t['label']} at {p:.0%}{mark}")
    return "; ".join(parts)


def success(targets: Sequence[Mapping[str, Any]], *, steps: int) -> Reading:
    """How many explanations succeeded: RMS(δ) reached ρ by step S/2 (docs/method.md §2).

    Of those, how many saved x+δ the network reads as their target (its top class), quoted with the
    target's probability there. The reading is near its threshold when a target reached ρ within
    one step of S/2.

    Args:
        targets: the report's per-target entries (``budget_reached_by_half``, ``reached_step``,
            ``label``, ``probability_after_png``, ``target_is_top_after_png``).
        steps: S.
    """
    n, half = len(targets), steps // 2
    if not n:
        return Reading("none", "No target was explained.")
    ok = [t for t in targets if t["budget_reached_by_half"]]
    failed = [t for t in targets if not t["budget_reached_by_half"]]
    close = any(
        int(t["reached_step"]) >= 0 and near(int(t["reached_step"]), half, margin=1 / max(half, 1))
        for t in targets
    )
    budget = f"the budget ρ by step {half} of {steps}"
    read = sum(bool(t.get("target_is_top_after_png", False)) for t in ok)
    reads = f"the network reads {read} of those {len(ok)} saved x+δ as their target ({_targets_text(ok)})"
    if not failed and n == 1:
        whose = "its" if read else "not its"
        reads = f"the network reads the saved x+δ as {whose} target ({_targets_text(ok)})"
        return Reading("succeeded", f"1 of 1 explanation succeeded (it spent {budget}); {reads}.", close)
    if not failed:
        return Reading(
            "succeeded", f"{n} of {n} explanations succeeded (each spent {budget}); {reads}.", close
        )
    names = ", ".join(str(t["label"]) for t in failed)
    if not ok:
        return Reading(
            "failed",
            f"0 of {n} explanations succeeded: none spent {budget} ({names}), so none of these images is "
            "an adversarial explanation (a failed explanation, docs/method.md §2).",
            close,
        )
    what = "is a failed explanation" if len(failed) == 1 else "are failed explanations"
    return Reading(
        "partly",
        f"{len(ok)} of {n} explanations succeeded; {names} did not spend {budget} and {what}; {reads}.",
        close,
    )


def structure(targets: Sequence[Mapping[str, Any]], *, noise_share: float) -> Reading:
    """How structured δ is: its mean low-frequency share against white noise's (`STRUCTURED`, `NOISE_LIKE`).

    Args:
        targets: the report's per-target entries (``structure``: δ's low-frequency share, or None).
        noise_share: the same share for white noise of δ's size (``noise_low_frequency_share``).
    """
    share = mean_structure(targets)
    if not math.isfinite(share) or not noise_share > 0:
        return Reading("undefined", "δ is zero for every target, so how structured it is is undefined.")
    ratio = share / noise_share
    shares = [s for s in (_share(t) for t in targets) if math.isfinite(s)]
    spread = f"; per target {min(shares):.0%} to {max(shares):.0%}" if len(shares) > 1 else ""
    numbers = (
        f"on average {share:.0%} of δ's energy lies at spatial frequencies up to {LOW_FREQUENCY_CUTOFF:g} "
        f"cycles/pixel, {ratio:.1f}× the {noise_share:.0%} of white noise of the same size{spread}"
    )
    close = near(ratio, STRUCTURED) or near(ratio, NOISE_LIKE)
    if ratio >= STRUCTURED:
        return Reading("structured", f"δ is spatially structured: {numbers}.", close)
    if ratio < NOISE_LIKE:
        return Reading(
            "noise-like",
            f"δ is close to noise: {numbers} (structured would be at least {STRUCTURED:g}×).",
            close,
        )
    return Reading(
        "partly-structured",
        f"δ is only partly structured: {numbers} (noise-like below {NOISE_LIKE:g}×, structured from "
        f"{STRUCTURED:g}×).",
        close,
    )


def network(report: Mapping[str, Any]) -> dict[str, Reading]:
    """Both readings of one network's explanations: ``success`` and ``structure``.

    Args:
        report: the network's report (``targets``, ``steps``, ``structure_noise``).
    """
    return {
        "success": success(report["targets"], steps=int(report["steps"])),
        "structure": structure(report["targets"], noise_share=float(report["structure_noise"])),
    }


def _side(entry: Mapping[str, Any]) -> tuple[float, float, str]:
    """(mean share, ratio to noise, 'k of n succeeded on <title>') of one network's report entry."""
    share = mean_structure(entry["targets"])
    ok = sum(bool(t["budget_reached_by_half"]) for t in entry["targets"])
    return (
        share,
        share / float(entry["structure_noise"]),
        f"{ok} of {len(entry['targets'])} on {entry['title']}",
    )


def contrast(standard: Mapping[str, Any], robust: Mapping[str, Any]) -> Reading:
    """Does this run show the paper's contrast: the robust network's δ structured, the standard one's not.

    The robust network's structure ratio (mean low-frequency share / white noise's) must be at
    least `CONTRAST` times the standard one's and at least `STRUCTURED`; the sentence says which
    part failed when it does not hold, and when the standard network's δ is the more structured.

    Args:
        standard, robust: the two networks' report entries (``title``, ``targets``,
            ``structure_noise``).
    """
    s_share, s_ratio, s_ok = _side(standard)
    r_share, r_ratio, r_ok = _side(robust)
    if not (math.isfinite(s_ratio) and math.isfinite(r_ratio)) or s_ratio <= 0:
        return Reading("undefined", "δ is zero on one network, so the two cannot be compared.")
    gap = r_ratio / s_ratio
    numbers = (
        f"{r_share:.0%} against {s_share:.0%} of δ's energy at low spatial frequencies "
        f"({r_ratio:.1f}× against {s_ratio:.1f}× white noise, a factor {gap:.2f} between them)"
    )
    counts = f" Explanations that succeeded: {r_ok}, {s_ok}."
    close = near(gap, CONTRAST) or near(gap, 1 / CONTRAST) or near(r_ratio, STRUCTURED)
    if gap >= CONTRAST and r_ratio >= STRUCTURED:
        text = (
            f"On this image the robust network's δ is more structured than the standard one's, as the paper "
            f"reports: {numbers}."
        )
        return Reading("contrast", text + counts, close)
    if gap >= CONTRAST:
        text = (
            f"On this image the robust network's δ is more structured than the standard one's ({numbers}), "
            f"but itself only {r_ratio:.1f}× white noise (structured from {STRUCTURED:g}×): the paper's "
            "contrast shows only weakly."
        )
        return Reading("weak-contrast", text + counts, close)
    if gap <= 1 / CONTRAST:
        text = (
            f"On this image the standard network's δ is the more structured one: {numbers}, the opposite of "
            "the paper's contrast."
        )
        return Reading("reversed", text + counts, close)
    text = (
        f"On this image the robust network's δ is no more structured than the standard one's: {numbers}; "
        f"the paper's contrast would need a factor of at least {CONTRAST:g}. This run does not show it."
    )
    return Reading("no-contrast", text + counts, close)


def contrast_of(entries: Sequence[Mapping[str, Any]]) -> Reading:
    """The contrast reading of a contrast report's ``models``: its first standard and first robust
    network; a plain sentence when the networks are not one of each."""
    standard = next((e for e in entries if not e["robust"]), None)
    robust = next((e for e in entries if e["robust"]), None)
    if standard is None or robust is None:
        kind = "robust" if standard is None else "standard"
        return Reading(
            "not-a-pair",
            f"Every network compared here is {kind}, so this run cannot show a standard-vs-robust contrast.",
        )
    return contrast(standard, robust)
