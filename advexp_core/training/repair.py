"""Repair a network that decides by an artifact: three objectives over (images, labels, artifact masks).

docs/method.md §10. Each repair fine-tunes a copy of the network on images whose artifact is marked
(a mask per image, all False where an image has none):

* ``augment``, counterfactual augmentation: every image gets its counterfactual (`counterfactual_pairs`:
  the artifact removed where it has one, pasted where it has none), and each epoch draws from the
  originals and their counterfactuals with weights that give, within each class, the images with and
  without the artifact equal shares (`group_weights`), so the artifact says nothing about the class;
* ``rrr``, "right for the right reasons" (Ross, Hughes & Doshi-Velez, IJCAI 2017): the cross-entropy
  plus λ·‖mask ⊙ ∂(Σ_k log p_k)/∂x‖² (`rrr_penalty`), which asks the input gradient to vanish on
  the artifact (and, on an image without one, where it would be);
* ``last-layer``, last-layer retraining (after Kirichenko, Izmailov & Wilson, ICLR 2023): only the
  classifier layer (`last_layer`) is trained, every other weight and BatchNorm's statistics frozen,
  on the same artifact-balanced draws as ``augment``.

The interventions are the audit's (`advexp_core.data.interventions`): biharmonic inpainting removes an
artifact, and pasting puts one (cut with its mask from another image, at its own place) on an image
without one. The group balancing also balances what the interventions leave behind: the inpainting's
smooth fill, which a network can read (docs/audit.md, validation), and the clean background of the
images that never had the artifact are then equally common in every class, so neither becomes a
shortcut of its own.

`fine_tune` runs any of them, optionally with the paper's logit-gradient penalty and adaptive ψ
(docs/method.md §1.1-1.2), reusing the training loop's crops and draws (`loop.augment`,
`loop.draw_batch`). `save_weights` writes the result as an advexp checkpoint, a state_dict ``.pt``
or ``.safetensors``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.base.runtime import OnStep, device_of
from advexp_core.data.interventions import Artifact, paste_artifact, remove_artifact
from advexp_core.networks.checkpoints import save_checkpoint
from advexp_core.networks.zoo import Classifier
from advexp_core.training.loop import CHECKPOINT_FORMAT, augment, draw_batch
from advexp_core.training.robust import (
    PenaltyChoice,
    PsiState,
    default_l_target,
    lipschitz_penalty,
    update_psi,
)

METHODS = ("augment", "rrr", "last-layer")
METHOD_TITLES = {
    "augment": "counterfactual augmentation",
    "rrr": "right for the right reasons (RRR) penalty",
    "last-layer": "last-layer retraining on artifact-balanced data",
}
WEIGHT_FORMATS = ("advexp", "state_dict", "safetensors")
INPAINT_CHUNK = 64  # images per inpainting call between two progress reports


class RepairError(ValueError):
    """Data or settings a repair cannot use; ``setting`` names the one at fault ("masks", "labels",
    "images", "method", "epochs", ...) so a caller can point at its own name for it."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(message)


# --------------------------------------------------------------------------- the data transform


@dataclass(frozen=True)
class CounterfactualPairs:
    """Every image with the artifact and without it; one of the two is the image itself.

    Attributes:
        with_artifact: the image itself where it has an artifact; otherwise the image with the
            artifact of ``donors[i]`` pasted at the place it has there.
        without_artifact: the image with its artifact inpainted where it has one; otherwise the
            image itself.
        placed: where the artifact lies in ``with_artifact``: the image's own mask, or its donor's.
        donors: whose artifact each image received (its own index where it had one).

    Shapes: with_artifact, without_artifact (N, 3, H, W); placed (N, H, W) bool; donors (N,) int64.
    """

    with_artifact: Tensor
    without_artifact: Tensor
    placed: Tensor
    donors: Tensor


def has_artifact(masks: Tensor) -> Tensor:
    """(N,) bool: the image's mask marks at least one pixel. Shapes: (N, H, W) -> (N,)."""
    return masks.flatten(1).any(1)


