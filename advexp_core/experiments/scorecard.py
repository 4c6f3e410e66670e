"""The ground-truth scorecard: does each explainer point at the real evidence or at the shortcut?

On the datasets whose evidence is known pixel by pixel (`advexp_core.groundtruth`: lesions with a
ruler shortcut, BlockDigits), every explainer explains the TRUE class of the first N images of a
split, each map as the project shows it (non-negative, input resolution), and three numbers sum it
up: the share of the map inside the evidence mask, the share inside the shortcut mask, and the
pointing game (does a maximum of the map lie in the evidence?); beside them, the top-k evidence: the
share of the map's k % highest pixels that lie in the evidence (Quantus' TopKIntersection, the
measure of Shah, Jain & Netrapalli 2021, with k as a share of the image's pixels). The same are measured again on
the images an L∞ 2/255 PGD attack flips, for the map of the attacked image and its new class: a map
that noticed the attack should move. "adversarial" is the adversarial explanation of docs/method.md
§2 as a map: the per-pixel RMS over channels of δ toward the class.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from advexp_core.attacks import pgd
from advexp_core.datasets import MaskedImageDataset, TensorImageDataset, load_dataset
from advexp_core.experiments.configs import AttackConfig, ExplanationConfig, SaliencyConfig
from advexp_core.experiments.progress import tick
from advexp_core.experiments.under_attack import gradcam_layer_for, method_kwargs
from advexp_core.explanations import adversarial_explanation
from advexp_core.models import LoadedModel
from advexp_core.reports import config_dict, json_number
from advexp_core.runtime import OnStep
from advexp_core.saliency import METHODS, explain

ADVERSARIAL = "adversarial"
# The order of the table: gradient family, then forward-only, then the paper's explanation.
_PREFERRED = ("gradient", "smoothgrad", "ig", "gradcam", "lime", "occlusion")
SCORECARD_METHODS = (
    *(m for m in _PREFERRED if m in METHODS),
    *(m for m in METHODS if m not in _PREFERRED),
    ADVERSARIAL,
)
METRICS = ("evidence_share", "shortcut_share", "pointing_game")
TOP_K = "top_k_evidence"
# k as a percentage of the image's pixels; 2.5-20 % spans a few strokes to a quadrant of BlockDigits.
TOP_K_PERCENTS = (2.5, 5.0, 10.0, 20.0)
# The shipped ground-truth networks: dataset -> (standard, robust).
GROUND_TRUTH_PAIRS = {
    "lesions": ("lesions-standard", "lesions-robust"),
    "blockdigits": ("blockdigits-standard", "blockdigits-robust"),
}
# Every shipped network the README's scorecard covers: the pairs, with blockdigits-adv-train (PGD
# adversarial training, as Shah et al.'s robust models) between the standard and the robust one.
GROUND_TRUTH_NETWORKS = {
    "lesions": GROUND_TRUTH_PAIRS["lesions"],
    "blockdigits": ("blockdigits-standard", "blockdigits-adv-train", "blockdigits-robust"),
}
_EXPLANATION = ExplanationConfig()


@dataclass(frozen=True)
class ScorecardConfig:
    """What the scorecard measures and how (docs/method.md §2, §4 step 2, §5).

    Attributes:
        dataset: a dataset with ground-truth masks ("lesions" or "blockdigits").
        split: its split ("train", "test"; lesions also "test-unbiased").
        n_images: the first N images of the split are explained.
        methods: explainers from `SCORECARD_METHODS` ("adversarial": the §2 explanation's δ).
        attack: the decision-flipping attack (default PGD, L∞ 2/255, 20 steps); untargeted.
        seed: seed of SmoothGrad's noise (the other saliency settings are `SaliencyConfig`'s).
        rho, steps, overshoot: the adversarial explanation's settings (`ExplanationConfig`'s).
        batch_size: images per batched call.
        accuracy_images: accuracy over the first this-many images of the split; None: all.
        top_k: the k of the top-k evidence, each a percentage of the image's pixels in (0, 100].
    """

    dataset: str = "lesions"
    split: str = "test"
    n_images: int = 100
    methods: tuple[str, ...] = SCORECARD_METHODS
    attack: AttackConfig = field(default_factory=AttackConfig)
    seed: int = 0
    rho: float = _EXPLANATION.rho
    steps: int = _EXPLANATION.steps
    overshoot: float = _EXPLANATION.overshoot
    batch_size: int = 32
    accuracy_images: int | None = None
    top_k: tuple[float, ...] = TOP_K_PERCENTS

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in SCORECARD_METHODS]
        if unknown or not self.methods:
            raise ValueError(
                f"unknown or no explainer {', '.join(unknown) or '(none)'}; "
                f"choose from {', '.join(SCORECARD_METHODS)}."
            )
        if self.n_images < 1:
            raise ValueError(f"n_images must be at least 1, got {self.n_images}.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.accuracy_images is not None and self.accuracy_images < 1:
            raise ValueError(
                f"accuracy_images must be at least 1 (or None: all), got {self.accuracy_images}."
            )
        if not self.top_k or any(not 0 < k <= 100 for k in self.top_k):
            raise ValueError(f"top_k must be percentages in (0, 100], got {list(self.top_k)}.")
        if self.attack.target is not None:
            raise ValueError("the scorecard's attack is untargeted: it flips the decision to any class.")
        ExplanationConfig(rho=self.rho, steps=self.steps, overshoot=self.overshoot)  # checks the settings

    @property
    def saliency(self) -> SaliencyConfig:
        """The saliency methods among `methods`, with the project's default settings and this seed."""
        return SaliencyConfig(methods=tuple(m for m in self.methods if m != ADVERSARIAL), seed=self.seed)


