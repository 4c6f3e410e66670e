"""Model-level ground truth: how much a network's decisions rest on a shortcut, measured by intervention.

A map can only be graded against what the network really does. On the generated lesions
(``groundtruth.generate_lesions``) that is known without any explainer: every image has two exact
twins, one with the ruler removed (``shortcut=False``) and one with the ruler it would have had drawn
on (``force_ruler=True``); each twin differs from the image only inside the ruler's mask. Classifying
the three tells, per image, whether the decision follows the ruler, and by how much the true class's
logit margin (its logit minus the largest other) moves when the ruler goes or comes.

``counterfactual_effect`` is the general part: any batch against any counterfactual batch of the
same images (a later use: real images against their ruler-inpainted versions).
``shortcut_reliance`` applies it to the first N images of a lesions split. Every share comes with its
Wilson 95 % interval, the mean margin change with a seeded paired bootstrap interval, and the
outcome reads the removal's interval against a tolerance (`advexp_core.base.statistics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.base.jsonsafe import json_number
from advexp_core.base.runtime import device_of
from advexp_core.base.statistics import (
    CONFIDENCE,
    TOLERANCE,
    Outcome,
    paired_bootstrap_ci,
    three_way,
    wilson_interval,
)
from advexp_core.data.datasets import LESIONS_SIZES, DatasetError, load_lesions
from advexp_core.data.groundtruth import LESION_CLASS_NAMES
from advexp_core.networks.registry import LoadedModel

RELIANCE_DATASET = "lesions"
DEFAULT_SPLIT = "test"
DEFAULT_N_IMAGES = 200
DEFAULT_BATCH_SIZE = 100
BOOTSTRAP_SEED = 0  # the mean margin change's bootstrap: fixed, so a report is reproducible


class RelianceError(ValueError):
    """Settings that cannot be measured; ``setting`` names the one at fault ("split", "n_images",
    "batch_size", "tolerance" or "model") so a caller can point at its own name for it."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(message)


@dataclass(frozen=True)
class Decisions:
    """A network's class and true-class margin for each image.

    Shapes: predictions (N,) int64; margins (N,) float32 (true logit minus the largest other).
    """

    predictions: Tensor
    margins: Tensor


@dataclass(frozen=True)
class CounterfactualEffect:
    """The same images before and after an intervention, with what it changed.

    Shapes: every tensor (N,).
    """

    before: Decisions
    after: Decisions

    @property
    def changed(self) -> Tensor:
        """(N,) bool: the intervention changed the decision."""
        return self.before.predictions != self.after.predictions

    @property
    def margin_effect(self) -> Tensor:
        """(N,) float: the true-class margin after minus before (negative: the true class lost ground)."""
        return self.after.margins - self.before.margins


def logit_margins(logits: Tensor, labels: Tensor) -> Tensor:
    """The true class's logit minus the largest other logit (> 0 exactly when the decision is right
    and unique).

    Shapes: logits (N, C), labels (N,) -> (N,).
    """
    true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf"))
    return true - others.amax(1)


def decisions(module: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int) -> Decisions:
    """Classify ``images`` in batches on the module's device; results on the CPU.

    Shapes: images (N, 3, H, W) in [0, 1], labels (N,) -> Decisions of (N,).
    """
    device = device_of(module)
    predictions, margins = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = module(images[start : start + batch_size].to(device)).float().cpu()
            predictions.append(logits.argmax(1))
            margins.append(logit_margins(logits, labels[start : start + batch_size].cpu()))
    if not predictions:
        return Decisions(torch.zeros(0, dtype=torch.int64), torch.zeros(0))
    return Decisions(torch.cat(predictions), torch.cat(margins))


