"""The home page's claims read from the shipped tables: hand-made tables with per-image numbers decide
each outcome from the interval of a paired difference, and the shipped files give sentences that quote
their own numbers with their intervals."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from advexp_core.base.statistics import paired_bootstrap_ci, wilson_interval
from advexp_core.experiments import headline
from advexp_core.experiments.headline import (
    MIN_FLIPPED,
    SHARE_DIFFERENCE,
    decides_by_shortcut,
    fooled,
    measured,
    paired_difference,
    paired_rate_difference,
    read_headlines,
    robust_explains,
)

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = re.compile(r"\[[-+]?\d+(\.\d+)?( %|×)?, [-+]?\d+(\.\d+)?( %|×)?\]")
N = 40


def _explainer(
    clean_pointing: list[float], attacked_pointing: list[float], evidence: list[float]
) -> dict[str, Any]:
    """An explainer's entry with its per-image numbers (attacked: over the flipped images)."""
    mean = sum(evidence) / len(evidence)
    return {
        "evidence_share": mean,
        "pointing_game": sum(clean_pointing) / len(clean_pointing),
        "images": {"evidence_share": evidence, "pointing_game": clean_pointing},
        "attacked": {"images": {"pointing_game": attacked_pointing}},
    }


def _report(model: str, flipped: int, explainers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    attack = {"method": "pgd", "norm": "linf", "eps_255": 2.0, "correct": 90, "flipped": flipped,
              "flipped_indices": list(range(flipped))}  # fmt: skip
    return {"model": model, "dataset": "toy", "image_indices": list(range(N)), "attack": attack,
            "explainers": explainers}  # fmt: skip


def _shares(base: float, spread: float = 0.1) -> list[float]:
    """N evidence shares around ``base`` (a fixed saw-tooth, so that a difference has a spread)."""
    return [base + spread * ((k % 5) - 2) / 2 for k in range(N)]


def _manifest(
    reliance: tuple[int, int] | None = None, ratio: float = 4.0, ratio_ci: list[float] | None = None
) -> dict[str, Any]:
    robust: dict[str, Any] = {
        "id": "toy-robust", "dataset": "toy", "recipe": "robust", "robust_additions": True,
        "attack_ara_ratio_to_standard": ratio, "attack_ara_ratio_to_standard_ci": ratio_ci, "arch": {"num_classes": 2},
        "test_no_shortcut_accuracy": 0.5, "n_test_images": 1000, "ara_settings": {"n_images": 100},
    }  # fmt: skip
    if reliance is not None:
        changed, n = reliance
        robust["reliance"] = {"shortcut": {"images_with": n, "n_changed_when_removed": changed,
                                           "decisions_changed_when_removed": changed / n}}  # fmt: skip
    standard = {"id": "toy-standard", "dataset": "toy", "recipe": "standard", "robust_additions": False,
                "attack_ara_ratio_to_standard": 1.0, "arch": {"num_classes": 2}}  # fmt: skip
    return {"networks": [], "groundtruth": [standard, robust]}


def _pair(robust_evidence: list[float], standard_evidence: list[float]) -> dict[str, Any]:
    ones = [1.0] * N
    return {
        "reports": [
            _report("toy-standard", 40, {"adversarial": _explainer(ones, ones[:40], standard_evidence)}),
            _report("toy-robust", 0, {"adversarial": _explainer(ones, [], robust_evidence)}),
        ]
    }


def test_paired_difference_is_the_seeded_bootstrap_of_the_same_images() -> None:
    a, b = _shares(0.6), _shares(0.5, spread=0.3)
    d = paired_difference(a, b)
    assert d is not None and d.n_images == N
    assert (d.low, d.high) == paired_bootstrap_ci(a, b, seed=headline.BOOTSTRAP_SEED)
    assert d.difference == pytest.approx(0.1) and d.comparison == "favours-robust"
    assert paired_difference([0.5, None, 0.7], [0.4, 0.2, None]) is None  # one image with both values
    assert paired_difference(a, b) == d  # reproducible
    same = paired_difference(_shares(0.7), _shares(0.5))  # every image moves by 0.2 (to rounding)
    assert same is not None and same.low == pytest.approx(0.2) and same.high == pytest.approx(0.2)


def test_a_paired_share_difference_is_newcombes_interval() -> None:
    """Newcombe (1998), Statistics in Medicine 17:2635, example (a): 36 pairs both yes, 12 only the
    first, 2 only the second, none neither; method 10 (hybrid score) gives 0.0569 to 0.3404."""
    first = [1.0] * 36 + [1.0] * 12 + [0.0] * 2
    second = [1.0] * 36 + [0.0] * 12 + [1.0] * 2
    d = paired_rate_difference(first, second)
    assert d is not None and d.difference == pytest.approx(0.2) and d.n_images == 50
    assert (d.low, d.high) == pytest.approx((0.0569, 0.3404), abs=5e-5)
    # No image changes, 29 of 29 before and after: the bootstrap would say [0, 0]; Newcombe's interval
    # is as wide as the Wilson interval of 29 of 29 allows.
    same = paired_rate_difference([1.0] * 29, [1.0] * 29)
    low = wilson_interval(29, 29)[0]
    assert same is not None and (same.low, same.high) == pytest.approx((low - 1, 1 - low))
    assert same.comparison == "cannot-tell"


@pytest.mark.parametrize(
    ("robust", "outcome", "words"),
    [
        (_shares(0.7, spread=0.3), "supported", "favours robust"),
        (_shares(0.3, spread=0.3), "not-supported", "favours standard"),
        (
            [0.5 + (0.2 if k % 2 else -0.2) for k in range(N)],
            "inconclusive",
            "cannot tell at this sample size",
        ),
    ],
)
def test_a_robust_network_is_read_from_the_interval_of_the_paired_difference(
    robust: list[float], outcome: str, words: str
) -> None:
    standard = _shares(0.5)
    reading = robust_explains(_pair(robust, standard), _manifest())
    d = paired_difference(robust, standard)
    assert d is not None
    assert reading.outcome == outcome
    assert f"{d.first:.2f} on toy-robust against {d.second:.2f} on toy-standard" in reading.text
    assert f"difference {d.text()} on {N} images: {words}" in reading.text
    assert "shortcut" not in reading.text and INTERVAL.search(reading.text)


def test_a_difference_whose_interval_straddles_zero_reads_cannot_tell() -> None:
    standard = _shares(0.5)
    robust = [s + (0.05 if k % 2 else -0.05) for k, s in enumerate(standard)]  # the same mean, noisy
    d = paired_difference(robust, standard)
    assert d is not None and d.low < 0 < d.high and d.comparison == "cannot-tell"
    reading = robust_explains(_pair(robust, standard), _manifest())
    assert reading.outcome == "inconclusive"
    assert (
        "0 favour the robust network, 0 favour the standard network and 1 cannot tell at this sample size"
        in (reading.text)
    )


def test_a_robust_network_decides_by_its_shortcut_only_when_the_interval_is_above_half() -> None:
    pair = _pair(_shares(0.3, spread=0.3), _shares(0.5))
    # 62 of 100: Wilson 52 % to 71 %, most; 58 of 100: 48 % to 67 %, not shown to be most.
    assert wilson_interval(62, 100)[0] > 0.5 > wilson_interval(58, 100)[0]
    named = robust_explains(pair, _manifest(reliance=(62, 100)))
    assert "toy-robust decides by its shortcut" in named.text and "62/100 (62 % [52 %, 71 %])" in named.text
    assert "shortcut" not in robust_explains(pair, _manifest(reliance=(58, 100))).text
    assert not decides_by_shortcut(None) and decides_by_shortcut(
        {"images_with": 5, "n_changed_when_removed": 5}
    )
    assert not decides_by_shortcut({"images_with": 3, "n_changed_when_removed": 3})  # 3/3: 44 % to 100 %


def test_maps_that_keep_pointing_after_a_flip_support_the_claim() -> None:
    ones = [1.0] * N
    kept = _explainer(ones, [1.0] * 40, _shares(0.5))
    card = {"reports": [_report("toy-standard", 40, {"gradcam": kept, "ig": kept}),
                        _report("toy-robust", MIN_FLIPPED - 1, {"gradcam": kept})]}  # fmt: skip
    reading = fooled(card, _manifest())
    assert reading.outcome == "supported"
    assert "40 of toy-standard's 90" in reading.text and "2 of 2 explainers" in reading.text
    assert f"{MIN_FLIPPED - 1} of 90 on toy-robust" in reading.text  # too few: named, not read
    flips = wilson_interval(40, 90)
    assert f"(44 % [{100 * flips[0]:.0f} %, {100 * flips[1]:.0f} %])" in reading.text


def test_maps_that_move_after_a_flip_do_not_support_it_and_a_wide_interval_cannot_tell() -> None:
    ones = [1.0] * N
    moved = _explainer(ones, [0.0 if k % 2 else 1.0 for k in range(40)], _shares(0.5))  # 100 % -> 50 %
    card = {"reports": [_report("toy-standard", 40, {"gradcam": moved})]}
    reading = fooled(card, _manifest())
    assert reading.outcome == "not-supported" and "Grad-CAM 100 % → 50 % (-50.0 points [" in reading.text
    # One miss in 12: the interval of the fall reaches past 10 points, and does not exclude zero.
    unsure = _explainer(ones, [0.0] + [1.0] * 11, _shares(0.5))
    card = {"reports": [_report("toy-standard", 12, {"gradcam": unsure})]}
    d = paired_rate_difference([0.0] + [1.0] * 11, [1.0] * 12)
    assert d is not None and d.low < -SHARE_DIFFERENCE and d.high >= 0
    reading = fooled(card, _manifest())
    assert reading.outcome == "inconclusive" and "cannot tell at this sample size" in reading.text


def test_without_enough_flips_or_per_image_numbers_there_is_nothing_to_read() -> None:
    ones = [1.0] * N
    card = {
        "reports": [_report("toy-standard", MIN_FLIPPED - 1, {"gradcam": _explainer(ones, ones[:9], ones)})]
    }
    assert fooled(card, _manifest()).outcome == "no-data"
    assert fooled({}, {}).outcome == "no-data"
    bare = {"pointing_game": 1.0, "evidence_share": 0.5, "attacked": {"pointing_game": 1.0}}
    assert (
        fooled({"reports": [_report("toy-standard", 40, {"gradcam": bare})]}, _manifest()).outcome
        == "no-data"
    )


def test_ara_ratios_carry_their_intervals_and_a_shortcut_is_a_caveat() -> None:
    plain = measured(_manifest(ratio=4.0, ratio_ci=[3.1, 5.2]))
    assert plain.outcome == "measured" and "toy-robust 4.0× [3.1×, 5.2×] (100 images)" in plain.text
    unclear = measured(_manifest(ratio=1.3, ratio_ci=[0.8, 2.0]))
    assert "For toy-robust the interval does not exclude 1×: cannot tell at this sample size" in unclear.text
    caveat = measured(_manifest(reliance=(100, 100), ratio=14.2, ratio_ci=[11.3, 16.9]))
    assert caveat.outcome == "measured-shortcut"
    assert "100/100 (100 % [96 %, 100 %])" in caveat.text
    assert "accuracy is 50 % [47 %, 53 %] on 1000 images (chance 50 %)" in caveat.text
    assert measured({}).outcome == "no-data"


def test_the_shipped_tables_give_sentences_with_their_own_numbers_and_intervals() -> None:
    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())
    card = json.loads(headline.SCORECARD.read_text())
    found = {h.key: h for h in read_headlines()}
    assert set(found) == {"fooled", "robust-explains", "measured"}
    for h in found.values():  # every claim states its figure with an interval
        assert h.reading.outcome != "no-data" and INTERVAL.search(h.reading.text), h.key
    flipped = max((r for r in card["reports"]), key=lambda r: r["attack"]["flipped"])
    assert f"{flipped['attack']['flipped']} of {flipped['model']}'s {flipped['attack']['correct']}" in (
        found["fooled"].reading.text
    )
    for entry in manifest["networks"]:
        if entry.get("recipe") != "standard" and entry.get("attack_ara_ratio_to_standard"):
            low, high = entry["attack_ara_ratio_to_standard_ci"]
            ratio = entry["attack_ara_ratio_to_standard"]
            assert f"{entry['id']} {ratio:.1f}× [{low:.1f}×, {high:.1f}×]" in found["measured"].reading.text
    for entry in manifest.get("groundtruth", []):
        shortcut = (entry.get("reliance") or {}).get("shortcut")
        if entry.get("robust_additions") and decides_by_shortcut(shortcut):
            assert shortcut is not None
            count = f"{shortcut['n_changed_when_removed']}/{shortcut['images_with']}"
            assert count in found["measured"].reading.text and count in found["robust-explains"].reading.text


def test_robust_networks_are_read_against_the_standard_twin_trained_on_their_data() -> None:
    users = json.loads(headline.LESION_USERS.read_text())["networks"]
    text = next(h for h in read_headlines() if h.key == "robust-explains").reading.text
    standard, robust = users
    d = paired_difference(
        users[robust]["explainers"]["adversarial"]["clean"]["images"]["evidence_share"],
        users[standard]["explainers"]["adversarial"]["clean"]["images"]["evidence_share"],
    )
    assert d is not None
    assert f"{d.first:.2f} on {robust} against {d.second:.2f} on {standard} (difference {d.text()}" in text
    assert text.count(f"on {robust} against") == 1  # not vs lesions-standard
    assert "on lesions-robust against" in text and "on lesions-standard" in text  # the first pair stays
    card = json.loads(headline.SCORECARD.read_text())
    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())
    alone = headline.robust_explains(card, manifest).text
    assert robust not in alone  # the extra reports come only from the lesion users' file


def test_missing_files_read_as_no_data(tmp_path: Path) -> None:
    found = read_headlines(tmp_path / "absent.json", tmp_path)
    assert [h.reading.outcome for h in found] == ["no-data"] * 3
