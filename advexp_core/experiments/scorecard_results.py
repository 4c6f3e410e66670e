"""The ground-truth scorecard's settings and its results, as frozen records.

`ScorecardConfig` composes the attack, saliency and explanation settings; `ScorecardResult` holds
each explainer's `ExplainerScore` (clean and attacked `TopKShares`, and the per-image numbers) and
makes the JSON of the CLI, the page's download and checkpoints/scorecard.json once, in ``to_json``. The
experiment itself is `advexp_core.experiments.scorecard`.

Every mean comes with its 95 % interval (docs/method.md §9): the shares (evidence, shortcut, top-k)
a seeded BCa bootstrap over images, the pointing game, the accuracies and the attack's flips, each a
share of images, their Wilson interval; the JSON writes each as ``<name>_ci: [low, high]`` beside it,
and keeps the per-image numbers (``images``) so that a comparison of two networks on the same images
can be made later (`advexp_core.experiments.headline`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import JsonObject
from advexp_core.base.statistics import BOOTSTRAP_RESAMPLES, CONFIDENCE, wilson_interval
from advexp_core.evaluation.reliance_grades import Interval, mean_interval
from advexp_core.experiments.configs import AttackConfig, SaliencyConfig, check_methods
from advexp_core.experiments.report import config_dict
from advexp_core.measures.mask_metrics import (
    METRICS,
    TOP_K_PERCENTS,
    mask_shares,
    mean_finite,
    top_k_evidence,
)
from advexp_core.methods.explanations import ExplanationSettings
from advexp_core.methods.saliency import EXPLAINERS

if TYPE_CHECKING:  # reliance_grades builds on the scorecard's maps; the grades are attached later
    from advexp_core.evaluation.reliance_grades import RelianceGrades

BOOTSTRAP_SEED = 0
"""The seed of the scorecard's bootstraps over images (`ScorecardConfig.bootstrap_seed`)."""
PER_IMAGE_DIGITS = 6  # the per-image numbers in the JSON: enough for a share, a third of the text

ADVERSARIAL = "adversarial"
# The order of the table: gradient family, then forward-only, then the paper's explanation.
_PREFERRED = ("gradient", "smoothgrad", "ig", "gradcam", "lime", "occlusion")
SCORECARD_METHODS = (
    *(m for m in _PREFERRED if m in EXPLAINERS and EXPLAINERS[m].saliency),
    *(m for m, e in EXPLAINERS.items() if e.saliency and m not in _PREFERRED),
    ADVERSARIAL,
)
TOP_K = "top_k_evidence"


