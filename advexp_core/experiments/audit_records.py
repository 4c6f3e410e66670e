"""A shortcut audit's settings and records (docs/audit.md): the config, one record of numbers per image
(`ImageRow`, small, kept for every image), the pictures' tensors of an image while its batch is drawn
(`ImageAudit`), and the summary over the images (`summarise` -> `AuditResult`).

The summary is computed from the rows alone, so an audit of hundreds of images keeps numbers, not
pixels, and an audit resumed from its rows on disk (`audit_store`) gives the same summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import json_number
from advexp_core.base.statistics import CONFIDENCE, TOLERANCE, paired_bootstrap_ci, wilson_interval
from advexp_core.data.interventions import BORDERS, INPAINTING, WHERE
from advexp_core.evaluation.reliance_grades import ExplainerGrades, grade_maps
from advexp_core.experiments.configs import ExplanationConfig
from advexp_core.methods.saliency import METHODS
from advexp_core.networks.registry import LoadedModel

DEFAULT_METHODS = ("gradient", "smoothgrad", "ig", "gradcam")  # the graded explainers' defaults
MAX_BATCH = 256
_EXPLANATION = ExplanationConfig()


@dataclass(frozen=True)
class AuditConfig:
    """How the audit runs.

    Attributes:
        methods: explainers graded against the measured reliance (`saliency.METHODS`; may be empty).
        where: where a pasted artifact goes: "same" (the place it had in its own image, in the
            network's view) or "border".
        border: with where="border", the edge it lies along ("bottom", "top", "left", "right").
        toward: the class the adversarial explanation pushes toward; None (or the decided class
            itself): the runner-up, i.e. the other class of a two-class network.
        adversarial: compute the adversarial explanation of each image.
        rho, steps, overshoot: its settings (docs/method.md §2).
        seed: SmoothGrad's noise and the margin interval's bootstrap.
        batch_size: images per batch (read, inpainted, measured and explained together); None:
            from the device (`audit_stream.batch_size_for`).
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
    batch_size: int | None = None
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
        if self.batch_size is not None and not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must lie between 1 and {MAX_BATCH}, got {self.batch_size}.")
        if not 0 < self.tolerance < 1:
            raise ValueError(
                f"tolerance must lie between 0 and 1 (a share of decisions), got {self.tolerance}."
            )
        ExplanationConfig(rho=self.rho, steps=self.steps, overshoot=self.overshoot)  # checks them


DEFAULT_CONFIG = AuditConfig()


def weights_sha256(model: LoadedModel) -> str:
    """A SHA-256 of the network's parameters and buffers in order: its identity whatever its file."""
    digest = hashlib.sha256()
    for name, tensor in model.module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --- one image ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdversarialRow:
    """The numbers of one image's adversarial explanation (docs/method.md §2).

    Attributes:
        toward: the class pushed toward; probability_before/after: its probability at x and x+δ.
        valid: RMS(δ) reached ρ by step S/2.
        artifact_share: share of Σδ² inside the artifact's mask (None without one, or δ = 0).
    """

    toward: int
    probability_before: float
    probability_after: float
    valid: bool
    artifact_share: float | None


@dataclass(frozen=True)
class ImageRow:
    """One image's numbers: its decision before and after the intervention, its maps' artifact
    shares and its adversarial explanation's numbers (no pixels: kept for every image of an audit).

    Attributes:
        index: its place in the audit's list; name: its name.
        label: the true class when given; reference: the class followed (the label, else the decision as is).
        intervention: "removed" (it has the artifact), "added" (it has none and one was pasted) or
            "none" (no artifact and nothing to paste).
        artifact_area: the share of the image the artifact covers (removed) or was pasted on (added).
        prediction, prediction_after: the class decided before / after (after None for "none").
        confidence, confidence_after: the decided class's probability before / after.
        probability, probability_after: the reference class's probability before / after.
        margin, margin_after: the reference class's logit minus the largest other.
        near_tie: the top two probabilities lie within `readings.groundtruth.TIE` before or after.
        shares: method -> share of its map's mass on the artifact (None: no artifact, empty map).
        adversarial: the adversarial explanation's numbers, or None when not asked for.
    """

    index: int
    name: str
    label: int | None
    reference: int
    intervention: str
    artifact_area: float
    prediction: int
    prediction_after: int | None
    confidence: float
    confidence_after: float | None
    probability: float
    probability_after: float | None
    margin: float
    margin_after: float | None
    near_tie: bool = False
    shares: dict[str, float | None] = field(default_factory=dict)
    adversarial: AdversarialRow | None = None

    @property
    def changed(self) -> bool | None:
        """The intervention changed the decision (None without an intervention)."""
        return None if self.prediction_after is None else self.prediction_after != self.prediction

    @property
    def margin_effect(self) -> float | None:
        """The reference class's margin after minus before (negative: it lost ground)."""
        return None if self.margin_after is None else self.margin_after - self.margin

    def to_json(self, class_names: Sequence[str]) -> dict[str, Any]:
        """The per-image values of the report, classes by name (no pixels)."""
        ae = self.adversarial

        def named(k: int | None) -> str | None:
            return None if k is None else class_names[k]

        return {
            "index": self.index, "name": self.name, "label": named(self.label),
            "reference": class_names[self.reference], "intervention": self.intervention,
            "artifact_area": self.artifact_area,
            "decision_before": class_names[self.prediction], "decision_after": named(self.prediction_after),
            "probability_before": self.probability, "probability_after": self.probability_after,
            "margin_before": json_number(self.margin),
            "margin_after": None if self.margin_after is None else json_number(self.margin_after),
            "decision_changed": self.changed,
            "margin_effect": None if self.margin_effect is None else json_number(self.margin_effect),
            "near_tie": self.near_tie,
            "artifact_shares": dict(self.shares),
            "adversarial": None if ae is None else {
                "toward": class_names[ae.toward], "probability_before": ae.probability_before,
                "probability_after": ae.probability_after, "valid": ae.valid, "artifact_share": ae.artifact_share,
            },
        }  # fmt: skip

    def record(self) -> dict[str, Any]:
        """Every field as it is (classes as indices): `from_record` gives the row back exactly."""
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ImageRow:
        """The row `record` was made from. Raises KeyError/TypeError for anything else."""
        values = dict(record)
        ae = values.pop("adversarial")
        return cls(**values, adversarial=None if ae is None else AdversarialRow(**ae))


@dataclass(frozen=True)
class AdversarialView:
    """One image's adversarial explanation with its pictures: x+δ clamped to [0, 1], and δ.

    Shapes: explanation, delta (3, H, W).
    """

    numbers: AdversarialRow
    explanation: Tensor
    delta: Tensor


@dataclass(frozen=True)
class ImageAudit:
    """One image's numbers with its pictures' tensors, while its batch is drawn (then dropped).

    Attributes:
        row: its numbers.
        image: as it is; after: after the intervention (None for "none").
        mask: where the artifact is (removed) or was pasted (added); all False for "none".
        maps: method -> map of the class decided on the image as is (non-negative).
        adversarial: the adversarial explanation, or None when not asked for.

    Shapes: image, after (3, H, W); mask, maps (H, W).
    """

    row: ImageRow
    image: Tensor
    after: Tensor | None
    mask: Tensor
    maps: dict[str, Tensor] = field(default_factory=dict)
    adversarial: AdversarialView | None = None


@dataclass(frozen=True)
class Skipped:
    """An image the audit could not use, with why (its file unreadable, its mask not fitting)."""

    index: int
    name: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "reason": self.reason}


