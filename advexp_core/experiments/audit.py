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
its adversarial explanation toward another class (`explanations.adversarial_explanation`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import json_number
from advexp_core.base.runtime import OnStep, device_of
from advexp_core.base.statistics import CONFIDENCE, TOLERANCE, paired_bootstrap_ci, wilson_interval
from advexp_core.data.imaging import prepare_image
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
from advexp_core.evaluation.reliance_grades import ExplainerGrades, area_shares, grade_maps, ruler_shares
from advexp_core.experiments.configs import ExplanationConfig
from advexp_core.experiments.scorecard_grades import explainer_maps
from advexp_core.methods.explanations import adversarial_explanation
from advexp_core.methods.saliency import METHODS
from advexp_core.networks.registry import LoadedModel

DEFAULT_METHODS = ("gradient", "smoothgrad", "ig", "gradcam")  # the graded explainers' defaults
MAX_MASK_SHARE = 0.5
"""A mask may cover at most this share of an image: beyond it inpainting invents most of the image."""
_EXPLANATION = ExplanationConfig()


@dataclass(frozen=True)
class AuditConfig:
    """How the audit runs.

    Attributes:
        methods: explainers graded against the measured reliance (`saliency.METHODS`; may be empty).
        where: where a pasted artifact goes: "same" (the place it had in its own image) or "border".
        border: with where="border", the edge it lies along ("bottom", "top", "left", "right").
        toward: the class the adversarial explanation pushes toward; None (or the decided class
            itself): the runner-up, i.e. the other class of a two-class network.
        adversarial: compute the adversarial explanation of each image.
        rho, steps, overshoot: its settings (docs/method.md §2).
        seed: SmoothGrad's noise and the margin interval's bootstrap.
        batch_size: images per forward pass.
        tolerance: a share of decisions below which reliance on the artifact counts as negligible:
            the verdict reads the interval of the share removing it changed against this
            (docs/method.md §9).
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    where: str = "same"
    border: str = "bottom"
    toward: int | None = None
    adversarial: bool = True
    rho: float = _EXPLANATION.rho
    steps: int = _EXPLANATION.steps
    overshoot: float = _EXPLANATION.overshoot
    seed: int = 0
    batch_size: int = 32
    tolerance: float = TOLERANCE

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or len(set(self.methods)) != len(self.methods):
            raise ValueError(
                f"unknown or repeated explainer {', '.join(unknown) or '(repeated)'}; choose from {', '.join(METHODS)}."
            )
        if self.where not in WHERE:
            raise ValueError(f"where must be one of {', '.join(WHERE)}, got {self.where!r}.")
        if self.border not in BORDERS:
            raise ValueError(f"border must be one of {', '.join(BORDERS)}, got {self.border!r}.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}.")
        if not 0 < self.tolerance < 1:
            raise ValueError(
                f"tolerance must lie between 0 and 1 (a share of decisions), got {self.tolerance}."
            )
        ExplanationConfig(rho=self.rho, steps=self.steps, overshoot=self.overshoot)  # checks them


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
            f"the images have {len(sizes)} different sizes ({listed}); an audit compares images of one "
            "size, so that a mask and a pasted artifact mean the same place on each. Resize them to one size first.",
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


def check_mask(mask: Tensor, image: Tensor, name: str) -> None:
    """AuditError unless the mask is (H, W) like its image and marks some, but not most, of it."""
    if tuple(mask.shape) != tuple(image.shape[-2:]):
        raise AuditError(
            "masks",
            f"{name}: the mask is {size_text(mask) if mask.ndim >= 2 else tuple(mask.shape)} but the image "
            f"is {size_text(image)}; draw the mask on the image itself.",
        )
    share = float(mask.bool().float().mean())
    if share == 0:
        raise AuditError(
            "masks",
            f"{name}: the mask marks no pixel; mark the artifact, or give no mask for an image without one.",
        )
    if share > MAX_MASK_SHARE:
        raise AuditError(
            "masks",
            f"{name}: the mask covers {share:.0%} of the image (at most {MAX_MASK_SHARE:.0%}); inpainting "
            "would invent most of the image. Mark only the artifact.",
        )


def fit_to_model(image: Tensor, mask: Tensor | None, model: LoadedModel) -> tuple[Tensor, Tensor | None]:
    """The image fitted to the model's input (`imaging.prepare_image`), its mask fitted alike
    (resampled, then read as True where at least half covered).

    Shapes: (3, H, W), (H, W) -> (3, h, w), (h, w).
    """
    fitted = prepare_image(image, model)
    if mask is None:
        return fitted, None
    as_image = mask.float().cpu().expand(3, *mask.shape)
    return fitted, prepare_image(as_image, model)[0] >= 0.5


def weights_sha256(model: LoadedModel) -> str:
    """A SHA-256 of the network's parameters and buffers in order: its identity whatever its file."""
    digest = hashlib.sha256()
    for name, tensor in model.module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --- the results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdversarialView:
    """One image's adversarial explanation toward another class (docs/method.md §2).

    Attributes:
        toward: the class pushed toward; probability_before/after: its probability at x and x+δ.
        explanation: x+δ clamped to [0, 1]; delta: δ.
        valid: RMS(δ) reached ρ by step S/2; artifact_share: share of Σδ² inside the artifact's mask
            (None without one); artifact_area: the mask's share of the image.

    Shapes: explanation, delta (3, H, W).
    """

    toward: int
    probability_before: float
    probability_after: float
    explanation: Tensor
    delta: Tensor
    valid: bool
    artifact_share: float | None


@dataclass(frozen=True)
class ImageAudit:
    """One image: its decision before and after the intervention, its maps and their artifact
    shares, and its adversarial explanation.

    Attributes:
        index, name: its place in the batch and its name.
        label: the true class when given; reference: the class followed (the label, else the decision as is).
        intervention: "removed" (it has the artifact), "added" (it has none and one was pasted) or
            "none" (no artifact and nothing to paste).
        image: as it is; after: after the intervention (None for "none").
        mask: where the artifact is (removed) or was pasted (added); all False for "none".
        probabilities, probabilities_after: softmax before / after (after None for "none").
        margin, margin_after: the reference class's logit minus the largest other.
        maps: method -> map of the class decided on the image as is (non-negative).
        shares: method -> share of that map's mass on the artifact (None: no artifact, empty map).
        adversarial: the adversarial explanation, or None when not asked for.

    Shapes: image, after (3, H, W); mask, maps (H, W); probabilities (C,).
    """

    index: int
    name: str
    label: int | None
    reference: int
    intervention: str
    image: Tensor
    after: Tensor | None
    mask: Tensor
    probabilities: Tensor
    probabilities_after: Tensor | None
    margin: float
    margin_after: float | None
    maps: dict[str, Tensor] = field(default_factory=dict)
    shares: dict[str, float | None] = field(default_factory=dict)
    adversarial: AdversarialView | None = None

    @property
    def prediction(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def prediction_after(self) -> int | None:
        return None if self.probabilities_after is None else int(self.probabilities_after.argmax())

    @property
    def changed(self) -> bool | None:
        """The intervention changed the decision (None without an intervention)."""
        after = self.prediction_after
        return None if after is None else after != self.prediction

    @property
    def margin_effect(self) -> float | None:
        """The reference class's margin after minus before (negative: it lost ground)."""
        return None if self.margin_after is None else self.margin_after - self.margin

    @property
    def artifact_area(self) -> float:
        return float(self.mask.float().mean())

    def to_json(self, class_names: Sequence[str]) -> dict[str, Any]:
        """The per-image values of the report (no pixels)."""
        after = self.probabilities_after
        ae = self.adversarial
        return {
            "index": self.index, "name": self.name,
            "label": None if self.label is None else class_names[self.label],
            "reference": class_names[self.reference], "intervention": self.intervention,
            "artifact_area": self.artifact_area,
            "decision_before": class_names[self.prediction],
            "decision_after": None if after is None else class_names[int(after.argmax())],
            "probability_before": float(self.probabilities[self.reference]),
            "probability_after": None if after is None else float(after[self.reference]),
            "margin_before": json_number(self.margin), "margin_after": None if self.margin_after is None else json_number(self.margin_after),
            "decision_changed": self.changed, "margin_effect": None if self.margin_effect is None else json_number(self.margin_effect),
            "artifact_shares": dict(self.shares),
            "adversarial": None if ae is None else {
                "toward": class_names[ae.toward], "probability_before": ae.probability_before,
                "probability_after": ae.probability_after, "valid": ae.valid, "artifact_share": ae.artifact_share,
            },
        }  # fmt: skip


def _wilson(k: int, n: int) -> list[float] | None:
    """The Wilson interval of k/n as JSON's [low, high] (None without images, like the rate)."""
    return list(wilson_interval(k, n, CONFIDENCE)) if n else None


@dataclass(frozen=True)
class InterventionSummary:
    """What one intervention did over the images it applies to.

    Attributes:
        name: "removed" or "added"; n_images: the images it applies to; n_changed: decisions changed.
        decisions_changed: n_changed / n_images (None without images).
        mean_margin_effect: mean change of the reference class's margin.
        accuracy_before, accuracy_after: over those images with a label (None without labels).
        n_labelled, n_correct_before, n_correct_after: the counts behind the accuracies.
        mean_margin_effect_ci: the paired bootstrap's 95 % interval of the mean margin change
            (`statistics.paired_bootstrap_ci`, seeded by the config's seed; None under two images).

    Every share has a Wilson 95 % interval (`decisions_changed_ci`, `accuracy_before_ci`,
    `accuracy_after_ci`; `statistics.wilson_interval`), written beside it in JSON as ``<name>_ci``.
    """

    name: str
    n_images: int
    n_changed: int
    decisions_changed: float | None
    mean_margin_effect: float | None
    accuracy_before: float | None
    accuracy_after: float | None
    n_labelled: int = 0
    n_correct_before: int = 0
    n_correct_after: int = 0
    mean_margin_effect_ci: tuple[float, float] | None = None

    @property
    def decisions_changed_ci(self) -> tuple[float, float]:
        """The Wilson interval of n_changed / n_images ((0, 1) without images)."""
        return wilson_interval(self.n_changed, self.n_images, CONFIDENCE)

    def to_json(self) -> dict[str, Any]:
        margin_ci = self.mean_margin_effect_ci
        return {
            "n_images": self.n_images, "n_changed": self.n_changed, "decisions_changed": self.decisions_changed,
            "decisions_changed_ci": _wilson(self.n_changed, self.n_images),
            "mean_margin_effect": self.mean_margin_effect,
            "mean_margin_effect_ci": None if margin_ci is None else [json_number(v) for v in margin_ci],
            "n_labelled": self.n_labelled,
            "accuracy_before": self.accuracy_before,
            "accuracy_before_ci": _wilson(self.n_correct_before, self.n_labelled),
            "accuracy_after": self.accuracy_after,
            "accuracy_after_ci": _wilson(self.n_correct_after, self.n_labelled),
        }  # fmt: skip


@dataclass(frozen=True)
class AuditResult:
    """A whole audit.

    Attributes:
        model: the network's id; weights_sha256: a hash of its parameters (`weights_sha256`).
        class_names: its classes; config: the settings.
        images: one `ImageAudit` per image, in the order given.
        removed, added: the interventions' summaries (None where no image takes it).
        grades: one `ExplainerGrades` per method (on the images with the artifact; "graded" ones
            are those whose decision changed when it was removed).
        artifact_source: the name of the image the pasted artifact was cut from (None: nothing pasted).
    """

    model: str
    weights_sha256: str
    class_names: tuple[str, ...]
    config: AuditConfig
    images: tuple[ImageAudit, ...]
    removed: InterventionSummary | None
    added: InterventionSummary | None
    grades: tuple[ExplainerGrades, ...]
    artifact_source: str | None = None

    def settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "inpainting": INPAINTING, "where": c.where, "border": c.border if c.where == "border" else None,
            "methods": list(c.methods), "adversarial": c.adversarial,
            "toward": None if c.toward is None else self.class_names[c.toward],
            "rho": c.rho, "steps": c.steps, "overshoot": c.overshoot, "seed": c.seed,
            "batch_size": c.batch_size, "artifact_source": self.artifact_source,
            "tolerance": c.tolerance, "confidence": CONFIDENCE,
        }  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The report: {"model", "n_images", "removed", "added", "explainers", "images", ...}."""
        empty = InterventionSummary("", 0, 0, None, None, None, None).to_json()
        return {
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "classes": list(self.class_names),
            "n_images": len(self.images),
            "removed": (self.removed.to_json() if self.removed else empty),
            "added": (self.added.to_json() if self.added else empty),
            "explainers": {g.method: explainer_json(g) for g in self.grades},
            "images": [i.to_json(self.class_names) for i in self.images],
            "settings": self.settings(),
        }


def n_misleading(grades: ExplainerGrades) -> int:
    """The graded maps that hid the artifact (the misleading rate is that count over ``n_images``)."""
    rate = grades.misleading_rate
    return 0 if rate is None else round(rate * grades.n_images)


def explainer_json(grades: ExplainerGrades) -> dict[str, Any]:
    """One explainer's grades under the audit's names (the artifact share is over the graded images),
    the misleading rate with its Wilson interval."""
    return {
        "artifact_share": grades.mean_ruler_share,
        "misleading_rate": grades.misleading_rate,
        "misleading_rate_ci": _wilson(n_misleading(grades), grades.n_images),
        "n_misleading": n_misleading(grades),
        "effect_spearman": grades.effect_spearman,
        "effect_spearman_all": grades.effect_spearman_all,
        "n_graded": grades.n_images,
    }


# --- the audit ---------------------------------------------------------------------------------------


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


def _margin_interval(rows: Sequence[ImageAudit], seed: int) -> tuple[float, float] | None:
    """The paired bootstrap interval of the mean margin change (None under two images or non-finite margins)."""
    pairs = [(r.margin_after, r.margin) for r in rows if r.margin_after is not None]
    if len(pairs) < 2 or not all(math.isfinite(a) and math.isfinite(b) for a, b in pairs):
        return None
    return paired_bootstrap_ci([a for a, _ in pairs], [b for _, b in pairs], seed=seed)


def _summary(name: str, rows: Sequence[ImageAudit], seed: int) -> InterventionSummary | None:
    if not rows:
        return None
    changed = sum(bool(r.changed) for r in rows)
    effects = [r.margin_effect for r in rows if r.margin_effect is not None]
    labelled = [r for r in rows if r.label is not None]
    before = sum(r.prediction == r.label for r in labelled)
    after = sum(r.prediction_after == r.label for r in labelled)
    n_lab = len(labelled)
    return InterventionSummary(
        name, len(rows), changed, changed / len(rows),
        json_number(sum(effects) / len(effects)) if effects else None,
        before / n_lab if n_lab else None, after / n_lab if n_lab else None,
        n_lab, before, after, _margin_interval(rows, seed),
    )  # fmt: skip


def audit(
    model: LoadedModel,
    images: Sequence[Tensor],
    masks: Sequence[Tensor | None],
    *,
    names: Sequence[str] | None = None,
    labels: Sequence[int | None] | None = None,
    artifact: Artifact | None = None,
    artifact_source: str | None = None,
    config: AuditConfig = AuditConfig(),
    on_step: OnStep | None = None,
    on_image: Callable[[ImageAudit], None] | None = None,
) -> AuditResult:
    """Audit a network's reliance on a marked artifact by removing and adding it, and grade its explainers.

    Args:
        model: the network; forward passes run unlocked, maps and explanations under its lock
            (once per image).
        images: the images as the network reads them, in [0, 1], all of one size.
        masks: per image, True where its artifact is; None for an image without one.
        names: the images' names (default "image 1", …).
        labels: the true classes, or None per image (or for all): accuracy only over labelled images.
        artifact: pasted onto the images without one (None: no addition).
        artifact_source: the name of the image it was cut from, for the report.
        config: methods, paste placement, the adversarial explanation's settings.
        on_step: progress, on_step(done, total).
        on_image: called with each image's finished `ImageAudit` (partial results), in order.

    Returns:
        `AuditResult`.

    Raises:
        AuditError: empty batch, mixed sizes, masks that do not fit, labels out of range, an
            artifact that cannot be pasted. ValueError: Grad-CAM on a network without a conv layer.

    Shapes: images (3, H, W) each, masks (H, W) each; maps (H, W).
    """
    names = list(names) if names is not None else [f"image {k + 1}" for k in range(len(images))]
    check_inputs(images, masks, names, labels, num_classes=model.num_classes)
    if tuple(images[0].shape[-2:]) != tuple(model.input_size):
        raise AuditError(
            "images",
            f"the images are {size_text(images[0])} but {model.model_id} reads {model.input_size[1]}×{model.input_size[0]}; fit them first (fit_to_model).",
        )
    x = torch.stack([i.detach().float().cpu() for i in images])
    has = torch.tensor([m is not None for m in masks])
    mask = torch.stack(
        [m.bool().cpu() if m is not None else torch.zeros(x.shape[-2:], dtype=torch.bool) for m in masks]
    )
    after = x.clone()
    after[has] = remove_artifact(x[has], mask[has]) if bool(has.any()) else after[has]
    if artifact is not None and bool((~has).any()):
        pasted, placed = paste_artifact(x[~has], artifact, where=config.where, border=config.border)
        after[~has], mask[~has] = pasted, placed
    touched = has | (artifact is not None)
    n, steps_per_image = len(x), len(config.methods) + (1 if config.adversarial else 0)
    total = 1 + n * steps_per_image
    first = _measure(model, x, torch.zeros(n, dtype=torch.long), config.batch_size)
    decided = first.probabilities.argmax(1)
    reference = torch.tensor([decided[k] if y is None else y for k, y in enumerate(labels or [None] * n)])
    before = _measure(model, x, reference, config.batch_size)
    later = _measure(model, after, reference, config.batch_size)
    if on_step is not None:
        on_step(1, total)
    rows = []
    for k in range(n):
        row = _image_audit(
            model, k, names[k], labels, reference, x, after, mask, has, touched, before, later, config
        )
        rows.append(row)
        if on_image is not None:
            on_image(row)
        if on_step is not None:
            on_step(1 + (k + 1) * steps_per_image, total)
    removed = [r for r in rows if r.intervention == "removed"]
    grades = _grades(removed, config.methods)
    return AuditResult(
        model.model_id, weights_sha256(model), tuple(model.class_names), config, tuple(rows),
        _summary("removed", removed, config.seed),
        _summary("added", [r for r in rows if r.intervention == "added"], config.seed),
        grades, artifact_source if artifact is not None else None,
    )  # fmt: skip


def _image_audit(
    model: LoadedModel, k: int, name: str, labels: Sequence[int | None] | None, reference: Tensor,
    x: Tensor, after: Tensor, mask: Tensor, has: Tensor, touched: Tensor,
    before: _Measured, later: _Measured, config: AuditConfig,
) -> ImageAudit:  # fmt: skip
    """One image's record: its numbers, maps and adversarial explanation (under the model's lock)."""
    intervention = "removed" if bool(has[k]) else ("added" if bool(touched[k]) else "none")
    decided = int(before.probabilities[k].argmax())
    maps: dict[str, Tensor] = {}
    shares: dict[str, float | None] = {}
    adversarial = None
    with model.lock:
        for method in config.methods:
            m = explainer_maps(model, x[k : k + 1], torch.tensor([decided]), method=method, seed=config.seed)[
                0
            ]
            maps[method] = m
            share = float(ruler_shares(m[None], mask[k : k + 1])[0]) if bool(has[k]) else math.nan
            shares[method] = None if math.isnan(share) else share
        if config.adversarial:
            adversarial = _adversarial(model, x[k], decided, mask[k] if bool(has[k]) else None, config)
    touched_k = intervention != "none"
    return ImageAudit(
        index=k, name=name, label=None if labels is None else labels[k], reference=int(reference[k]),
        intervention=intervention, image=x[k], after=after[k] if touched_k else None,
        mask=mask[k] if touched_k else torch.zeros_like(mask[k]),
        probabilities=before.probabilities[k], probabilities_after=later.probabilities[k] if touched_k else None,
        margin=float(before.margins[k]), margin_after=float(later.margins[k]) if touched_k else None,
        maps=maps, shares=shares, adversarial=adversarial,
    )  # fmt: skip


def _adversarial(
    model: LoadedModel, image: Tensor, decided: int, mask: Tensor | None, config: AuditConfig
) -> AdversarialView:
    """The adversarial explanation toward ``config.toward`` (or the runner-up when that is the decision)."""
    target: int | str = "runner-up" if config.toward is None or config.toward == decided else config.toward
    result = adversarial_explanation(
        model.module, image.to(model.device), [target], class_names=model.class_names, model_id=model.model_id,
        rho=config.rho, steps=config.steps, overshoot=config.overshoot,
    )  # fmt: skip
    t = result.targets[0]
    delta = t.delta.detach().float().cpu()
    energy = delta.pow(2).sum(0)
    share = None
    if mask is not None and float(energy.sum()) > 0:
        share = float(energy[mask].sum() / energy.sum())
    return AdversarialView(
        t.index, t.probability_before, t.probability_after, t.explanation.detach().cpu(), delta,
        t.budget_reached_by_half, share,
    )  # fmt: skip


def _grades(removed: Sequence[ImageAudit], methods: Sequence[str]) -> tuple[ExplainerGrades, ...]:
    """Each explainer graded against the measured reliance on the images with the artifact."""
    if not removed:
        empty = torch.zeros(0, dtype=torch.float64)  # grades of no image: every one None
        return tuple(grade_maps(m, empty, empty, empty.bool(), empty, None) for m in methods)
    masks = torch.stack([r.mask for r in removed])
    areas = area_shares(masks)
    relied = torch.tensor([bool(r.changed) for r in removed])
    effect = torch.tensor([r.margin_effect or 0.0 for r in removed], dtype=torch.float64)
    out = []
    for method in methods:
        shares = torch.tensor(
            [math.nan if r.shares[method] is None else r.shares[method] for r in removed], dtype=torch.float64
        )
        out.append(grade_maps(method, shares, areas, relied, effect, None))
    return tuple(out)


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
    "AdversarialView",
    "Artifact",
    "AuditConfig",
    "AuditError",
    "AuditResult",
    "ImageAudit",
    "InpaintingValidation",
    "InterventionSummary",
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
