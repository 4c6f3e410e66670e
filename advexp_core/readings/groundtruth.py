"""Readings of the ground-truth lesions (docs/method.md, "Readings"): does this network read the
ruler on this image, measured by removing or drawing it (`advexp_core.evaluation.reliance`), and would each
explanation have told you?

The answer to "does the network use the ruler" comes from the intervention, not from any map: a map
is graded against it. Thresholds are constants here, justified in docs/method.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from advexp_core.readings import Reading, near

TIE = 0.02
"""A decision whose top two probabilities are closer than this is a near tie (either side is noise)."""
MAP_NEAR = 0.1  # a map's share within 10 % of the ruler's (artifact's) area is flagged as near


def decision(probabilities: Sequence[float], names: Sequence[str]) -> tuple[int, str]:
    """The decision as (class index, "name (probability)")."""
    k = max(range(len(probabilities)), key=lambda i: probabilities[i])
    return k, f"{names[k]} ({probabilities[k]:.0%})"


def near_tie(probabilities: Sequence[float]) -> bool:
    """The top two probabilities are closer than `TIE`."""
    top = sorted(probabilities, reverse=True)
    return len(top) > 1 and top[0] - top[1] < TIE


def intervention(
    network: str,
    names: Sequence[str],
    *,
    as_is: Sequence[float],
    removed: Sequence[float],
    added: Sequence[float],
    has_ruler: bool,
) -> Reading:
    """Does this network's decision on this image follow the ruler.

    Args:
        network: its id.
        names: the class names.
        as_is, removed, added: class probabilities of the image as drawn, with its ruler removed,
            and with a ruler drawn on (the image itself when it already has one / has none).
        has_ruler: whether the image as drawn has a ruler.

    Outcomes: "reads-ruler" (the decision changes with the ruler), "ignores-ruler" (it does not).
    """
    k, now = decision(as_is, names)
    other, other_text = decision(removed if has_ruler else added, names)
    close = near_tie(as_is) or near_tie(removed if has_ruler else added)
    what = "removing the ruler" if has_ruler else "drawing a ruler on it"
    if other != k:
        return Reading(
            "reads-ruler",
            f"{network} reads the ruler on this image: it says {now}, and {what} changes that to "
            f"{other_text}.",
            close,
        )
    return Reading(
        "ignores-ruler",
        f"{network} does not decide by the ruler here: it says {now}, and {what} leaves it at {other_text}.",
        close,
    )


def map_against_reliance(
    method: str, *, ruler_share: float | None, ruler_area: float, relies: bool, has_ruler: bool
) -> Reading:
    """Would this map have told you whether the network reads the ruler on this image?

    A map "shows the ruler" when its share of mass on the ruler is at least the ruler's share of the
    image (what a map spread evenly would put there).

    Args:
        method: the explainer's title.
        ruler_share: the share of the map's mass on the ruler (None: no ruler, or an empty map).
        ruler_area: the ruler's share of the image's pixels (0 without a ruler).
        relies: whether the intervention changed the network's decision (`intervention`).
        has_ruler: whether the image has a ruler.

    Outcomes: "warned", "misleading", "false-alarm", "consistent" (with a ruler); "cannot-show"
    (no ruler, but the network reads one), "nothing-to-show"; "empty" (an empty map).
    """
    if not has_ruler:
        if relies:
            return Reading(
                "cannot-show",
                f"{method}: there is no ruler in this image, so no map of it can show that drawing one "
                "changes this network's decision.",
            )
        return Reading("nothing-to-show", f"{method}: no ruler here, and drawing one changes nothing.")
    return map_verdict(method, share=ruler_share, area=ruler_area, relies=relies, noun="ruler")


def map_verdict(method: str, *, share: float | None, area: float, relies: bool | None, noun: str) -> Reading:
    """The verdict on a map of an image that carries the ``noun`` ("ruler", "artifact"), against
    whether removing it changed the decision: a map "shows" it when its share of the map's mass is at
    least its share of the image (what a map spread evenly would put there).

    Outcomes: "warned", "misleading", "false-alarm", "consistent"; "empty" (an empty map).
    """
    if share is None:
        return Reading("empty", f"{method}: the map is empty, so it says nothing either way.")
    shows = share >= area
    numbers = f"{share:.0%} of its mass on the {noun}, which covers {area:.0%} of the image"
    close = near(share, area, margin=MAP_NEAR)
    if relies and shows:
        return Reading("warned", f"{method} warns you: {numbers}, and the decision does rest on it.", close)
    if relies:
        return Reading(
            "misleading",
            f"{method} is misleading here: {numbers} (less than an even spread), yet removing the {noun} "
            "changes the decision.",
            close,
        )
    if shows:
        return Reading(
            "false-alarm",
            f"{method} raises a false alarm: {numbers}, but removing the {noun} does not change the decision.",
            close,
        )
    return Reading(
        "consistent",
        f"{method} agrees with the measurement: {numbers}, and removing the {noun} does not change the decision.",
        close,
    )


# The scorecard's data-level columns say where the maps fall, not whether they explain the
# decision: on the lesions the evidence mask is where a dermatologist would look, which the network
# need not use (the reliance grades, read first, say what it does use).
_SHARE_TITLES = {
    "lesions": (
        ("on the lesion (where a dermatologist would look)", "on the ruler", "maximum on the lesion"),
        ("on the lesion", "on the ruler", "maximum on the lesion"),
    ),
}
_DEFAULT_TITLES = (
    ("evidence share", "shortcut share", "pointing game"),
    ("evidence", "shortcut", "pointing"),
)


def share_titles(dataset: str) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """The scorecard's column titles for (evidence share, shortcut share, pointing game), clean and
    after "attacked: ", on ``dataset``."""
    return _SHARE_TITLES.get(dataset, _DEFAULT_TITLES)
