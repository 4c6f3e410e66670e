"""Perceptibility and map-similarity metrics on hand-made inputs with known answers."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from advexp_core.measures import metrics as M


def test_psnr_known_value_and_identity() -> None:
    clean = torch.zeros(2, 3, 8, 8)
    adv = clean.clone()
    adv[0] += 0.1  # mse 0.01 -> 20 dB
    out = M.psnr(clean, adv)
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(out[1].item())


def test_psnr_and_ssim_agree_with_scikit_image() -> None:
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 24, 20, generator=gen)
    adv = (clean + 0.05 * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
    for i in range(2):
        a, b = clean[i].numpy(), adv[i].numpy()
        assert M.psnr(clean, adv)[i].item() == pytest.approx(
            peak_signal_noise_ratio(a, b, data_range=1), rel=1e-5
        )
        ref = structural_similarity(
            a, b, data_range=1, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert M.ssim(clean, adv)[i].item() == pytest.approx(float(ref), abs=1e-4)


def test_ssim_identity_tiny_images_and_inverted() -> None:
    x = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(2))
    assert M.ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert M.ssim(x, 1 - x).item() < 0  # anti-correlated structure
    assert M.ssim(torch.rand(3, 3, 2, 2), torch.rand(3, 3, 2, 2)).shape == (3,)


def test_spearman_known_answers_and_ties() -> None:
    a = torch.arange(16.0).view(4, 4)
    assert M.spearman(a, a) == pytest.approx(1.0)
    assert M.spearman(a, -a) == pytest.approx(-1.0)
    assert M.spearman(a, a**3 + 5) == pytest.approx(1.0)  # ranks only
    gen = torch.Generator().manual_seed(0)
    tied_a = torch.randint(0, 4, (6, 6), generator=gen).float()  # many ties, like Grad-CAM zeros
    tied_b = torch.randint(0, 4, (6, 6), generator=gen).float()
    ref = spearmanr(tied_a.flatten().numpy(), tied_b.flatten().numpy()).statistic
    assert M.spearman(tied_a, tied_b) == pytest.approx(float(ref), abs=1e-9)
    assert math.isnan(M.spearman(torch.zeros(3, 3), a[:3, :3]))


def test_topk_intersection_known_answers() -> None:
    a = torch.zeros(10, 10)
    a[:2] = 1.0  # top 20 % = rows 0-1
    b = torch.zeros(10, 10)
    b[1:3] = 1.0  # rows 1-2: half of them shared
    b[1:3] += torch.arange(10.0) * 1e-3  # break ties inside the region
    assert M.topk_intersection(a + torch.arange(100.0).view(10, 10).flip(0) * 1e-6, b, k=0.2) == 0.5
    assert M.topk_intersection(b, b, k=0.2) == 1.0
    assert M.topk_intersection(b, -b + 10, k=0.2) == 0.0
    with pytest.raises(ValueError, match="share"):
        M.topk_intersection(a, b, k=0.0)


def test_map_ssim_is_scale_free() -> None:
    gen = torch.Generator().manual_seed(3)
    m = torch.rand(16, 16, generator=gen)
    assert M.map_ssim(m, 5 * m) == pytest.approx(1.0, abs=1e-6)
    assert M.map_ssim(m, torch.rand(16, 16, generator=gen)) < 0.5


def test_center_of_mass_shift_known_answer() -> None:
    a = torch.zeros(9, 9)
    a[1, 2] = 1.0
    b = torch.zeros(9, 9)
    b[4, 6] = 3.0  # (1,2) -> (4,6): a 3-4-5 triangle
    assert M.center_of_mass_shift(a, b) == pytest.approx(5.0)
    two = torch.zeros(9, 9)
    two[0, 0] = two[0, 8] = 1.0
    assert M.center_of_mass(two).tolist() == [0.0, 4.0]
    assert math.isnan(M.center_of_mass_shift(a, torch.zeros(9, 9)))


def test_delta_energy_in_topk_known_answer() -> None:
    saliency = torch.zeros(10, 10)
    saliency[:2] = 1 + torch.arange(20.0).view(2, 10) * 1e-3  # top 20 % = rows 0-1
    delta = torch.zeros(3, 10, 10)
    delta[0, 0, 0] = 0.2  # energy 0.04 inside (summed over channels below)
    delta[1, 0, 0] = 0.1  # + 0.01 inside
    delta[2, 5, 5] = 0.1  # 0.01 outside
    assert M.delta_energy_in_topk(delta, saliency, k=0.2) == pytest.approx(0.05 / 0.06)
    even = torch.full((3, 10, 10), 0.01)
    assert M.delta_energy_in_topk(even, saliency, k=0.2) == pytest.approx(0.2)
    assert math.isnan(M.delta_energy_in_topk(torch.zeros(3, 10, 10), saliency))


def test_compare_maps_keys_and_identity() -> None:
    m = torch.rand(8, 8, generator=torch.Generator().manual_seed(4))
    out = M.compare_maps(m, m, torch.full((3, 8, 8), 0.01), k=0.25)
    assert set(out) == {
        "spearman",
        "topk_intersection",
        "ssim",
        "center_shift_px",
        "delta_energy_in_topk",
        "delta_energy_in_attacked_topk",
    }
    assert out["spearman"] == pytest.approx(1.0) and out["topk_intersection"] == 1.0
    assert out["center_shift_px"] == 0.0 and out["delta_energy_in_topk"] == pytest.approx(0.25)
    assert "delta_energy_in_topk" not in M.compare_maps(m, m)


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("psnr", float("inf"), "identical"),
        ("psnr", 45.0, "invisible"),
        ("psnr", 22.0, "visible"),
        ("ssim", 0.995, "practically identical"),
        ("linf_255", 2.0, "2.0 of 255"),
        ("rms", 2 / 255, "2.00 of 255"),
        ("l2", 1.5, "1.500"),
        ("spearman", 0.9, "barely moved"),
        ("spearman", 0.05, "unrelated"),
        ("spearman", float("nan"), "undefined"),
        ("topk_intersection", 0.35, "35% of the 20%"),
        ("map_ssim", 0.95, "look the same"),
        ("center_shift_px", 3.25, "3.2 pixels"),
        ("delta_energy_in_topk", 0.1, "90% lies outside"),
    ],
)
def test_readings_are_single_plain_sentences(name: str, value: float, words: str) -> None:
    text = M.reading(name, value)
    assert words in text
    assert text.endswith(".") and "\n" not in text


def test_reading_unknown_metric() -> None:
    with pytest.raises(ValueError, match="no reading"):
        M.reading("accuracy", 1.0)
