"""From audit to repair: fine-tune a network away from a marked artifact and measure it on held-out images.

docs/method.md §10, docs/audit.md ("Repair"). The labelled images with their artifact masks are split,
seeded and stratified by class and artifact, into a repair part and a held-out part. The network is
fine-tuned on the repair part alone (`advexp_core.training.repair.fine_tune`: counterfactual
augmentation, the RRR penalty or last-layer retraining), and the original and the repaired network are
measured on the same held-out images, as the audit measures (`advexp_core.evaluation.reliance`):

* the decisions that removing the artifact changes (images with one) and that adding it changes
  (images without one), each share with its Wilson interval, the removal's read three ways against
  the tolerance (docs/method.md §9);
* accuracy as drawn and with the artifact removed;
* the share of correct decisions that an L∞ 2/255 PGD attack of 10 steps flips (robustness is not
  what a repair is for, but it should not be what it costs).

Removal and addition are the audit's interventions (inpainting, pasting a held-out image's artifact at
its own place), or, where the data bring them (the generated lesions), the exact twins without and
with the artifact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.base.jsonsafe import json_number
from advexp_core.base.runtime import OnStep, device_of
from advexp_core.base.statistics import CONFIDENCE, TOLERANCE, three_way, wilson_interval
from advexp_core.evaluation.reliance import CounterfactualEffect, RelianceResult, decisions
from advexp_core.experiments.audit_records import weights_sha256
from advexp_core.methods.attacks import pgd
from advexp_core.networks.registry import LoadedModel
from advexp_core.training.repair import (
    FineTuneConfig,
    FineTuned,
    RepairError,
    counterfactual_pairs,
    fine_tune,
    has_artifact,
)
from advexp_core.training.robust import PsiState

DEFAULT_HELD_OUT = 0.2
ATTACK_EPS = 2 / 255
ATTACK_STEPS = 10
EXACT_TWINS = "exact twins"
INTERVENTIONS = "inpainting and pasting"


@dataclass(frozen=True)
class RepairConfig:
    """A repair: how to fine-tune (``training``), which share of the images to hold out and from
    which seed, the tolerance of the three-way reading, the attack, and the measuring batch size."""

    training: FineTuneConfig
    held_out: float = DEFAULT_HELD_OUT
    split_seed: int = 0
    tolerance: float = TOLERANCE
    attack_eps: float = ATTACK_EPS
    attack_steps: int = ATTACK_STEPS
    batch_size: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.held_out < 1:
            raise RepairError(
                "held_out", f"the held-out share must lie between 0 and 1, got {self.held_out}."
            )
        if not 0 < self.tolerance < 1:
            raise RepairError("tolerance", f"tolerance must lie between 0 and 1, got {self.tolerance}.")
        if self.attack_steps < 1 or self.batch_size < 1 or self.attack_eps < 0:
            raise RepairError("attack", "the attack needs a budget of at least 0 and at least one step.")

    def to_json(self) -> dict[str, Any]:
        return {
            "training": self.training.to_json(), "held_out": self.held_out, "split_seed": self.split_seed,
            "tolerance": self.tolerance, "confidence": CONFIDENCE,
            "attack": {"norm": "linf", "eps": self.attack_eps, "eps_255": self.attack_eps * 255,
                       "steps": self.attack_steps, "step_size": 2.5 * self.attack_eps / self.attack_steps},
            "batch_size": self.batch_size,
        }  # fmt: skip


@dataclass(frozen=True)
class RepairData:
    """Labelled images with their artifact masks (all False: no artifact), fitted to the network.

    ``removed`` and ``added``, where the data have them, are exact twins of every image without and
    with its artifact (the generated lesions); otherwise the held-out measurement intervenes.

    Shapes: images, removed, added (N, 3, H, W) in [0, 1]; labels (N,) int64; masks (N, H, W) bool.
    """

    source: str
    images: Tensor
    labels: Tensor
    masks: Tensor
    removed: Tensor | None = None
    added: Tensor | None = None


def check_data(data: RepairData, class_names: tuple[str, ...]) -> None:
    """RepairError unless the images can be repaired: matching shapes, labels in range, an artifact
    marked on images of at least two classes (an unmarked image counts as free of it)."""
    n = len(data.images)
    if data.images.ndim != 4 or n < 2:
        raise RepairError(
            "images", f"a repair needs at least two images (N, 3, H, W), got {tuple(data.images.shape)}."
        )
    if tuple(data.masks.shape) != (n, *data.images.shape[2:]) or len(data.labels) != n:
        raise RepairError(
            "masks",
            f"{n} images, {len(data.labels)} labels and masks {tuple(data.masks.shape)} do not match.",
        )
    if not bool(((data.labels >= 0) & (data.labels < len(class_names))).all()):
        raise RepairError("labels", f"labels must be class indices 0..{len(class_names) - 1}.")
    has = has_artifact(data.masks)
    if not bool(has.any()):
        raise RepairError(
            "masks", "no image has its artifact marked: mark it where it appears (a mask per image)."
        )
    marked = sorted({int(k) for k in data.labels[has]})
    if len(marked) < 2:
        raise RepairError(
            "masks",
            f"the artifact is marked only on images of class {class_names[marked[0]]!r}. An unmarked image counts "
            "as free of it, so a repair would learn that the other classes never carry it, and the held-out "
            "images could not show that the network now ignores it there; mark it on the other classes' "
            "images that carry it (at least one image of a second class).",
        )


def split_indices(labels: Tensor, has: Tensor, *, held_out: float, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded split stratified by (class, artifact): in each such group a random ``held_out``
    share (rounded, at least one image of every group of two or more, never the whole group) is held out.

    Raises:
        RepairError ("held_out"): the held-out part lacks images with or without the artifact.

    Shapes: labels, has (N,) -> (repair indices, held-out indices), each sorted.
    """
    generator = torch.Generator().manual_seed(seed)
    held = []
    for label in labels.unique().tolist():
        for flag in (True, False):
            members = torch.nonzero((labels == label) & (has == flag)).flatten()
            if len(members) < 2:
                continue
            k = min(max(round(held_out * len(members)), 1), len(members) - 1)
            held.append(members[torch.randperm(len(members), generator=generator)[:k]])
    chosen = torch.cat(held).sort().values if held else torch.zeros(0, dtype=torch.int64)
    is_held = torch.zeros(len(labels), dtype=torch.bool)
    is_held[chosen] = True
    if not (has & is_held).any() or not (~has & is_held).any():
        raise RepairError(
            "held_out",
            "the held-out images need at least one image with the artifact and one without: give more images "
            "of each kind (two or more per class).",
        )
    return torch.nonzero(~is_held).flatten(), chosen