def artifact_donors(masks: Tensor, *, generator: torch.Generator) -> Tensor:
    """Each image's own index where it has an artifact; otherwise one drawn uniformly among those that do.

    Raises:
        RepairError ("masks"): no image has an artifact.

    Shapes: masks (N, H, W) -> (N,) int64.
    """
    has = has_artifact(masks.cpu())
    carriers = torch.nonzero(has).flatten()
    if len(carriers) == 0:
        raise RepairError("masks", "no image has a marked artifact: there is nothing to remove or paste.")
    drawn = carriers[torch.randint(len(carriers), (len(has),), generator=generator)]
    return torch.where(has, torch.arange(len(has)), drawn)


def counterfactual_pairs(
    images: Tensor, masks: Tensor, *, generator: torch.Generator, on_step: OnStep | None = None
) -> CounterfactualPairs:
    """Both versions of every image (`CounterfactualPairs`): the artifact removed by inpainting
    where an image has one, pasted from a donor where it has none. Pixels outside ``placed`` are the
    image's own in both versions.

    Args:
        images: in [0, 1], all of one size (pasting keeps an artifact at its own place).
        masks: True where the artifact is; an all-False mask: the image has none.
        generator: draws each artifact-free image's donor (`artifact_donors`).
        on_step: called as on_step(done, N) while inpainting.

    Raises:
        RepairError ("masks"): masks that do not match the images, or no image with an artifact.

    Shapes: images (N, 3, H, W), masks (N, H, W) -> pairs of (N, 3, H, W), (N, H, W), (N,).
    """
    if images.ndim != 4 or tuple(masks.shape) != (images.shape[0], *images.shape[2:]):
        raise RepairError("masks", f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}.")
    masks = masks.bool().cpu()
    donors = artifact_donors(masks, generator=generator)
    has = has_artifact(masks)
    with_artifact = images.detach().clone()
    for donor in donors[~has].unique().tolist():
        rows = torch.nonzero(~has & (donors == donor)).flatten()
        pasted, _ = paste_artifact(images[rows], Artifact(images[donor], masks[donor]), where="same")
        with_artifact[rows] = pasted
    without = images.detach().clone()
    carriers = torch.nonzero(has).flatten()
    for start in range(0, len(carriers), INPAINT_CHUNK):
        rows = carriers[start : start + INPAINT_CHUNK]
        without[rows] = remove_artifact(images[rows], masks[rows])
        if on_step is not None:
            on_step(min(start + INPAINT_CHUNK, len(carriers)), len(carriers))
    return CounterfactualPairs(with_artifact, without, masks[donors], donors)


def group_weights(labels: Tensor, has: Tensor) -> Tensor:
    """Sampling weights that give, within each class, the images with and without the artifact
    equal shares (each class keeps its own share of the data).

    Balancing the groups (class × artifact) is what makes a counterfactual augmentation fair: an
    image's two versions differ in the artifact, but the removed one also carries the inpainting's
    smooth fill and the untouched one a clean background. Drawn per group, every such state is
    equally common in every class, so none of them can stand in for the class.

    Shapes: labels (N,), has (N,) bool -> (N,) float, summing to N.
    """
    weights = torch.zeros(len(labels))
    for label in labels.unique():
        in_class = labels == label
        groups = [in_class & has, in_class & ~has]
        present = [g for g in groups if g.any()]
        for group in present:
            weights[group] = float(in_class.sum()) / (len(present) * float(group.sum()))
    return weights


# --------------------------------------------------------------------------- the objectives


