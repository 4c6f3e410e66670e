"""Shortcut audit of a model on its user's own images: does the decision rest on a marked artifact?

docs/audit.md. The user marks a suspected artifact (a ruler, a pen mark, a text label) on each image
that has one. Two interventions answer by measurement, without any explainer:

- *remove*: the marked pixels are filled in from their surroundings (`remove_artifact`: scikit-image's
  biharmonic inpainting, which solves ∇⁴u = 0 inside the mask with the image as boundary condition:
  a smooth fill that leaves every unmarked pixel exactly as it was, deterministic and fast, ~0.05 s
  for a 224 px image; no texture is invented, so no new edge or pattern enters the image);
- *add*: an artifact cut from one image with its mask is pasted onto the images that have none
  (`paste_artifact`: at the same place, or flush against a chosen border).

Each image's decision, the probability of its reference class (its label when given, else the class
decided on the image as it is) and that class's logit margin are read before and after
(`reliance.counterfactual_effect`'s measures). The explainers are then graded against the measured
reliance on the images that carry the artifact (`reliance_grades.grade_maps`), and each image gets
its adversarial explanation toward another class.

The parts: what an audit reads (`audit_inputs`), its records and summary (`audit_records`), the
batches (`audit_stream`) and a resumable folder of rows and pictures (`audit_store`). `audit` here runs
images already in memory; a folder of hundreds goes through `audit_stream.audit_batches`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from advexp_core.base.runtime import OnStep, device_of
from advexp_core.data.interventions import (
    BORDERS,
    INPAINTING,
    WHERE,
    Artifact,
    AuditError,
    paste_artifact,
    remove_artifact,
    size_text,
)
from advexp_core.evaluation.reliance import logit_margins
from advexp_core.experiments.audit_inputs import MAX_MASK_SHARE, AuditItem, check_mask, fit_to_model
from advexp_core.experiments.audit_records import (
    DEFAULT_CONFIG,
    DEFAULT_METHODS,
    AdversarialRow,
    AdversarialView,
    AuditConfig,
    AuditResult,
    ImageAudit,
    ImageRow,
    InterventionSummary,
    Skipped,
    explainer_json,
    n_misleading,
    summarise,
    weights_sha256,
)
from advexp_core.experiments.audit_stream import audit_batches, batch_size_for
from advexp_core.networks.registry import LoadedModel

# --- checking the input ---------------------------------------------------------------------------


def check_inputs(
    images: Sequence[Tensor],
    masks: Sequence[Tensor | None],
    names: Sequence[str],
    labels: Sequence[int | None] | None = None,
    *,
    num_classes: int | None = None,
) -> None:
    """AuditError unless the images share one size and each mask matches its image and marks something.

    A None mask means the image has no artifact (it may receive a pasted one); a mask that marks no
    pixel, or more than `MAX_MASK_SHARE` of the image, is refused: say "no artifact" instead, or mark less.

    Shapes: images (3, H, W) each; masks (H, W) each.
    """
    if not images:
        raise AuditError("images", "no images to audit: give at least one.")
    if not len(images) == len(masks) == len(names):
        raise AuditError(
            "masks", f"{len(images)} images, {len(masks)} masks and {len(names)} names do not match."
        )
    for image, name in zip(images, names, strict=True):
        if image.ndim != 3 or image.shape[0] != 3:
            raise AuditError("images", f"{name}: expected an RGB image (3, H, W), got {tuple(image.shape)}.")
    sizes = {tuple(i.shape[-2:]) for i in images}
    if len(sizes) > 1:
        listed = ", ".join(f"{n} {size_text(i)}" for n, i in list(zip(names, images, strict=True))[:6])
        raise AuditError(
            "images",
            f"the images have {len(sizes)} different sizes ({listed}); fit them to the network first (fit_to_model).",
        )
    for image, mask, name in zip(images, masks, names, strict=True):
        if mask is not None:
            check_mask(mask, image, name)
    if labels is not None:
        if len(labels) != len(images):
            raise AuditError("labels", f"{len(labels)} labels for {len(images)} images.")
        bad = [
            f"{n} ({y})"
            for n, y in zip(names, labels, strict=True)
            if y is not None and num_classes is not None and not 0 <= y < num_classes
        ]
        if bad:
            raise AuditError(
                "labels", f"labels out of range 0..{(num_classes or 1) - 1}: {', '.join(bad[:5])}."
            )


# --- the audit of images in memory ------------------------------------------------------------------


def _item(name: str, image: Tensor, mask: Tensor | None, label: int | None) -> AuditItem:
    return AuditItem(name, lambda: (image, mask), label)


def audit(
    model: LoadedModel,
    images: Sequence[Tensor],
    masks: Sequence[Tensor | None],
    *,
    names: Sequence[str] | None = None,
    labels: Sequence[int | None] | None = None,
    artifact: Artifact | None = None,
    artifact_source: str | None = None,
    config: AuditConfig = DEFAULT_CONFIG,
    on_step: OnStep | None = None,
    on_image: Callable[[ImageAudit], None] | None = None,
) -> AuditResult:
    """Audit a network's reliance on a marked artifact by removing and adding it, and grade its explainers.

    The images are audited in batches (`audit_stream.audit_batches`); only their rows of numbers are
    kept, and each image's pictures' tensors go to ``on_image``.

    Args:
        model: the network; forward passes run unlocked, maps and explanations under its lock
            (once per batch).
        images: the images as the network reads them, in [0, 1], at its input size.
        masks: per image, True where its artifact is; None for an image without one.
        names: the images' names (default "image 1", …).
        labels: the true classes, or None per image (or for all): accuracy only over labelled images.
        artifact: pasted onto the images without one (None: no addition).
        artifact_source: the name of the image it was cut from, for the report.
        config: methods, paste placement, the adversarial explanation's settings, the batch size.
        on_step: progress, on_step(images done, images).
        on_image: called with each image's finished `ImageAudit` (partial results), in order.

    Returns:
        `AuditResult`.

    Raises:
        AuditError: empty batch, mixed sizes, masks that do not fit, labels out of range, an
            artifact that cannot be pasted. ValueError: Grad-CAM on a network without a conv layer.

    Shapes: images (3, H, W) each, masks (H, W) each.
    """
    names = list(names) if names is not None else [f"image {k + 1}" for k in range(len(images))]
    check_inputs(images, masks, names, labels, num_classes=model.num_classes)
    if tuple(images[0].shape[-2:]) != tuple(model.input_size):
        raise AuditError(
            "images",
            f"the images are {size_text(images[0])} but {model.model_id} reads {model.input_size[1]}×{model.input_size[0]}; fit them first (fit_to_model).",
        )
    given = list(labels) if labels is not None else [None] * len(images)
    items = [_item(n, i, m, y) for n, i, m, y in zip(names, images, masks, given, strict=True)]
    size = batch_size_for(model, config)
    rows: list[ImageRow] = []
    skipped: list[Skipped] = []
    for batch in audit_batches(
        model, items, artifact=artifact, config=config, batch_size=size, on_step=on_step
    ):
        skipped += batch.skipped
        for image in batch.images:
            rows.append(image.row)
            if on_image is not None:
                on_image(image)
    if skipped:  # images in memory were checked above: a failure here is not the input's
        raise AuditError("images", "; ".join(s.reason for s in skipped[:3]))
    return summarise(
        model, weights_sha256(model), rows, config=config, batch_size=size,
        artifact_source=artifact_source if artifact is not None else None,
    )  # fmt: skip


@dataclass(frozen=True)
class _Measured:
    probabilities: Tensor
    margins: Tensor


def _measure(model: LoadedModel, images: Tensor, reference: Tensor, batch_size: int) -> _Measured:
    """Softmax and reference-class margins in batches, on the CPU. Shapes: (N, 3, H, W) -> (N, C), (N,)."""
    device = device_of(model.module)
    logits = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits.append(model.module(images[start : start + batch_size].to(device)).float().cpu())
    z = torch.cat(logits) if logits else torch.zeros(0, model.num_classes)
    return _Measured(torch.softmax(z, 1), logit_margins(z, reference))


# --- validation against exact twins -----------------------------------------------------------------


@dataclass(frozen=True)
class InpaintingValidation:
    """Removing the ruler by inpainting its mask, against the generator's exact ruler-free twin.

    Attributes:
        model: the network; n_images: lesion images with a ruler compared.
        agreement: share of them where inpainting changes the decision exactly when the twin does.
        changed_inpainted, changed_twin: share of decisions changed by each.
        max_probability_difference: largest |p(inpainted) − p(twin)| of any class over the images.
        disagreeing: indices (in the split) where the two disagree about the change.
        trace_changed: on images without a ruler, share whose decision changes when the place a ruler
            would have had is inpainted (a change there comes from the fill itself: its trace).
        n_trace_images: those images.
        trace_indices: the images where it does.
        fill_rms: root mean square difference between the inpainted and the twin's pixels inside the masks.
    """

    model: str
    n_images: int
    agreement: float
    changed_inpainted: float
    changed_twin: float
    max_probability_difference: float
    disagreeing: tuple[int, ...]
    trace_changed: float | None
    n_trace_images: int
    trace_indices: tuple[int, ...]
    fill_rms: float

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


def validate_inpainting(
    model: LoadedModel,
    images: Tensor,
    masks: Tensor,
    twins: Tensor,
    would_be: Tensor,
    *,
    batch_size: int = 100,
) -> InpaintingValidation:
    """Compare removing the ruler by inpainting with its exact removal, and measure inpainting's trace.

    Args:
        model: a lesions network.
        images: lesion images as drawn; masks: their ruler masks (all False without one).
        twins: the same images without a ruler (exact).
        would_be: where each image's ruler is or would have been (the ruler-forced twin's masks).

    Shapes: images, twins (N, 3, H, W); masks, would_be (N, H, W) bool.
    """
    has = masks.flatten(1).any(1)
    index = torch.nonzero(has).flatten()
    zero = torch.zeros(len(images), dtype=torch.long)
    probs = _measure(model, images, zero, batch_size).probabilities
    filled = remove_artifact(images[has], masks[has])
    p_fill = _measure(model, filled, zero[has], batch_size).probabilities
    p_twin = _measure(model, twins[has], zero[has], batch_size).probabilities
    as_is = probs[has].argmax(1)
    ch_fill, ch_twin = p_fill.argmax(1) != as_is, p_twin.argmax(1) != as_is
    same = ch_fill == ch_twin
    inside = masks[has][:, None].expand_as(filled)
    fill_rms = float((filled - twins[has])[inside].pow(2).mean().sqrt()) if bool(inside.any()) else 0.0
    free = ~has & would_be.flatten(1).any(1)
    trace, trace_idx = None, torch.zeros(0, dtype=torch.long)
    if bool(free.any()):
        traced = remove_artifact(images[free], would_be[free])
        moved = _measure(model, traced, zero[free], batch_size).probabilities.argmax(1) != probs[free].argmax(
            1
        )
        trace, trace_idx = float(moved.float().mean()), torch.nonzero(free).flatten()[moved]
    n = int(has.sum())
    return InpaintingValidation(
        model.model_id, n, float(same.float().mean()) if n else math.nan,
        float(ch_fill.float().mean()) if n else math.nan, float(ch_twin.float().mean()) if n else math.nan,
        float((p_fill - p_twin).abs().max()) if n else 0.0, tuple(int(i) for i in index[~same]),
        trace, int(free.sum()), tuple(int(i) for i in trace_idx), fill_rms,
    )  # fmt: skip


__all__ = [
    "BORDERS",
    "DEFAULT_METHODS",
    "INPAINTING",
    "MAX_MASK_SHARE",
    "WHERE",
    "AdversarialRow",
    "AdversarialView",
    "Artifact",
    "AuditConfig",
    "AuditError",
    "AuditResult",
    "ImageAudit",
    "ImageRow",
    "InpaintingValidation",
    "InterventionSummary",
    "Skipped",
    "audit",
    "check_inputs",
    "check_mask",
    "explainer_json",
    "fit_to_model",
    "n_misleading",
    "paste_artifact",
    "remove_artifact",
    "validate_inpainting",
    "weights_sha256",
]