# --- the summary ------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class AuditResult:
    """A whole audit.

    Attributes:
        model: the network's id; weights_sha256: a hash of its parameters (`weights_sha256`).
        class_names: its classes; config: the settings.
        images: one `ImageRow` per image audited, in the order given.
        removed, added: the interventions' summaries (None where no image takes it).
        grades: one `ExplainerGrades` per method (on the images with the artifact; "graded" ones
            are those whose decision changed when it was removed).
        artifact_source: the name of the image the pasted artifact was cut from (None: nothing pasted).
        skipped: the images that could not be audited, with why.
        batch_size: images per batch as run (SmoothGrad's noise depends on it).
    """

    model: str
    weights_sha256: str
    class_names: tuple[str, ...]
    config: AuditConfig
    images: tuple[ImageRow, ...]
    removed: InterventionSummary | None
    added: InterventionSummary | None
    grades: tuple[ExplainerGrades, ...]
    artifact_source: str | None = None
    skipped: tuple[Skipped, ...] = ()
    batch_size: int = 0

    def settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "inpainting": INPAINTING, "where": c.where, "border": c.border if c.where == "border" else None,
            "methods": list(c.methods), "adversarial": c.adversarial,
            "toward": None if c.toward is None else self.class_names[c.toward],
            "rho": c.rho, "steps": c.steps, "overshoot": c.overshoot, "seed": c.seed,
            "batch_size": self.batch_size, "artifact_source": self.artifact_source,
            "tolerance": c.tolerance, "confidence": CONFIDENCE,
        }  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The summary: {"model", "n_images", "removed", "added", "explainers", "skipped", ...};
        the images' rows are `images_json` (a file of their own for a large audit)."""
        empty = InterventionSummary("", 0, 0, None, None, None, None).to_json()
        return {
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "classes": list(self.class_names),
            "n_images": len(self.images),
            "n_skipped": len(self.skipped),
            "removed": (self.removed.to_json() if self.removed else empty),
            "added": (self.added.to_json() if self.added else empty),
            "explainers": {g.method: explainer_json(g) for g in self.grades},
            "skipped": [s.to_json() for s in self.skipped],
            "settings": self.settings(),
        }

    def images_json(self) -> list[dict[str, Any]]:
        """Every image's values (`ImageRow.to_json`)."""
        return [row.to_json(self.class_names) for row in self.images]


