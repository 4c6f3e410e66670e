"""Readings of the home page's three claims, each from this project's own shipped measurements
(docs/method.md, "Readings"): the ground-truth scorecard (``checkpoints/scorecard.json``, written by
``research/scorecard_table.py``) and the checkpoints' manifest (``checkpoints/manifest.json``: each
network's ARA and, where measured, how much it relies on a shortcut).

The claims are the paper's; each reading states the figure this project measured and says where
the measurement does not support the claim. Read at run time, so a re-measured table changes the
sentence and no number is typed twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advexp_core.experiments.shipped import read_manifest
from advexp_core.methods.saliency import METHOD_TITLES
from advexp_core.networks.zoo import CHECKPOINTS_DIR
from advexp_core.readings import Reading

SCORECARD = CHECKPOINTS_DIR / "scorecard.json"
LESION_USERS = SCORECARD.with_name("scorecard-lesion-users.json")
"""The standard and the robust network that both decide by the lesion (research/lesion_users_scorecard.py)."""

SHARE_DIFFERENCE = 0.10
"""Difference of two shares (pointing game, evidence share) from which one is read as higher: each
is a mean over at most 100 images of a number in [0, 1], whose standard error is at most 0.05, so a
difference of two has one of at most 0.071; 0.10 is 1.4 of those."""
MIN_FLIPPED = 10
"""Fewest flipped decisions on which the attacked maps are read (with 3, one image moves a share by 33 points)."""
SHORTCUT_RELIANCE = 0.5
"""Share of a network's decisions on shortcut images that change when the shortcut alone is removed,
from which the network is said to decide by the shortcut (more often than not)."""

TITLES = {**METHOD_TITLES, "adversarial": "the adversarial explanation"}


@dataclass(frozen=True)
class Headline:
    """One home-page claim and the reading of this project's measurement of it.

    Attributes:
        key: "fooled", "robust-explains" or "measured".
        claim: the claim in a few words (the paper's).
        reading: the measured figure, and where it does not support the claim.
        sources: the shipped files the figures come from.
    """

    key: str
    claim: str
    reading: Reading
    sources: tuple[str, ...]


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


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


def _relies(shortcut: Mapping[str, Any]) -> str:
    return (
        f"removing the shortcut changes {shortcut['n_changed_when_removed']}/{shortcut['images_with']} "
        "of its decisions"
    )


def fooled(scorecard: Mapping[str, Any], manifest: Mapping[str, Any]) -> Reading:
    """Do the maps follow a decision that a small attack flipped? From the scorecard's "attacked"
    numbers: the pointing game of each explainer's map of the new, wrong class on the flipped images,
    against the clean images'. An explainer that points at the true evidence as often (within
    `SHARE_DIFFERENCE`) for the wrong class did not show the change."""
    robust = _robust_ids(manifest)
    reports = [r for r in scorecard.get("reports", []) if r["model"] not in robust]
    readable = [r for r in reports if r["attack"]["flipped"] >= MIN_FLIPPED]
    if not readable:
        return Reading("no-data", "No shipped scorecard has enough flipped decisions to read the maps.")
    parts: list[str] = []
    majorities = 0  # reports on which most explainers kept pointing
    for report in readable:
        attack, name = report["attack"], report["model"]
        kept: list[str] = []
        noticed: list[str] = []
        for method, values in report["explainers"].items():
            after = (values.get("attacked") or {}).get("pointing_game")
            if after is None or values.get("pointing_game") is None:
                continue
            (noticed if after < values["pointing_game"] - SHARE_DIFFERENCE else kept).append(
                f"{TITLES.get(method, method)} {_pct(values['pointing_game'])} → {_pct(after)}"
            )
        majorities += len(kept) > len(noticed)
        text = (
            f"an L∞ {attack['eps_255']:g}/255 PGD attack flipped {attack['flipped']} of {name}'s "
            f"{attack['correct']} correct decisions, and for the new, wrong class {len(kept)} of "
            f"{len(kept) + len(noticed)} explainers still pointed at the true evidence as often "
            f"({kept[0]} of the images)"
            if kept
            else f"on {name} every explainer's pointing fell"
        )
        if noticed:
            text += f"; only {', '.join(noticed)} fell by {100 * SHARE_DIFFERENCE:.0f} points or more"
        parts.append(text)
    few = [
        f"{r['attack']['flipped']} of {r['attack']['correct']} on {r['model']}"
        for r in scorecard.get("reports", [])
        if r not in readable
    ]
    sentence = "Measured here: " + ". And ".join(parts) + "."
    if few:
        sentence += f" The attack flipped too few decisions to read elsewhere ({', '.join(few)})."
    outcome = "supported" if majorities == len(readable) else ("mixed" if majorities else "not-supported")
    return Reading(outcome, sentence)


def robust_explains(scorecard: Mapping[str, Any], manifest: Mapping[str, Any]) -> Reading:
    """Does a robust network's explanation point at the true evidence more? From the scorecard:
    each explainer's evidence share on the robust network against its standard twin (trained on the
    same data, scored on the same dataset); a shortcut the robust network decides by is named."""
    robust = _robust_ids(manifest)
    standard = {e["id"] for e in _entries(manifest) if e.get("recipe") == "standard"}  # not adv-train
    trained_on = {e["id"]: e["dataset"] for e in _entries(manifest)}  # twins: the same training data
    reports = {r["model"]: r for r in scorecard.get("reports", [])}
    pairs = [
        (std, rob)
        for rob in reports.values()
        if rob["model"] in robust
        for std in reports.values()
        if std["dataset"] == rob["dataset"]
        and std["model"] in standard
        and trained_on.get(std["model"], std["dataset"]) == trained_on.get(rob["model"], rob["dataset"])
    ]
    if not pairs:
        return Reading(
            "no-data", "No shipped scorecard holds a standard and a robust network of one dataset."
        )
    adversarial, better, total, notes = [], 0, 0, []
    for std, rob in pairs:
        for method, values in rob["explainers"].items():
            a, b = std["explainers"].get(method, {}).get("evidence_share"), values.get("evidence_share")
            if a is None or b is None:
                continue
            total += 1
            better += b >= a + SHARE_DIFFERENCE
            if method == "adversarial":
                adversarial.append(f"{b:.2f} on {rob['model']} against {a:.2f} on {std['model']}")
        shortcut = _reliance(manifest, rob["model"])
        if shortcut is not None and shortcut["decisions_changed_when_removed"] >= SHORTCUT_RELIANCE:
            notes.append(f"{rob['model']} decides by its shortcut: {_relies(shortcut)}")
    sentence = (
        f"Measured here on the ground-truth networks, the share of the adversarial explanation inside "
        f"the true evidence: {'; '.join(adversarial)}. Over every explainer, {better} of {total} "
        f"comparisons favour the robust network by {SHARE_DIFFERENCE:.2f} or more."
    )
    if notes:
        sentence += " And " + "; ".join(notes) + "."
    outcome = "supported" if better > total / 2 else ("mixed" if better else "not-supported")
    return Reading(outcome, sentence)


def measured(manifest: Mapping[str, Any]) -> Reading:
    """Can robustness be measured, and what does the number say? Each network's Attack ARA as a
    multiple of its standard twin's (the manifest's ratio); a network trained for robustness that
    decides by a shortcut is named, with its accuracy once the shortcut is gone."""
    ratios = [
        e
        for e in _entries(manifest)
        if e.get("attack_ara_ratio_to_standard") and e.get("recipe") != "standard"
    ]
    if not ratios:
        return Reading("no-data", "No shipped network has a measured ARA against a standard twin.")
    listed = ", ".join(f"{e['id']} {e['attack_ara_ratio_to_standard']:.1f}×" for e in ratios)
    sentence = f"Measured here: the Attack ARA of each network trained for robustness, as a multiple of its standard twin's: {listed}."
    caveats = []
    for entry in sorted(ratios, key=lambda e: -e["attack_ara_ratio_to_standard"]):
        shortcut = _reliance(manifest, entry["id"])
        if shortcut is None or shortcut["decisions_changed_when_removed"] < SHORTCUT_RELIANCE:
            continue
        text = f"{entry['id']} ({entry['attack_ara_ratio_to_standard']:.0f}×) decides by its shortcut: {_relies(shortcut)}"
        accuracy = entry.get("test_no_shortcut_accuracy")
        if accuracy is not None:
            chance = 1 / entry["arch"]["num_classes"]
            text += f", and without it its accuracy is {_pct(accuracy)} (chance {_pct(chance)})"
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
    shares, for `robust_explains`)."""
    data = json.loads(path.read_text())
    return [
        {
            "model": model_id,
            "dataset": "lesions",
            "source": "checkpoints/scorecard-lesion-users.json",
            "explainers": {
                m: {"evidence_share": e["clean"]["evidence_share"]} for m, e in network["explainers"].items()
            },
        }
        for model_id, network in data["networks"].items()
    ]


__all__: Sequence[str] = (
    "MIN_FLIPPED",
    "SHARE_DIFFERENCE",
    "SHORTCUT_RELIANCE",
    "Headline",
    "fooled",
    "headlines",
    "measured",
    "read_headlines",
    "robust_explains",
)
