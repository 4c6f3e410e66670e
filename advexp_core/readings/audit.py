"""Readings of a shortcut audit (docs/audit.md): does this network's decision rest on the artifact
the user marked, measured by removing or pasting it (`advexp_core.audit`), and would each
explanation have told you?

The answer comes from the intervention; a map is graded against it. The thresholds are those of the
ground-truth readings (docs/method.md §6): a map "shows" the artifact when its share of mass on it is
at least the artifact's share of the image (what an even spread would put there); a network "decides
by" the artifact when removing it changes more than half of the decisions on the images that have it.
"""

from __future__ import annotations

from collections.abc import Sequence

from advexp_core.readings import Reading, near
from advexp_core.readings.groundtruth import decision, map_verdict, near_tie

MOST = 0.5
"""Removing the artifact changes more than this share of decisions: the network decides by it."""


def intervention(
    names: Sequence[str], *, before: Sequence[float], after: Sequence[float] | None, intervention: str
) -> Reading:
    """Does the decision on this image follow the artifact?

    Args:
        names: the class names.
        before, after: class probabilities before and after the intervention (after None: none).
        intervention: "removed", "added" or "none".

    Outcomes: "follows-artifact", "ignores-artifact", "not-measured".
    """
    k, now = decision(before, names)
    if after is None or intervention == "none":
        return Reading(
            "not-measured",
            f"The network says {now}. No artifact is marked here and none was pasted, so nothing was measured.",
        )
    other, other_text = decision(after, names)
    what = "removing the marked artifact" if intervention == "removed" else "pasting the artifact on"
    close = near_tie(before) or near_tie(after)
    if other != k:
        return Reading(
            "follows-artifact",
            f"The decision follows the artifact here: the network says {now}, and {what} changes that to {other_text}.",
            close,
        )
    return Reading(
        "ignores-artifact",
        f"The decision does not follow the artifact here: the network says {now}, and {what} leaves it at {other_text}.",
        close,
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


def summary(
    *,
    removed: tuple[int, int] | None,
    added: tuple[int, int] | None,
    hidden: Sequence[tuple[str, int, int]],
) -> Reading:
    """The audit in plain words, with its numbers.

    Args:
        removed: (decisions changed, images) when the artifact was removed; None: no image had one.
        added: the same for pasting it on; None: nothing pasted.
        hidden: per explainer (title, maps that hid it, maps graded): on the images whose decision
            changed when the artifact was removed, how many of its maps gave the artifact less than
            its share of the image.

    Outcomes: "decides-by-artifact" (more than `MOST` of the decisions change when it is removed),
    "partly-by-artifact" (some do), "not-by-artifact" (none do), "added-only" (nothing removed,
    something pasted), "nothing-measured".
    """
    parts: list[str] = []
    close = False
    if removed is not None and removed[1]:
        changed, n = removed
        share = changed / n
        parts.append(f"removing the artifact changed {share:.0%} of decisions ({changed} of {n} images)")
        close = close or (0 < changed < n and near(share, MOST))
        outcome = (
            "decides-by-artifact"
            if share > MOST
            else ("partly-by-artifact" if changed else "not-by-artifact")
        )
    if added is not None and added[1]:
        parts.append(f"pasting it on changed {added[0] / added[1]:.0%} ({added[0]} of {added[1]})")
    if not parts:
        return Reading(
            "nothing-measured",
            "Nothing was measured: mark the artifact on at least one image, or paste one on.",
        )
    if removed is None or not removed[1]:
        outcome = "added-only"
    text = "; ".join(parts)
    graded = [(t, h, n) for t, h, n in hidden if n]
    if graded:
        hides = ", ".join(
            f"the {t} map would have hidden this on {h / n:.0%} of them ({h} of {n})" for t, h, n in graded
        )
        text += f"; {hides}"
    sentence = text[0].upper() + text[1:] + "."
    if outcome == "decides-by-artifact":
        sentence += " The network decides by the artifact on most of these images."
    elif outcome == "not-by-artifact":
        sentence += " On these images the network does not decide by the artifact."
    return Reading(outcome, sentence, close)
