"""The training loop with checkpointing (docs/method.md §1), on one CPU or many GPUs through DDP.

Four recipes (``advexp_core.training.robust``, which holds the paper's additions themselves): ``standard``;
``adv-train`` ("L2" adversarial training, §1.4); ``robust`` (logit-gradient penalty §1.1 with the
adaptive ψ of §1.2, HHReLU §1.3); ``all`` (robust additions + "L2,min" adversarial training on a
random half of each batch, §1.4).

Determinism: every random choice of an epoch (data order, crops, flips, the penalty's smoothed
outputs, the half-and-half mask) comes from generators seeded by (seed, epoch), drawn for the
*global* batch and sliced per process. So an interrupted run resumed from its last epoch
checkpoint, and a DDP run with any number of processes, see exactly the same randomness as one
uninterrupted process: the checkpoint needs only the weights, the optimiser and the ψ state
(integral and L_target).

Distributed: launched with ``torchrun`` (``WORLD_SIZE`` > 1), each process takes global batch /
world size examples; gradients are averaged by DDP, the ψ controller sees the all-reduced batch
cross-entropy, so ψ is identical everywhere. BatchNorm normalises with per-process batch statistics
(as the reference's multi-GPU DataParallel did; SyncBatchNorm has no CPU kernel and no double
backward); running statistics are averaged over processes at the end of every epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from advexp_core.base.distributed import (
    DistContext,
    all_sum,
    average_buffers,
    init_distributed,
    release_group,
    shard,
    wrap_ddp,
)
from advexp_core.base.runtime import OnStep, device_of
from advexp_core.networks.architectures import PreActBlock, build_model
from advexp_core.networks.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, sha256_file
from advexp_core.training.robust import (
    PenaltyChoice,
    PsiState,
    TrainingError,
    adversarial_images,
    default_l_target,
    draw_penalty_choice,
    get_recipe,
    lipschitz_penalty,
    update_psi,
)

CHECKPOINT_FORMAT = "advexp-checkpoint-1"


# --------------------------------------------------------------------------- configuration, model


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters; the defaults are the reference's (ResNet-44, SGD 0.1, momentum 0.9, wd 1e-4,
    batch 128, 200 epochs with lr ÷10 at 170 and 195 — i.e. at 85 % and 97.5 % of the epochs — and
    random crops with 4-px replicate padding; flips where they preserve the label).

    ``batch_size`` is global: each of W processes takes batch_size / W. ``l_target`` is the ψ
    controller's target cross-entropy; None: ``default_l_target(C)`` (1.5 for 10 classes).
    """

    recipe: str
    dataset: str = "digits"
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_drops: tuple[float, ...] = (0.85, 0.975)
    crop_padding: int = 4
    flip: bool = False
    seed: int = 0
    num_blocks: tuple[int, ...] = (7, 7, 7)
    widths: tuple[int, ...] = (16, 32, 64)
    l_target: float | None = None

    def l_target_for(self, num_classes: int) -> float:
        """The L_target this run uses with ``num_classes`` classes."""
        return default_l_target(num_classes) if self.l_target is None else float(self.l_target)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def reference_init(model: nn.Module, generator: torch.Generator) -> None:
    """The reference's initialisation: Kaiming-uniform convs/linears, zero biases, BN (1, 0), and the
    last conv of every residual block zeroed so training starts as a shallow network (arXiv:1812.01187)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(m.weight, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()
        for m in model.modules():
            if isinstance(m, PreActBlock):
                last = m.main[-1]
                assert isinstance(last, nn.Conv2d)
                last.weight.zero_()


def channel_stats(dataset: Dataset, *, limit: int = 10000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over the first ``limit`` images (the model's stored normalisation)."""
    n = min(limit, len(dataset))  # type: ignore[arg-type]
    images = torch.stack([dataset[i][0] for i in range(n)])
    std = images.std(dim=(0, 2, 3)).clamp(min=1e-3)
    return images.mean(dim=(0, 2, 3)).tolist(), std.tolist()


