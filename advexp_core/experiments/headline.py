"""Readings of the home page's three claims, each from this project's own shipped measurements
(docs/method.md, "Readings"): the ground-truth scorecard (``checkpoints/scorecard.json``, written by
``research/scorecard_table.py``) and the checkpoints' manifest (``checkpoints/manifest.json``: each
network's ARA and, where measured, how much it relies on a shortcut).

The claims are the paper's; each reading states the figure this project measured, with its 95 %
interval and the number of images it rests on, and says where the measurement does not support the
claim (docs/method.md §9). Two networks, or two maps, are compared image by image: the difference of
their means on the same images, with a seeded paired bootstrap interval, reads "favours robust",
"favours standard" or "cannot tell at this sample size" from that interval alone. Read at run time, so
a re-measured table changes the sentence and no number is typed twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advexp_core.base.statistics import MOST, majority, paired_bootstrap_ci, wilson_interval
from advexp_core.experiments.shipped import read_manifest
from advexp_core.methods.saliency import METHOD_TITLES
from advexp_core.networks.zoo import CHECKPOINTS_DIR
from advexp_core.readings import Reading
from advexp_core.readings.intervals import (
    COMPARISON_WORDS,
    Comparison,
    compare,
    count_with_interval,
    percent_with_interval,
    ratio_with_interval,
    with_interval,
)

SCORECARD = CHECKPOINTS_DIR / "scorecard.json"
LESION_USERS = SCORECARD.with_name("scorecard-lesion-users.json")
"""The standard and the robust network that both decide by the lesion (research/lesion_users_scorecard.py)."""

SHARE_DIFFERENCE = 0.10
"""A fall of the pointing game (a share of images) that counts as the map noticing the attack: a map
"kept pointing" only when its interval rules out a fall this large."""
MIN_FLIPPED = 10
"""Fewest flipped decisions on which the attacked maps are read (below it, a bootstrap of shares of a
handful of images is not worth printing)."""
SHORTCUT_RELIANCE = MOST
"""A network "decides by its shortcut" when the Wilson interval of the share of its decisions that
removing the shortcut changes lies entirely above this: most of them (`statistics.majority`)."""
BOOTSTRAP_SEED = 0
"""The seed of every paired bootstrap of the claims."""

TITLES = {**METHOD_TITLES, "adversarial": "the adversarial explanation"}

Values = Sequence[float | None]


@dataclass(frozen=True)
class Headline:
    """One home-page claim and the reading of this project's measurement of it.

    Attributes:
        key: "fooled", "robust-explains" or "measured".
        claim: the claim in a few words (the paper's).
        reading: the measured figure with its interval, and where it does not support the claim.
        sources: the shipped files the figures come from.
    """

    key: str
    claim: str
    reading: Reading
    sources: tuple[str, ...]


@dataclass(frozen=True)
class PairedDifference:
    """Two conditions on the same images (a robust network against its standard twin, a map after
    an attack against before): the means, their difference and its 95 % paired bootstrap interval.

    Attributes:
        first, second: the means over the paired images (first: the robust network, or after).
        low, high: the interval of first − second.
        n_images: images with a value under both conditions.
        comparison: the interval read against zero (`readings.intervals.compare`).
    """

    first: float
    second: float
    low: float
    high: float
    n_images: int
    comparison: Comparison

    @property
    def difference(self) -> float:
        return self.first - self.second

    def text(self, *, digits: int = 2) -> str:
        """ "-0.14 [-0.19, -0.09]"."""
        return with_interval(self.difference, (self.low, self.high), digits=digits, signed=True)


def paired_difference(
    first: Values, second: Values, *, seed: int = BOOTSTRAP_SEED
) -> PairedDifference | None:
    """The mean difference first − second over the images where both have a value, with its paired
    BCa bootstrap interval (`statistics.paired_bootstrap_ci`, seeded); None under two such images or
    where BCa is undefined.

    Shapes: first, second (N,), the same images in the same order.
    """
    pairs = [
        (float(a), float(b))
        for a, b in zip(first, second, strict=True)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    if len(pairs) < 2:
        return None
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    differences = [x - y for x, y in pairs]
    if max(differences) - min(differences) <= 1e-12 * max(1.0, abs(differences[0])):
        low = high = sum(differences) / len(differences)  # the same change on every image, to rounding
    else:
        low, high = paired_bootstrap_ci(a, b, seed=seed)
        if not (math.isfinite(low) and math.isfinite(high)):  # BCa undefined: no interval to read
            return None
    return PairedDifference(sum(a) / len(a), sum(b) / len(b), low, high, len(pairs), compare(low, high))


def paired_rate_difference(first: Values, second: Values) -> PairedDifference | None:
    """The difference of two shares of the same images (each value 0 or 1: a map peaks on the evidence
    or not), first − second, with Newcombe's hybrid score interval for paired proportions (Newcombe
    1998, method 10), built from the two shares' Wilson intervals. A bootstrap collapses to [0, 0]
    when no image changes (29 of 29 before and after); this interval still says what 29 images cannot
    rule out. None under two images with both values.

    Shapes: first, second (N,), the same images in the same order.
    """
    pairs = [
        (a >= 0.5, b >= 0.5)
        for a, b in zip(first, second, strict=True)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]
    n = len(pairs)
    if n < 2:
        return None
    both = sum(a and b for a, b in pairs)
    only_first = sum(a and not b for a, b in pairs)
    only_second = sum(b and not a for a, b in pairs)
    neither = n - both - only_first - only_second
    p1, p2 = (both + only_first) / n, (both + only_second) / n
    (l1, u1), (l2, u2) = wilson_interval(both + only_first, n), wilson_interval(both + only_second, n)
    margins = (both + only_first) * (only_second + neither) * (both + only_second) * (only_first + neither)
    phi = (both * neither - only_first * only_second) / math.sqrt(margins) if margins else 0.0
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    low, high = max(-1.0, p1 - p2 - below), min(1.0, p1 - p2 + above)
    return PairedDifference(p1, p2, low, high, n, compare(low, high))


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def _signed_points(share: float) -> str:
    points = round(100 * share, 1)
    return f"{points:+.1f}" if points else "0"


def _points(d: PairedDifference) -> str:
    """A difference of two shares in percentage points with its interval: "-16.9 points [-33.0, +1.2]"
    (one decimal, so that an end near the 10-point tolerance does not round onto it)."""
    return f"{_signed_points(d.difference)} points [{_signed_points(d.low)}, {_signed_points(d.high)}]"


def _entries(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The manifest's networks and ground-truth networks (not the controls), with their dataset."""
    out = []
    for entry in [*manifest.get("networks", []), *manifest.get("groundtruth", [])]:
        dataset = entry.get("dataset") or entry.get("config", {}).get("dataset", "")
        out.append({**entry, "dataset": dataset})
    return out


