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

Each grade carries its 95 % interval (docs/method.md §9): the misleading rate, a share of images, its
Wilson interval; the mean ruler share, the AUROC and the Spearman correlations a BCa bootstrap over
the graded images (each image's values kept together), seeded with `BOOTSTRAP_SEED`.

The maps are measured by ``experiments.scorecard_grades`` (the scorecard's maps: non-negative, input
resolution, the project's default settings), for the class each network predicts on the image as drawn.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from advexp_core.base.jsonsafe import json_number
from advexp_core.base.statistics import paired_bootstrap_ci, wilson_interval
from advexp_core.evaluation.reliance import BOOTSTRAP_SEED, RelianceResult

Interval = tuple[float, float]
_MISSING = -1.0  # stands for an empty map's NaN share inside a bootstrap (shares lie in [0, 1])


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


def _bootstrap(
    a: np.ndarray, b: np.ndarray, statistic: Callable[..., np.ndarray], bounds: tuple[float, float], seed: int
) -> Interval | None:
    """`paired_bootstrap_ci` of a statistic that lies within ``bounds``. At a bound (an AUROC of 1,
    a correlation of -1) every resample gives the same value and BCa is undefined: the interval is
    then that value, as for constant differences; None when it is undefined otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's 0/0 inside BCa at a bound
        low, high = paired_bootstrap_ci(a, b, statistic, seed=seed)
    if math.isfinite(low) and math.isfinite(high):
        return low, high
    value = float(statistic(a, b, axis=-1))
    return (value, value) if value in bounds else None


def mean_interval(values: Tensor, *, seed: int = BOOTSTRAP_SEED) -> Interval | None:
    """The BCa bootstrap interval of the mean of the finite values over images (None under two).

    A one-sample bootstrap through `statistics.paired_bootstrap_ci`: the mean of values − 0.

    Shapes: values (N,).
    """
    v = values.detach().double().cpu()
    finite = v[torch.isfinite(v)].numpy()
    if finite.size < 2:
        return None
    return paired_bootstrap_ci(finite, np.zeros_like(finite), seed=seed)


def rate_interval(flags: Tensor) -> Interval | None:
    """The Wilson interval of the share of true flags (None without any). Shapes: (N,) bool."""
    return wilson_interval(int(flags.sum()), flags.numel()) if flags.numel() else None


def _auroc_statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """`auroc` of a against b along ``axis`` (both moved last), `_MISSING` values left out."""
    a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
    valid = (a[..., :, None] != _MISSING) & (b[..., None, :] != _MISSING)
    above = ((a[..., :, None] > b[..., None, :]) & valid).sum((-2, -1))
    ties = ((a[..., :, None] == b[..., None, :]) & valid).sum((-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (above + 0.5 * ties) / valid.sum((-2, -1))


def auroc_interval(positives: Tensor, negatives: Tensor, *, seed: int = BOOTSTRAP_SEED) -> Interval | None:
    """The BCa bootstrap interval of `auroc` of two paired samples (the same images under two
    networks), resampling images; None under two finite values on either side.

    Shapes: positives, negatives (N,).
    """
    a, b = (x.detach().double().cpu().nan_to_num(_MISSING).numpy() for x in (positives, negatives))
    if min((a != _MISSING).sum(), (b != _MISSING).sum()) < 2:
        return None
    return _bootstrap(a, b, _auroc_statistic, (0.0, 1.0), seed)


def _spearman_statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's correlation along ``axis`` (Pearson on average ranks)."""
    rx = stats.rankdata(x, axis=axis)
    ry = stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis) / np.sqrt((rx * rx).sum(axis) * (ry * ry).sum(axis))


def spearman_interval(x: Tensor, y: Tensor, *, seed: int = BOOTSTRAP_SEED) -> Interval | None:
    """The BCa bootstrap interval of `spearman` over the pairs where both are finite (None when
    `spearman` is None, or when resamples that are constant leave it undefined).

    Shapes: x, y (N,).
    """
    if spearman(x, y) is None:
        return None
    x, y = x.double(), y.double()
    keep = torch.isfinite(x) & torch.isfinite(y)
    return _bootstrap(x[keep].numpy(), y[keep].numpy(), _spearman_statistic, (-1.0, 1.0), seed)


def _ci(interval: Interval | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


@dataclass(frozen=True)
class ExplainerGrades:
    """One explainer's grades on one network (see the module docstring).

    Attributes:
        method: the explainer.
        n_images: images with a ruler whose decision changes when it is removed (the graded ones).
        mean_ruler_share: the mean ruler share of their maps (NaN-free mean; None without any).
        misleading_rate, shortcut_detection_auroc, effect_spearman, effect_spearman_all: the grades
            (None where undefined: no image, no control, constant values).
        intervals: grade name (the four above and mean_ruler_share) -> its 95 % interval (absent
            where undefined; see the module docstring).
    """

    method: str
    n_images: int
    mean_ruler_share: float | None
    misleading_rate: float | None
    shortcut_detection_auroc: float | None
    effect_spearman: float | None
    effect_spearman_all: float | None
    intervals: dict[str, Interval] = dataclasses.field(default_factory=dict)

    def interval(self, name: str) -> Interval | None:
        """The 95 % interval of one grade (None where undefined)."""
        return self.intervals.get(name)

    def to_json(self) -> dict[str, Any]:
        """The grades, each followed by its interval as ``<name>_ci: [low, high]`` (null: undefined)."""
        out: dict[str, Any] = {"method": self.method, "n_images": self.n_images}
        for name in GRADE_NAMES:
            out[name] = getattr(self, name)
            out[f"{name}_ci"] = _ci(self.interval(name))
        return out


GRADE_NAMES = (
    "mean_ruler_share", "misleading_rate", "shortcut_detection_auroc", "effect_spearman", "effect_spearman_all",
)  # fmt: skip


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
    control = None if control_shares is None else control_shares[relied]
    below = torch.isnan(graded) | (graded < areas[relied])  # as `misleading_rate` counts them
    intervals = {
        "mean_ruler_share": mean_interval(graded),
        "misleading_rate": rate_interval(below),
        "shortcut_detection_auroc": None if control is None else auroc_interval(graded, control),
        "effect_spearman": spearman_interval(graded, effect[relied].abs()),
        "effect_spearman_all": spearman_interval(shares, effect.abs()),
    }
    return ExplainerGrades(
        method=method,
        n_images=int(relied.sum()),
        mean_ruler_share=json_number(finite.mean()) if finite.numel() else None,
        misleading_rate=misleading_rate(graded, areas[relied]),
        shortcut_detection_auroc=None if control is None else auroc(graded, control),
        effect_spearman=spearman(graded, effect[relied].abs()),
        effect_spearman_all=spearman(shares, effect.abs()),
        intervals={k: v for k, v in intervals.items() if v is not None},
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
    "GRADE_NAMES",
    "ExplainerGrades",
    "MapShares",
    "RelianceGrades",
    "area_shares",
    "auroc",
    "auroc_interval",
    "grade_maps",
    "grade_shares",
    "mean_interval",
    "misleading_rate",
    "rate_interval",
    "ruler_shares",
    "spearman",
    "spearman_interval",
]