def woods_arch(config: TrainConfig, num_classes: int, mean: Sequence[float], std: Sequence[float]) -> dict:
    """The checkpoint's "arch" entry for a ``WoodsResNet`` trained with ``config``."""
    return {
        "name": "woods_resnet",
        "num_blocks": list(config.num_blocks),
        "widths": list(config.widths),
        "num_classes": int(num_classes),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "activation": get_recipe(config.recipe).activation,
    }


# --------------------------------------------------------------------------- per-batch randomness


@dataclass(frozen=True)
class BatchDraws:
    """Every random choice of one global batch, so any process can take its slice.

    Shapes: offsets (B, 2) int64 crop offsets; flips (B,), perturb (B,) bool; penalty (B,).
    """

    offsets: Tensor
    flips: Tensor
    perturb: Tensor
    penalty: PenaltyChoice

    def shard(self, rank: int, world: int) -> BatchDraws:
        """The examples of process ``rank``: global positions rank, rank + W, … (DistributedSampler's order)."""
        s = slice(rank, None, world)
        return BatchDraws(self.offsets[s], self.flips[s], self.perturb[s], self.penalty[s])


def draw_batch(batch: int, num_classes: int, padding: int, generator: torch.Generator) -> BatchDraws:
    """Draw the augmentation, half-and-half and penalty choices of one global batch."""
    offsets = torch.randint(2 * padding + 1, (batch, 2), generator=generator)
    flips = torch.rand(batch, generator=generator) < 0.5
    perturb = torch.rand(batch, generator=generator) < 0.5
    return BatchDraws(offsets, flips, perturb, draw_penalty_choice(batch, num_classes, generator=generator))


def augment(images: Tensor, offsets: Tensor, flips: Tensor | None, padding: int) -> Tensor:
    """Random crop after ``padding`` px of replicate padding, then optional horizontal flips.

    Shapes: images (B, C, H, W), offsets (B, 2), flips (B,) -> (B, C, H, W).
    """
    if padding > 0:
        h, w = images.shape[-2:]
        padded = F.pad(images, (padding,) * 4, mode="replicate")
        images = torch.stack(
            [padded[i, :, oy : oy + h, ox : ox + w] for i, (oy, ox) in enumerate(offsets.tolist())]
        )
    if flips is not None:
        images = torch.where(flips.to(images.device).view(-1, 1, 1, 1), images.flip(-1), images)
    return images


# --------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class EpochLog:
    """One epoch's numbers: mean training CE and penalty, ψ at the end, accuracies, lr, seconds."""

    epoch: int
    loss: float
    penalty: float
    psi: float
    train_accuracy: float
    test_accuracy: float
    lr: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """The trained model (eval mode, frozen), the last checkpoint payload and the per-epoch log."""

    model: nn.Module
    payload: dict[str, Any]
    history: tuple[EpochLog, ...]


