"""The home page's claims read from the shipped tables: hand-made tables decide each outcome, and the
shipped files give sentences that quote their own numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advexp_core.experiments import headline
from advexp_core.experiments.headline import (
    MIN_FLIPPED,
    SHARE_DIFFERENCE,
    SHORTCUT_RELIANCE,
    fooled,
    measured,
    read_headlines,
    robust_explains,
)

ROOT = Path(__file__).resolve().parents[2]


def _explainer(pointing: float, attacked: float | None, evidence: float) -> dict[str, Any]:
    after = (
        None if attacked is None else {"pointing_game": attacked, "evidence_share": evidence, "n_images": 20}
    )
    return {"pointing_game": pointing, "evidence_share": evidence, "shortcut_share": None, "attacked": after}


def _report(model: str, flipped: int, explainers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    attack = {"method": "pgd", "norm": "linf", "eps_255": 2.0, "correct": 90, "flipped": flipped}
    return {"model": model, "dataset": "toy", "attack": attack, "explainers": explainers}


def _manifest(reliance: float | None = None, ratio: float = 4.0) -> dict[str, Any]:
    robust: dict[str, Any] = {
        "id": "toy-robust", "dataset": "toy", "recipe": "robust", "robust_additions": True,
        "attack_ara_ratio_to_standard": ratio, "arch": {"num_classes": 2}, "test_no_shortcut_accuracy": 0.5,
    }  # fmt: skip
    if reliance is not None:
        changed = round(reliance * 100)
        robust["reliance"] = {
            "shortcut": {
                "images_with": 100,
                "n_changed_when_removed": changed,
                "decisions_changed_when_removed": changed / 100,
            }
        }
    standard = {"id": "toy-standard", "dataset": "toy", "recipe": "standard", "robust_additions": False,
                "attack_ara_ratio_to_standard": 1.0, "arch": {"num_classes": 2}}  # fmt: skip
    return {"networks": [], "groundtruth": [standard, robust]}


def test_maps_that_keep_pointing_after_a_flip_support_the_claim() -> None:
    card = {
        "reports": [
            _report(
                "toy-standard", 40, {"gradcam": _explainer(0.6, 0.9, 0.5), "ig": _explainer(0.8, 0.75, 0.3)}
            ),
            _report("toy-robust", MIN_FLIPPED - 1, {"gradcam": _explainer(0.6, 0.1, 0.5)}),
        ]
    }
    reading = fooled(card, _manifest())
    assert reading.outcome == "supported"
    assert "40 of toy-standard's 90" in reading.text and "2 of 2 explainers" in reading.text
    assert f"{MIN_FLIPPED - 1} of 90 on toy-robust" in reading.text  # too few: named, not read


def test_maps_that_move_after_a_flip_do_not_support_it() -> None:
    drop = 0.8 - SHARE_DIFFERENCE - 0.01
    card = {"reports": [_report("toy-standard", 40, {"gradcam": _explainer(0.8, drop, 0.5)})]}
    reading = fooled(card, _manifest())
    assert reading.outcome == "not-supported" and "Grad-CAM 80 %" in reading.text
    card = {
        "reports": [
            _report("toy-standard", 40, {"gradcam": _explainer(0.8, 0.8 - SHARE_DIFFERENCE + 0.01, 0.5)})
        ]
    }
    assert fooled(card, _manifest()).outcome == "supported"


def test_without_enough_flips_there_is_nothing_to_read() -> None:
    card = {"reports": [_report("toy-standard", MIN_FLIPPED - 1, {"gradcam": _explainer(0.8, 0.8, 0.5)})]}
    assert fooled(card, _manifest()).outcome == "no-data"
    assert fooled({}, {}).outcome == "no-data"


@pytest.mark.parametrize(
    ("robust_share", "outcome"),
    [(0.5 + SHARE_DIFFERENCE + 0.01, "supported"), (0.5 + SHARE_DIFFERENCE - 0.01, "not-supported")],
)
def test_a_robust_network_must_put_more_of_its_map_on_the_evidence(robust_share: float, outcome: str) -> None:
    card = {
        "reports": [
            _report("toy-standard", 40, {"adversarial": _explainer(0.5, None, 0.5)}),
            _report("toy-robust", 0, {"adversarial": _explainer(0.5, None, robust_share)}),
        ]
    }
    reading = robust_explains(card, _manifest())
    assert reading.outcome == outcome
    assert f"{robust_share:.2f} on toy-robust against 0.50 on toy-standard" in reading.text
    assert "shortcut" not in reading.text


def test_a_robust_network_that_decides_by_a_shortcut_is_named() -> None:
    card = {
        "reports": [
            _report("toy-standard", 40, {"adversarial": _explainer(0.5, None, 0.5)}),
            _report("toy-robust", 0, {"adversarial": _explainer(0.5, None, 0.3)}),
        ]
    }
    named = robust_explains(card, _manifest(reliance=SHORTCUT_RELIANCE))
    assert "toy-robust decides by its shortcut" in named.text and "50/100" in named.text
    assert "shortcut" not in robust_explains(card, _manifest(reliance=SHORTCUT_RELIANCE - 0.01)).text


def test_ara_is_measured_and_a_shortcut_is_a_caveat() -> None:
    plain = measured(_manifest(ratio=4.0))
    assert plain.outcome == "measured" and "toy-robust 4.0×" in plain.text
    caveat = measured(_manifest(reliance=1.0, ratio=14.2))
    assert caveat.outcome == "measured-shortcut"
    assert "100/100" in caveat.text and "accuracy is 50 % (chance 50 %)" in caveat.text
    assert measured({}).outcome == "no-data"


def test_the_shipped_tables_give_sentences_with_their_own_numbers() -> None:
    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())
    card = json.loads(headline.SCORECARD.read_text())
    found = {h.key: h for h in read_headlines()}
    assert set(found) == {"fooled", "robust-explains", "measured"}
    flipped = max((r for r in card["reports"]), key=lambda r: r["attack"]["flipped"])
    assert f"{flipped['attack']['flipped']} of {flipped['model']}'s {flipped['attack']['correct']}" in (
        found["fooled"].reading.text
    )
    for entry in manifest["networks"]:
        if entry.get("recipe") != "standard" and entry.get("attack_ara_ratio_to_standard"):
            assert (
                f"{entry['id']} {entry['attack_ara_ratio_to_standard']:.1f}×"
                in found["measured"].reading.text
            )
    for entry in manifest.get("groundtruth", []):
        shortcut = (entry.get("reliance") or {}).get("shortcut") or {}
        relies = shortcut.get("decisions_changed_when_removed", 0) >= SHORTCUT_RELIANCE
        if entry.get("robust_additions") and relies:
            count = f"{shortcut['n_changed_when_removed']}/{shortcut['images_with']}"
            assert count in found["measured"].reading.text and count in found["robust-explains"].reading.text


def test_robust_networks_are_read_against_the_standard_twin_trained_on_their_data() -> None:
    users = json.loads(headline.LESION_USERS.read_text())["networks"]
    text = next(h for h in read_headlines() if h.key == "robust-explains").reading.text
    standard, robust = users
    share = users[robust]["explainers"]["adversarial"]["clean"]["evidence_share"]
    twin = users[standard]["explainers"]["adversarial"]["clean"]["evidence_share"]
    assert f"{share:.2f} on {robust} against {twin:.2f} on {standard}" in text
    assert (
        f"on {robust} against" in text and text.count(f"on {robust} against") == 1
    )  # not vs lesions-standard
    assert "on lesions-robust against" in text and "on lesions-standard" in text  # the first pair stays
    card = json.loads(headline.SCORECARD.read_text())
    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())
    alone = headline.robust_explains(card, manifest).text
    assert robust not in alone  # the extra reports come only from the lesion users' file


def test_missing_files_read_as_no_data(tmp_path: Path) -> None:
    found = read_headlines(tmp_path / "absent.json", tmp_path)
    assert [h.reading.outcome for h in found] == ["no-data"] * 3
