"""Perceptibility numbers for perturbations and similarity numbers for saliency maps.

docs/method.md §4 step 4: did the decision change, how far did each map move (Spearman rank
correlation, top-k intersection, SSIM, centre-of-mass shift) and how much of |δ|² lies in
the region a map marks as important. Every number comes with a one-sentence reading for
the UI (`reading`). The Accuracy-Robustness Area lives in `advexp_core.methods.ara` and the
deletion/insertion curves in `advexp_core.evaluation.faithfulness`; this module imports neither.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from advexp_core.data.imaging import gaussian_window

_SSIM_SIGMA = 1.5
_SSIM_WINDOW = 11


def psnr(clean: Tensor, adv: Tensor) -> Tensor:
    """Peak signal-to-noise ratio of `adv` against `clean`, per example.

    Args:
        clean: reference images in [0, 1] (peak value 1).
        adv: perturbed images in [0, 1].

    Returns:
        PSNR in dB; `inf` where the two images are identical.

    Shapes: (N, C, H, W), (N, C, H, W) -> (N,)
    """
    diff = (adv.detach().float() - clean.detach().float()).flatten(1)
    mse = diff.pow(2).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)  # mse == 0 gives +inf, as wanted


def _ssim_per_channel(x: Tensor, y: Tensor, *, data_range: float) -> Tensor:
    """Mean SSIM index per (example, channel) with a Gaussian window, 'valid' borders.

    Wang et al. 2004: σ = 1.5, 11-px window (shrunk to the largest odd size that fits
    tiny images), K1 = 0.01, K2 = 0.03.

    Shapes: (N, C, H, W), (N, C, H, W) -> (N, C)
    """
    x = x.detach().float()
    y = y.detach().float()
    n, c, h, w = x.shape
    size = min(_SSIM_WINDOW, h, w)
    size -= 1 - size % 2  # odd
    g = gaussian_window(size, _SSIM_SIGMA, device=x.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=c)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).flatten(2).mean(dim=2)


def ssim(clean: Tensor, adv: Tensor) -> Tensor:
    """Structural similarity (SSIM) of `adv` against `clean`, per example.

    Gaussian window (σ = 1.5 px, 11 px or the largest odd size that fits), data range 1,
    averaged over positions and channels (Wang et al. 2004).

    Args:
        clean: reference images in [0, 1].
        adv: perturbed images in [0, 1].

    Returns:
        SSIM in [-1, 1]; 1 for identical images.

    Shapes: (N, C, H, W), (N, C, H, W) -> (N,)
    """
    return _ssim_per_channel(clean, adv, data_range=1.0).mean(dim=1)


# ---------------------------------------------------------------------------------------------
# Map similarity (docs/method.md §4 step 4). Maps are (H, W), non-negative; each function -> float.


def _ranks(x: Tensor) -> Tensor:
    """1-based ranks of a flat tensor, ties given their average rank (as scipy's rankdata)."""
    _, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation between two maps' pixel values (ties: average ranks).

    Args:
        a, b: maps of the same shape.

    Returns:
        Correlation in [-1, 1]; NaN when a map is constant (no ranking to compare).

    Shapes: (H, W), (H, W) -> float
    """
    ra = _ranks(a.detach().flatten().double().cpu())
    rb = _ranks(b.detach().flatten().double().cpu())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = ra.norm() * rb.norm()
    return float((ra @ rb) / den) if den > 0 else math.nan


def _topk_mask(m: Tensor, k: float) -> Tensor:
    """Boolean mask of the round(k * pixels) highest values (at least one pixel)."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k is a share of pixels in (0, 1], got {k}")
    flat = m.detach().flatten()
    n = max(1, round(k * flat.numel()))
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[flat.topk(n).indices] = True
    return mask.view(m.shape)


def topk_intersection(a: Tensor, b: Tensor, *, k: float = 0.2) -> float:
    """Share of map `a`'s top-k pixels that are also among map `b`'s top-k pixels.

    Args:
        a, b: maps of the same shape.
        k: the top region as a share of all pixels (0.2 = the brightest 20 %).

    Returns:
        Overlap in [0, 1]; about k for unrelated maps.

    Shapes: (H, W), (H, W) -> float
    """
    ma, mb = _topk_mask(a, k), _topk_mask(b, k)
    return float((ma & mb).sum()) / float(ma.sum())


