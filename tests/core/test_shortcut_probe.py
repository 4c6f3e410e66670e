"""The shortcut probe: exact masks and energy ratios, the phase-scrambled null, and the readings'
ordering on hand-made δ (a yellow strip painted in the band against noise of the same RMS) read by a
hand-made ruler probe and a hand-made network that reads the same strip; determinism under a seed."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import Tensor, nn

from advexp_core.data.datasets import load_lesions
from advexp_core.data.groundtruth import RULER_WIDTH, generate_lesions
from advexp_core.data.imaging import Preprocess
from advexp_core.experiments.shortcut_probe import (
    RULER_YELLOW,
    Explained,
    ProbeConfig,
    ShortcutProbeResult,
    band_energy_ratio,
    band_mask,
    edge_masks,
    explain_toward_malignant,
    phase_scrambled,
    read_explained,
    ruler_probability,
    ruler_twins,
    separation,
    train_ruler_probe,
    validate_probe,
    white_like,
)
from advexp_core.networks.registry import LoadedModel
from tests.models import frozen

N = 6
BAND_AREA = 1 - (64 - 2 * RULER_WIDTH) ** 2 / 64**2  # the band's share of a 64×64 image


def _yellow_edge(images: Tensor) -> Tensor:
    """The largest share of ruler-yellow pixels (green minus blue above 0.35; skin stays below 0.2) in
    one of the four edge strips: 1 for a strip painted yellow, 0.43 to 0.7 for a drawn ruler (its
    black ticks), below 0.4 for noise. Shapes: (N, 3, 64, 64) -> (N,)."""
    yellow = (images[:, 1] - images[:, 2]) > 0.35
    strips = edge_masks()
    return (yellow[:, None] & strips).flatten(2).sum(2).amax(1) / strips[0].sum()


class YellowEdgeProbe(nn.Module):
    """Ruler logit 30·(yellow share of the yellowest edge strip − 0.4): a hand-made probe. Shapes: -> (N,)."""

    def forward(self, x: Tensor) -> Tensor:
        return 30.0 * (_yellow_edge(x) - 0.4)


class BandYellowness(nn.Module):
    """Logits (0, 20·(mean green minus blue over the band) − 4): differentiable, for the AE."""

    def forward(self, x: Tensor) -> Tensor:
        z = 20.0 * (x[:, 1] - x[:, 2])[:, band_mask()].mean(1) - 4.0
        return torch.stack([torch.zeros_like(z), z], dim=1)


class YellowEdgeNet(nn.Module):
    """Logits (0, the probe's logit): malignant exactly when an edge strip is mostly yellow."""

    def forward(self, x: Tensor) -> Tensor:
        z = YellowEdgeProbe()(x)
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.fixture(scope="module")
def images() -> Tensor:
    data = generate_lesions(2 * N, generator=torch.Generator().manual_seed(11), shortcut=False)
    return data.images[data.labels == 0][:N]


def _strip(images: Tensor) -> Tensor:
    """δ that paints the top edge strip ruler-yellow. Shapes: (N, 3, 64, 64) -> same."""
    yellow = torch.tensor(RULER_YELLOW).view(1, 3, 1, 1)
    return (yellow - images) * edge_masks()[0]


def _explained(images: Tensor, delta: Tensor) -> Explained:
    n = len(images)
    return Explained(
        "hand-made", tuple(range(n)), images, delta, torch.ones(n, dtype=torch.bool), {"rho": 0.1}
    )


def test_band_mask_is_exactly_the_outer_ruler_width_pixels() -> None:
    band = band_mask()
    assert band.shape == (64, 64) and int(band.sum()) == 64 * 64 - (64 - 2 * RULER_WIDTH) ** 2
    assert band[0, 0] and band[RULER_WIDTH - 1, 32] and band[32, 64 - RULER_WIDTH] and band[63, 63]
    assert not band[RULER_WIDTH, RULER_WIDTH] and not band[32, 64 - RULER_WIDTH - 1]
    torch.testing.assert_close(edge_masks().any(0), band, rtol=0, atol=0)
    assert edge_masks().flatten(1).sum(1).tolist() == [64 * RULER_WIDTH] * 4
    drawn = generate_lesions(40, generator=torch.Generator().manual_seed(2), force_ruler=True)
    assert drawn.ruler_masks.any() and not (drawn.ruler_masks & ~band).any()  # every ruler lies in it


def test_band_energy_ratio_is_the_energy_share_over_the_area_share() -> None:
    flat = torch.ones(1, 3, 64, 64)
    torch.testing.assert_close(band_energy_ratio(flat, band_mask()), torch.tensor([1.0]))
    top = flat * edge_masks()[0]
    torch.testing.assert_close(band_energy_ratio(top, band_mask()), torch.tensor([1 / BAND_AREA]))
    torch.testing.assert_close(
        band_energy_ratio(top, edge_masks()), torch.tensor([[64 / RULER_WIDTH, 0, 1, 1]])
    )


def test_the_null_keeps_energy_spectrum_and_mean_colour_and_moves_the_pixels(images: Tensor) -> None:
    delta = _strip(images)
    null = phase_scrambled(delta, torch.Generator().manual_seed(0))
    spectrum = lambda d: torch.fft.fft2(d.double()).abs()  # noqa: E731
    torch.testing.assert_close(spectrum(null), spectrum(delta), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(null.mean((2, 3)), delta.mean((2, 3)), rtol=1e-5, atol=1e-6)
    assert float(band_energy_ratio(null, edge_masks()[0]).mean()) < 2.0 < 64 / RULER_WIDTH - 1
    white = white_like(delta, torch.Generator().manual_seed(0))
    torch.testing.assert_close(white.pow(2).mean((1, 2, 3)), delta.pow(2).mean((1, 2, 3)))


def test_a_yellow_strip_in_the_band_reads_as_a_ruler_and_noise_does_not(images: Tensor) -> None:
    net, probe = frozen(YellowEdgeNet()), YellowEdgeProbe()
    strip = read_explained(net, _explained(images, _strip(images)), probe, seed=0)
    noise_delta = white_like(_strip(images), torch.Generator().manual_seed(1))
    noise = read_explained(net, _explained(images, noise_delta), probe, seed=0)
    # The probe: nothing on x; the strip reads as a ruler, equal-RMS noise does not. The null keeps a
    # strip's orientation (parallel stripes at random rows, which cross the left and right strips), so
    # it reads lower than the strip on average, not on every image.
    assert (strip.p_x < 0.01).all() and (strip.p_delta > 0.99).all()
    assert (strip.p_white < 0.5).all() and (noise.p_delta < 0.5).all()
    assert float(strip.p_null.mean()) < 0.75 and (strip.p_null < 0.5).any()
    # Energy: all of the strip's δ in the band (and in one edge), noise spread evenly.
    torch.testing.assert_close(strip.band_ratio, torch.full((N,), 1 / BAND_AREA))
    torch.testing.assert_close(strip.edge_ratio, torch.full((N,), 64 / RULER_WIDTH))
    assert (noise.band_ratio - 1).abs().max() < 0.1
    assert (strip.band_ratio_null < strip.band_ratio).all() and (
        strip.edge_ratio_null < strip.edge_ratio
    ).all()
    # The causal split: the band part alone flips the ruler-reading network, the centre part does not.
    assert not strip.malignant_x.any() and strip.malignant_delta.all() and strip.malignant_band.all()
    assert not strip.malignant_centre.any() and not noise.malignant_band.any()
    readings = {s.reading: s for s in separation(noise, strip, seed=0)}
    assert readings["probe"].separates and readings["band_flips"].separates
    assert readings["band_energy"].separates and readings["edge_energy"].separates
    assert not any(s.separates for s in separation(strip, strip, seed=0))
    assert not any(s.separates for s in separation(strip, noise, seed=0))


def test_readings_are_deterministic_under_a_seed(images: Tensor) -> None:
    delta = white_like(_strip(images), torch.Generator().manual_seed(3)) + _strip(images) / 2
    net, explained = frozen(YellowEdgeNet()), _explained(images, delta)

    def read(seed: int) -> ShortcutProbeResult:
        return read_explained(net, explained, YellowEdgeProbe(), seed=seed)

    first, again, other = read(5), read(5), read(6)
    assert first.to_json() == again.to_json() and first.images() == again.images()
    assert not torch.equal(first.band_ratio_null, other.band_ratio_null)


def test_probe_training_is_deterministic_and_validation_reads_the_ruler() -> None:
    tiny = ProbeConfig(n_pairs=16, epochs=1, batch_size=16, width=4, seed=9)
    first, again = train_ruler_probe(tiny), train_ruler_probe(tiny)
    for (name, a), (_, b) in zip(first.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in first.parameters()) and not first.training
    forced, clean = ruler_twins(4, torch.Generator().manual_seed(1))
    assert ruler_probability(first, torch.cat([forced, clean])).shape == (8,)
    check = validate_probe(YellowEdgeProbe(), n_pairs=8, rms=0.1, seed=4)
    assert check.accuracy == 1.0 and (check.ruler_at_budget > 0.5).all() and (check.white < 0.5).all()


@pytest.mark.slow  # draws the 1,000-image test split twice
def test_explanations_are_of_the_first_benign_ruler_free_images() -> None:
    net = frozen(BandYellowness())
    model = LoadedModel(
        "hand-made", net, ("benign", "malignant"), (64, 64), net, False, "test", Preprocess((64, 64)),
        lock=threading.RLock(),
    )  # fmt: skip
    explained = explain_toward_malignant(model, n_images=2)
    data = load_lesions("test", shortcut=False)
    first_benign = torch.nonzero(data.labels == 0).flatten()[:2].tolist()
    assert list(explained.image_indices) == first_benign
    assert torch.equal(explained.images, data.images[first_benign])
    assert explained.delta.shape == (2, 3, 64, 64) and explained.explanation["rho"] == 0.1
    assert explained.reached.all()
    # This network reads only the band, so its explanation toward malignant lies only there.
    assert torch.equal(explained.delta.abs().amax(1) > 0, band_mask().expand(2, -1, -1))


def test_separation_needs_the_same_images(images: Tensor) -> None:
    net, probe = frozen(YellowEdgeNet()), YellowEdgeProbe()
    whole = read_explained(net, _explained(images, _strip(images)), probe, seed=0)
    part = read_explained(net, _explained(images[:3], _strip(images[:3])), probe, seed=0)
    with pytest.raises(ValueError, match="same images"):
        separation(whole, part, seed=0)
