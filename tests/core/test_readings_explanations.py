"""The readings of adversarial explanations, the explainers' agreement and ARA: each outcome from
numbers built for it, the sentence quoting those numbers, and the near-threshold flag."""

from __future__ import annotations

import math
from typing import Any

import pytest

from advexp_core.readings import NEAR_NOTE, ara
from advexp_core.readings import agreement as agree
from advexp_core.readings import explanations as ex
from advexp_core.readings.ara import AraNumbers

NOISE = 0.2  # a white-noise share that makes ratios easy to read: share 0.8 -> 4.0x


def target(
    label: str = "cat",
    *,
    ok: bool = True,
    reached: int = 5,
    structure: float | None = 0.8,
    p: float = 0.9,
    top: bool = True,
) -> dict[str, Any]:
    return {
        "label": label,
        "budget_reached_by_half": ok,
        "reached_step": reached,
        "structure": structure,
        "probability_after": p,
        "probability_after_png": p,
        "target_is_top_after_png": top,
    }


def network(title: str, robust: bool, *shares: float) -> dict[str, Any]:
    return {
        "title": title,
        "robust": robust,
        "steps": 35,
        "structure_noise": NOISE,
        "targets": [target(f"t{k}", structure=s) for k, s in enumerate(shares)],
    }


# --- success ---------------------------------------------------------------------------------


def test_every_explanation_succeeded_and_the_targets_read_are_counted() -> None:
    r = ex.success([target("cat", p=0.93), target("dog", p=0.41, top=False)], steps=35)
    assert r.outcome == "succeeded" and not r.near_threshold
    assert r.sentence == (
        "2 of 2 explanations succeeded (each spent the budget ρ by step 17 of 35); the network reads 1 of "
        "those 2 saved x+δ as their target (cat at 93%; dog at 41%, not its top class)."
    )


def test_one_explanation_reads_in_the_singular() -> None:
    r = ex.success([target("frog", p=0.5)], steps=35)
    assert r.sentence == (
        "1 of 1 explanation succeeded (it spent the budget ρ by step 17 of 35); the network reads the saved "
        "x+δ as its target (frog at 50%)."
    )


def test_some_failed_names_them() -> None:
    r = ex.success([target("cat"), target("dog", ok=False, reached=30)], steps=35)
    assert r.outcome == "partly"
    assert r.sentence.startswith(
        "1 of 2 explanations succeeded; dog did not spend the budget ρ by step 17 of 35 and is a failed explanation"
    )


def test_none_succeeded() -> None:
    r = ex.success([target("cat", ok=False, reached=-1), target("dog", ok=False, reached=-1)], steps=35)
    assert r.outcome == "failed"
    assert "0 of 2 explanations succeeded: none spent the budget ρ by step 17 of 35 (cat, dog)" in r.sentence


def test_a_budget_reached_one_step_from_half_is_near_the_threshold() -> None:
    assert ex.success([target(reached=18, ok=False)], steps=35).near_threshold
    assert ex.success([target(reached=16)], steps=35).near_threshold
    assert not ex.success([target(reached=14)], steps=35).near_threshold


# --- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "outcome", "quoted"),
    [
        ((0.7, 0.9), "structured", "on average 80% of δ's energy lies at spatial frequencies up to 0.25 cycles/pixel, 4.0× the 20% of white noise"),
        ((0.2, 0.3), "noise-like", "on average 25% of δ's energy"),
        ((0.5,), "partly-structured", "2.5× the 20% of white noise"),
    ],
)  # fmt: skip
def test_structure_outcomes_quote_the_share_and_its_ratio_to_noise(shares, outcome, quoted) -> None:
    r = ex.structure([target(structure=s) for s in shares], noise_share=NOISE)
    assert r.outcome == outcome and quoted in r.sentence and not r.near_threshold