def rrr_penalty(logits: Tensor, images: Tensor, masks: Tensor, *, weight: float) -> Tensor:
    """λ · mean over the batch of Σ_{c,h,w} (mask ⊙ ∂(Σ_k log p_k)/∂x)² (Ross et al. 2017, eq. 1).

    The gradient of the summed log-probabilities is Ross et al.'s choice: it does not vanish when the
    network is confidently right, unlike that of the cross-entropy. Computed with
    ``create_graph=True`` so that the penalty's own gradient reaches the parameters (double backprop).

    Args:
        logits: f(images), computed from ``images`` which requires grad.
        images: the batch, pixel units in [0, 1].
        masks: True where the network should not look (every colour channel of those pixels).
        weight: λ, per image and per squared pixel-unit gradient.

    Returns:
        A scalar.

    Shapes: logits (B, C), images (B, 3, H, W), masks (B, H, W) -> ().
    """
    total = F.log_softmax(logits, dim=1).sum()
    (grad,) = torch.autograd.grad(total, images, create_graph=True)
    inside = grad * masks.to(grad.dtype).unsqueeze(1)
    return weight * inside.pow(2).sum(dim=(1, 2, 3)).mean()


def last_layer(module: nn.Module) -> tuple[str, nn.Module]:
    """The classifier layer: the last ``nn.Linear`` or ``nn.Conv2d`` in the module's definition order.

    Raises:
        RepairError ("method"): the module has neither.
    """
    found = [(n, m) for n, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not found:
        raise RepairError("method", "the network has no linear or convolutional layer to retrain.")
    return found[-1]


# --------------------------------------------------------------------------- fine-tuning


@dataclass(frozen=True)
class FineTuneConfig:
    """How a repair trains (docs/method.md §10).

    ``lr`` is half the reference's 0.1, decayed to 0 by a cosine over the run (a few epochs then end
    at a quiet point); ``rrr_weight`` is λ of `rrr_penalty`; ``crop_padding``/``flip`` are the loop's augmentation;
    ``robust`` adds the paper's logit-gradient penalty with its adaptive ψ (§1.1-1.2).
    """

    method: str
    epochs: int = 3
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    rrr_weight: float = 10.0
    crop_padding: int = 4
    flip: bool = False
    robust: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise RepairError(
                "method", f"unknown repair method {self.method!r}; use one of {', '.join(METHODS)}."
            )
        for name, low in (("epochs", 1), ("batch_size", 2)):
            if int(getattr(self, name)) < low:
                raise RepairError(name, f"{name} must be at least {low}, got {getattr(self, name)}.")
        if not self.lr > 0 or self.rrr_weight < 0 or self.crop_padding < 0:
            raise RepairError("lr", "lr must be positive, rrr_weight and crop_padding not negative.")

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class EpochNumbers:
    """One epoch of a repair: mean cross-entropy, mean penalties, training accuracy, ψ, seconds."""

    epoch: int
    loss: float
    rrr: float
    lipschitz: float
    train_accuracy: float
    psi: float | None
    seconds: float


@dataclass(frozen=True)
class FineTuned:
    """The repaired copy (eval mode, frozen), what was trained and the per-epoch numbers."""

    module: nn.Module
    trained: str
    history: tuple[EpochNumbers, ...]
    seconds: float
    psi: PsiState | None = field(default=None)


@dataclass
class _Run:
    """Mutable state of one fine-tuning (private to `fine_tune`)."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    config: FineTuneConfig
    num_classes: int
    psi: PsiState | None


@dataclass(frozen=True)
class _Pool:
    """What the batches of a repair are drawn from: images, labels, masks for RRR, and sampling
    weights (None: every image once per epoch, in a random order).

    Shapes: images (M, 3, H, W), labels (M,), masks (M, H, W) bool, weights (M,).
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    weights: Tensor | None
    draws: int


def _pool(
    images: Tensor, labels: Tensor, masks: Tensor, config: FineTuneConfig, generator: torch.Generator,
    on_step: OnStep | None,
) -> _Pool:  # fmt: skip
    """The images as drawn with RRR's masks (``rrr``), or both versions of every image drawn group by
    group (`group_weights`; ``augment``, ``last-layer``). An epoch draws as many images as were given."""
    if config.method == "rrr":
        # An image without the artifact is asked not to look where its donor's lies: the absence of
        # the artifact is as much a shortcut as its presence.
        donors = artifact_donors(masks, generator=generator)
        return _Pool(images, labels, masks[donors], None, len(images))
    pairs = counterfactual_pairs(images, masks, generator=generator, on_step=on_step)
    weights = group_weights(labels, has_artifact(masks)) / 2
    return _Pool(
        torch.cat([pairs.with_artifact, pairs.without_artifact]),
        torch.cat([labels, labels]),
        torch.cat([pairs.placed, torch.zeros_like(pairs.placed)]),
        torch.cat([weights, weights]),
        len(images),
    )


def _step(run: _Run, x: Tensor, y: Tensor, m: Tensor, choice: PenaltyChoice) -> Tensor:
    """One optimiser step; returns [CE·n, RRR·n, Lipschitz·n, correct, n]."""
    config = run.config
    x = x.detach().requires_grad_(config.method == "rrr" or config.robust)
    logits = run.net(x)
    ce = F.cross_entropy(logits, y)
    rrr = torch.zeros((), device=ce.device)
    lip = torch.zeros((), device=ce.device)
    if config.method == "rrr" and config.rrr_weight > 0:
        rrr = rrr_penalty(logits, x, m, weight=config.rrr_weight)
    if run.psi is not None:
        run.psi = update_psi(run.psi, float(ce.detach()))
        lip = lipschitz_penalty(logits, x, y, choice, psi=run.psi.psi)
    loss = ce + rrr + lip
    if not torch.isfinite(loss.detach()):
        raise RepairError(
            "lr", f"the loss became {float(loss)}; lower the learning rate or the penalty weight."
        )
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.schedule.step()
    n = len(y)
    correct = float((logits.detach().argmax(1) == y).sum())
    return torch.tensor(
        [float(ce.detach()) * n, float(rrr.detach()) * n, float(lip.detach()) * n, correct, n]
    )


def _epoch(
    run: _Run, pool: _Pool, epoch: int, generator: torch.Generator, on_step: OnStep | None, done: int,
    total: int,
) -> EpochNumbers:  # fmt: skip
    start = time.perf_counter()
    config, device = run.config, device_of(run.net)
    if pool.weights is None:
        order = torch.randperm(pool.draws, generator=generator)
    else:
        order = torch.multinomial(pool.weights, pool.draws, replacement=True, generator=generator)
    run.net.train(config.method != "last-layer")  # last-layer: BatchNorm's statistics stay frozen
    totals = torch.zeros(5)
    for index, rows in enumerate(_batches(pool.draws, config.batch_size)):
        idx = order[rows]
        draws = draw_batch(len(idx), run.num_classes, config.crop_padding, generator)
        stacked = torch.cat([pool.images[idx], pool.masks[idx].unsqueeze(1).to(pool.images.dtype)], dim=1)
        moved = augment(stacked, draws.offsets, draws.flips if config.flip else None, config.crop_padding)
        x, m = moved[:, :-1].to(device), (moved[:, -1] > 0.5).to(device)
        totals += _step(run, x, pool.labels[idx].to(device), m, draws.penalty)
        if on_step is not None:
            on_step(done + index + 1, total)
    ce, rrr, lip, correct, n = totals.tolist()
    psi = None if run.psi is None else run.psi.psi
    return EpochNumbers(epoch, ce / n, rrr / n, lip / n, correct / n, psi, time.perf_counter() - start)


def _batches(n: int, size: int) -> list[slice]:
    """Consecutive batches of ``size``; a last batch of one image joins the one before (BatchNorm in
    train mode cannot normalise a single image)."""
    cuts = list(range(0, n, size)) + [n]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < 2:
        cuts.pop(-2)
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def fine_tune(
    module: nn.Module,
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    config: FineTuneConfig,
    *,
    num_classes: int,
    psi: PsiState | None = None,
    on_step: OnStep | None = None,
) -> FineTuned:
    """Fine-tune a copy of ``module`` with ``config.method`` (docs/method.md §10); ``module`` is untouched.

    Args:
        module: the network (images in [0, 1] -> logits); copied, never changed.
        images: the repair images, in [0, 1], all of the network's input size.
        labels: their classes.
        masks: True where each image's artifact is (all False: none).
        config: the method and its settings.
        num_classes: the network's number of logits.
        psi: the ψ controller to continue with ``config.robust`` (a robust checkpoint's); None: a
            fresh one with L_target for ``num_classes`` (§1.2).
        on_step: called as on_step(done, total) over the inpainting and then every batch.

    Returns:
        `FineTuned` with the copy in eval mode, its parameters frozen.

    Raises:
        RepairError: masks that do not match, no artifact at all (augment, last-layer), fewer than
            two images, a loss that is not finite.

    Shapes: images (N, 3, H, W), labels (N,), masks (N, H, W) bool.
    """
    if len(images) < 2 or len(labels) != len(images):
        raise RepairError("images", f"a repair needs at least two labelled images, got {len(images)}.")
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    pool = _pool(images, labels, masks.bool().cpu(), config, generator, on_step)
    net = copy.deepcopy(module)
    net.requires_grad_(False)
    trained = "every layer"
    params = list(net.parameters())
    if config.method == "last-layer":
        trained, layer = last_layer(net)
        params = list(layer.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    controller = (psi or PsiState(l_target=default_l_target(num_classes))) if config.robust else None
    per_epoch = len(_batches(pool.draws, config.batch_size))
    # Cosine decay to 0 over the whole run: a few epochs end at a quiet point, not mid-stride.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=per_epoch * config.epochs)
    run = _Run(net, optimizer, schedule, config, num_classes, controller)
    history = []
    for epoch in range(config.epochs):
        done = epoch * per_epoch
        history.append(_epoch(run, pool, epoch + 1, generator, on_step, done, per_epoch * config.epochs))
    net.eval().requires_grad_(False)
    return FineTuned(net, trained, tuple(history), time.perf_counter() - started, run.psi)


# --------------------------------------------------------------------------- writing the weights


def network_weights(module: nn.Module) -> dict[str, Tensor]:
    """The weights as the user's file held them: a user network's own state_dict (without the
    normalisation `Classifier` adds at load time), or the whole module's for this project's networks."""
    inner = module.net if isinstance(module, Classifier) else module
    return {k: v.detach().cpu().contiguous().clone() for k, v in inner.state_dict().items()}


def save_weights(
    module: nn.Module,
    path: str | Path,
    *,
    fmt: str,
    base: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write repaired weights in ``fmt``, atomically.

    Args:
        module: the repaired network.
        path: the file to write.
        fmt: "advexp" (``base``, the original advexp checkpoint, with the new weights, no optimiser
            state and a ``repair`` entry: loads with ``--model PATH``), "state_dict" (a ``.pt`` of
            tensors) or "safetensors".
        base: the original checkpoint's payload ("advexp" only).
        provenance: what the repair did (stored in the advexp checkpoint, the safetensors metadata).

    Raises:
        RepairError ("model"): an unknown format, or "advexp" without ``base``.
    """
    weights = network_weights(module)
    target = Path(path)
    if fmt == "advexp":
        if base is None or base.get("format") != CHECKPOINT_FORMAT:
            raise RepairError("model", "writing an advexp checkpoint needs the original advexp checkpoint.")
        payload = {k: v for k, v in base.items() if k not in ("optimizer", "state_dict", "metrics")}
        payload |= {"state_dict": weights, "repair": dict(provenance or {}), "metrics": {"history": []}}
        save_checkpoint(target, payload)
    elif fmt == "state_dict":
        save_checkpoint(target, weights)
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        metadata = {"advexp_repair": str(dict(provenance or {}).get("method", ""))}
        tmp = target.with_name(f".{target.name}.partial")
        save_file(weights, str(tmp), metadata=metadata)
        tmp.replace(target)
    else:
        raise RepairError("model", f"unknown weights format {fmt!r}; use one of {', '.join(WEIGHT_FORMATS)}.")


__all__ = [
    "METHODS",
    "METHOD_TITLES",
    "WEIGHT_FORMATS",
    "CounterfactualPairs",
    "EpochNumbers",
    "FineTuneConfig",
    "FineTuned",
    "RepairError",
    "counterfactual_pairs",
    "fine_tune",
    "has_artifact",
    "last_layer",
    "network_weights",
    "rrr_penalty",
    "save_weights",
]