def _robust_ids(manifest: Mapping[str, Any]) -> set[str]:
    return {e["id"] for e in _entries(manifest) if e.get("robust_additions")}


def _reliance(manifest: Mapping[str, Any], model_id: str) -> dict[str, Any] | None:
    """The shortcut part of a network's ``reliance`` entry, when it was measured."""
    for entry in _entries(manifest):
        if entry["id"] == model_id and isinstance(entry.get("reliance"), dict):
            shortcut = entry["reliance"].get("shortcut")
            return shortcut if isinstance(shortcut, dict) else None
    return None


def _removal_interval(shortcut: Mapping[str, Any]) -> tuple[float, float]:
    """The Wilson interval of the share of decisions that removing the shortcut changes (stored, or
    from the counts)."""
    stored = shortcut.get("decisions_changed_when_removed_ci")
    if isinstance(stored, list | tuple) and len(stored) == 2 and None not in stored:
        return float(stored[0]), float(stored[1])
    return wilson_interval(int(shortcut["n_changed_when_removed"]), int(shortcut["images_with"]))


def decides_by_shortcut(shortcut: Mapping[str, Any] | None) -> bool:
    """Most of the network's decisions follow the shortcut: the removal interval's low end lies above
    one half (`SHORTCUT_RELIANCE`)."""
    if shortcut is None or not shortcut.get("images_with"):
        return False
    return majority(_removal_interval(shortcut)[0])