@dataclass(frozen=True)
class ScorecardConfig:
    """What the scorecard measures and how (docs/method.md §2, §4 step 2, §5).

    Attributes:
        dataset: a dataset with ground-truth masks ("lesions" or "blockdigits").
        split: its split ("train", "test"; lesions also "test-unbiased").
        n_images: the first N images of the split are explained.
        methods: explainers from `SCORECARD_METHODS` ("adversarial": the §2 explanation's δ).
        attack: the decision-flipping attack (default PGD, L∞ 2/255, 20 steps); untargeted.
        saliency: the saliency explainers' settings (its ``methods`` are not read: ``methods`` says
            which explainers run).
        explanation: the adversarial explanation's settings.
        batch_size: images per batched call.
        accuracy_images: accuracy over the first this-many images of the split; None: all.
        top_k: the k of the top-k evidence, each a percentage of the image's pixels in (0, 100].
        seed: None, or SmoothGrad's seed, which then replaces ``saliency.seed`` (a shorthand).
        bootstrap_seed: the seed of the shares' bootstrap intervals over images.
    """

    dataset: str = "lesions"
    split: str = "test"
    n_images: int = 100
    methods: tuple[str, ...] = SCORECARD_METHODS
    attack: AttackConfig = field(default_factory=AttackConfig)
    saliency: SaliencyConfig = field(default_factory=lambda: SaliencyConfig(methods=()))
    explanation: ExplanationSettings = field(default_factory=ExplanationSettings)
    batch_size: int = 32
    accuracy_images: int | None = None
    top_k: tuple[float, ...] = TOP_K_PERCENTS
    seed: int | None = None
    bootstrap_seed: int = BOOTSTRAP_SEED

    def __post_init__(self) -> None:
        check_methods(self.methods, SCORECARD_METHODS, what="explainer")
        if self.n_images < 1:
            raise ValueError(f"the number of images must be at least 1, got {self.n_images}.")
        if self.batch_size < 1:
            raise ValueError(f"the batch size must be at least 1, got {self.batch_size}.")
        if self.accuracy_images is not None and self.accuracy_images < 1:
            raise ValueError(
                f"the images for the accuracy must be at least 1 (or all), got {self.accuracy_images}."
            )
        if not self.top_k or any(not 0 < k <= 100 for k in self.top_k):
            raise ValueError(f"top-k must be percentages in (0, 100], got {list(self.top_k)}.")
        if self.attack.target is not None:
            raise ValueError("the scorecard's attack is untargeted: it flips the decision to any class.")
        if self.seed is not None and self.seed != self.saliency.seed:
            object.__setattr__(self, "saliency", dataclasses.replace(self.saliency, seed=self.seed))

    def settings(self, method: str) -> object:
        """The settings `advexp_core.methods.saliency.make_map` takes for one of `methods`."""
        return self.explanation if method == ADVERSARIAL else self.saliency.settings(method)


# --- the records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shares:
    """Where one map, or the mean of several, falls: None where undefined (an empty map, no shortcut).

    Attributes:
        evidence_share: the share of the map inside the evidence mask.
        shortcut_share: the share inside the shortcut mask (images that have one).
        pointing_game: 1 when a maximum of the map lies in the evidence (a mean: the share of images).
    """

    evidence_share: float | None
    shortcut_share: float | None
    pointing_game: float | None

    def to_json(self) -> JsonObject:
        return {name: getattr(self, name) for name in METRICS}


def _ci(interval: Interval | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


@dataclass(frozen=True)
class TopKShares(Shares):
    """`Shares` (means over images) with the top-k evidence, and each mean's 95 % interval.

    Attributes:
        top_k_evidence: k (as written, "2.5", "5", ...) -> mean share.
        intervals: "evidence_share", "shortcut_share", "pointing_game" -> interval (absent: undefined).
        top_k_intervals: k -> the interval of its mean.
    """

    top_k_evidence: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, Interval] = field(default_factory=dict)
    top_k_intervals: dict[str, Interval] = field(default_factory=dict)

    def interval(self, name: str) -> Interval | None:
        """The 95 % interval of one of `METRICS` (None where undefined)."""
        return self.intervals.get(name)

    def to_json(self) -> JsonObject:
        out: JsonObject = {}
        for name in METRICS:
            out[name] = getattr(self, name)
            out[f"{name}_ci"] = _ci(self.interval(name))
        out[TOP_K] = dict(self.top_k_evidence)
        out[f"{TOP_K}_ci"] = {k: _ci(self.top_k_intervals.get(k)) for k in self.top_k_evidence}
        return out


@dataclass(frozen=True)
class ImageShares:
    """One explainer's numbers per image (NaN where undefined).

    Shapes: evidence_share, shortcut_share, pointing_game (n,); top_k_evidence (n, K).
    """

    evidence_share: Tensor
    shortcut_share: Tensor
    pointing_game: Tensor
    top_k_evidence: Tensor

    def mean(self, k_percents: tuple[float, ...], *, seed: int = BOOTSTRAP_SEED) -> TopKShares:
        """The means over the images (finite values only) with their intervals: the shares' BCa
        bootstrap over images (seeded), the pointing game's Wilson interval."""
        top = {f"{k:g}": mean_finite(self.top_k_evidence[:, j]) for j, k in enumerate(k_percents)}
        top_ci = {
            f"{k:g}": mean_interval(self.top_k_evidence[:, j], seed=seed) for j, k in enumerate(k_percents)
        }
        means = {name: mean_finite(getattr(self, name)) for name in METRICS}
        intervals = {
            "evidence_share": mean_interval(self.evidence_share, seed=seed),
            "shortcut_share": mean_interval(self.shortcut_share, seed=seed),
            "pointing_game": _pointing_interval(self.pointing_game),
        }
        return TopKShares(
            **means,
            top_k_evidence=top,
            intervals={k: v for k, v in intervals.items() if v is not None},
            top_k_intervals={k: v for k, v in top_ci.items() if v is not None},
        )

    def to_json(self) -> JsonObject:
        """The per-image numbers (null where undefined), in the images' order."""
        return {name: _per_image(getattr(self, name)) for name in METRICS}