def counterfactual_effect(
    module: nn.Module, images: Tensor, counterfactuals: Tensor, labels: Tensor, *, batch_size: int = 64
) -> CounterfactualEffect:
    """What replacing each image by its counterfactual does to the decision and the true-class margin.

    Args:
        module: the classifier (frozen, eval mode; logits out).
        images: the images as they are, in [0, 1].
        counterfactuals: the same images after the intervention (one per image, same order).
        labels: the true classes.
        batch_size: images per forward pass.

    Returns:
        ``CounterfactualEffect`` (before, after, changed, margin_effect).

    Shapes: images, counterfactuals (N, 3, H, W); labels (N,) -> (N,) per image.
    """
    if images.shape != counterfactuals.shape or len(labels) != len(images):
        raise ValueError(
            f"images {tuple(images.shape)}, counterfactuals {tuple(counterfactuals.shape)} and "
            f"labels {tuple(labels.shape)} must describe the same images."
        )
    return CounterfactualEffect(
        decisions(module, images, labels, batch_size=batch_size),
        decisions(module, counterfactuals, labels, batch_size=batch_size),
    )


@dataclass(frozen=True)
class RelianceImage:
    """One image's decisions as it is, with the ruler removed and with the ruler drawn on."""

    index: int
    label: int
    has_ruler: bool
    prediction_as_is: int
    prediction_removed: int
    prediction_added: int
    margin_as_is: float
    margin_removed: float
    margin_added: float

    def to_json(self) -> dict[str, Any]:
        """One row of the per-image file."""
        return {
            "index": self.index, "label": self.label, "has_ruler": self.has_ruler,
            "prediction_as_is": self.prediction_as_is, "prediction_removed": self.prediction_removed,
            "prediction_added": self.prediction_added, "margin_as_is": self.margin_as_is,
            "margin_removed": self.margin_removed, "margin_added": self.margin_added,
        }  # fmt: skip


def _share(flags: Tensor) -> float | None:
    return int(flags.sum()) / flags.numel() if flags.numel() else None


def _mean(values: Tensor) -> float | None:
    return json_number(values.mean()) if values.numel() else None


def _wilson(flags: Tensor) -> list[float] | None:
    """The Wilson interval of the share of True flags, as JSON's [low, high] (None without any)."""
    return list(wilson_interval(int(flags.sum()), flags.numel(), CONFIDENCE)) if flags.numel() else None


def _margin_interval(after: Tensor, before: Tensor) -> list[float] | None:
    """The paired bootstrap interval of the mean margin change (None under two images or non-finite margins)."""
    a, b = after.double().numpy(), before.double().numpy()
    if len(a) < 2 or not (torch.isfinite(after).all() and torch.isfinite(before).all()):
        return None
    return list(paired_bootstrap_ci(a, b, seed=BOOTSTRAP_SEED))