def _relies(shortcut: Mapping[str, Any]) -> str:
    k, n = int(shortcut["n_changed_when_removed"]), int(shortcut["images_with"])
    return f"removing the shortcut changes {count_with_interval(k, n, _removal_interval(shortcut))} of its decisions"


def _images(entry: Mapping[str, Any], name: str) -> list[float | None] | None:
    """The per-image values of one measure of an explainer's entry (None: not stored)."""
    images = entry.get("images")
    values = images.get(name) if isinstance(images, Mapping) else None
    return list(values) if isinstance(values, list) else None


# --- 1. heat maps can be fooled ----------------------------------------------------------------


def _flipped_pointing(report: Mapping[str, Any], values: Mapping[str, Any]) -> PairedDifference | None:
    """The pointing game of the attacked maps (new class) against the clean maps (true class), on the
    same flipped images."""
    clean, attacked = _images(values, "pointing_game"), _images(values.get("attacked") or {}, "pointing_game")
    if clean is None or attacked is None:
        return None
    position = {int(i): k for k, i in enumerate(report.get("image_indices", range(len(clean))))}
    before = [clean[position[int(i)]] for i in report["attack"]["flipped_indices"]]
    return paired_rate_difference(attacked, before)


def _fooled_report(report: Mapping[str, Any]) -> tuple[str, int, int, int]:
    """One network's sentence, and how many explainers kept pointing, how many fell, how many were read."""
    attack, name = report["attack"], report["model"]
    held: list[tuple[str, PairedDifference]] = []
    fell: list[tuple[str, PairedDifference]] = []
    unsure: list[tuple[str, PairedDifference]] = []
    for method, values in report["explainers"].items():
        d = _flipped_pointing(report, values)
        if d is None:
            continue
        title = TITLES.get(method, method)
        if d.comparison == "favours-standard":  # after below before: the map moved off the evidence
            fell.append((title, d))
        elif d.low > -SHARE_DIFFERENCE:
            held.append((title, d))
        else:
            unsure.append((title, d))
    read = len(held) + len(fell) + len(unsure)
    flips = f"{attack['flipped']} of {name}'s {attack['correct']} correct decisions"
    share = percent_with_interval(attack["flipped"] / attack["correct"], _flipped_ci(attack))
    text = f"an L∞ {attack['eps_255']:g}/255 PGD attack flipped {flips} ({share})"
    if held:
        title, d = held[0]
        text += (
            f", and on those {d.n_images} images {len(held)} of {read} explainers' maps of the new, wrong class "
            f"still peaked on the true evidence about as often as their maps of the true class (a fall of "
            f"{100 * SHARE_DIFFERENCE:.0f} points or more ruled out; e.g. {title} {_pct(d.second)} → "
            f"{_pct(d.first)}, {_points(d)})"
        )
    elif read:
        text += ", and on those images no explainer's map of the new class is shown to keep pointing at the true evidence"
    else:
        text += " (the scorecard keeps no per-image pointing game to compare the maps on)"
    if fell:
        text += "; " + ", ".join(f"{t} {_pct(d.second)} → {_pct(d.first)} ({_points(d)})" for t, d in fell)
        text += " fell"
    if unsure:
        text += "; " + ", ".join(f"{t} ({_points(d)})" for t, d in unsure)
        text += ": cannot tell at this sample size"
    return text, len(held), len(fell), read


def _flipped_ci(attack: Mapping[str, Any]) -> tuple[float, float]:
    stored = attack.get("flipped_ci")
    if isinstance(stored, list) and len(stored) == 2 and None not in stored:
        return float(stored[0]), float(stored[1])
    return wilson_interval(int(attack["flipped"]), int(attack["correct"]))