def map_ssim(a: Tensor, b: Tensor) -> float:
    """SSIM between two maps, each scaled to [0, 1] by its maximum first.

    Same Gaussian-window SSIM as `ssim` (σ = 1.5 px), on one channel with data range 1.

    Shapes: (H, W), (H, W) -> float
    """

    def unit(m: Tensor) -> Tensor:
        m = m.detach().float().clamp_min(0)
        top = m.max()
        return (m / top if top > 0 else m)[None, None]

    return float(_ssim_per_channel(unit(a), unit(b), data_range=1.0)[0, 0])


def center_of_mass(m: Tensor) -> Tensor:
    """(row, column) centre of mass of a non-negative map, in pixels; NaN for an all-zero map.

    Shapes: (H, W) -> (2,)
    """
    w = m.detach().double().clamp_min(0)
    total = w.sum()
    rows = torch.arange(w.shape[0], dtype=w.dtype, device=w.device)
    cols = torch.arange(w.shape[1], dtype=w.dtype, device=w.device)
    return torch.stack([(w.sum(1) * rows).sum(), (w.sum(0) * cols).sum()]) / total


def center_of_mass_shift(a: Tensor, b: Tensor) -> float:
    """Euclidean distance between the two maps' centres of mass, in pixels (NaN if a map is zero).

    Shapes: (H, W), (H, W) -> float
    """
    return float((center_of_mass(a) - center_of_mass(b)).norm())


def delta_energy_in_topk(delta: Tensor, saliency: Tensor, *, k: float = 0.2) -> float:
    """Share of the perturbation's energy |δ|² that lies in the map's top-k region.

    docs/method.md §4 step 4: do adversarial perturbations land where the map says the evidence is?
    Energy per pixel is the sum of δ² over channels.

    Args:
        delta: the perturbation, [0, 1] pixel units.
        saliency: the map whose top-k region is used.
        k: the region as a share of all pixels.

    Returns:
        Share in [0, 1] (k if the energy were spread evenly); NaN when δ = 0.

    Shapes: (C, H, W), (H, W) -> float
    """
    energy = delta.detach().double().pow(2).sum(dim=0)
    total = float(energy.sum())
    if total == 0.0:
        return math.nan
    mask = _topk_mask(saliency.to(energy.device), k)
    return float(energy[mask].sum()) / total


def compare_maps(
    clean: Tensor, attacked: Tensor, delta: Tensor | None = None, *, k: float = 0.2
) -> dict[str, float]:
    """Every map metric for one (clean map, attacked map) pair, as stored in result.json.

    `delta_energy_in_topk` uses the clean map's top-k region (where the evidence was),
    `delta_energy_in_attacked_topk` the attacked map's (where the map of the new decision points).

    Returns:
        {"spearman", "topk_intersection", "ssim", "center_shift_px", "delta_energy_in_topk",
        "delta_energy_in_attacked_topk"} (the last two only when `delta` is given).

    Shapes: (H, W), (H, W), (C, H, W) -> dict
    """
    out = {
        "spearman": spearman(clean, attacked),
        "topk_intersection": topk_intersection(clean, attacked, k=k),
        "ssim": map_ssim(clean, attacked),
        "center_shift_px": center_of_mass_shift(clean, attacked),
    }
    if delta is not None:
        out["delta_energy_in_topk"] = delta_energy_in_topk(delta, clean, k=k)
        out["delta_energy_in_attacked_topk"] = delta_energy_in_topk(delta, attacked, k=k)
    return out


# ---------------------------------------------------------------------------------------------
# Plain-language readings for the UI.


def _grade(value: float, levels: list[tuple[float, str]], last: str) -> str:
    """The text of the first level whose threshold `value` reaches (levels high to low)."""
    return next((text for threshold, text in levels if value >= threshold), last)


