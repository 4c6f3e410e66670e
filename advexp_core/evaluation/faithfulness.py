"""Faithfulness of a saliency map: deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018).

Deletion removes the pixels a map ranks most important first (replacing them with a blurred copy of
the image) and tracks the class probability: a faithful map makes it fall fast (low area). Insertion
starts from the blurred image and restores the most important pixels first: a faithful map makes the
probability rise fast (high area).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advexp_core.base.runtime import OnStep, device_of, in_order
from advexp_core.methods.gradient_maps import blurred_baseline
from advexp_core.methods.maps import SaliencyMap

CPU_PASS_IMAGES = 4
"""Images per forward pass on a CPU: one thread per operation (`runtime.use_compute_threads`) is
fastest with small passes that stay in the cache, and the passes of one curve run side by side on
the cores (measured by `python -m bench.bench_compare`; figures in bench/README.md)."""
DEVICE_PASS_IMAGES = 16
"""Images per forward pass on an accelerator (bounds its memory)."""


@dataclass(frozen=True)
class FaithfulnessCurves:
    """Class probability against the share of pixels deleted / inserted, with the curves' areas.

    Shapes: fractions, deletion, insertion (steps + 1,).
    """

    fractions: Tensor
    deletion: Tensor
    insertion: Tensor
    deletion_auc: float
    insertion_auc: float


def deletion_insertion(
    module: nn.Module,
    image: Tensor,
    saliency: SaliencyMap | Tensor,
    target: int,
    *,
    steps: int = 20,
    baseline: str = "blur",
    batch_size: int | None = None,
    on_step: OnStep | None = None,
) -> FaithfulnessCurves:
    """Deletion and insertion curves of one saliency map for one class.

    Args:
        module: the network (images in [0, 1] -> logits); not modified.
        image: the explained image in [0, 1].
        saliency: a SaliencyMap (its first map is used) or a tensor (H, W).
        target: the explained class.
        steps: number of equal shares of pixels (the curve has steps + 1 points), >= 1.
        baseline: "blur" (a blurred copy of the image) or "black".
        batch_size: images per forward pass; None: `CPU_PASS_IMAGES` on a CPU, else
            `DEVICE_PASS_IMAGES`. It changes the probabilities in the last float digits only
            (a convolution's rounding depends on the batch).
        on_step: called as on_step(done, total) after each batch.

    Returns:
        FaithfulnessCurves; the areas use the trapezoid rule over fractions in [0, 1].

    Shapes: image (3, H, W), saliency (H, W).
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    device = device_of(module, fallback=image.device)
    x = image.to(device, torch.float32)
    maps = saliency.maps[0] if isinstance(saliency, SaliencyMap) else saliency
    maps = maps.to(device, torch.float32)
    if maps.shape != x.shape[1:]:
        raise ValueError(f"saliency map {tuple(maps.shape)} does not match the image {tuple(x.shape[1:])}")
    if baseline not in ("blur", "black"):
        raise ValueError("baseline must be 'blur' or 'black'")
    base = blurred_baseline(x[None])[0] if baseline == "blur" else torch.zeros_like(x)
    order = maps.flatten().argsort(descending=True, stable=True)
    n_pixels = order.numel()
    fractions = torch.linspace(0.0, 1.0, steps + 1)
    ranks = torch.empty(n_pixels, dtype=torch.long, device=device)
    ranks[order] = torch.arange(n_pixels, device=device)
    counts = (fractions * n_pixels).round().long().to(device)
    masks = (ranks[None, :] < counts[:, None]).view(steps + 1, 1, *x.shape[1:]).float()
    deleted = x * (1 - masks) + base * masks
    inserted = base * (1 - masks) + x * masks
    if batch_size is None:
        batch_size = CPU_PASS_IMAGES if device.type == "cpu" else DEVICE_PASS_IMAGES
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    probs = _probabilities(module, torch.cat([deleted, inserted]), target, batch_size, on_step)
    deletion, insertion = probs[: steps + 1], probs[steps + 1 :]
    return FaithfulnessCurves(
        fractions,
        deletion,
        insertion,
        float(torch.trapezoid(deletion, fractions)),
        float(torch.trapezoid(insertion, fractions)),
    )


def _probabilities(
    module: nn.Module, images: Tensor, target: int, batch_size: int, on_step: OnStep | None
) -> Tensor:
    """Softmax probability of ``target`` per image, ``batch_size`` images per forward pass.

    Shapes: (M, 3, H, W) -> (M,) on the CPU.
    """
    out = []
    starts = range(0, images.shape[0], batch_size)

    def one_pass(start: int) -> Tensor:
        logits = module(images[start : start + batch_size])
        return torch.softmax(logits.float(), dim=1)[:, target].cpu()

    with torch.no_grad():  # the passes run side by side on a CPU (`in_order`), the same numbers
        for i, probs in enumerate(in_order(one_pass, starts, images.device), start=1):
            out.append(probs)
            if on_step is not None:
                on_step(i, len(starts))
    return torch.cat(out)