@dataclass(frozen=True)
class ScorecardResult:
    """Each explainer's evidence share, shortcut share and pointing game, clean and attacked.

    Attributes:
        scores: method -> {"clean": per-image numbers, "attacked": per-image numbers}, each
            metric -> (n,) float tensor (NaN where undefined: an empty map, or no shortcut), and
            "top_k_evidence" -> (n, K) for the config's K values of k.
        flipped: (N,) bool, the images a correct decision of which the attack flipped.
        predictions: (N,) the model's class of each clean image.
        config: the settings.
        report: JSON-able, see `scorecard`.
    """

    scores: dict[str, dict[str, dict[str, Tensor]]]
    flipped: Tensor
    predictions: Tensor
    config: ScorecardConfig
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The report, as a fresh JSON-able dict."""
        return copy.deepcopy(self.report)


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
        shares: method -> {metric: value or None}.
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
    shares: dict[str, dict[str, float | None]]
    toward: int
    explanation: Tensor
    delta: Tensor
    delta_shares: dict[str, float | None]
    valid: bool


# --- the numbers -------------------------------------------------------------------------------


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


def _mean(values: Tensor) -> float | None:
    """The mean of the finite values, None when there is none."""
    finite = values[torch.isfinite(values)]
    return json_number(finite.mean()) if finite.numel() else None


def _summary(shares: dict[str, Tensor]) -> dict[str, float | None]:
    return {name: _mean(shares[name]) for name in METRICS}


def _top_k_summary(top_k: Tensor, k_percents: tuple[float, ...]) -> dict[str, float | None]:
    """{"2.5": mean over the images, ...} from per-image (N, K) top-k evidence."""
    return {f"{k:g}": _mean(top_k[:, j]) for j, k in enumerate(k_percents)}


def chance_levels(evidence: Tensor, shortcut: Tensor | None) -> dict[str, float | None]:
    """What a uniform map would score: the mean mask area share (shortcut: over images that have one).

    Shapes: masks (N, H, W) bool.
    """
    ev = _mean(evidence.flatten(1).float().mean(1))
    if shortcut is None:
        return {"evidence": ev, "shortcut": None}
    area = shortcut.flatten(1).float().mean(1)
    return {"evidence": ev, "shortcut": _mean(area[shortcut.flatten(1).any(1)])}


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


# --- the maps ----------------------------------------------------------------------------------


def explanation_maps(
    model: LoadedModel, images: Tensor, targets: Tensor, method: str, config: ScorecardConfig
) -> Tensor:
    """One method's non-negative maps of ``images`` for ``targets``, in batches (no lock taken).

    "adversarial" is RMS over channels of the adversarial explanation's δ toward the target
    (docs/method.md §2), one image at a time; every other method is `saliency.explain`.

    Shapes: images (N, 3, H, W), targets (N,) -> (N, H, W) on the CPU.
    """
    out: list[Tensor] = []
    if method == ADVERSARIAL:
        out = [_adversarial_map(model, x, [int(t)], config)[0] for x, t in zip(images, targets, strict=True)]
        return torch.cat(out) if out else torch.zeros(0, *images.shape[2:])
    kwargs = method_kwargs(method, config.saliency, gradcam_layer_for(model, (method,)))
    for start in range(0, len(images), config.batch_size):
        chunk = slice(start, start + config.batch_size)
        x = images[chunk].to(model.device)
        out.append(explain(model.module, x, targets[chunk], method=method, **kwargs).maps.detach().cpu())
    return torch.cat(out) if out else torch.zeros(0, *images.shape[2:])


def _adversarial_map(
    model: LoadedModel, image: Tensor, targets: list[int], config: ScorecardConfig
) -> tuple[Tensor, tuple[Any, ...]]:
    """RMS over channels of δ toward each target (one batch), and the `TargetExplanation`s.

    Shapes: image (3, H, W) -> maps (T, H, W).
    """
    result = adversarial_explanation(
        model.module, image.to(model.device), targets, class_names=model.class_names,
        model_id=model.model_id, rho=config.rho, steps=config.steps, overshoot=config.overshoot,
    )  # fmt: skip
    return result.deltas.detach().float().cpu().pow(2).mean(1).sqrt(), result.targets


# --- the experiment ----------------------------------------------------------------------------


def scorecard_dataset(config: ScorecardConfig) -> MaskedImageDataset:
    """The config's dataset and split with their masks (DatasetError, a ValueError: unknown split)."""
    data = load_dataset(config.dataset, config.split, with_masks=True)
    if not isinstance(data, MaskedImageDataset):  # load_dataset refuses masks elsewhere already
        raise ValueError(f"dataset {config.dataset!r} has no ground-truth masks.")
    return data