# The words of each grade, levels high to low, then the text below the last level.
Grades = tuple[list[tuple[float, str]], str]
_PSNR_GRADES: Grades = (
    [(40, "practically invisible"), (30, "hard to see without zooming in")],
    "likely visible",
)
_SSIM_GRADES: Grades = (
    [(0.99, "practically identical"), (0.95, "very close"), (0.8, "noticeably changed")],
    "clearly different",
)
_SPEARMAN_GRADES: Grades = (
    [(0.8, "barely moved"), (0.5, "largely kept its order"), (0.2, "was partly reordered")],
    "is essentially unrelated to the clean one",
)
_MAP_SSIM_GRADES: Grades = (
    [(0.9, "look the same"), (0.6, "look alike"), (0.3, "differ visibly")],
    "look different",
)


def _read_psnr(v: float, k: float) -> str:
    if math.isinf(v):
        return "The two images are identical."
    grade = _grade(v, *_PSNR_GRADES)
    return f"PSNR {v:.1f} dB: the change is {grade} (higher is less visible; 40 dB and up is invisible)."


def _read_ssim(v: float, k: float) -> str:
    grade = _grade(v, *_SSIM_GRADES)
    return f"Structural similarity {v:.3f} of 1: the image structure is {grade}."


def _read_linf(v: float, k: float) -> str:
    grade = _grade(-v, [(-4, "too small to see"), (-16, "possibly visible in flat areas")], "likely visible")
    return f"No colour value moved by more than {v:.1f} of 255 levels: {grade}."


def _read_rms(v: float, k: float) -> str:
    return f"The typical change per colour value is {v * 255:.2f} of 255 levels (RMS {v:.4f})."


def _read_l2(v: float, k: float) -> str:
    return f"The change has Euclidean length {v:.3f}; it grows with image size, so compare RMS across images."


def _read_spearman(v: float, k: float) -> str:
    if math.isnan(v):
        return "Rank correlation is undefined: one of the maps is flat."
    grade = _grade(v, *_SPEARMAN_GRADES)
    return f"Rank correlation {v:.2f}: the attacked map's pixel ranking {grade}."


def _read_topk(v: float, k: float) -> str:
    return (
        f"{v:.0%} of the {k:.0%} most important pixels are the same in both maps "
        f"(about {k:.0%} would be chance)."
    )


def _read_map_ssim(v: float, k: float) -> str:
    grade = _grade(v, *_MAP_SSIM_GRADES)
    return f"Map SSIM {v:.2f} of 1: the two maps {grade}."


def _read_shift(v: float, k: float) -> str:
    if math.isnan(v):
        return "Centre of mass is undefined: one of the maps is empty."
    return f"The map's centre of mass moved by {v:.1f} pixels."


def _read_energy(v: float, k: float) -> str:
    if math.isnan(v):
        return "There is no perturbation to locate."
    return (
        f"{v:.0%} of the perturbation's energy lies in the {k:.0%} of pixels the clean map marks most "
        f"important ({k:.0%} if spread evenly); {1 - v:.0%} lies outside."
    )


def _read_energy_attacked(v: float, k: float) -> str:
    if math.isnan(v):
        return "There is no perturbation to locate."
    return (
        f"{v:.0%} of the perturbation's energy lies in the {k:.0%} of pixels the attacked map marks most "
        f"important ({k:.0%} if spread evenly)."
    )


_READINGS = {
    "psnr": _read_psnr,
    "ssim": _read_ssim,
    "linf_255": _read_linf,
    "rms": _read_rms,
    "l2": _read_l2,
    "spearman": _read_spearman,
    "topk_intersection": _read_topk,
    "map_ssim": _read_map_ssim,
    "center_shift_px": _read_shift,
    "delta_energy_in_topk": _read_energy,
    "delta_energy_in_attacked_topk": _read_energy_attacked,
}
READING_NAMES = tuple(_READINGS)


def reading(name: str, value: float, *, k: float = 0.2) -> str:
    """One plain-language sentence for a metric value (`READING_NAMES`; k = top-k share)."""
    try:
        return _READINGS[name](float(value), k)
    except KeyError:
        raise ValueError(f"no reading for metric {name!r}; known: {', '.join(READING_NAMES)}") from None