@dataclass(frozen=True)
class RelianceResult:
    """A network's decisions on the first N images of a lesions split and on their two twins.

    Attributes:
        model, dataset, split: what was measured.
        image_indices: the dataset index of each image.
        labels: the true classes; has_ruler: whether the image as drawn has a ruler.
        removal: as-is -> ruler removed (meaningful where ``has_ruler``; elsewhere nothing changes).
        addition: as-is -> ruler drawn on (meaningful where not ``has_ruler``).
        batch_size: images per forward pass.
        tolerance: a share of decisions below which reliance on the ruler counts as negligible
            (`outcome` reads the removal's interval against it).

    Shapes: labels, has_ruler (N,); the effects' tensors (N,).
    """

    model: str
    dataset: str
    split: str
    image_indices: tuple[int, ...]
    labels: Tensor
    has_ruler: Tensor
    removal: CounterfactualEffect
    addition: CounterfactualEffect
    batch_size: int
    tolerance: float = TOLERANCE

    def _correct(self) -> dict[str, Tensor]:
        as_is, removed, added = self.removal.before, self.removal.after, self.addition.after
        return {
            name: d.predictions == self.labels
            for name, d in (("as_is", as_is), ("shortcut_removed", removed), ("shortcut_added", added))
        }

    def accuracy(self) -> dict[str, float]:
        """Top-1 accuracy as drawn, with every ruler removed and with a ruler on every image."""
        return {name: int(c.sum()) / max(len(self.labels), 1) for name, c in self._correct().items()}

    def accuracy_ci(self) -> dict[str, list[float] | None]:
        """The Wilson 95 % interval of each accuracy of `accuracy` (None without images)."""
        return {name: _wilson(c) for name, c in self._correct().items()}

    def outcome(self) -> Outcome:
        """The removal's interval against the tolerance: "relies", "does-not-rely" or "inconclusive"
        (`statistics.three_way`; no image with a ruler: "inconclusive")."""
        changed = self.removal.changed[self.has_ruler]
        low, high = wilson_interval(int(changed.sum()), changed.numel(), CONFIDENCE)
        return three_way(low, high, self.tolerance)

    def shortcut(self) -> dict[str, Any]:
        """The ruler's effect: decisions changed (shares with their Wilson intervals, None without
        such images), margin moves (the mean's paired bootstrap interval) and the three-way outcome."""
        has, without = self.has_ruler, ~self.has_ruler
        removed, added = self.removal.margin_effect[has], self.addition.margin_effect[without]
        return {
            "images_with": int(has.sum()),
            "images_without": int(without.sum()),
            "decisions_changed_when_removed": _share(self.removal.changed[has]),
            "decisions_changed_when_removed_ci": _wilson(self.removal.changed[has]),
            "decisions_changed_when_added": _share(self.addition.changed[without]),
            "decisions_changed_when_added_ci": _wilson(self.addition.changed[without]),
            "n_changed_when_removed": int(self.removal.changed[has].sum()),
            "n_changed_when_added": int(self.addition.changed[without].sum()),
            "mean_margin_effect": _mean(removed),
            "mean_margin_effect_ci": _margin_interval(
                self.removal.after.margins[has], self.removal.before.margins[has]
            ),
            "mean_abs_margin_effect": _mean(removed.abs()),
            "mean_margin_effect_when_added": _mean(added),
            "outcome": self.outcome(),
        }

    def images(self) -> list[RelianceImage]:
        """The per-image records, in ``image_indices`` order."""
        r, a = self.removal, self.addition
        return [
            RelianceImage(
                index,
                int(self.labels[i]),
                bool(self.has_ruler[i]),
                int(r.before.predictions[i]),
                int(r.after.predictions[i]),
                int(a.after.predictions[i]),
                float(r.before.margins[i]),
                float(r.after.margins[i]),
                float(a.after.margins[i]),
            )  # fmt: skip
            for i, index in enumerate(self.image_indices)
        ]

    def to_json(self) -> dict[str, Any]:
        """The summary (per-image values: ``images()``)."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "n_images": len(self.image_indices),
            "image_indices": list(self.image_indices),
            "accuracy": self.accuracy(),
            "accuracy_ci": self.accuracy_ci(),
            "shortcut": self.shortcut(),
            "settings": {
                "batch_size": self.batch_size, "tolerance": self.tolerance, "confidence": CONFIDENCE,
                "bootstrap_seed": BOOTSTRAP_SEED,
            },
        }  # fmt: skip


@dataclass(frozen=True)
class LesionTwins:
    """The first N images of a lesions split as drawn, and their two twins.

    Attributes:
        split: the split.
        images, labels: as drawn; ruler_masks: where each ruler is (all False without one).
        removed: the same images without a ruler; forced: with a ruler on every one.

    Shapes: images, removed, forced (N, 3, 64, 64); labels (N,); ruler_masks (N, 64, 64) bool.
    """

    split: str
    images: Tensor
    labels: Tensor
    ruler_masks: Tensor
    removed: Tensor
    forced: Tensor

    @property
    def has_ruler(self) -> Tensor:
        """(N,) bool: the image as drawn has a ruler."""
        return self.ruler_masks.flatten(1).any(1)


def lesion_twins(split: str, n_images: int) -> LesionTwins:
    """The first N images of a lesions split with their ruler-free and ruler-forced twins.

    Raises:
        RelianceError: an unknown split ("split"), N out of range ("n_images").
    """
    if split not in LESIONS_SIZES:
        raise RelianceError(
            "split", f"lesions has no split {split!r}; use one of {', '.join(LESIONS_SIZES)}."
        )
    size = LESIONS_SIZES[split]
    if not 1 <= n_images <= size:
        raise RelianceError("n_images", f"the lesions {split} split has {size} images; asked for {n_images}.")
    try:
        drawn = load_lesions(split, with_masks=True)
        removed = load_lesions(split, shortcut=False).images[:n_images]
        forced = load_lesions(split, force_ruler=True).images[:n_images]
    except DatasetError as exc:  # defensive: the split was checked above
        raise RelianceError("split", str(exc)) from exc
    n = slice(0, n_images)
    return LesionTwins(split, drawn.images[n], drawn.labels[n], drawn.masks["shortcut"][n], removed, forced)


def check_lesions_model(model: LoadedModel) -> None:
    """RelianceError ("model") unless the model classifies 64×64 lesions into (benign, malignant)."""
    if tuple(model.class_names) != LESION_CLASS_NAMES:
        raise RelianceError(
            "model",
            f"{model.model_id} has classes ({', '.join(model.class_names[:5])}"
            f"{', …' if model.num_classes > 5 else ''}); lesions are ({', '.join(LESION_CLASS_NAMES)}).",
        )
    if tuple(model.input_size) != (64, 64):
        raise RelianceError("model", f"{model.model_id} takes {model.input_size} images; lesions are 64x64.")


def shortcut_reliance(
    model: LoadedModel,
    *,
    split: str = DEFAULT_SPLIT,
    n_images: int = DEFAULT_N_IMAGES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tolerance: float = TOLERANCE,
) -> RelianceResult:
    """Classify the first N lesion images as drawn, with the ruler removed, and with a ruler drawn on.

    Args:
        model: a lesions network (classes benign, malignant; 64×64 inputs). Forward passes only, so
            its lock is not taken.
        split: "train", "test" or "test-unbiased".
        n_images: the first N images of the split.
        batch_size: images per forward pass.
        tolerance: a share of decisions below which reliance on the ruler counts as negligible, in (0, 1).

    Returns:
        ``RelianceResult``; ``to_json()`` gives {"model", "dataset", "split", "n_images",
        "image_indices", "accuracy": {"as_is", "shortcut_removed", "shortcut_added"}, "accuracy_ci"
        (their Wilson intervals), "shortcut": {"images_with", "decisions_changed_when_removed" (share
        of the images with a ruler), "decisions_changed_when_added" (share of those without), each
        with its "_ci", "mean_margin_effect" (mean true-class margin change when the ruler is
        removed, on images with one) with its "_ci", "outcome", ...}, "settings"}.

    Raises:
        RelianceError: unknown split, N out of range, batch_size < 1, tolerance outside (0, 1), a
            model that is not a lesions one.

    Shapes: per-image tensors (N,).
    """
    if batch_size < 1:
        raise RelianceError("batch_size", f"batch_size must be at least 1, got {batch_size}.")
    if not 0 < tolerance < 1:
        raise RelianceError(
            "tolerance", f"tolerance must lie between 0 and 1 (a share of decisions), got {tolerance}."
        )
    check_lesions_model(model)
    return twin_reliance(model, lesion_twins(split, n_images), batch_size=batch_size, tolerance=tolerance)


def twin_reliance(
    model: LoadedModel,
    twins: LesionTwins,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tolerance: float = TOLERANCE,
) -> RelianceResult:
    """``shortcut_reliance`` on twins already drawn (several networks on the same images).

    Shapes: per-image tensors (N,).
    """
    module, labels = model.module, twins.labels
    as_is = decisions(module, twins.images, labels, batch_size=batch_size)
    removal = CounterfactualEffect(as_is, decisions(module, twins.removed, labels, batch_size=batch_size))
    addition = CounterfactualEffect(as_is, decisions(module, twins.forced, labels, batch_size=batch_size))
    return RelianceResult(
        model=model.model_id, dataset=RELIANCE_DATASET, split=twins.split,
        image_indices=tuple(range(len(labels))), labels=labels, has_ruler=twins.has_ruler,
        removal=removal, addition=addition, batch_size=batch_size, tolerance=tolerance,
    )  # fmt: skip


__all__ = [
    "CounterfactualEffect",
    "Decisions",
    "LesionTwins",
    "RelianceError",
    "RelianceImage",
    "RelianceResult",
    "check_lesions_model",
    "counterfactual_effect",
    "decisions",
    "lesion_twins",
    "logit_margins",
    "shortcut_reliance",
    "twin_reliance",
]