def _pointing_interval(hits: Tensor) -> Interval | None:
    """The Wilson interval of the pointing game: maps whose maximum lies in the evidence, of the images."""
    finite = hits[torch.isfinite(hits)]
    return wilson_interval(int((finite > 0.5).sum()), finite.numel()) if finite.numel() else None


def _per_image(values: Tensor) -> list[float | None]:
    return [
        round(v, PER_IMAGE_DIGITS) if math.isfinite(v) else None for v in values.detach().double().tolist()
    ]


def image_shares(
    maps: Tensor, evidence: Tensor, shortcut: Tensor | None, k: tuple[float, ...]
) -> ImageShares:
    """`mask_shares` and `top_k_evidence` of maps. Shapes: maps, masks (n, H, W)."""
    return ImageShares(
        **mask_shares(maps, evidence, shortcut), top_k_evidence=top_k_evidence(maps, evidence, k)
    )


@dataclass(frozen=True)
class ExplainerScore:
    """One explainer's scores: clean (the first N images, true class) and attacked (the flipped
    images, new class).

    Attributes:
        method: the explainer.
        clean, attacked: the means.
        n_attacked: how many flipped images the attacked means are over.
        clean_images, attacked_images: the per-image numbers.
    """

    method: str
    clean: TopKShares
    attacked: TopKShares
    n_attacked: int
    clean_images: ImageShares
    attacked_images: ImageShares

    def to_json(self) -> JsonObject:
        """The means with their intervals; ``images``: the per-image numbers (clean: the first N images;
        attacked: the flipped images, in the order of ``attack.flipped_indices``)."""
        attacked = {
            **self.attacked.to_json(),
            "n_images": self.n_attacked,
            "images": self.attacked_images.to_json(),
        }
        return {**self.clean.to_json(), "images": self.clean_images.to_json(), "attacked": attacked}


@dataclass(frozen=True)
class Chance:
    """What a uniform map would score: the mean evidence area; the shortcut's over images with one."""

    evidence: float | None
    shortcut: float | None


@dataclass(frozen=True)
class FlipSummary:
    """The decision-flipping attack as it ran, and what it flipped.

    Attributes:
        method, norm, eps_255, steps: the attack.
        correct: clean decisions that were right; flipped: those the attack changed.
        flipped_indices: the images it flipped.
    """

    method: str
    norm: str
    eps_255: float
    steps: int
    correct: int
    flipped: int
    flipped_indices: tuple[int, ...]

    @property
    def flipped_ci(self) -> Interval | None:
        """The Wilson interval of the share of correct decisions flipped (None without any)."""
        return wilson_interval(self.flipped, self.correct) if self.correct else None


