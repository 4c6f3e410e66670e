"""Deletion/insertion curves on a hand-made model where the answer is known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advexp_core.evaluation.faithfulness import CPU_PASS_IMAGES, deletion_insertion


class OnePixel(nn.Module):
    """Class 1's logit is 10·(pixel (0, 0) of channel 0); class 0's is 5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 10 * x[:, 0, 0, 0]
        return torch.stack([torch.full_like(z, 5.0), z], dim=1)


def test_a_faithful_map_beats_an_unfaithful_one() -> None:
    image = torch.zeros(3, 8, 8)
    image[:, 0, 0] = 1.0
    good = torch.zeros(8, 8)
    good[0, 0] = 1.0
    bad = torch.rand(8, 8, generator=torch.Generator().manual_seed(0))
    bad[0, 0] = -1.0  # ranked last
    model = OnePixel()
    faithful = deletion_insertion(model, image, good, 1, steps=8, baseline="black")
    unfaithful = deletion_insertion(model, image, bad, 1, steps=8, baseline="black")
    p_on = torch.softmax(torch.tensor([5.0, 10.0]), 0)[1]
    p_off = torch.softmax(torch.tensor([5.0, 0.0]), 0)[1]
    assert faithful.deletion[0] == pytest.approx(float(p_on))
    assert torch.allclose(faithful.deletion[1:], p_off.expand(8))
    assert torch.allclose(faithful.insertion[1:], p_on.expand(8))
    assert faithful.deletion_auc < unfaithful.deletion_auc
    assert faithful.insertion_auc > unfaithful.insertion_auc
    assert faithful.fractions[0] == 0 and faithful.fractions[-1] == 1


def test_rejects_mismatched_maps() -> None:
    with pytest.raises(ValueError):
        deletion_insertion(OnePixel(), torch.zeros(3, 8, 8), torch.zeros(4, 4), 1)


def test_pass_size_changes_only_the_rounding() -> None:
    """The CPU default (small passes, side by side) gives the curves of one big pass up to float
    rounding, and exactly those of an explicit `CPU_PASS_IMAGES`."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    ).eval()
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    saliency = torch.rand(16, 16, generator=torch.Generator().manual_seed(2))
    default = deletion_insertion(model, image, saliency, 2, steps=10)
    explicit = deletion_insertion(model, image, saliency, 2, steps=10, batch_size=CPU_PASS_IMAGES)
    one_pass = deletion_insertion(model, image, saliency, 2, steps=10, batch_size=22)
    assert torch.equal(default.deletion, explicit.deletion) and torch.equal(
        default.insertion, explicit.insertion
    )
    assert torch.allclose(default.deletion, one_pass.deletion, atol=1e-6)
    assert torch.allclose(default.insertion, one_pass.insertion, atol=1e-6)
    assert default.deletion_auc == pytest.approx(one_pass.deletion_auc, abs=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        deletion_insertion(model, image, saliency, 2, batch_size=0)