@dataclass
class _State:
    """Mutable bookkeeping of one run (private to ``train``)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    arch: dict[str, Any]
    psi: PsiState = PsiState()
    epoch: int = 0
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0


def _lr(config: TrainConfig, epoch: int) -> float:
    drops = sum(epoch >= round(f * config.epochs) for f in config.lr_drops)
    return config.lr * 0.1**drops


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1)


def _train_step(
    state: _State, net: nn.Module, images: Tensor, labels: Tensor, draws: BatchDraws, config: TrainConfig,
    ctx: DistContext,
) -> Tensor:  # fmt: skip
    """One optimiser step (docs/method.md §1.1 step 5). Returns [CE sum, penalty·n, correct, n]."""
    recipe = get_recipe(config.recipe)
    x = augment(images, draws.offsets, draws.flips if config.flip else None, config.crop_padding)
    if recipe.adversarial is not None:
        half = draws.perturb if recipe.robust_additions else None
        x = adversarial_images(state.model, x, labels, mode=recipe.adversarial, perturb=half)
    x = x.detach().requires_grad_(recipe.robust_additions)
    logits = net(x)
    ce = F.cross_entropy(logits, labels)
    penalty = torch.zeros((), device=ce.device)
    if recipe.robust_additions:
        batch_ce = all_sum(ce.detach().reshape(1), ctx) / ctx.world
        state.psi = update_psi(state.psi, float(batch_ce))
        penalty = lipschitz_penalty(logits, x, labels, draws.penalty, psi=state.psi.psi)
    loss = ce + penalty
    if float(all_sum((~torch.isfinite(loss.detach())).float().reshape(1), ctx)) > 0:
        raise TrainingError(f"the loss became {float(loss)} (psi={state.psi.psi:.4g}); training stopped")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    n = len(labels)
    correct = (logits.detach().argmax(1) == labels).sum()
    return torch.tensor([float(ce.detach()) * n, float(penalty.detach()) * n, float(correct), float(n)])


def _run_epoch(
    state: _State, net: nn.Module, train_set: Dataset, config: TrainConfig, ctx: DistContext,
    num_classes: int, on_step: OnStep | None,
) -> Tensor:  # fmt: skip
    """Train one epoch; returns the all-reduced [CE sum, penalty sum, correct, n]."""
    sampler: DistributedSampler = DistributedSampler(
        train_set, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=config.seed, drop_last=True
    )
    sampler.set_epoch(state.epoch)
    loader = DataLoader(train_set, batch_size=config.batch_size // ctx.world, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise TrainingError(f"the training set ({len(sampler)} per process) is smaller than one batch")
    generator = _epoch_generator(config.seed, state.epoch)
    for group in state.optimizer.param_groups:
        group["lr"] = _lr(config, state.epoch)
    state.model.train()
    totals = torch.zeros(4)
    for index, (images, labels) in enumerate(loader):
        draws = draw_batch(config.batch_size, num_classes, config.crop_padding, generator)
        images, labels = images.to(ctx.device), labels.to(ctx.device)
        totals += _train_step(state, net, images, labels, draws.shard(ctx.rank, ctx.world), config, ctx)
        if on_step is not None:
            on_step(index + 1, len(loader))
    average_buffers(state.model, ctx)
    return all_sum(totals, ctx)


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module, dataset: Dataset, *, batch_size: int = 256, ctx: DistContext | None = None
) -> float:
    """Clean accuracy of ``model`` (eval mode for the duration) on ``dataset``, sharded over processes."""
    ctx = ctx or DistContext(device=device_of(model))
    was_training = model.training
    model.eval()
    mine = Subset(dataset, shard(range(len(dataset)), ctx))  # type: ignore[arg-type]
    counts = torch.zeros(2)
    for images, labels in DataLoader(mine, batch_size=batch_size):
        logits = model(images.to(ctx.device))
        counts += torch.tensor([float((logits.argmax(1).cpu() == labels).sum()), float(len(labels))])
    model.train(was_training)
    counts = all_sum(counts, ctx)
    return float(counts[0] / counts[1].clamp(min=1))


def _payload(state: _State, config: TrainConfig, meta: dict[str, Any], *, with_optimizer: bool) -> dict:
    """The checkpoint: weights + everything needed to load, score and resume (see module docstring)."""
    recipe = get_recipe(config.recipe)
    last = state.history[-1] if state.history else None
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()},
        "arch": state.arch,
        **meta,
        "robust": recipe.robust_additions,
        "recipe": recipe.name,
        "seed": config.seed,
        "dataset": config.dataset,
        "epoch": state.epoch,
        "psi_state": {"integral": state.psi.integral, "psi": state.psi.psi, "l_target": state.psi.l_target},
        "config": config.as_dict(),
        "metrics": {
            "test_accuracy": last.test_accuracy if last else None,
            "train_loss": last.loss if last else None,
            "psi": state.psi.psi,
            "train_seconds": state.seconds,
            "history": [asdict(log) for log in state.history],
        },
    }
    if with_optimizer:
        payload["optimizer"] = state.optimizer.state_dict()
    return payload


def _training_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of an advexp training checkpoint (TrainingError for any other file)."""
    try:
        payload = load_checkpoint(path)
    except CheckpointError as exc:
        raise TrainingError(str(exc)) from exc
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not an advexp training checkpoint")
    return payload