def fooled(scorecard: Mapping[str, Any], manifest: Mapping[str, Any]) -> Reading:
    """Do the maps follow a decision that a small attack flipped? From the scorecard: on each standard
    network's flipped images, the pointing game of each explainer's map of the new, wrong class against
    its map of the true class on the same images (a paired difference with its Newcombe interval). A
    map whose interval rules out a fall of `SHARE_DIFFERENCE` did not show the change; one whose
    interval lies below zero did; the rest cannot tell.

    Outcome: "supported" when on every network most explainers kept pointing, "not-supported" when on
    every network most fell, "inconclusive" when on none did either, "mixed" otherwise."""
    robust = _robust_ids(manifest)
    reports = [r for r in scorecard.get("reports", []) if r["model"] not in robust]
    readable = [r for r in reports if r["attack"]["flipped"] >= MIN_FLIPPED]
    if not readable:
        return Reading("no-data", "No shipped scorecard has enough flipped decisions to read the maps.")
    parts, support, refute, compared = [], 0, 0, 0
    for report in readable:
        text, held, fell, read = _fooled_report(report)
        parts.append(text)
        support += held > read / 2
        refute += fell > read / 2
        compared += read
    few = [
        f"{r['attack']['flipped']} of {r['attack']['correct']} on {r['model']}"
        for r in scorecard.get("reports", [])
        if r not in readable
    ]
    sentence = "Measured here: " + ". And ".join(parts) + "."
    if few:
        sentence += f" The attack flipped too few decisions to read elsewhere ({', '.join(few)})."
    if not compared:
        return Reading("no-data", sentence)
    if support == len(readable):
        outcome = "supported"
    elif refute == len(readable):
        outcome = "not-supported"
    else:
        outcome = "mixed" if support or refute else "inconclusive"
    return Reading(outcome, sentence)


# --- 2. a robust network explains itself better ------------------------------------------------


