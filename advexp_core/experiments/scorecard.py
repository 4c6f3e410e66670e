"""The ground-truth scorecard: does each explainer point at the real evidence or at the shortcut?

On the datasets whose evidence is known pixel by pixel (`advexp_core.data.groundtruth`: lesions with a
ruler shortcut, BlockDigits), every explainer explains the TRUE class of the first N images of a
split, each map as the project shows it (non-negative, input resolution), and three numbers sum it
up (`advexp_core.measures.mask_metrics`): the share of the map inside the evidence mask, the share inside the
shortcut mask, and the pointing game (does a maximum of the map lie in the evidence?); beside them,
the top-k evidence: the share of the map's k % highest pixels that lie in the evidence (Quantus'
TopKIntersection, the measure of Shah, Jain & Netrapalli 2021, with k as a share of the image's
pixels). The same are measured again on the images an L∞ 2/255 PGD attack flips, for the map of the
attacked image and its new class: a map that noticed the attack should move. "adversarial" is the
adversarial explanation of docs/method.md §2 as a map (the explainer registry's entry).
"""

from __future__ import annotations

import torch
from torch import Tensor

from advexp_core.base.runtime import OnStep
from advexp_core.data.datasets import MaskedImageDataset, TensorImageDataset, load_dataset
from advexp_core.experiments.maps import check_class, method_maps
from advexp_core.experiments.progress import tick
from advexp_core.experiments.scorecard_results import (
    ADVERSARIAL,
    Chance,
    ExplainerScore,
    FlipSummary,
    GroundTruthExample,
    ScorecardConfig,
    ScorecardResult,
    Shares,
    image_shares,
)
from advexp_core.measures.mask_metrics import (
    chance_levels,
    delta_energy_shares,
    mask_shares,
    mean_finite,
    top_k_count,
)
from advexp_core.methods.attacks import pgd
from advexp_core.methods.explanations import adversarial_explanation
from advexp_core.networks.registry import LoadedModel

__all__ = [
    "check_fit",
    "explanation_maps",
    "ground_truth_example",
    "scorecard",
    "scorecard_dataset",
    "split_accuracy",
]


# --- the maps ----------------------------------------------------------------------------------


def explanation_maps(
    model: LoadedModel, images: Tensor, targets: Tensor, method: str, config: ScorecardConfig
) -> Tensor:
    """One method's non-negative maps of ``images`` for ``targets``, in batches (no lock taken),
    through the explainer registry with the config's settings.

    Shapes: images (N, 3, H, W), targets (N,) -> (N, H, W) on the CPU.
    """
    return method_maps(model, images, targets, method, config.settings(method), batch_size=config.batch_size)


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
        ScorecardResult (``to_json`` for its JSON).

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
        explainers: dict[str, ExplainerScore] = {}
        for method in config.methods:
            clean = image_shares(
                explanation_maps(model, images, labels, method, config), evidence, shortcut, config.top_k
            )
            tick(on_step, done := done + n, total)
            new_class = predictions["attacked"][flipped]
            maps = explanation_maps(model, adversarial[flipped], new_class, method, config)
            attacked = image_shares(
                maps, evidence[flipped], None if shortcut is None else shortcut[flipped], config.top_k
            )
            tick(on_step, done := done + n, total)
            explainers[method] = ExplainerScore(
                method,
                clean.mean(config.top_k, seed=config.bootstrap_seed),
                attacked.mean(config.top_k, seed=config.bootstrap_seed),
                int(flipped.sum()),
                clean,
                attacked,
            )
    correct = predictions["clean"] == labels
    attack = config.attack
    return ScorecardResult(
        model=model.model_id,
        dataset=dataset.name,
        split=dataset.split,
        accuracy=accuracy,
        accuracy_images=n_acc,
        accuracy_on="all images of the split" if n_acc == len(dataset) else f"the first {n_acc} images",
        accuracy_first_n=float(correct.float().mean()),
        chance=Chance(**chance_levels(evidence, shortcut)),
        top_k_pixels={f"{k:g}": top_k_count(k, evidence[0].numel()) for k in config.top_k},
        attack=FlipSummary(
            attack.method,
            attack.norm,
            attack.eps_255,
            attack.effective_steps,
            int(correct.sum()),
            int(flipped.sum()),
            tuple(torch.nonzero(flipped).flatten().tolist()),
        ),
        explainers=explainers,
        flipped=flipped,
        predictions=predictions["clean"],
        config=config,
    )


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
            model.module,
            images[chunk].to(model.device),
            labels[chunk].to(model.device),
            eps=attack.eps(size),
            steps=attack.effective_steps,
            step_size=attack.effective_step_size(size),
            norm=attack.norm,
            random_start=attack.random_start,
            generator=torch.Generator().manual_seed(attack.seed + start),
        )
        parts.append(result.adversarial.detach().cpu())
        before.append(result.logits_before.argmax(1).cpu())
        after.append(result.logits_after.argmax(1).cpu())
    clean, attacked = torch.cat(before), torch.cat(after)
    flipped = (clean == labels) & (attacked != labels)
    return torch.cat(parts), {"clean": clean, "attacked": attacked}, flipped


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
    check_class(model, label)
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
        settings = config.explanation
        explained = adversarial_explanation(  # one batch for both: the map row and the push
            model.module,
            x[0],
            [label, goal],
            class_names=model.class_names,
            model_id=model.model_id,
            rho=settings.rho,
            steps=settings.steps,
            overshoot=settings.overshoot,
        )
        tick(on_step, total, total)
    if ADVERSARIAL in config.methods:
        maps[ADVERSARIAL] = explained.deltas[0].detach().float().cpu().pow(2).mean(0).sqrt()
    shortcut = masks.get("shortcut")
    shares = {
        m: Shares(
            **{
                k: mean_finite(v)
                for k, v in mask_shares(
                    v[None], masks["evidence"][None], None if shortcut is None else shortcut[None]
                ).items()
            }
        )
        for m, v in maps.items()
    }
    pushed = explained.targets[1]
    return GroundTruthExample(
        image.detach().cpu(),
        label,
        masks,
        probabilities,
        maps,
        shares,
        goal,
        pushed.explanation.cpu(),
        pushed.delta.cpu(),
        delta_energy_shares(pushed.delta, masks),
        pushed.valid,
    )


def _toward(probabilities: Tensor, label: int) -> int:
    """The other class of a binary task; else the most probable class that is not ``label``."""
    order = [int(c) for c in probabilities.argsort(descending=True) if int(c) != label]
    return order[0]