def check_fit(model: LoadedModel, dataset: MaskedImageDataset, config: ScorecardConfig) -> None:
    """ValueError when the model, the dataset and the config do not go together."""
    if config.n_images > len(dataset):
        raise ValueError(
            f"The number of images ({config.n_images}) is larger than the {dataset.name} {dataset.split} split "
            f"({len(dataset)} images)."
        )
    if model.num_classes != len(dataset.class_names):
        raise ValueError(
            f"{model.model_id} has {model.num_classes} classes but {dataset.name} has "
            f"{len(dataset.class_names)} ({', '.join(dataset.class_names)})."
        )
    size = tuple(dataset.images.shape[2:])
    if tuple(model.input_size) != size:
        raise ValueError(
            f"{model.model_id} takes {model.input_size[0]}x{model.input_size[1]} images but "
            f"{dataset.name} images are {size[0]}x{size[1]}; the masks are only exact at that size."
        )


def _masks(dataset: MaskedImageDataset, n: int) -> tuple[Tensor, Tensor | None]:
    shortcut = dataset.masks.get("shortcut")
    return dataset.masks["evidence"][:n], None if shortcut is None else shortcut[:n]


def scorecard(
    model: LoadedModel,
    dataset: MaskedImageDataset,
    config: ScorecardConfig,
    *,
    on_step: OnStep | None = None,
) -> ScorecardResult:
    """Score every explainer against the ground truth, before and after a decision-flipping attack.

    Each map explains the TRUE class of the first N images; the attacked maps explain each flipped
    image's new class. The attack is untargeted away from the true class and counts only where it
    flips a correct decision (an image already misclassified has no decision to flip).

    Args:
        model: the network; its lock is held once for the whole run (Grad-CAM hooks it).
        dataset: a split with masks (`scorecard_dataset`); its images at the model's input size.
        config: the images, explainers, attack and explanation settings.
        on_step: called as on_step(done, total), counted in images explained (accuracy: 1 per 50).

    Returns:
        ScorecardResult; its report: {"model", "dataset", "split", "n_images", "image_indices",
        "accuracy", "accuracy_images", "chance": {"evidence", "shortcut"}, "top_k_pixels": {k:
        count}, "attack": {..., "correct", "flipped"}, "explainers": {name: {"evidence_share",
        "shortcut_share", "pointing_game", "top_k_evidence": {k: share}, "attacked": {the same,
        "n_images"}}}, "settings"}; k is written as "2.5", "5", "10", "20".

    Raises:
        ValueError: N larger than the split, classes or image size that do not match the model.

    Shapes: dataset images (M, 3, H, W), masks (M, H, W) -> per-image numbers (N,).
    """
    check_fit(model, dataset, config)
    n = config.n_images
    images, labels = dataset.images[:n], dataset.labels[:n]
    evidence, shortcut = _masks(dataset, n)
    n_acc = len(dataset) if config.accuracy_images is None else min(config.accuracy_images, len(dataset))
    acc_units = max(1, n_acc // 50)  # a forward pass per image: about 1/50 of the work of explaining one
    total = acc_units + n + 2 * n * len(config.methods)
    with model.lock:  # one run at a time per shared model: Grad-CAM hooks the shared module
        accuracy = split_accuracy(model, dataset, n_acc, batch_size=config.batch_size)
        tick(on_step, acc_units, total)
        adversarial, predictions, flipped = _flip(model, images, labels, config)
        done = acc_units + n
        tick(on_step, done, total)
        scores: dict[str, dict[str, dict[str, Tensor]]] = {}
        for method in config.methods:
            clean = explanation_maps(model, images, labels, method, config)
            done += n
            tick(on_step, done, total)
            new_class = predictions["attacked"][flipped]
            attacked = explanation_maps(model, adversarial[flipped], new_class, method, config)
            done += n
            tick(on_step, done, total)
            scores[method] = {
                "clean": {
                    **mask_shares(clean, evidence, shortcut),
                    TOP_K: top_k_evidence(clean, evidence, config.top_k),
                },
                "attacked": {
                    **mask_shares(
                        attacked, evidence[flipped], None if shortcut is None else shortcut[flipped]
                    ),
                    TOP_K: top_k_evidence(attacked, evidence[flipped], config.top_k),
                },
            }
    report = _report(model, dataset, config, accuracy, n_acc, scores, predictions["clean"], labels, flipped)
    return ScorecardResult(scores, flipped, predictions["clean"], config, report)


def split_accuracy(
    model: LoadedModel, dataset: TensorImageDataset, n: int | None = None, *, batch_size: int = 32
) -> float:
    """Top-1 accuracy over the first ``n`` images of a held-in-memory split (None: all). No lock taken.

    Shapes: dataset images (M, 3, H, W) at the model's input size.
    """
    n = len(dataset) if n is None else n
    correct = 0
    with torch.no_grad():
        for start in range(0, n, 4 * batch_size):
            stop = min(n, start + 4 * batch_size)
            logits = model.module(dataset.images[start:stop].to(model.device))
            correct += int((logits.argmax(1).cpu() == dataset.labels[start:stop]).sum())
    return correct / max(n, 1)


def _flip(
    model: LoadedModel, images: Tensor, labels: Tensor, config: ScorecardConfig
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """The attacked images, the clean and attacked classes, and which correct decisions flipped.

    Shapes: images (N, 3, H, W) -> adversarial (N, 3, H, W) on the CPU, classes (N,), flipped (N,).
    """
    attack, size = config.attack, model.input_size
    parts, before, after = [], [], []
    for start in range(0, len(images), config.batch_size):
        chunk = slice(start, start + config.batch_size)
        result = pgd(
            model.module, images[chunk].to(model.device), labels[chunk].to(model.device),
            eps=attack.eps(size), steps=attack.effective_steps, step_size=attack.effective_step_size(size),
            norm=attack.norm, random_start=attack.random_start,
            generator=torch.Generator().manual_seed(attack.seed + start),
        )  # fmt: skip
        parts.append(result.adversarial.detach().cpu())
        before.append(result.logits_before.argmax(1).cpu())
        after.append(result.logits_after.argmax(1).cpu())
    clean, attacked = torch.cat(before), torch.cat(after)
    flipped = (clean == labels) & (attacked != labels)
    return torch.cat(parts), {"clean": clean, "attacked": attacked}, flipped


def _report(
    model: LoadedModel,
    dataset: MaskedImageDataset,
    config: ScorecardConfig,
    accuracy: float,
    n_acc: int,
    scores: dict[str, dict[str, dict[str, Tensor]]],
    predictions: Tensor,
    labels: Tensor,
    flipped: Tensor,
) -> dict[str, Any]:
    n = config.n_images
    evidence, shortcut = _masks(dataset, n)
    top_k = config.top_k
    explainers = {
        method: {
            **_summary(s["clean"]),
            TOP_K: _top_k_summary(s["clean"][TOP_K], top_k),
            "attacked": {
                **_summary(s["attacked"]),
                TOP_K: _top_k_summary(s["attacked"][TOP_K], top_k),
                "n_images": int(flipped.sum()),
            },
        }
        for method, s in scores.items()
    }
    attack = config.attack
    return {
        "model": model.model_id,
        "dataset": dataset.name,
        "split": dataset.split,
        "n_images": n,
        "image_indices": list(range(n)),
        "accuracy": accuracy,
        "accuracy_images": n_acc,
        "accuracy_on": "all images of the split" if n_acc == len(dataset) else f"the first {n_acc} images",
        "accuracy_first_n": float((predictions == labels).float().mean()),
        "chance": chance_levels(evidence, shortcut),
        "top_k_pixels": {f"{k:g}": top_k_count(k, evidence[0].numel()) for k in top_k},
        "attack": {
            "method": attack.method,
            "norm": attack.norm,
            "eps_255": attack.eps_255,
            "steps": attack.effective_steps,
            "correct": int((predictions == labels).sum()),
            "flipped": int(flipped.sum()),
            "flipped_indices": torch.nonzero(flipped).flatten().tolist(),
        },  # fmt: skip
        "explainers": explainers,
        "settings": config_dict(config),
    }


def ground_truth_example(
    model: LoadedModel,
    image: Tensor,
    label: int,
    masks: dict[str, Tensor],
    config: ScorecardConfig,
    *,
    toward: int | None = None,
    on_step: OnStep | None = None,
) -> GroundTruthExample:
    """One image on one network: every explainer for the true class, with its mask shares, and the
    adversarial explanation toward ``toward`` (default: the other class of a binary task, else the
    runner-up) with the share of δ's energy inside each mask.

    Args:
        model: the network; its lock is held once for the run.
        image: x in [0, 1] at the model's input size.
        label: the true class.
        masks: "evidence" and optionally "shortcut", (H, W) bool.
        config: the explainers and their settings (n_images, split and attack are not used).
        toward: the class to push toward; None: see above.
        on_step: called as on_step(done, total), one per method and one for the explanations.

    Shapes: image (3, H, W), masks (H, W) -> maps (H, W).
    """
    if not 0 <= label < model.num_classes:
        raise ValueError(f"Class {label} does not exist for this model (0..{model.num_classes - 1}).")
    x = image.to(model.device)[None]
    methods = [m for m in config.methods if m != ADVERSARIAL]
    total = len(methods) + 1
    with model.lock:  # one run at a time per shared model: Grad-CAM hooks the shared module
        with torch.no_grad():
            probabilities = torch.softmax(model.module(x)[0].float(), 0).cpu()
        maps = {}
        for k, method in enumerate(methods, start=1):
            maps[method] = explanation_maps(model, x, torch.tensor([label]), method, config)[0]
            tick(on_step, k, total)
        goal = _toward(probabilities, label) if toward is None else int(toward)
        rms, explained = _adversarial_map(model, x[0], [label, goal], config)  # one batch for both
        tick(on_step, total, total)
    if ADVERSARIAL in config.methods:
        maps[ADVERSARIAL] = rms[0]
    shortcut = masks.get("shortcut")
    shares = {
        m: _summary(
            mask_shares(v[None], masks["evidence"][None], None if shortcut is None else shortcut[None])
        )
        for m, v in maps.items()
    }
    pushed = explained[1]
    return GroundTruthExample(
        image.detach().cpu(), label, masks, probabilities, maps, shares, goal, pushed.explanation.cpu(),
        pushed.delta.cpu(), delta_energy_shares(pushed.delta, masks), pushed.valid,
    )  # fmt: skip


def _toward(probabilities: Tensor, label: int) -> int:
    """The other class of a binary task; else the most probable class that is not ``label``."""
    order = [int(c) for c in probabilities.argsort(descending=True) if int(c) != label]
    return order[0]


# --- the figure --------------------------------------------------------------------------------


def scorecard_figure(results: list[dict[str, Any]]) -> Figure:
    """Bars of each explainer's evidence and shortcut shares, clean and attacked, one panel per
    report, with the chance levels as dotted lines (reports of `scorecard`)."""
    fig = Figure(
        figsize=(4.0 + 1.1 * len(results[0]["explainers"]), 3.2 * len(results)), layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(results), 1, squeeze=False)[:, 0]
    for ax, report in zip(axes, results, strict=True):
        names = list(report["explainers"])
        bars = (
            ("evidence, clean", lambda e: e["evidence_share"], "#2a7f3f"),
            ("evidence, attacked", lambda e: e["attacked"]["evidence_share"], "#9ed3a8"),
            ("shortcut, clean", lambda e: e["shortcut_share"], "#b8860b"),
            ("shortcut, attacked", lambda e: e["attacked"]["shortcut_share"], "#f0d78c"),
        )
        width = 0.8 / len(bars)
        for k, (label, get, colour) in enumerate(bars):
            values = [get(report["explainers"][m]) for m in names]
            if all(v is None for v in values):
                continue
            xs = [i + (k - 1.5) * width for i in range(len(names))]
            ax.bar(xs, [math.nan if v is None else v for v in values], width, label=label, color=colour)
        for key, colour in (("evidence", "#2a7f3f"), ("shortcut", "#b8860b")):
            level = report["chance"][key]
            if level is not None:
                ax.axhline(level, color=colour, linestyle=":", linewidth=1.2)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of the map")
        ax.set_title(
            f"{report['model']} on {report['dataset']} {report['split']}, N = {report['n_images']} "
            f"(accuracy {report['accuracy']:.3f}; attack flipped {report['attack']['flipped']}); dotted: chance",
            fontsize=9,
        )
        ax.legend(fontsize=7, ncols=2)
    return fig