@dataclass(frozen=True)
class Measurement:
    """One network on the held-out images: as drawn, artifact removed, artifact added, and attacked."""

    reliance: RelianceResult
    attack_correct: int
    attack_flipped: int

    def to_json(self) -> dict[str, Any]:
        shortcut, tolerance = self.reliance.shortcut(), self.reliance.tolerance
        added_ci = shortcut["decisions_changed_when_added_ci"]
        accuracy, accuracy_ci = self.reliance.accuracy(), self.reliance.accuracy_ci()
        flip = wilson_interval(self.attack_flipped, self.attack_correct, CONFIDENCE)
        return {
            "accuracy": {"as_drawn": accuracy["as_is"], "artifact_removed": accuracy["shortcut_removed"]},
            "accuracy_ci": {"as_drawn": accuracy_ci["as_is"], "artifact_removed": accuracy_ci["shortcut_removed"]},
            "removed": {
                "n_images": shortcut["images_with"], "n_changed": shortcut["n_changed_when_removed"],
                "decisions_changed": shortcut["decisions_changed_when_removed"],
                "decisions_changed_ci": shortcut["decisions_changed_when_removed_ci"],
                "mean_margin_effect": shortcut["mean_margin_effect"],
                "mean_margin_effect_ci": shortcut["mean_margin_effect_ci"], "outcome": shortcut["outcome"],
            },
            "added": {
                "n_images": shortcut["images_without"], "n_changed": shortcut["n_changed_when_added"],
                "decisions_changed": shortcut["decisions_changed_when_added"], "decisions_changed_ci": added_ci,
                "outcome": three_way(added_ci[0], added_ci[1], tolerance) if added_ci else None,
            },
            "attack": {
                "n_correct": self.attack_correct, "n_flipped": self.attack_flipped,
                "flip_rate": self.attack_flipped / self.attack_correct if self.attack_correct else None,
                "flip_rate_ci": list(flip) if self.attack_correct else None,
            },
        }  # fmt: skip