@dataclass(frozen=True)
class ScorecardResult:
    """Each explainer's evidence share, shortcut share and pointing game, clean and attacked.

    Attributes:
        model, dataset, split: what was scored.
        accuracy: top-1 accuracy over ``accuracy_images`` images of the split (``accuracy_on`` says
            which); accuracy_first_n: over the N scored images.
        chance: what a uniform map would score.
        top_k_pixels: k (as written) -> pixel count of the top k %.
        attack: the attack and its flips.
        explainers: method -> its scores, in the config's order.
        flipped: (N,) bool, the images a correct decision of which the attack flipped.
        predictions: (N,) the model's class of each clean image.
        config: the settings.
        grades: the explainers' reliance grades against a control (None: not graded;
            `advexp_core.experiments.scorecard_grades`).
    """

    model: str
    dataset: str
    split: str
    accuracy: float
    accuracy_images: int
    accuracy_on: str
    accuracy_first_n: float
    chance: Chance
    top_k_pixels: dict[str, int]
    attack: FlipSummary
    explainers: dict[str, ExplainerScore]
    flipped: Tensor
    predictions: Tensor
    config: ScorecardConfig
    grades: RelianceGrades | None = None

    @property
    def n_images(self) -> int:
        return self.config.n_images

    @property
    def accuracy_ci(self) -> Interval:
        """The Wilson interval of the accuracy over ``accuracy_images`` images."""
        return wilson_interval(round(self.accuracy * self.accuracy_images), self.accuracy_images)

    @property
    def accuracy_first_n_ci(self) -> Interval:
        """The Wilson interval of the accuracy over the N scored images."""
        return wilson_interval(round(self.accuracy_first_n * self.n_images), self.n_images)

    def to_json(self) -> JsonObject:
        """The JSON of the CLI's result.json, the page's download and checkpoints/scorecard.json; k is
        written as "2.5", "5", "10", "20"."""
        out = {
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "n_images": self.n_images,
            "image_indices": list(range(self.n_images)),
            "accuracy": self.accuracy,
            "accuracy_ci": _ci(self.accuracy_ci),
            "accuracy_images": self.accuracy_images,
            "accuracy_on": self.accuracy_on,
            "accuracy_first_n": self.accuracy_first_n,
            "accuracy_first_n_ci": _ci(self.accuracy_first_n_ci),
            "chance": dataclasses.asdict(self.chance),
            "top_k_pixels": dict(self.top_k_pixels),
            "attack": {
                **dataclasses.asdict(self.attack),
                "flipped_ci": _ci(self.attack.flipped_ci),
                "flipped_indices": list(self.attack.flipped_indices),
            },
            "explainers": {m: s.to_json() for m, s in self.explainers.items()},
            "settings": config_dict(self.config),
            "intervals": intervals_note(self.config.bootstrap_seed),
        }
        if self.grades is not None:
            out["reliance_grades"] = self.grades.to_json()
        return out

    def to_dict(self) -> JsonObject:
        """`to_json` under its former name."""
        return self.to_json()


def intervals_note(seed: int) -> JsonObject:
    """How the JSON's ``_ci`` fields were computed (docs/method.md §9)."""
    return {
        "confidence": CONFIDENCE,
        "shares": f"BCa bootstrap over images of the mean ({BOOTSTRAP_RESAMPLES} resamples)",
        "rates": "Wilson score interval (pointing game, accuracy, flips, misleading rate)",
        "bootstrap_seed": seed,
    }


@dataclass(frozen=True)
class GroundTruthExample:
    """One image explained on one network: every map for the true class, its shares, and the
    adversarial explanation toward another class with the share of δ's energy in each mask.

    Attributes:
        image: x in [0, 1] (3, H, W) on the CPU.
        label: the true class.
        masks: "evidence" and (lesions) "shortcut", (H, W) bool.
        probabilities: softmax at x (C,).
        maps: method -> (H, W) map of the true class.
        shares: method -> where its map falls.
        toward: the class the adversarial explanation pushes toward.
        explanation: x+δ clamped to [0, 1] (3, H, W).
        delta: δ (3, H, W).
        delta_shares: {"evidence", "shortcut"}: share of Σδ² inside each mask (None: no such mask).
        valid: the explanation reached its budget by step S/2 (docs/method.md §2).
    """

    image: Tensor
    label: int
    masks: dict[str, Tensor]
    probabilities: Tensor
    maps: dict[str, Tensor]
    shares: dict[str, Shares]
    toward: int
    explanation: Tensor
    delta: Tensor
    delta_shares: dict[str, float | None]
    valid: bool
