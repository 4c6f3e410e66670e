"""LIME and occlusion: evidence found where a hand-built model looks, exact values, no side effects."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.methods import perturbation as P
from tests.models import hook_count, linear_model, tiny_conv


class Quadrant(nn.Module):
    """Logits (0, mean of one image quadrant): all the evidence for class 1 lies in that quadrant."""

    def __init__(self, row: int, col: int) -> None:
        super().__init__()
        self.row, self.col = row, col

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        z = x[:, :, self.row * h : (self.row + 1) * h, self.col * w : (self.col + 1) * w].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(z), z], dim=1)


def smooth_images(n: int, size: int = 32, seed: int = 0) -> Tensor:
    """Bright, smooth random images with a colour edge between the quadrants.

    SLIC then finds superpixels that do not straddle quadrants, and black is a real change
    everywhere.
    """
    gen = torch.Generator().manual_seed(seed)
    quadrants = torch.rand(n, 3, 2, 2, generator=gen)
    texture = F.interpolate(torch.rand(n, 3, 4, 4, generator=gen), size=(size, size), mode="bilinear")
    return 0.3 + 0.5 * F.interpolate(quadrants, size=(size, size), mode="nearest") + 0.2 * texture


def quadrant_share(maps: Tensor, row: int, col: int) -> Tensor:
    h, w = maps.shape[-2] // 2, maps.shape[-1] // 2
    inside = maps[:, row * h : (row + 1) * h, col * w : (col + 1) * w].sum(dim=(1, 2))
    return inside / maps.sum(dim=(1, 2))


@pytest.mark.parametrize("explainer", [P.lime, P.occlusion])
@pytest.mark.parametrize("quadrant", [(0, 0), (1, 1)])
def test_map_mass_lies_in_the_quadrant_the_model_reads(explainer, quadrant: tuple[int, int]) -> None:
    images = smooth_images(2)
    result = explainer(Quadrant(*quadrant), images, 1)
    assert result.maps.shape == (2, 32, 32) and (result.maps >= 0).all()
    # Occlusion windows straddle the quadrant's border (about 0.9 inside); ridge leaks a little.
    assert (quadrant_share(result.maps, *quadrant) > 0.8).all()


def test_occlusion_with_one_pixel_windows_is_the_positive_logit_drop() -> None:
    w = torch.randn(2, 3 * 4 * 4, generator=torch.Generator().manual_seed(0))
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    result = P.occlusion(linear_model(w), x, 1, window=1, stride=1)
    # A black pixel (all channels) lowers logit 1 by sum_c w_c x_c.
    expected = (w[1].view(3, 4, 4) * x[0]).sum(dim=0).clamp_min(0)
    torch.testing.assert_close(result.maps[0], expected)
    assert result.extra["window"] == 1 and result.extra["stride"] == 1


def test_lime_is_deterministic_with_its_seed_and_records_its_settings() -> None:
    model, images = tiny_conv(), smooth_images(2)
    a = P.lime(model, images, 2, n_samples=40, n_segments=16, generator_seed=3, batch_size=16)
    b = P.lime(model, images, 2, n_samples=40, n_segments=16, generator_seed=3, batch_size=16)
    c = P.lime(model, images, 2, n_samples=40, n_segments=16, generator_seed=4, batch_size=16)
    torch.testing.assert_close(a.maps, b.maps, rtol=0, atol=0)
    assert not torch.equal(a.maps, c.maps)
    assert a.method == "lime" and a.target.tolist() == [2, 2]
    assert a.extra["n_samples"] == 40 and a.extra["n_segments"] == 16
    assert a.extra["forward_images"] == 2 * 40 and a.extra["forward_passes"] == 2 * 3  # 16 + 16 + 8


def test_lime_paints_each_superpixel_with_its_positive_weight() -> None:
    images = smooth_images(1)
    result = P.lime(Quadrant(0, 0), images, 1)
    segments = P.superpixels(images[0])
    weights = result.extra["weights"][0]
    torch.testing.assert_close(result.maps[0], weights[segments].clamp_min(0))
    assert int(result.extra["segments"][0]) == int(segments.max()) + 1


def test_occlusion_defaults_scale_with_the_image_and_batch_the_forwards() -> None:
    result = P.occlusion(Quadrant(0, 0), smooth_images(2, size=56), 1, batch_size=20)
    assert result.extra["window"] == 8 and result.extra["stride"] == 4  # 56 / 7, half of it
    positions = ((56 - 8) // 4 + 1) ** 2
    assert result.extra["forward_images"] == 2 * (1 + positions)  # captum's clean pass + positions
    assert result.extra["forward_passes"] == 1 + -(-positions // 10)  # 10 positions x 2 images


def test_superpixels_are_consecutive_labels_and_noise_falls_back_to_a_grid() -> None:
    labels = P.superpixels(smooth_images(1)[0], n_segments=20)
    assert labels.shape == (32, 32) and labels.dtype == torch.long
    assert torch.equal(labels.unique(), torch.arange(int(labels.max()) + 1))
    noise = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert P.superpixels(noise, n_segments=16).unique().numel() == 16  # SLIC alone gives one segment
    assert P.superpixels(torch.rand(1, 16, 16), n_segments=9).unique().numel() >= 2  # grey images


@pytest.mark.parametrize("explainer", [P.lime, P.occlusion])
def test_the_model_is_left_as_it_was(explainer) -> None:
    model = tiny_conv()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = explainer(model, smooth_images(1), 0, batch_size=8)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training and hook_count(model) == 0
    assert not any(p.requires_grad for p in model.parameters())
    assert not result.maps.requires_grad


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, x: P.lime(m, x, 0, n_samples=0), "at least 1"),
        (lambda m, x: P.lime(m, x[0], 0), "shape"),
        (lambda m, x: P.occlusion(m, x, 0, window=64), "window"),
        (lambda m, x: P.occlusion(m, x, [0, 1, 2]), "targets"),
        (lambda m, x: P.superpixels(x[0], n_segments=0), "n_segments"),
    ],
)
def test_bad_arguments_are_refused_clearly(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(tiny_conv(), smooth_images(2))