def test_structure_near_its_thresholds_and_undefined() -> None:
    assert ex.structure([target(structure=0.61)], noise_share=NOISE).near_threshold  # 3.05x
    assert ex.structure([target(structure=0.39)], noise_share=NOISE).near_threshold  # 1.95x
    flat = ex.structure([target(structure=None), target(structure=math.nan)], noise_share=NOISE)
    assert flat.outcome == "undefined"


def test_network_reads_a_report() -> None:
    report = network("robust net", True, 0.8, 0.9)
    readings = ex.network(report)
    assert readings["success"].outcome == "succeeded" and readings["structure"].outcome == "structured"


# --- contrast --------------------------------------------------------------------------------


def test_the_paper_s_contrast() -> None:
    r = ex.contrast(network("Std", False, 0.3), network("Rob", True, 0.8))
    assert r.outcome == "contrast"
    assert (
        "80% against 30% of δ's energy at low spatial frequencies (4.0× against 1.5× white noise"
        in r.sentence
    )
    assert "as the paper reports" in r.sentence and "1 of 1 on Rob, 1 of 1 on Std" in r.sentence


def test_no_contrast_says_so_with_the_numbers() -> None:
    r = ex.contrast(network("Std", False, 0.7), network("Rob", True, 0.8))
    assert r.outcome == "no-contrast"
    assert r.sentence.startswith(
        "On this image the robust network's δ is no more structured than the standard one's: 80% against 70%"
    )
    assert "This run does not show it." in r.sentence


def test_a_weak_and_a_reversed_contrast() -> None:
    weak = ex.contrast(network("Std", False, 0.2), network("Rob", True, 0.5))  # 2.5x vs 1.0x
    assert weak.outcome == "weak-contrast" and "only 2.5× white noise" in weak.sentence
    reversed_ = ex.contrast(network("Std", False, 0.9), network("Rob", True, 0.3))
    assert reversed_.outcome == "reversed" and "the opposite of the paper's contrast" in reversed_.sentence


def test_a_contrast_near_its_factor_is_flagged() -> None:
    r = ex.contrast(network("Std", False, 0.4), network("Rob", True, 0.61))  # factor 1.525, robust 3.05x
    assert r.outcome == "contrast" and r.near_threshold and r.text.endswith(NEAR_NOTE + ".")


def test_contrast_of_needs_one_standard_and_one_robust() -> None:
    both_robust = ex.contrast_of([network("A", True, 0.8), network("B", True, 0.8)])
    assert (
        both_robust.outcome == "not-a-pair"
        and "Every network compared here is robust" in both_robust.sentence
    )
    picked = ex.contrast_of([network("Rob", True, 0.8), network("Std", False, 0.3)])
    assert picked.outcome == "contrast"


# --- agreement -------------------------------------------------------------------------------

NAMES = ["Gradient", "Grad-CAM", "SmoothGrad"]


def matrix(ab: float, ac: float, bc: float) -> list[list[float]]:
    return [[1.0, ab, ac], [ab, 1.0, bc], [ac, bc, 1.0]]


@pytest.mark.parametrize(
    ("values", "outcome", "verb"),
    [((0.7, 0.8, 0.9), "agree", "agree"), ((0.1, 0.2, 0.0), "disagree", "disagree"), ((0.3, 0.4, 0.5), "partly", "agree only partly")],
)  # fmt: skip
def test_agreement_outcomes_quote_mean_and_extreme_pairs(values, outcome, verb) -> None:
    r = agree.agreement(matrix(*values), NAMES, measure="spearman")
    lo, hi, mean = min(values), max(values), sum(values) / 3
    assert r.outcome == outcome and not r.near_threshold
    assert r.sentence.startswith(
        f"The explainers {verb}: their rank correlation off the diagonal averages {mean:.2f} over 3 pairs"
    )
    assert f"from {lo:.2f} (" in r.sentence and f"to {hi:.2f} (" in r.sentence


