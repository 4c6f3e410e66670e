"""Grades of explainers against measured reliance: exact values on hand-made maps, AUROC and Spearman
against scipy, and one end-to-end run on hand-made networks that read the ruler band, or only the centre."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binomtest, mannwhitneyu, spearmanr
from torch import Tensor, nn

from advexp_core.data.datasets import load_lesions
from advexp_core.evaluation.reliance_grades import (
    area_shares,
    auroc,
    auroc_interval,
    grade_maps,
    mean_interval,
    misleading_rate,
    rate_interval,
    ruler_shares,
    spearman,
    spearman_interval,
)
from advexp_core.experiments.scorecard_grades import reliance_grades
from tests.core.test_reliance import CentreReader, _band, _loaded


def test_ruler_share_and_area_by_hand() -> None:
    masks = torch.zeros(3, 2, 2, dtype=torch.bool)
    masks[:, 0, 0] = True  # the "ruler" is one pixel of four
    maps = torch.tensor([[[3.0, 1.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]])
    shares = ruler_shares(maps, masks)
    assert shares[:2].tolist() == [0.75, 0.0] and math.isnan(float(shares[2]))
    assert area_shares(masks).tolist() == [0.25, 0.25, 0.25]
    # Below the area share: the second map (0 < 0.25) and the empty third; the first is above.
    assert misleading_rate(shares, area_shares(masks)) == pytest.approx(2 / 3)
    assert misleading_rate(shares[:0], area_shares(masks)[:0]) is None


def test_auroc_by_hand_and_against_mann_whitney() -> None:
    assert auroc(torch.tensor([0.9, 0.8]), torch.tensor([0.1, 0.2])) == 1.0
    assert auroc(torch.tensor([0.1]), torch.tensor([0.9])) == 0.0
    assert auroc(torch.tensor([0.5, 0.5]), torch.tensor([0.5])) == 0.5  # ties count half
    assert auroc(torch.tensor([math.nan]), torch.tensor([0.3])) is None
    g = torch.Generator().manual_seed(0)
    pos, neg = (
        torch.rand(30, generator=g).round(decimals=1) + 0.1,
        torch.rand(25, generator=g).round(decimals=1),
    )
    u = mannwhitneyu(pos.numpy(), neg.numpy()).statistic
    assert auroc(pos, neg) == pytest.approx(u / (30 * 25), rel=1e-12)


def test_spearman_against_scipy_with_ties_and_degenerate_cases() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 5, (40,), generator=g).double()  # many ties
    y = x + torch.randn(40, generator=g, dtype=torch.float64)
    assert spearman(x, y) == pytest.approx(spearmanr(x.numpy(), y.numpy()).statistic, rel=1e-12)
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([30.0, 20.0, 10.0])) == pytest.approx(-1.0)
    assert spearman(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([1.0, 2.0, 3.0])) is None  # constant
    assert spearman(torch.tensor([1.0, math.nan, 2.0]), torch.tensor([1.0, 2.0, 3.0])) is None  # 2 pairs


def test_grade_maps_uses_only_the_relied_images_for_the_grades() -> None:
    shares = torch.tensor([0.6, 0.1, 0.4, 0.05], dtype=torch.float64)
    areas = torch.full((4,), 0.2, dtype=torch.float64)
    relied = torch.tensor([True, True, True, False])
    effect = torch.tensor([-3.0, -0.5, -2.0, 0.0])
    control = torch.tensor([0.1, 0.2, 0.3, 0.9], dtype=torch.float64)
    g = grade_maps("m", shares, areas, relied, effect, control)
    assert g.n_images == 3 and g.misleading_rate == pytest.approx(1 / 3)  # only 0.1 < 0.2
    # Network shares (0.6, 0.1, 0.4) vs control (0.1, 0.2, 0.3): 6 of 9 pairs above, 1 tie.
    assert g.shortcut_detection_auroc == pytest.approx((6 + 0.5) / 9)
    assert g.effect_spearman == pytest.approx(1.0)  # shares and |effect| in the same order
    assert g.effect_spearman_all == pytest.approx(1.0)
    assert g.mean_ruler_share == pytest.approx((0.6 + 0.1 + 0.4) / 3)
    assert grade_maps("m", shares, areas, relied, effect, None).shortcut_detection_auroc is None
    names = {
        "mean_ruler_share",
        "misleading_rate",
        "shortcut_detection_auroc",
        "effect_spearman",
        "effect_spearman_all",
    }
    assert set(g.to_json()) == {"method", "n_images", *names, *(f"{n}_ci" for n in names)}
    # The misleading rate's interval is Wilson's of 1 misleading map in 3 graded ones.
    wilson = binomtest(1, 3).proportion_ci(confidence_level=0.95, method="wilson")
    assert g.to_json()["misleading_rate_ci"] == pytest.approx([wilson.low, wilson.high])


@pytest.mark.parametrize(("k", "n"), [(0, 8), (3, 5), (34, 52), (64, 103), (103, 103)])
def test_rate_interval_is_scipys_wilson_interval(k: int, n: int) -> None:
    flags = torch.zeros(n, dtype=torch.bool)
    flags[:k] = True
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert rate_interval(flags) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert rate_interval(flags[:0]) is None


def test_bootstrap_intervals_hold_their_value_and_repeat_with_their_seed() -> None:
    g = torch.Generator().manual_seed(3)
    network = torch.rand(40, generator=g, dtype=torch.float64) * 0.6 + 0.2
    control = torch.rand(40, generator=g, dtype=torch.float64) * 0.6
    network[5] = math.nan  # an empty map: left out of the AUROC inside every resample too
    value = auroc(network, control)
    assert value is not None
    interval = auroc_interval(network, control, seed=0)
    assert interval is not None
    low, high = interval
    assert low <= value <= high
    assert auroc_interval(network, control, seed=0) == (low, high)
    assert auroc_interval(network, control, seed=1) != (low, high)
    mean = float(network[torch.isfinite(network)].mean())
    around = mean_interval(network, seed=0)
    assert around is not None
    m_low, m_high = around
    assert m_low < mean < m_high and mean_interval(network, seed=0) == (m_low, m_high)
    rho = spearman(network, control)
    assert rho is not None
    correlation = spearman_interval(network, control, seed=0)
    assert correlation is not None and correlation[0] <= rho <= correlation[1]
    # At a bound every resample gives the same value: the interval is that value; too few: none.
    assert auroc_interval(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0.1, 0.2, 0.3])) == (1.0, 1.0)
    assert auroc_interval(torch.tensor([0.9, math.nan]), torch.tensor([0.1, 0.2])) is None
    assert mean_interval(torch.tensor([0.5])) is None


class BandReader(nn.Module):
    """Logits (0, 20·(mean of green − blue over the ruler band − 0.16)): the ruler's yellow pushes
    toward malignant, and the input gradient is the same at every band pixel and zero elsewhere."""

    def forward(self, x: Tensor) -> Tensor:
        band = _band().to(x.device)
        z = 20.0 * (((x[:, 1] - x[:, 2]) * band).flatten(1).sum(1) / band.sum() - 0.16)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def test_gradient_maps_of_a_band_reader_against_a_centre_reader_by_hand() -> None:
    # The band reader's gradient map is flat over the band, so each map's ruler share is exactly the
    # ruler's area over the band's (above its area share of the image: never misleading); the centre
    # reader's gradient is zero on the band, so every control share is 0 and the AUROC is 1.
    result = reliance_grades(
        _loaded(BandReader()), _loaded(CentreReader()), split="test", n_images=40, methods=("gradient",)
    )
    (g,) = result.grades
    ruler_masks = load_lesions("test", with_masks=True).masks["shortcut"]
    relied = torch.tensor(result.image_indices)
    assert g.n_images == len(relied) > 0
    assert result.reliance.removal.changed[relied].all()
    masks = ruler_masks[relied]
    expected = masks.flatten(1).double().sum(1) / float(_band().sum())
    assert g.mean_ruler_share == pytest.approx(float(expected.mean()), rel=1e-6)
    assert g.misleading_rate == 0.0 and g.shortcut_detection_auroc == 1.0
    # |margin effect| = 20 × (drop of the band mean): the share (ruler area) and the effect rank alike
    # only roughly (the yellow under hair and ticks varies), so just its sign is pinned.
    assert g.effect_spearman is not None and g.effect_spearman > 0
    out = result.to_json()
    assert (
        out["model"] == "hand-made"
        and out["control"] == "hand-made"
        and set(out["explainers"]) == {"gradient"}
    )
    assert out["graded_indices"] == relied.tolist()