def _margin_interval(rows: Sequence[ImageRow], seed: int) -> tuple[float, float] | None:
    """The paired bootstrap interval of the mean margin change (None under two images or non-finite margins)."""
    pairs = [(r.margin_after, r.margin) for r in rows if r.margin_after is not None]
    if len(pairs) < 2 or not all(math.isfinite(a) and math.isfinite(b) for a, b in pairs):
        return None
    return paired_bootstrap_ci([a for a, _ in pairs], [b for _, b in pairs], seed=seed)


def _summary(name: str, rows: Sequence[ImageRow], seed: int) -> InterventionSummary | None:
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


def _grades(removed: Sequence[ImageRow], methods: Sequence[str]) -> tuple[ExplainerGrades, ...]:
    """Each explainer graded against the measured reliance on the images with the artifact."""
    areas = torch.tensor([r.artifact_area for r in removed], dtype=torch.float64)
    relied = torch.tensor([bool(r.changed) for r in removed], dtype=torch.bool)
    effect = torch.tensor([r.margin_effect or 0.0 for r in removed], dtype=torch.float64)
    out = []
    for method in methods:
        shares = torch.tensor(
            [math.nan if r.shares.get(method) is None else r.shares[method] for r in removed],
            dtype=torch.float64,
        )
        out.append(grade_maps(method, shares, areas, relied, effect, None))
    return tuple(out)


