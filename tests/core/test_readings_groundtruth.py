"""Ground-truth readings: does the decision follow the ruler, and would each map have told you."""

from __future__ import annotations

import pytest

from advexp_core.readings import groundtruth as G

NAMES = ("benign", "malignant")


def test_intervention_reads_and_ignores_the_ruler() -> None:
    r = G.intervention("net", NAMES, as_is=[0.1, 0.9], removed=[0.8, 0.2], added=[0.1, 0.9], has_ruler=True)
    assert r.outcome == "reads-ruler" and "malignant (90%)" in r.text and "benign (80%)" in r.text
    assert "removing the ruler" in r.text and not r.near_threshold
    r = G.intervention("net", NAMES, as_is=[0.7, 0.3], removed=[0.7, 0.3], added=[0.6, 0.4], has_ruler=False)
    assert r.outcome == "ignores-ruler" and "drawing a ruler on it leaves it at benign (60%)" in r.text
    r = G.intervention(
        "net", NAMES, as_is=[0.495, 0.505], removed=[0.6, 0.4], added=[0.495, 0.505], has_ruler=True
    )
    assert r.near_threshold  # the decision as drawn is a near tie


@pytest.mark.parametrize(
    ("share", "relies", "has_ruler", "outcome"),
    [
        (0.30, True, True, "warned"),
        (0.04, True, True, "misleading"),
        (0.30, False, True, "false-alarm"),
        (0.04, False, True, "consistent"),
        (None, True, False, "cannot-show"),
        (None, False, False, "nothing-to-show"),
        (None, True, True, "empty"),
    ],
)
def test_map_against_reliance_outcomes(
    share: float | None, relies: bool, has_ruler: bool, outcome: str
) -> None:
    r = G.map_against_reliance(
        "Gradient", ruler_share=share, ruler_area=0.09, relies=relies, has_ruler=has_ruler
    )
    assert r.outcome == outcome and r.text.startswith("Gradient")
    if outcome in ("warned", "misleading", "false-alarm", "consistent"):
        assert f"{share:.0%} of its mass on the ruler" in r.text and "9% of the image" in r.text


def test_a_share_at_the_area_is_near_the_threshold() -> None:
    r = G.map_against_reliance("IG", ruler_share=0.092, ruler_area=0.09, relies=True, has_ruler=True)
    assert r.outcome == "warned" and r.near_threshold