def _resume(state: _State, path: Path, config: TrainConfig) -> None:
    """Load weights, optimiser, ψ and history from ``path`` into ``state`` (TrainingError on mismatch)."""
    payload = _training_checkpoint(path)
    saved = payload.get("config", {})
    differ = sorted(k for k, v in config.as_dict().items() if saved.get(k) != v)
    if differ:
        diffs = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {getattr(config, k)!r}" for k in differ)
        raise TrainingError(f"{path} was trained with other settings ({diffs}); cannot resume it")
    if payload.get("arch") != state.arch:
        raise TrainingError(f"{path} holds another architecture: {payload.get('arch')} vs {state.arch}")
    if "optimizer" not in payload:
        raise TrainingError(f"{path} has no optimizer state (a released checkpoint); it cannot be resumed")
    state.model.load_state_dict(payload["state_dict"])
    state.optimizer.load_state_dict(payload["optimizer"])
    # Checkpoints from before L_target was recorded used the paper's 1.5 (10 classes only).
    saved_target = float(payload["psi_state"].get("l_target", state.psi.l_target))
    if saved_target != state.psi.l_target:
        raise TrainingError(
            f"{path} used L_target {saved_target}, now {state.psi.l_target}; cannot resume it"
        )
    state.psi = PsiState(float(payload["psi_state"]["integral"]), state.psi.l_target)
    state.epoch = int(payload["epoch"])
    state.history = [EpochLog(**log) for log in payload["metrics"]["history"]]
    state.seconds = float(payload["metrics"]["train_seconds"])


def _new_state(
    config: TrainConfig, train_set: Dataset, num_classes: int, model: nn.Module | None, device: torch.device
) -> _State:
    if model is None:
        mean, std = channel_stats(train_set)
        arch = woods_arch(config, num_classes, mean, std)
        model = build_model(arch)
    else:
        arch = {"name": type(model).__name__}
    reference_init(model, torch.Generator().manual_seed(config.seed))
    model.to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    return _State(model, optimizer, arch, PsiState(l_target=config.l_target_for(num_classes)))


def _warm_start(state: _State, path: Path, config: TrainConfig, class_names: Sequence[str]) -> dict[str, Any]:
    """Start ``state`` from another run's weights and ψ integral (a curriculum's next stage).

    The architecture, its input normalisation included, is the earlier run's, so that its weights
    mean what they meant; the optimiser and the epoch count start afresh. Returns the provenance
    recorded in the new checkpoint.
    """
    payload = _training_checkpoint(path)
    if list(payload.get("class_names", [])) != list(class_names):
        raise TrainingError(
            f"{path} was trained on classes {payload.get('class_names')}, this dataset has {list(class_names)}"
        )
    if payload.get("recipe") != config.recipe:
        raise TrainingError(
            f"{path} was trained with recipe {payload.get('recipe')!r}, not {config.recipe!r}"
        )
    arch = payload["arch"]
    if {k: v for k, v in arch.items() if k not in ("mean", "std")} != {
        k: v for k, v in state.arch.items() if k not in ("mean", "std")
    }:
        raise TrainingError(f"{path} holds another architecture: {arch} vs {state.arch}")
    state.model.load_state_dict(payload["state_dict"])  # the normalisation buffer too
    state.arch = arch
    state.psi = PsiState(float(payload["psi_state"]["integral"]), state.psi.l_target)
    return {
        "file": str(path),
        "sha256": sha256_file(path),
        "dataset": payload.get("dataset"),
        "recipe": payload.get("recipe"),
        "epochs": payload.get("epoch"),
        "test_accuracy": payload.get("metrics", {}).get("test_accuracy"),
    }