def _attack_flips(module: nn.Module, images: Tensor, labels: Tensor, config: RepairConfig) -> tuple[int, int]:
    """(correct decisions, of those flipped) under L∞ PGD, in batches of ``config.batch_size``."""
    correct = flipped = 0
    device = device_of(module)
    for start in range(0, len(images), config.batch_size):
        x = images[start : start + config.batch_size].to(device)
        y = labels[start : start + config.batch_size].to(device)
        result = pgd(module, x, y, eps=config.attack_eps, steps=config.attack_steps, norm="linf")
        right = result.logits_before.argmax(1) == y
        correct += int(right.sum())
        flipped += int((right & (result.logits_after.argmax(1) != y)).sum())
    return correct, flipped


@dataclass(frozen=True)
class HeldOut:
    """The held-out images with their two counterfactuals and how those were made.

    Shapes: images, removed, added (M, 3, H, W); labels, has (M,).
    """

    indices: Tensor
    images: Tensor
    labels: Tensor
    has: Tensor
    removed: Tensor
    added: Tensor
    intervention: str


def held_out_images(data: RepairData, indices: Tensor, *, seed: int) -> HeldOut:
    """The held-out images, their artifact removed (images without one: as they are) and added
    (images with one: as they are): exact twins when the data have them, else inpainting and pasting
    (an artifact of another held-out image, at its own place; `counterfactual_pairs`)."""
    images, masks, labels = data.images[indices], data.masks[indices], data.labels[indices]
    has = has_artifact(masks)
    if data.removed is not None and data.added is not None:
        keep = has.view(-1, 1, 1, 1)
        removed = torch.where(keep, data.removed[indices], images)
        added = torch.where(keep, images, data.added[indices])
        return HeldOut(indices, images, labels, has, removed, added, EXACT_TWINS)
    pairs = counterfactual_pairs(images, masks, generator=torch.Generator().manual_seed(seed))
    return HeldOut(indices, images, labels, has, pairs.without_artifact, pairs.with_artifact, INTERVENTIONS)


def measure(module: nn.Module, held: HeldOut, config: RepairConfig, *, name: str, source: str) -> Measurement:
    """One network's `Measurement` on the held-out images (forward passes, then the attack)."""
    size = config.batch_size
    as_is = decisions(module, held.images, held.labels, batch_size=size)
    removal = CounterfactualEffect(as_is, decisions(module, held.removed, held.labels, batch_size=size))
    addition = CounterfactualEffect(as_is, decisions(module, held.added, held.labels, batch_size=size))
    reliance = RelianceResult(
        model=name, dataset=source, split="held-out", image_indices=tuple(held.indices.tolist()),
        labels=held.labels, has_ruler=held.has, removal=removal, addition=addition, batch_size=size,
        tolerance=config.tolerance,
    )  # fmt: skip
    return Measurement(reliance, *_attack_flips(module, held.images, held.labels, config))