def summarise(
    model: LoadedModel,
    weights: str,
    rows: Sequence[ImageRow],
    *,
    config: AuditConfig,
    batch_size: int,
    skipped: Sequence[Skipped] = (),
    artifact_source: str | None = None,
) -> AuditResult:
    """The audit's result from its rows: the interventions' summaries and the explainers' grades.

    Args:
        model: the network; weights: its `weights_sha256`.
        rows: every image's row; skipped: the images left out, with why.
        config: the settings; batch_size: images per batch as run.
        artifact_source: the image the pasted artifact was cut from (None: nothing pasted).
    """
    ordered = sorted(rows, key=lambda r: r.index)
    removed = [r for r in ordered if r.intervention == "removed"]
    added = [r for r in ordered if r.intervention == "added"]
    return AuditResult(
        model.model_id, weights, tuple(model.class_names), config, tuple(ordered),
        _summary("removed", removed, config.seed), _summary("added", added, config.seed),
        _grades(removed, config.methods), artifact_source,
        tuple(sorted(skipped, key=lambda s: s.index)), batch_size,
    )  # fmt: skip


# --- the images a report shows --------------------------------------------------------------------------

SHOWN_EACH = 6  # images per kind a report shows with pictures
SHOW_ALL = 24  # an audit of at most this many images shows every one


def hides_artifact(row: ImageRow, method: str) -> bool:
    """The map gave the artifact less than its share of the image on an image whose decision its
    removal changed (an empty map counts: it shows nothing)."""
    share = row.shares.get(method)
    return (
        row.intervention == "removed" and bool(row.changed) and (share is None or share < row.artifact_area)
    )


def chosen_images(rows: Sequence[ImageRow], each: int = SHOWN_EACH) -> dict[int, tuple[str, ...]]:
    """The images a report shows with pictures, by index, with why: the most and least affected by
    each intervention (the reference class's margin change, largest and smallest in size) and the
    first images on which a map hid the artifact that decided.

    A pure function of the rows; as rows are added an image once left out never comes back (the
    top of a growing list only grows harder to reach, and "first" never changes), so the pictures
    of the images left out can be dropped as an audit goes.
    """
    why: dict[int, list[str]] = {}
    for intervention, by in (("removed", "removing"), ("added", "pasting")):
        touched = [r for r in rows if r.intervention == intervention and r.margin_effect is not None]
        size = sorted(touched, key=lambda r: (-abs(r.margin_effect or 0.0), r.index))
        for r in size[:each]:
            why.setdefault(r.index, []).append(f"most affected by {by} the artifact")
        for r in sorted(touched, key=lambda r: (abs(r.margin_effect or 0.0), r.index))[:each]:
            why.setdefault(r.index, []).append(f"least affected by {by} the artifact")
    misleading = [r for r in rows if any(hides_artifact(r, m) for m in r.shares)]
    for r in sorted(misleading, key=lambda r: r.index)[:each]:
        why.setdefault(r.index, []).append("a map hid the artifact")
    return {k: tuple(v) for k, v in sorted(why.items())}


def shown_images(
    rows: Sequence[ImageRow], each: int = SHOWN_EACH, all_up_to: int = SHOW_ALL
) -> dict[int, tuple[str, ...]]:
    """The images a report shows with pictures, by index, with why: every one of an audit of at
    most ``all_up_to`` images, else `chosen_images`. Once more than ``all_up_to`` rows are in, an
    image left out never comes back (as for `chosen_images`)."""
    chosen = chosen_images(rows, each)
    if len(rows) > all_up_to:
        return chosen
    return {r.index: chosen.get(r.index, ("one of few images",)) for r in sorted(rows, key=lambda r: r.index)}


__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_METHODS",
    "MAX_BATCH",
    "SHOWN_EACH",
    "SHOW_ALL",
    "AdversarialRow",
    "AdversarialView",
    "AuditConfig",
    "AuditResult",
    "ImageAudit",
    "ImageRow",
    "InterventionSummary",
    "Skipped",
    "chosen_images",
    "explainer_json",
    "hides_artifact",
    "n_misleading",
    "shown_images",
    "summarise",
    "weights_sha256",
]
