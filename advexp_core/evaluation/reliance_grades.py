"""Grades of each explainer against the measured reliance on the lesions' ruler.

``reliance.shortcut_reliance`` says, without any explainer, which decisions follow the ruler: those
that change when the ruler is removed from an image that has one. On exactly those images a faithful
map of the predicted class should put weight on the ruler. Three grades:

- ``misleading_rate``: the share of those images whose map puts less of its mass on the ruler than
  the ruler's share of the image's area (what a uniform map would give): the map hides the evidence
  the decision rests on. Lower is better.
- ``shortcut_detection_auroc``: on the same images, how well the map's ruler share tells the network
  apart from a control network that does not rest on the ruler (its maps of its own predicted
  class): 1 when every map of the network gives the ruler more than every map of the control, 0.5
  when the maps cannot tell them apart.
- ``effect_spearman``: the Spearman rank correlation between the map's ruler share and the size of
  the decision's dependence on the ruler (|margin effect| of removing it), on the same images;
  ``effect_spearman_all`` on every image with a ruler, where the effect also ranges down to none.

The maps are measured by ``experiments.scorecard_grades`` (the scorecard's maps: non-negative, input
resolution, the project's default settings), for the class each network predicts on the image as drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import json_number
from advexp_core.evaluation.reliance import (
    RelianceResult,
)


def ruler_shares(maps: Tensor, masks: Tensor) -> Tensor:
    """Each map's share of its total mass inside the mask (NaN for an all-zero map).

    Shapes: maps (N, H, W) non-negative, masks (N, H, W) bool -> (N,) float64.
    """
    m = maps.detach().double().cpu().clamp_min(0).flatten(1)
    total = m.sum(1)
    inside = (m * masks.cpu().flatten(1)).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, math.nan))


def area_shares(masks: Tensor) -> Tensor:
    """The mask's share of the image's pixels. Shapes: (N, H, W) bool -> (N,) float64."""
    return masks.flatten(1).double().mean(1)


def misleading_rate(shares: Tensor, areas: Tensor) -> float | None:
    """Share of the images whose map gives the mask less than its area share (an all-zero map
    counts as misleading: it shows nothing of the evidence). None for no image.

    Shapes: shares, areas (N,).
    """
    if shares.numel() == 0:
        return None
    below = torch.isnan(shares) | (shares < areas)
    return int(below.sum()) / shares.numel()


def auroc(positives: Tensor, negatives: Tensor) -> float | None:
    """P(a positive scores above a negative) + ½ P(tie): the area under the ROC curve (Mann-Whitney).
    NaN scores (no map) are dropped; None when either side is empty.

    Shapes: (P,), (Q,).
    """
    pos = positives.double()[~torch.isnan(positives.double())]
    neg = negatives.double()[~torch.isnan(negatives.double())]
    if pos.numel() == 0 or neg.numel() == 0:
        return None
    above = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((above + 0.5 * ties) / (pos.numel() * neg.numel()))


def _ranks(values: Tensor) -> Tensor:
    """Ranks 1..N with ties given their average rank. Shapes: (N,) -> (N,) float64."""
    order = values.argsort(stable=True)
    sorted_values = values[order]
    ranks = torch.empty_like(values, dtype=torch.float64)
    start = 0
    n = len(values)
    while start < n:
        stop = start + 1
        while stop < n and sorted_values[stop] == sorted_values[start]:
            stop += 1
        ranks[order[start:stop]] = (start + stop + 1) / 2.0  # mean of ranks start+1 .. stop
        start = stop
    return ranks


def spearman(x: Tensor, y: Tensor) -> float | None:
    """Spearman's rank correlation (Pearson on average ranks), over the pairs where both are finite.
    None with fewer than 3 pairs or when either side is constant.

    Shapes: x, y (N,).
    """
    x, y = x.double(), y.double()
    keep = torch.isfinite(x) & torch.isfinite(y)
    if int(keep.sum()) < 3:
        return None
    rx, ry = _ranks(x[keep]), _ranks(y[keep])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = float(rx.norm() * ry.norm())
    return float((rx * ry).sum()) / denominator if denominator > 0 else None


@dataclass(frozen=True)
class ExplainerGrades:
    """One explainer's grades on one network (see the module docstring).

    Attributes:
        method: the explainer.
        n_images: images with a ruler whose decision changes when it is removed (the graded ones).
        mean_ruler_share: the mean ruler share of their maps (NaN-free mean; None without any).
        misleading_rate, shortcut_detection_auroc, effect_spearman, effect_spearman_all: the grades
            (None where undefined: no image, no control, constant values).
    """

    method: str
    n_images: int
    mean_ruler_share: float | None
    misleading_rate: float | None
    shortcut_detection_auroc: float | None
    effect_spearman: float | None
    effect_spearman_all: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method, "n_images": self.n_images, "mean_ruler_share": self.mean_ruler_share,
            "misleading_rate": self.misleading_rate, "shortcut_detection_auroc": self.shortcut_detection_auroc,
            "effect_spearman": self.effect_spearman, "effect_spearman_all": self.effect_spearman_all,
        }  # fmt: skip


def grade_maps(
    method: str,
    shares: Tensor,
    areas: Tensor,
    relied: Tensor,
    effect: Tensor,
    control_shares: Tensor | None,
) -> ExplainerGrades:
    """Grade one explainer from its maps' ruler shares on the images that have a ruler.

    Args:
        method: the explainer's name.
        shares: the ruler share of each map (NaN: an all-zero map).
        areas: the ruler's share of each image's area.
        relied: the decision changes when the ruler is removed.
        effect: the true-class margin change when it is removed.
        control_shares: the control network's maps' ruler shares on the same images, or None.

    Shapes: every tensor (R,), over the R images with a ruler.
    """
    graded = shares[relied]
    finite = graded[torch.isfinite(graded)]
    return ExplainerGrades(
        method=method,
        n_images=int(relied.sum()),
        mean_ruler_share=json_number(finite.mean()) if finite.numel() else None,
        misleading_rate=misleading_rate(graded, areas[relied]),
        shortcut_detection_auroc=None if control_shares is None else auroc(graded, control_shares[relied]),
        effect_spearman=spearman(graded, effect[relied].abs()),
        effect_spearman_all=spearman(shares, effect.abs()),
    )


@dataclass(frozen=True)
class RelianceGrades:
    """Every explainer's grades on one network against its measured reliance.

    Attributes:
        model, control: the graded network and the control (None: no AUROC).
        split: the lesions split; image_indices: the graded images (ruler, decision follows it).
        reliance: the network's ``RelianceResult``.
        grades: one ``ExplainerGrades`` per method, in the order asked.
    """

    model: str
    control: str | None
    split: str
    image_indices: tuple[int, ...]
    reliance: RelianceResult
    grades: tuple[ExplainerGrades, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "control": self.control,
            "split": self.split,
            "n_images": len(self.reliance.image_indices),
            "graded_indices": list(self.image_indices),
            "reliance": self.reliance.to_json()["shortcut"],
            "explainers": {g.method: g.to_json() for g in self.grades},
        }


@dataclass(frozen=True)
class MapShares:
    """One network's maps on the images of the first N that have a ruler, as ruler shares.

    Attributes:
        reliance: the network's ``RelianceResult`` on all N images.
        shares: method -> (R,) ruler share of each map (of the class predicted as drawn; NaN: empty map).
        areas: (R,) the ruler's share of each image's area.
    """

    reliance: RelianceResult
    shares: dict[str, Tensor]
    areas: Tensor


def grade_shares(
    network: MapShares, control: MapShares | None, *, control_id: str | None = None
) -> RelianceGrades:
    """Grade each of the network's explainers against its measured reliance (``grade_maps``).

    Args:
        network: the graded network's ``map_shares``.
        control: a network that does not rest on the ruler, measured on the same twins (None: no AUROC).
        control_id: the control's name for the report (default its reliance's model id).
    """
    reliance = network.reliance
    has = reliance.has_ruler
    relied, effect = reliance.removal.changed[has], reliance.removal.margin_effect[has]
    grades = tuple(
        grade_maps(
            method, shares, network.areas, relied, effect, None if control is None else control.shares[method]
        )
        for method, shares in network.shares.items()
    )
    indices = torch.nonzero(has).flatten()[relied].tolist()
    return RelianceGrades(
        model=reliance.model, control=control_id or (None if control is None else control.reliance.model),
        split=reliance.split, image_indices=tuple(int(i) for i in indices), reliance=reliance, grades=grades,
    )  # fmt: skip


__all__ = [
    "ExplainerGrades",
    "MapShares",
    "RelianceGrades",
    "area_shares",
    "auroc",
    "grade_maps",
    "grade_shares",
    "misleading_rate",
    "ruler_shares",
    "spearman",
]
