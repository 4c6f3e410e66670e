"""The shortcut audit in batches (docs/audit.md): images read, inpainted, measured and explained a batch
at a time, so that memory does not grow with the number of images.

Each batch: every image is read (`AuditItem.load`: an unreadable file or a mask that does not fit is
skipped and named, and the batch goes on), fitted to the network with its mask, its artifact removed
by inpainting or pasted on, its decision read before and after (one forward pass each for the whole
batch), its maps made by every explainer for the whole batch (IG's steps and SmoothGrad's samples
across the images), and its adversarial explanation made for the whole batch at once (one forward
and backward pass per step for all images: the step schedule treats each image on its own).

Batches are fixed by position (batch b holds items b·B .. b·B+B-1), so a run resumed at batch b
computes exactly what an uninterrupted run would (SmoothGrad's noise is drawn per batch).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from advexp_core.base.runtime import OnStep, device_of, dtype_of, in_order, machine_cores, pass_workers
from advexp_core.data.interventions import Artifact, AuditError, paste_artifact, remove_artifact
from advexp_core.evaluation.reliance import logit_margins
from advexp_core.evaluation.reliance_grades import ruler_shares
from advexp_core.experiments.audit_inputs import AuditItem, fit_to_model
from advexp_core.experiments.audit_records import (
    DEFAULT_CONFIG,
    MAX_BATCH,
    AdversarialRow,
    AdversarialView,
    AuditConfig,
    ImageAudit,
    ImageRow,
    Skipped,
)
from advexp_core.experiments.scorecard_grades import explainer_maps
from advexp_core.methods.attacks import step_schedule
from advexp_core.networks.registry import LoadedModel
from advexp_core.readings.groundtruth import near_tie

REFERENCE_PIXELS = 224 * 224
CPU_IMAGES_PER_CORE = 4  # 224-px images per core in a batch: the passes stay a few hundred MB
GPU_BYTES_PER_IMAGE = 150_000_000  # a 224-px image's activations kept for a backward pass, with room
SEED_STRIDE = 1_000_003  # batch b of seed s draws SmoothGrad's noise from s·stride + b


def batch_size_for(model: LoadedModel, config: AuditConfig | None = None) -> int:
    """Images per batch: the config's, else from the device, scaled by the input's pixels.

    On a CPU, `CPU_IMAGES_PER_CORE` 224-px images per core this process may use; on a GPU, half its
    free memory over `GPU_BYTES_PER_IMAGE` per 224-px image (EfficientNet-B0's and ViT-S/16's
    forward and backward passes keep 50-100 MB an image). Between 1 and `MAX_BATCH`.
    """
    if config is not None and config.batch_size is not None:
        return config.batch_size
    scale = REFERENCE_PIXELS / max(1, model.input_size[0] * model.input_size[1])
    device = model.device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        images = 0.5 * free / GPU_BYTES_PER_IMAGE * scale
    else:
        images = CPU_IMAGES_PER_CORE * machine_cores() * scale
    return int(max(1, min(MAX_BATCH, math.floor(images))))


def n_batches(n_items: int, batch_size: int) -> int:
    return -(-n_items // batch_size)


@dataclass(frozen=True)
class AuditBatch:
    """One batch done: its images (numbers and pictures' tensors) and those skipped, with why."""

    index: int
    images: tuple[ImageAudit, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True)
class _Loaded:
    """A batch's readable images fitted to the network. Shapes: x (B, 3, h, w), masks (B, h, w)."""

    positions: list[int]
    names: list[str]
    labels: list[int | None]
    x: Tensor
    masks: Tensor
    has: Tensor


def _load(model: LoadedModel, items: Sequence[AuditItem], start: int) -> tuple[_Loaded | None, list[Skipped]]:
    """Read and fit each item; a ValueError (unreadable file, mask that does not fit) skips it."""
    kept: list[tuple[int, AuditItem, Tensor, Tensor | None]] = []
    skipped = []
    for offset, item in enumerate(items):
        try:
            image, mask = item.load()
            fitted, fitted_mask = fit_to_model(image, mask, model)
            if fitted_mask is not None and not bool(fitted_mask.any()):
                raise AuditError("masks", f"{item.name}: the mask marks no pixel once fitted to the network.")
        except ValueError as exc:
            reason = str(exc) if str(exc).startswith(item.name) else f"{item.name}: {exc}"
            skipped.append(Skipped(start + offset, item.name, reason))
            continue
        kept.append((start + offset, item, fitted.detach().float().cpu(), fitted_mask))
    if not kept:
        return None, skipped
    x = torch.stack([k[2] for k in kept])
    blank = torch.zeros(x.shape[-2:], dtype=torch.bool)
    masks = torch.stack([blank if k[3] is None else k[3].bool().cpu() for k in kept])
    has = torch.tensor([k[3] is not None for k in kept], dtype=torch.bool)
    return _Loaded(
        [k[0] for k in kept], [k[1].name for k in kept], [k[1].label for k in kept], x, masks, has
    ), skipped


def _intervene(loaded: _Loaded, artifact: Artifact | None, config: AuditConfig) -> tuple[Tensor, Tensor]:
    """The images after the intervention and where it acted: the marked ones inpainted (one image
    per pass, side by side on the CPU's cores), the artifact pasted on the others."""
    x, masks, has = loaded.x, loaded.masks.clone(), loaded.has
    after = x.clone()
    marked = torch.nonzero(has).flatten().tolist()
    fills = in_order(lambda k: remove_artifact(x[k : k + 1], masks[k : k + 1])[0], marked)
    for k, filled in zip(marked, fills, strict=True):
        after[k] = filled
    if artifact is not None and bool((~has).any()):
        pasted, placed = paste_artifact(x[~has], artifact, where=config.where, border=config.border)
        after[~has], masks[~has] = pasted, placed
    return after, masks


def _logits(model: LoadedModel, images: Tensor) -> Tensor:
    with torch.no_grad():
        return model.module(images.to(model.device)).float().cpu()


def _chunks(n: int, device: torch.device) -> list[slice]:
    """The batch cut in one part per CPU worker (`runtime.pass_workers`), to run side by side; whole on a GPU."""
    parts = pass_workers() if device.type == "cpu" else 1
    size = -(-n // max(1, min(parts, n)))
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


def _adversarial(
    model: LoadedModel, x: Tensor, logits: Tensor, masks: Tensor, has: Tensor, config: AuditConfig
) -> list[AdversarialView]:
    """Each image's adversarial explanation toward ``config.toward`` (the runner-up where that is
    its decision), the batch's images together in the step schedule (docs/method.md §2): each image
    is optimised on its own, so a batch (cut in one part per CPU worker, run side by side) gives
    each image what it would get alone, up to float rounding."""
    order = torch.sort(logits, dim=1, descending=True, stable=True).indices
    decided, runner_up = order[:, 0], order[:, 1]
    targets = (
        runner_up
        if config.toward is None
        else torch.where(decided == config.toward, runner_up, config.toward)
    )
    device = device_of(model.module)
    batch = x.to(device=device, dtype=dtype_of(model.module))

    def run(part: slice) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        sched = step_schedule(
            model.module, batch[part], targets[part].to(device), size=config.overshoot * config.rho,
            steps=config.steps, mode="budget", budget=config.rho, targeted=True,
        )  # fmt: skip
        return tuple(
            t.detach().float().cpu()
            for t in (sched.logits_before, sched.logits_after, sched.delta, sched.met)
        )  # type: ignore[return-value]

    parts = list(in_order(run, _chunks(len(x), device), device))
    z_before, z_after, delta, met = (torch.cat([p[i] for p in parts]) for i in range(4))
    rows = torch.arange(len(x))
    before = torch.softmax(z_before, 1)[rows, targets]
    after = torch.softmax(z_after, 1)[rows, targets]
    shown = (x + delta).clamp(0.0, 1.0)
    energy = delta.pow(2).sum(1)
    views = []
    for k in range(len(x)):
        total = float(energy[k].sum())
        share = float(energy[k][masks[k]].sum() / total) if bool(has[k]) and total > 0 else None
        numbers = AdversarialRow(int(targets[k]), float(before[k]), float(after[k]), bool(met[k]), share)
        views.append(AdversarialView(numbers, shown[k], delta[k]))
    return views


def _maps(
    model: LoadedModel, x: Tensor, decided: Tensor, masks: Tensor, has: Tensor, config: AuditConfig, seed: int
) -> tuple[dict[str, Tensor], dict[str, list[float | None]]]:
    """Every explainer's maps of the decided class for the whole batch, and their artifact shares."""
    maps: dict[str, Tensor] = {}
    shares: dict[str, list[float | None]] = {}
    for method in config.methods:
        m = explainer_maps(model, x, decided, method=method, seed=seed, batch_size=len(x))
        maps[method] = m
        measured = ruler_shares(m, masks).tolist()
        shares[method] = [
            None if not bool(has[k]) or math.isnan(measured[k]) else float(measured[k]) for k in range(len(x))
        ]
    return maps, shares


def _batch(
    model: LoadedModel, items: Sequence[AuditItem], start: int, index: int,
    artifact: Artifact | None, config: AuditConfig,
) -> AuditBatch:  # fmt: skip
    loaded, skipped = _load(model, items, start)
    if loaded is None:
        return AuditBatch(index, (), tuple(skipped))
    after, masks = _intervene(loaded, artifact, config)
    x, has = loaded.x, loaded.has
    touched = has | (artifact is not None)
    z, z_after = _logits(model, x), _logits(model, after)
    decided = z.argmax(1)
    reference = torch.tensor([int(decided[k]) if y is None else y for k, y in enumerate(loaded.labels)])
    with model.lock:  # hook-based explainers hook the shared module; one batch at a time
        maps, shares = _maps(model, x, decided, masks, has, config, config.seed * SEED_STRIDE + index)
        views = _adversarial(model, x, z, masks, has, config) if config.adversarial else None
    p, p_after = torch.softmax(z, 1), torch.softmax(z_after, 1)
    margin, margin_after = logit_margins(z, reference), logit_margins(z_after, reference)
    images = []
    for k in range(len(x)):
        on = bool(touched[k])
        intervention = "removed" if bool(has[k]) else ("added" if on else "none")
        mask = masks[k] if on else torch.zeros_like(masks[k])
        now = int(p_after[k].argmax())
        row = ImageRow(
            index=loaded.positions[k], name=loaded.names[k], label=loaded.labels[k], reference=int(reference[k]),
            intervention=intervention, artifact_area=float(mask.double().mean()),
            prediction=int(decided[k]), prediction_after=now if on else None,
            confidence=float(p[k, decided[k]]), confidence_after=float(p_after[k, now]) if on else None,
            probability=float(p[k, reference[k]]), probability_after=float(p_after[k, reference[k]]) if on else None,
            margin=float(margin[k]), margin_after=float(margin_after[k]) if on else None,
            near_tie=near_tie(p[k].tolist()) or (on and near_tie(p_after[k].tolist())),
            shares={m: s[k] for m, s in shares.items()},
            adversarial=None if views is None else views[k].numbers,
        )  # fmt: skip
        images.append(
            ImageAudit(
                row,
                x[k],
                after[k] if on else None,
                mask,
                {m: v[k] for m, v in maps.items()},
                None if views is None else views[k],
            )
        )
    return AuditBatch(index, tuple(images), tuple(skipped))


def audit_batches(
    model: LoadedModel,
    items: Sequence[AuditItem],
    *,
    artifact: Artifact | None = None,
    config: AuditConfig = DEFAULT_CONFIG,
    batch_size: int | None = None,
    first_batch: int = 0,
    on_step: OnStep | None = None,
) -> Iterator[AuditBatch]:
    """Audit the items a batch at a time, from batch ``first_batch`` on (the ones before are done).

    Args:
        model: the network; forward passes run unlocked, maps and explanations under its lock
            (once per batch, so other runs on a shared network go between batches).
        items: the images, read only when their batch comes.
        artifact: pasted onto the images without a mask, fitted to the network (None: nothing pasted).
        config: methods, paste placement, the adversarial explanation's settings, the seed.
        batch_size: images per batch (None: `batch_size_for`).
        first_batch: the batch to start with.
        on_step: progress, on_step(images done, images in all), after each batch (skipped ones count).

    Yields:
        `AuditBatch` per batch, in order.

    Raises:
        AuditError: an artifact that cannot be pasted. ValueError: Grad-CAM on a network without a
            conv layer.

    Shapes: rows' maps (h, w) at the network's input size.
    """
    size = batch_size or batch_size_for(model, config)
    total = len(items)
    if on_step is not None:
        on_step(min(total, first_batch * size), total)
    for index in range(first_batch, n_batches(total, size)):
        start = index * size
        yield _batch(model, items[start : start + size], start, index, artifact, config)
        if on_step is not None:
            on_step(min(total, start + size), total)


__all__ = ["AuditBatch", "audit_batches", "batch_size_for", "n_batches"]
