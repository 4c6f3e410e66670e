"""Where a map falls against masks known pixel by pixel: share inside the evidence and the shortcut,
the pointing game, the top-k evidence, what a uniform map would score, and δ's energy in each mask.

The maths of the ground-truth scorecard (`advexp_core.experiments.scorecard`, docs/method.md §5);
every function takes maps and masks and returns numbers, nothing else.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import json_number

METRICS = ("evidence_share", "shortcut_share", "pointing_game")
# k as a percentage of the image's pixels; 2.5-20 % spans a few strokes to a quadrant of BlockDigits.
TOP_K_PERCENTS = (2.5, 5.0, 10.0, 20.0)


def mask_shares(maps: Tensor, evidence: Tensor, shortcut: Tensor | None = None) -> dict[str, Tensor]:
    """Per image: the map's share inside each mask, and whether a maximum lies in the evidence.

    An all-zero map has no share (NaN) and points nowhere (0). The shortcut share is NaN for an
    image without a shortcut (an all-False mask) and everywhere when ``shortcut`` is None.

    Args:
        maps: non-negative maps.
        evidence: the evidence masks.
        shortcut: the shortcut masks, or None (no shortcut in this dataset).

    Returns:
        {"evidence_share", "shortcut_share", "pointing_game"}, each (N,) float.

    Shapes: maps (N, H, W), masks (N, H, W) bool -> (N,).
    """
    m = maps.detach().float().cpu().clamp_min(0).flatten(1)
    ev = evidence.cpu().flatten(1)
    total = m.sum(1)
    empty = total <= 0
    nan = torch.full_like(total, math.nan)
    ev_share = torch.where(empty, nan, (m * ev).sum(1) / total.clamp_min(1e-30))
    peak = m.max(1).values
    inside = torch.where(ev, m, torch.full_like(m, -1.0)).max(1).values
    pointing = ((inside >= peak) & ~empty).float()
    if shortcut is None:
        sc_share = nan.clone()
    else:
        sc = shortcut.cpu().flatten(1)
        sc_share = torch.where(empty | ~sc.any(1), nan, (m * sc).sum(1) / total.clamp_min(1e-30))
    return {"evidence_share": ev_share, "shortcut_share": sc_share, "pointing_game": pointing}


def top_k_count(k_percent: float, n_pixels: int) -> int:
    """The number of pixels in the top ``k_percent`` % of an image: the fewest that cover that share."""
    return max(1, math.ceil(k_percent * n_pixels / 100 - 1e-9))  # 1e-9: k·P/100 exact up to rounding


def top_k_evidence(maps: Tensor, evidence: Tensor, k_percents: tuple[float, ...] = TOP_K_PERCENTS) -> Tensor:
    """Per image and k: the share of the map's top k % pixels that lie inside the evidence mask.

    Shah, Jain & Netrapalli 2021 and Quantus' TopKIntersection (without its concept-influence
    scaling): the k highest-valued pixels of the map, |top-k ∩ evidence| / k, with k given here as a
    percentage of the pixels (`top_k_count`). Pixels tied at the k-th value share the places left
    in proportion to how many of them lie in the evidence (the mean over every order of the ties),
    so a flat or partly zero map gets the same number whatever the pixel order. An all-zero map has
    no top k (NaN), as it has no evidence share. A uniformly random map scores the evidence's area.

    Args:
        maps: non-negative maps (negative values count as 0, as in `mask_shares`).
        evidence: the evidence masks.
        k_percents: the values of k, each a percentage of the H·W pixels in (0, 100].

    Returns:
        (N, K) float64, column j for ``k_percents[j]``.

    Shapes: maps (N, H, W), evidence (N, H, W) bool -> (N, K).
    """
    m = maps.detach().float().cpu().clamp_min(0).flatten(1)
    ev = evidence.cpu().flatten(1).bool()
    ordered = m.sort(1, descending=True).values
    empty = m.sum(1) <= 0
    columns = []
    for k_percent in k_percents:
        k = top_k_count(k_percent, m.shape[1])
        threshold = ordered[:, k - 1 : k]
        above, tied = m > threshold, m == threshold
        left = (k - above.sum(1)).double()  # places the tied pixels share; float64: exact ratios
        hits = (above & ev).sum(1) + left * (tied & ev).sum(1) / tied.sum(1)
        columns.append(torch.where(empty, math.nan, hits / k))
    return torch.stack(columns, 1) if columns else torch.zeros(len(m), 0, dtype=torch.float64)


def mean_finite(values: Tensor) -> float | None:
    """The mean of the finite values, None when there is none."""
    finite = values[torch.isfinite(values)]
    return json_number(finite.mean()) if finite.numel() else None


def chance_levels(evidence: Tensor, shortcut: Tensor | None) -> dict[str, float | None]:
    """What a uniform map would score: the mean mask area share (shortcut: over images that have one).

    Shapes: masks (N, H, W) bool.
    """
    ev = mean_finite(evidence.flatten(1).float().mean(1))
    if shortcut is None:
        return {"evidence": ev, "shortcut": None}
    area = shortcut.flatten(1).float().mean(1)
    return {"evidence": ev, "shortcut": mean_finite(area[shortcut.flatten(1).any(1)])}


def delta_energy_shares(delta: Tensor, masks: dict[str, Tensor]) -> dict[str, float | None]:
    """The share of Σδ² (over channels and pixels) inside each mask (None for an absent or empty mask).

    Shapes: delta (3, H, W), masks (H, W) bool.
    """
    energy = delta.detach().float().cpu().pow(2).sum(0)
    total = float(energy.sum())
    out: dict[str, float | None] = {}
    for key in ("evidence", "shortcut"):
        mask = masks.get(key)
        ok = mask is not None and bool(mask.any()) and total > 0
        out[key] = float(energy[mask.cpu()].sum()) / total if ok and mask is not None else None
    return out