@dataclass(frozen=True)
class RepairResult:
    """A repair and its proof: the split, the fine-tuning, the two measurements and the identities.

    ``tuned.module`` is the repaired network (eval mode, frozen); `to_json` leaves it out.
    """

    model: str
    source: str
    class_names: tuple[str, ...]
    config: RepairConfig
    repair_indices: tuple[int, ...]
    held: HeldOut
    tuned: FineTuned
    before: Measurement
    after: Measurement
    weights_before: str
    weights_after: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        n_marked = int(self.held.has.sum())
        return {
            "model": self.model, "source": self.source, "class_names": list(self.class_names),
            "method": self.config.training.method, "settings": self.config.to_json(),
            "split": {
                "n_images": len(self.repair_indices) + len(self.held.indices),
                "repair": len(self.repair_indices), "held_out": len(self.held.indices),
                "held_out_with_artifact": n_marked, "held_out_without_artifact": len(self.held.indices) - n_marked,
                "held_out_indices": self.held.indices.tolist(), "seed": self.config.split_seed,
                "stratified_by": "class and artifact",
            },
            "intervention": self.held.intervention, "trained": self.tuned.trained,
            "history": [h.__dict__ for h in self.tuned.history],
            "before": self.before.to_json(), "after": self.after.to_json(),
            "weights_sha256": {"before": self.weights_before, "after": self.weights_after},
            "seconds": {"fine_tune": json_number(self.tuned.seconds), "total": json_number(self.seconds)},
        }  # fmt: skip


def repair(
    model: LoadedModel,
    data: RepairData,
    config: RepairConfig,
    *,
    psi: PsiState | None = None,
    on_step: OnStep | None = None,
) -> RepairResult:
    """Split, fine-tune on the repair part, and measure the network before and after on the held-out part.

    Args:
        model: the network to repair (unchanged: a copy is fine-tuned).
        data: its images, labels and artifact masks, fitted to its input size.
        config: the repair.
        psi: the ψ controller to continue with ``config.training.robust`` (a robust checkpoint's
            ``psi_state``); None: a fresh one (`fine_tune`).
        on_step: the fine-tuning's progress, on_step(done, total) (`fine_tune`).

    Returns:
        `RepairResult`; ``to_json()`` gives the split, the settings, the per-epoch numbers, "before"
        and "after" (accuracy as drawn and with the artifact removed, decisions changed when it is
        removed and added, the attack's flip rate; each share with its Wilson interval) and the
        weights' SHA-256 before and after.

    Raises:
        RepairError: data a repair cannot use (`check_data`, `split_indices`), or a fine-tuning that
            fails (`fine_tune`).

    Shapes: data.images (N, 3, H, W) with (H, W) = model.input_size.
    """
    started = time.perf_counter()
    check_data(data, model.class_names)
    if tuple(data.images.shape[-2:]) != tuple(model.input_size):
        raise RepairError(
            "images", f"the images are {tuple(data.images.shape[-2:])}, the network takes {model.input_size}."
        )
    seed = config.split_seed
    repair_idx, held_idx = split_indices(
        data.labels, has_artifact(data.masks), held_out=config.held_out, seed=seed
    )
    held = held_out_images(data, held_idx, seed=seed)
    before = measure(model.module, held, config, name=model.model_id, source=data.source)
    tuned = fine_tune(
        model.module, data.images[repair_idx], data.labels[repair_idx], data.masks[repair_idx], config.training,
        num_classes=model.num_classes, psi=psi, on_step=on_step,
    )  # fmt: skip
    after = measure(tuned.module, held, config, name=f"{model.model_id} (repaired)", source=data.source)
    return RepairResult(
        model=model.model_id, source=data.source, class_names=model.class_names, config=config,
        repair_indices=tuple(repair_idx.tolist()), held=held, tuned=tuned, before=before, after=after,
        weights_before=weights_sha256(model), weights_after=weights_sha256(replace(model, module=tuned.module)),
        seconds=time.perf_counter() - started,
    )  # fmt: skip


__all__ = [
    "ATTACK_EPS",
    "ATTACK_STEPS",
    "DEFAULT_HELD_OUT",
    "EXACT_TWINS",
    "INTERVENTIONS",
    "HeldOut",
    "Measurement",
    "RepairConfig",
    "RepairData",
    "RepairResult",
    "check_data",
    "held_out_images",
    "measure",
    "repair",
    "split_indices",
]