def test_agreement_names_the_pairs_and_the_chance_level() -> None:
    r = agree.agreement(matrix(0.2, 0.6, 0.25), NAMES, measure="topk_intersection")
    assert "0.20 (Gradient vs Grad-CAM, the least alike)" in r.sentence
    assert "0.60 (Gradient vs SmoothGrad, the most alike)" in r.sentence and "0.2 is chance" in r.sentence
    assert r.outcome == "partly"


def test_agreement_near_threshold_single_pair_and_undefined() -> None:
    assert agree.agreement(matrix(0.59, 0.6, 0.61), NAMES, measure="spearman").near_threshold
    two = agree.agreement([[1.0, 0.05], [0.05, 1.0]], ["LIME", "Occlusion"], measure="ssim")
    assert two.outcome == "disagree" and two.sentence.startswith(
        "LIME and Occlusion disagree: their map SSIM is 0.05"
    )
    assert agree.agreement([[1.0]], ["LIME"], measure="ssim").outcome == "single"
    assert agree.agreement(matrix(math.nan, math.nan, math.nan), NAMES, measure="ssim").outcome == "undefined"


# --- ARA -------------------------------------------------------------------------------------

STANDARD = AraNumbers("std", False, 0.01, 0.02, "100 test images")


def test_ara_ratios_quote_each_network() -> None:
    rows = [STANDARD, AraNumbers("adv", False, 0.015, 0.03), AraNumbers("rob", True, 0.05, 0.1)]
    r = ara.ratios(rows, standard="std", source="On 100 test images")
    assert r.outcome == "robust-higher" and not r.near_threshold
    assert (
        "against std (Attack ARA 0.0100, BTR 0.0200) the Attack ARA of adv 1.5× (BTR 1.5×), rob 5.0× (BTR 5.0×)"
        in r.sentence
    )


@pytest.mark.parametrize(
    ("robust", "outcome"), [((0.011, 0.0105), "no-gain"), ((0.011, 0.05), "mixed"), ((0.0195, 0.05), "mixed")]
)
def test_ara_ratio_outcomes(robust, outcome) -> None:
    rows = [STANDARD, *(AraNumbers(f"r{k}", True, a, a) for k, a in enumerate(robust))]
    r = ara.ratios(rows, standard="std", source="Here")
    assert r.outcome == outcome
    assert r.near_threshold == (robust[0] == 0.0195)  # 1.95x lies near 2x


def test_ara_ratios_need_the_standard_network() -> None:
    assert (
        ara.ratios([AraNumbers("rob", True, 0.05, 0.1)], standard="std", source="Here").outcome == "no-pair"
    )


@pytest.mark.parametrize(
    ("attack", "outcome", "words"),
    [
        (0.03, "higher", "3.0× the Attack ARA 0.0100 of std (100 test images), so it reads clearly more robust than"),
        (0.011, "similar", "1.1× the Attack ARA"),
        (0.016, "somewhat-higher", "somewhat more robust"),
        (0.004, "lower", "clearly less robust"),
    ],
)  # fmt: skip
def test_a_live_run_against_the_stored_standard(attack, outcome, words) -> None:
    r = ara.live(AraNumbers("rob", True, attack, 0.05, "5 test images"), accuracy=0.8, reference=STANDARD)
    assert r.outcome == outcome and words in r.sentence
    assert r.sentence.startswith(
        f"On 5 test images, rob has Attack ARA {attack:.4f} and BTR ARA 0.0500 (clean accuracy 80%)"
    )


def test_a_live_run_without_a_reference_or_of_the_standard_itself() -> None:
    alone = ara.live(AraNumbers("net", False, 0.01, 0.02, "3 images"), accuracy=1.0)
    assert alone.outcome == "measured" and "no stored standard network" in alone.sentence
    itself = ara.live(AraNumbers("std", False, 0.012, 0.02, "3 images"), accuracy=1.0, reference=STANDARD)
    assert itself.outcome == "same-network" and "1.20× its own stored Attack ARA 0.0100" in itself.sentence