def train(
    config: TrainConfig,
    train_set: Dataset,
    test_set: Dataset,
    *,
    class_names: Sequence[str] | None = None,
    model: nn.Module | None = None,
    warm_start: str | Path | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    release: bool = False,
    device: str | torch.device | None = None,
    on_step: OnStep | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> TrainResult:
    """Train a network with ``config.recipe`` (docs/method.md §1), checkpointing after every epoch.

    Args:
        config: hyperparameters and recipe.
        train_set, test_set: datasets of (image (3, H, W) in [0, 1], label).
        class_names: default ``train_set.class_names``.
        model: a network to train instead of a ``WoodsResNet`` built from ``config`` (re-initialised
            with the reference's scheme from ``config.seed``).
        warm_start: an advexp checkpoint of the same recipe and classes to start from (its weights,
            input normalisation and ψ integral) instead of a fresh initialisation: the next stage of
            a curriculum. Recorded in the new checkpoint as ``warm_start``.
        checkpoint_path: written atomically by process 0 after every epoch.
        resume: continue from ``checkpoint_path`` when it exists (same config required).
        release: write the final checkpoint without the optimiser state (small, not resumable).
        device: default CUDA when available, else the CPU (torchrun: one device per process).
        on_step: called as on_step(batch, batches) after every batch of an epoch.
        on_epoch: called with each epoch's ``EpochLog``.

    Returns:
        ``TrainResult`` with the model in eval mode and parameters frozen.

    Raises:
        TrainingError: unknown recipe, checkpoint exists without ``resume``, mismatched checkpoint,
            batch not divisible by the world size, non-finite loss.
    """
    get_recipe(config.recipe)
    names = list(class_names if class_names is not None else _class_names(train_set))
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None and path.exists() and not resume:
        raise TrainingError(f"{path} exists; resume it or choose another path")
    ctx = init_distributed(device)
    try:
        if config.batch_size % ctx.world:
            raise TrainingError(f"batch size {config.batch_size} is not divisible by {ctx.world} processes")
        state = _new_state(config, train_set, len(names), model, ctx.device)
        meta: dict[str, Any] = {"class_names": names, "input_size": list(train_set[0][0].shape[-2:])}
        if warm_start is not None:
            meta["warm_start"] = _warm_start(state, Path(warm_start), config, names)
        if path is not None and resume and path.exists():
            _resume(state, path, config)
        _train_epochs(state, config, train_set, test_set, ctx, path, meta, release, on_step, on_epoch)
        final = _payload(state, config, meta, with_optimizer=not release)
    finally:
        release_group(ctx)
    state.model.eval().requires_grad_(False)
    return TrainResult(state.model, final, tuple(state.history))


def _class_names(dataset: Dataset) -> list[str]:
    names = getattr(dataset, "class_names", None)
    if names is None:
        raise TrainingError("the training set has no class_names; pass class_names=")
    return list(names)


def _train_epochs(
    state: _State, config: TrainConfig, train_set: Dataset, test_set: Dataset, ctx: DistContext,
    path: Path | None, meta: dict[str, Any], release: bool, on_step: OnStep | None,
    on_epoch: Callable[[EpochLog], None] | None,
) -> None:  # fmt: skip
    net = wrap_ddp(state.model, ctx)
    while state.epoch < config.epochs:
        start = time.perf_counter()
        lr = _lr(config, state.epoch)
        totals = _run_epoch(state, net, train_set, config, ctx, len(meta["class_names"]), on_step)
        accuracy = evaluate_accuracy(state.model, test_set, ctx=ctx)
        state.epoch += 1
        seconds = time.perf_counter() - start
        state.seconds += seconds
        ce, pen, correct, n = totals.tolist()
        log = EpochLog(state.epoch, ce / n, pen / n, state.psi.psi, correct / n, accuracy, lr, seconds)
        state.history.append(log)
        if path is not None and ctx.rank == 0:
            last = state.epoch == config.epochs
            save_checkpoint(path, _payload(state, config, meta, with_optimizer=not (release and last)))
        if ctx.world > 1:
            dist.barrier()
        if on_epoch is not None:
            on_epoch(log)