def _pairs(
    scorecard: Mapping[str, Any], manifest: Mapping[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(standard, robust) reports of twins: trained on the same data, scored on the same dataset."""
    robust = _robust_ids(manifest)
    standard = {e["id"] for e in _entries(manifest) if e.get("recipe") == "standard"}  # not adv-train
    trained_on = {e["id"]: e["dataset"] for e in _entries(manifest)}
    reports = {r["model"]: r for r in scorecard.get("reports", [])}
    return [
        (std, rob)
        for rob in reports.values()
        if rob["model"] in robust
        for std in reports.values()
        if std["dataset"] == rob["dataset"]
        and std["model"] in standard
        and trained_on.get(std["model"], std["dataset"]) == trained_on.get(rob["model"], rob["dataset"])
    ]


def _evidence(std: Mapping[str, Any], rob: Mapping[str, Any], method: str) -> PairedDifference | None:
    """The evidence share of one explainer's maps, robust − standard, on the images both were scored on."""
    a, b = std["explainers"].get(method), rob["explainers"].get(method)
    if a is None or b is None:
        return None
    first, second = _images(b, "evidence_share"), _images(a, "evidence_share")
    if first is None or second is None:
        return None
    shared = sorted(set(_indices(rob, len(first))) & set(_indices(std, len(second))))
    at_rob = {i: k for k, i in enumerate(_indices(rob, len(first)))}
    at_std = {i: k for k, i in enumerate(_indices(std, len(second)))}
    return paired_difference([first[at_rob[i]] for i in shared], [second[at_std[i]] for i in shared])


def _favour(count: int) -> str:
    return f"{count} favours" if count == 1 else f"{count} favour"


def _indices(report: Mapping[str, Any], n: int) -> list[int]:
    return [int(i) for i in report.get("image_indices", range(n))]


def robust_explains(scorecard: Mapping[str, Any], manifest: Mapping[str, Any]) -> Reading:
    """Does a robust network's explanation point at the true evidence more? From the scorecard: each
    explainer's evidence share on the robust network against its standard twin on the same images (a
    paired difference with its bootstrap interval), counted by what the interval favours; a shortcut
    most of the robust network's decisions follow is named."""
    pairs = _pairs(scorecard, manifest)
    if not pairs:
        return Reading(
            "no-data", "No shipped scorecard holds a standard and a robust network of one dataset."
        )
    adversarial, notes, counts = [], [], dict.fromkeys(COMPARISON_WORDS, 0)
    sizes: set[int] = set()
    for std, rob in pairs:
        for method in rob["explainers"]:
            d = _evidence(std, rob, method)
            if d is None:
                continue
            counts[d.comparison] += 1
            sizes.add(d.n_images)
            if method == "adversarial":
                adversarial.append(
                    f"{d.first:.2f} on {rob['model']} against {d.second:.2f} on {std['model']} "
                    f"(difference {d.text()} on {d.n_images} images: {COMPARISON_WORDS[d.comparison]})"
                )
        shortcut = _reliance(manifest, rob["model"])
        if decides_by_shortcut(shortcut):
            assert shortcut is not None  # for mypy: decides_by_shortcut checked it
            notes.append(f"{rob['model']} decides by its shortcut: {_relies(shortcut)}")
    total = sum(counts.values())
    if not total:
        return Reading(
            "no-data", "The shipped scorecards keep no per-image shares to compare the networks on."
        )
    on = f"the same {min(sizes)}" if len(sizes) == 1 else f"{min(sizes)} to {max(sizes)}"
    sentence = (
        "Measured here on the ground-truth networks, the share of the adversarial explanation inside "
        f"the true evidence, robust against standard twin on the same images (95 % paired bootstrap "
        f"interval): {'; '.join(adversarial) or 'not scored'}. Over every explainer, of {total} comparisons "
        f"(each on {on} images: those where both networks' maps have a share), {_favour(counts['favours-robust'])} the robust network, "
        f"{_favour(counts['favours-standard'])} the standard network and {counts['cannot-tell']} cannot tell "
        "at this sample size (the interval of the difference straddles zero)."
    )
    if notes:
        sentence += " And " + "; ".join(notes) + "."
    better, worse = counts["favours-robust"], counts["favours-standard"]
    if better > total / 2:
        outcome = "supported"
    elif better:
        outcome = "mixed"
    else:
        outcome = "not-supported" if worse else "inconclusive"
    return Reading(outcome, sentence)


# --- 3. robustness can be measured -------------------------------------------------------------


def _ratio_text(entry: Mapping[str, Any]) -> str:
    interval = entry.get("attack_ara_ratio_to_standard_ci")
    return ratio_with_interval(float(entry["attack_ara_ratio_to_standard"]), interval)


def _ara_images(entry: Mapping[str, Any], manifest: Mapping[str, Any]) -> Any:
    return (entry.get("ara_settings") or manifest.get("ara_settings") or {}).get("n_images", "?")


def measured(manifest: Mapping[str, Any]) -> Reading:
    """Can robustness be measured, and what does the number say? Each network's Attack ARA as a
    multiple of its standard twin's on the same images, with the paired bootstrap interval of the
    ratio (the manifest's); a network trained for robustness most of whose decisions follow a
    shortcut is named, with its accuracy once the shortcut is gone."""
    ratios = [
        e
        for e in _entries(manifest)
        if e.get("attack_ara_ratio_to_standard") and e.get("recipe") != "standard"
    ]
    if not ratios:
        return Reading("no-data", "No shipped network has a measured ARA against a standard twin.")
    listed = ", ".join(f"{e['id']} {_ratio_text(e)} ({_ara_images(e, manifest)} images)" for e in ratios)
    sentence = (
        "Measured here: the Attack ARA of each network trained for robustness, as a multiple of its "
        f"standard twin's on the same images (95 % interval, a paired bootstrap over the images): {listed}."
    )
    unclear = [e["id"] for e in ratios if (e.get("attack_ara_ratio_to_standard_ci") or [2.0])[0] <= 1]
    if unclear:
        sentence += (
            f" For {', '.join(unclear)} the interval does not exclude 1×: cannot tell at this sample size."
        )
    caveats = []
    for entry in sorted(ratios, key=lambda e: -e["attack_ara_ratio_to_standard"]):
        shortcut = _reliance(manifest, entry["id"])
        if not decides_by_shortcut(shortcut):
            continue
        assert shortcut is not None  # for mypy: decides_by_shortcut checked it
        text = f"{entry['id']} ({_ratio_text(entry)}) decides by its shortcut: {_relies(shortcut)}"
        accuracy = entry.get("test_no_shortcut_accuracy")
        n = int(entry.get("n_test_images") or 0)
        if accuracy is not None and n:
            chance = 1 / entry["arch"]["num_classes"]
            shown = percent_with_interval(accuracy, wilson_interval(round(accuracy * n), n))
            text += f", and without it its accuracy is {shown} on {n} images (chance {_pct(chance)})"
        caveats.append(text)
    if not caveats:
        return Reading("measured", sentence)
    sentence += " The number does not say what the robustness rests on: " + "; ".join(caveats) + "."
    return Reading("measured-shortcut", sentence)


def headlines(
    scorecard: Mapping[str, Any], manifest: Mapping[str, Any], more: Sequence[Mapping[str, Any]] = ()
) -> tuple[Headline, ...]:
    """The three claims with their readings, from the scorecard's and the manifest's content; ``more``:
    further scorecard reports of evidence shares alone (`lesion_users_reports`), read by the second."""
    card, man = "checkpoints/scorecard.json", "checkpoints/manifest.json"
    shares = {**scorecard, "reports": [*scorecard.get("reports", []), *more]}
    sources = (card, *sorted({str(r["source"]) for r in more if "source" in r}), man)
    return (
        Headline("fooled", "Heat maps can be fooled.", fooled(scorecard, manifest), (card, man)),
        Headline(
            "robust-explains",
            "A robust network explains itself better.",
            robust_explains(shares, manifest),
            sources,
        ),
        Headline("measured", "Robustness can be measured.", measured(manifest), (man,)),
    )


def read_headlines(scorecard_path: Path = SCORECARD, checkpoints: Path | None = None) -> tuple[Headline, ...]:
    """`headlines` from the shipped files (a missing file reads as no data)."""
    scorecard = json.loads(scorecard_path.read_text()) if scorecard_path.is_file() else {}
    users = scorecard_path.with_name(LESION_USERS.name)
    more = lesion_users_reports(users) if scorecard and users.is_file() else []
    return headlines(scorecard, read_manifest(checkpoints), more)


def lesion_users_reports(path: Path = LESION_USERS) -> list[dict[str, Any]]:
    """The lesion users' scorecard as reports of the shipped scorecard's shape (the clean evidence
    shares, per image, for `robust_explains`)."""
    data = json.loads(path.read_text())
    return [
        {
            "model": model_id,
            "dataset": "lesions",
            "source": "checkpoints/scorecard-lesion-users.json",
            "image_indices": list(range(int(data["n_images"]))),
            "explainers": {
                m: {
                    "evidence_share": e["clean"]["evidence_share"],
                    "images": {"evidence_share": (e["clean"].get("images") or {}).get("evidence_share")},
                }
                for m, e in network["explainers"].items()
            },
        }
        for model_id, network in data["networks"].items()
    ]


__all__: Sequence[str] = (
    "BOOTSTRAP_SEED",
    "MIN_FLIPPED",
    "SHARE_DIFFERENCE",
    "SHORTCUT_RELIANCE",
    "Headline",
    "PairedDifference",
    "decides_by_shortcut",
    "fooled",
    "headlines",
    "measured",
    "paired_difference",
    "paired_rate_difference",
    "read_headlines",
    "robust_explains",
)
