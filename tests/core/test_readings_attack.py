"""Readings of saliency under attack: each outcome from hand-set numbers, with the numbers quoted."""

from __future__ import annotations

import pytest

from advexp_core.readings import NEAR_NOTE, Reading, attack, near


def _preds(*pairs: tuple[str, float]) -> list[dict]:
    return [{"index": i, "label": label, "probability": p} for i, (label, p) in enumerate(pairs)]


CAT = _preds(("tiger cat", 0.39), ("tabby", 0.30))
EGYPT = _preds(("Egyptian cat", 0.97), ("tiger cat", 0.01))


def test_decision_flipped_png_kept_and_lost_and_not_flipped() -> None:
    r = attack.decision(CAT, EGYPT, EGYPT, success=True, png_success=True)
    assert r.outcome == "flipped" and "tiger cat (39.0%) → Egyptian cat (97.0%)" in r.text
    assert "still works" in r.text and not r.near_threshold
    r = attack.decision(CAT, EGYPT, CAT, success=True, png_success=False)
    assert (
        r.outcome == "flipped-not-png" and "does not fool" in r.text and "tiger cat (39.0%) again" in r.text
    )
    r = attack.decision(CAT, CAT, CAT, success=False, png_success=False)
    assert r.outcome == "not-flipped" and "did not change" in r.text


def test_decision_near_a_tie_says_so() -> None:
    tie = _preds(("Egyptian cat", 0.40), ("tiger cat", 0.39))
    r = attack.decision(CAT, tie, tie, success=True, png_success=True)
    assert r.near_threshold and r.text.endswith(NEAR_NOTE + ".")


@pytest.mark.parametrize(
    ("linf", "ssim", "outcome"),
    [(2.0, 0.993, "invisible"), (8.0, 0.993, "visible"), (2.0, 0.90, "visible"), (0.0, 1.0, "unchanged")],
)
def test_visibility(linf: float, ssim: float, outcome: str) -> None:
    r = attack.visibility({"linf_255": linf, "ssim": ssim})
    assert r.outcome == outcome
    if outcome != "unchanged":
        assert f"{linf:.1f}/255" in r.text and f"{ssim:.3f}" in r.text


def _maps(rho: float, ssim: float, shift: float, share: float) -> dict[str, float | None]:
    return {
        "spearman": rho,
        "ssim": ssim,
        "center_shift_px": shift,
        "topk_intersection": 0.5,
        "delta_energy_in_topk": 0.2,
        "delta_energy_in_attacked_topk": share,
    }


@pytest.mark.parametrize(
    ("numbers", "outcome", "words"),
    [
        (_maps(0.95, 0.97, 1.0, 0.18), "missed", "did not notice what changed the decision"),
        (_maps(0.95, 0.97, 1.0, 0.60), "kept-on-delta", "the perturbation sits where it points"),
        (_maps(0.36, 0.60, 22.8, 0.19), "moved-elsewhere", "nothing in it points at the perturbation"),
        (_maps(0.30, 0.40, 30.0, 0.70), "followed", "followed the perturbation"),
        (_maps(0.95, 0.97, 40.0, 0.18), "moved-elsewhere", "centre moved 40.0 px"),
    ],
)
def test_map_change_four_outcomes(numbers: dict, outcome: str, words: str) -> None:
    r = attack.map_change(numbers, k=0.2, side=224)
    assert r.outcome == outcome and words in r.text
    assert f"rank correlation {numbers['spearman']:.2f}" in r.text
    assert f"{numbers['delta_energy_in_attacked_topk']:.0%} of |δ|²" in r.text


def test_map_change_near_a_threshold_is_flagged() -> None:
    r = attack.map_change(_maps(0.81, 0.97, 1.0, 0.1), k=0.2, side=224)
    assert r.outcome == "missed" and r.near_threshold and NEAR_NOTE in r.text
    r = attack.map_change(_maps(0.5, 0.5, 1.0, 0.31), k=0.2, side=224)  # 0.31 vs 1.5 × 0.2
    assert r.outcome == "followed" and r.near_threshold


def test_map_change_without_delta_or_defined_numbers() -> None:
    flat = {"spearman": None, "ssim": None, "center_shift_px": None}
    assert attack.map_change(flat, k=0.2, side=32).outcome == "undefined"
    no_delta = {"spearman": 0.9, "ssim": 0.95, "center_shift_px": 0.0}
    assert attack.map_change(no_delta, k=0.2, side=32).outcome == "kept"


def test_maps_overall_counts_and_names() -> None:
    verdicts = {
        "gradcam": attack.map_change(_maps(0.70, 0.62, 22.8, 0.2), k=0.2, side=224),
        "ig": attack.map_change(_maps(0.95, 0.97, 1.0, 0.6), k=0.2, side=224),
    }
    r = attack.maps_overall(verdicts, {"gradcam": "Grad-CAM", "ig": "IG"})
    assert r.outcome == "some-point" and "1 of the 2 point" in r.text and "Grad-CAM moved without" in r.text
    verdicts = {"gradcam": verdicts["gradcam"]}
    assert attack.maps_overall(verdicts, {}).outcome == "none-point"
    assert attack.maps_overall({}, {}).outcome == "none"


def test_manipulation_outcomes() -> None:
    kw = {"linf_255": 2.0}
    r = attack.manipulation(CAT, CAT, label_kept=True, to_goal_before=0.1, to_goal_after=0.7, **kw)
    assert r.outcome == "moved-kept" and "0.10 → 0.70" in r.text and r.text.startswith("Decision kept")
    r = attack.manipulation(CAT, CAT, label_kept=True, to_goal_before=0.1, to_goal_after=0.15, **kw)
    assert r.outcome == "not-moved"
    r = attack.manipulation(CAT, EGYPT, label_kept=False, to_goal_before=0.1, to_goal_after=0.7, **kw)
    assert r.outcome == "label-lost" and r.text.startswith("Decision changed")


def test_reading_json_and_near() -> None:
    r = Reading("x", "A sentence.", True)
    assert r.to_json() == {"outcome": "x", "verdict": "A sentence" + NEAR_NOTE + ".", "near_threshold": True}
    assert near(0.81, 0.8) and not near(0.9, 0.8) and near(0.01, 0.0)
