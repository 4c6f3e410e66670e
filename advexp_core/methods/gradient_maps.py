"""The gradient maps: Grad-CAM, Integrated Gradients, plain gradient and SmoothGrad.

docs/method.md §4 step 1. captum does the work for Grad-CAM and Integrated Gradients; every method
returns the same `SaliencyMap` (`advexp_core.methods.maps`: one non-negative (H, W) map per image at input
resolution). They are reached through the explainer registry of `advexp_core.methods.saliency`, which
also re-exports them.

Every method takes a bare ``nn.Module`` (captum style) and takes no lock: callers that share a
module between threads (the experiment layer, with ``LoadedModel.lock``) hold it around the call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import Tensor, nn

from advexp_core.base.runtime import device_of, in_order
from advexp_core.data.imaging import gaussian_window
from advexp_core.methods.maps import SaliencyMap, as_targets
from advexp_core.networks.introspect import find_last_conv_block

# Images per forward pass that IG and SmoothGrad may use, counted in 224x224 images:
# ~32 images of EfficientNet-Lite0 with activations kept for the backward pass fit in ~2 GB.
_PIXEL_BUDGET = 32 * 224 * 224
IG_BASELINES = ("black", "blur")


@dataclass(frozen=True)
class IntegratedGradientsSettings:
    """Integrated Gradients: quadrature points along the path and the baseline ("black", "blur")."""

    n_steps: int = 32
    baseline: str = "black"

    def __post_init__(self) -> None:
        if self.baseline not in IG_BASELINES:
            raise ValueError(f"the IG baseline must be one of {', '.join(IG_BASELINES)}.")
        if self.n_steps < 1:
            raise ValueError("the number of IG steps must be at least 1.")


@dataclass(frozen=True)
class SmoothGradSettings:
    """SmoothGrad: noisy copies, noise in [0,1] pixel units, and the seed of the noise."""

    n_samples: int = 16
    sigma: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError("the number of SmoothGrad samples must be at least 1.")
        if not self.sigma >= 0:
            raise ValueError(f"the SmoothGrad noise must be a number >= 0, got {self.sigma}.")


GRADIENT_METHODS = ("gradcam", "ig", "gradient", "smoothgrad")
PERTURBATION_METHODS = ("lime", "occlusion")  # forward-only (docs/method.md §5)
METHODS = (*GRADIENT_METHODS, *PERTURBATION_METHODS)


def _prepare(
    module: nn.Module, images: Tensor, targets: Tensor | int | Sequence[int]
) -> tuple[Tensor, Tensor]:
    """(images as float on the module's device, targets as (N,) long there)."""
    device = device_of(module, fallback=images.device)
    x = images.detach().to(device).float()
    return x, as_targets(targets, x.shape[0], device)


def grad_cam(
    module: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    layer: nn.Module | None = None,
) -> SaliencyMap:
    """Grad-CAM (Selvaraju et al. 2017) at the last convolutional block, upsampled to the input.

    docs/method.md §4 step 1. Uses captum's LayerGradCam with ReLU on the class-weighted
    activations, then bilinear upsampling (LayerAttribution.interpolate). Hooks are registered
    by captum in try/finally.

    Args:
        module: the network (images in [0, 1] -> logits); not modified.
        images: images in [0, 1].
        targets: class index to explain, per image or one for all.
        layer: the submodule of `module` to explain at (e.g. `LoadedModel.gradcam_layer`);
            default `find_last_conv_block`.

    Returns:
        SaliencyMap with method "gradcam", maps >= 0.

    Shapes: images (N, 3, H, W) -> maps (N, H, W)
    """
    x, t = _prepare(module, images, targets)
    if layer is None:
        layer = find_last_conv_block(module, input_size=(x.shape[-2], x.shape[-1]))
    # captum sets requires_grad on the layer output; an input that requires grad keeps
    # in-place activations after that layer legal.
    attr = LayerGradCam(module, layer).attribute(x.requires_grad_(), target=t, relu_attributions=True)
    up = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    maps = up[:, 0].clamp_min(0)  # bilinear interpolation of ReLU'd values stays >= 0
    return SaliencyMap(maps, "gradcam", t, {"layer": type(layer).__name__})


def blurred_baseline(images: Tensor, *, sigma: float | None = None) -> Tensor:
    """A Gaussian-blurred copy of the images, the "blur" baseline for IG (Sturmfels et al. 2020).

    Args:
        images: images in [0, 1].
        sigma: blur standard deviation in pixels; default max(H, W) / 16.

    Shapes: (N, C, H, W) -> (N, C, H, W)
    """
    n, c, h, w = images.shape
    s = sigma if sigma is not None else max(h, w) / 16
    radius = max(1, min(int(3 * s), (min(h, w) - 1) // 2))
    g = gaussian_window(2 * radius + 1, s, dtype=images.dtype, device=images.device)
    x = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _chunks(n: int, per_image_evals: int, hw: int, budget: int) -> Iterator[slice]:
    """Example slices so one chunk does not exceed `budget` pixels per forward pass."""
    per_chunk = max(1, budget // (hw * max(1, per_image_evals)))
    for start in range(0, n, per_chunk):
        yield slice(start, min(n, start + per_chunk))


def integrated_gradients(
    module: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    baseline: Literal["black", "blur"] | Tensor = "black",
    n_steps: int = IntegratedGradientsSettings.n_steps,
    internal_batch_size: int | None = None,
) -> SaliencyMap:
    """Integrated Gradients (Sundararajan et al. 2017) via captum, channel-reduced by |.|-sum.

    docs/method.md §4 step 1. Gauss-Legendre quadrature with `n_steps` points. Memory is bounded:
    at most `internal_batch_size` images go through the model at once (default: a budget of
    32 images of 224x224 pixels); the completeness error is returned per image.

    Args:
        module: the network (images in [0, 1] -> logits); not modified.
        images: images in [0, 1].
        targets: class index to explain, per image or one for all.
        baseline: "black" (zeros), "blur" (`blurred_baseline`) or a tensor like `images`.
        n_steps: quadrature points along the path.
        internal_batch_size: images per forward pass; default from the pixel budget.

    Returns:
        SaliencyMap with method "ig"; extra["convergence_delta"] (N,) = sum of attributions
        - (f_t(x) - f_t(baseline)), and extra["baseline"].

    Shapes: images (N, 3, H, W) -> maps (N, H, W)
    """
    if n_steps < 1:
        raise ValueError("n_steps must be at least 1")
    x, t = _prepare(module, images, targets)
    if isinstance(baseline, Tensor):
        base = baseline.detach().to(x.device).float().expand_as(x)
    elif baseline == "black":
        base = torch.zeros_like(x)
    elif baseline == "blur":
        base = blurred_baseline(x)
    else:
        raise ValueError(f"unknown baseline {baseline!r}; use 'black', 'blur' or a tensor")
    hw = x.shape[-2] * x.shape[-1]
    budget = internal_batch_size * hw if internal_batch_size else _PIXEL_BUDGET
    ig = IntegratedGradients(module)
    maps, deltas = [], []
    for sl in _chunks(x.shape[0], 1, hw, budget):
        n = sl.stop - sl.start
        attr, delta = _ig_in_passes(
            ig, x[sl], base[sl], t[sl], n_steps, max(1, min(n_steps, budget // (hw * n)))
        )
        maps.append(attr.detach().abs().sum(dim=1))
        deltas.append(delta.detach())
    name = baseline if isinstance(baseline, str) else "tensor"
    extra = {"convergence_delta": torch.cat(deltas), "baseline": name, "n_steps": n_steps}
    return SaliencyMap(torch.cat(maps), "ig", t, extra)


def _ig_in_passes(
    ig: IntegratedGradients, x: Tensor, base: Tensor, t: Tensor, n_steps: int, steps_per_pass: int
) -> tuple[Tensor, Tensor]:
    """captum's ``ig.attribute(x, base, target=t, n_steps=n_steps, internal_batch_size=len(x) *
    steps_per_pass, return_convergence_delta=True)``, with its passes run side by side on the CPU.

    captum runs the passes (``steps_per_pass`` quadrature points each) one after another and adds
    them up in order; here they go through `runtime.in_order` and are added in the same order with
    the same operations, so the attributions and the completeness error are bit for bit captum's
    (tests/core/test_saliency.py checks it), in less wall time (`python -m bench.bench_compare`).

    Shapes: x, base (N, C, H, W), t (N,) -> attributions (N, C, H, W), delta (N,).
    """
    sizes, alphas = approximation_parameters("gausslegendre")
    full_sizes, full_alphas = sizes(n_steps), alphas(n_steps)
    starts = range(0, n_steps, steps_per_pass)

    def one_pass(start: int) -> tuple[Tensor, ...]:
        end = min(start + steps_per_pass, n_steps)
        return ig._attribute(  # captum's own per-pass step (its internal batching calls the same)
            inputs=(x,), baselines=(base,), target=t, additional_forward_args=None,
            n_steps=end - start, method="gausslegendre",
            step_sizes_and_alphas=(full_sizes[start:end], full_alphas[start:end]),
        )  # fmt: skip

    total: tuple[Tensor, ...] | None = None
    for current in in_order(one_pass, starts, x.device):
        total = (
            current if total is None else tuple(c.detach() + p for c, p in zip(current, total, strict=True))
        )
    assert total is not None
    delta = ig.compute_convergence_delta(total, base, x, additional_forward_args=None, target=t)
    return total[0], delta


def _input_gradient(module: nn.Module, x: Tensor, t: Tensor) -> Tensor:
    """d logit_t / d x per image (autograd.grad on the input only). Shapes: (N,C,H,W) -> same."""
    x = x.detach().requires_grad_(True)
    score = module(x).gather(1, t[:, None]).sum()
    (g,) = torch.autograd.grad(score, x)
    return g


def gradient(module: nn.Module, images: Tensor, targets: Tensor | int | Sequence[int]) -> SaliencyMap:
    """Plain input-gradient saliency (Simonyan et al. 2014): |d logit_t / d x| summed over channels.

    Args:
        module: the network (images in [0, 1] -> logits); not modified.
        images: images in [0, 1].
        targets: class index to explain, per image or one for all.

    Shapes: images (N, 3, H, W) -> maps (N, H, W)
    """
    x, t = _prepare(module, images, targets)
    maps = _input_gradient(module, x, t).abs().sum(dim=1)
    return SaliencyMap(maps, "gradient", t, {})


def smoothgrad(
    module: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    n_samples: int = SmoothGradSettings.n_samples,
    sigma: float = SmoothGradSettings.sigma,
    generator: torch.Generator | None = None,
    internal_batch_size: int | None = None,
) -> SaliencyMap:
    """SmoothGrad (Smilkov et al. 2017): the gradient map averaged over noisy copies.

    Args:
        module: the network (images in [0, 1] -> logits); not modified.
        images: images in [0, 1].
        targets: class index to explain, per image or one for all.
        n_samples: noisy copies per image.
        sigma: noise standard deviation in [0, 1] pixel units (0.15 = 15 % of the range).
        generator: source of the noise; default a fresh generator seeded with 0, so the
            result is deterministic either way.
        internal_batch_size: at most this many noisy images per pass (captum's name; None: the
            module's pixel budget alone). The noise is drawn first, so the map is the same up
            to float rounding; smaller passes need less memory.

    Shapes: images (N, 3, H, W) -> maps (N, H, W)
    """
    if n_samples < 1:
        raise ValueError("n_samples must be at least 1")
    if internal_batch_size is not None and internal_batch_size < 1:
        raise ValueError("internal_batch_size must be at least 1")
    x, t = _prepare(module, images, targets)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    noise = torch.randn((n_samples, *x.shape), generator=gen, device=gen.device).to(x.device)
    hw = x.shape[-2] * x.shape[-1]
    total = torch.zeros(x.shape[0], *x.shape[-2:], device=x.device)
    for sl in _chunks(x.shape[0], n_samples, hw, _PIXEL_BUDGET):
        n = sl.stop - sl.start
        per_pass = n_samples if internal_batch_size is None else max(1, internal_batch_size // n)

        def one_pass(first: int, sl: slice = sl, n: int = n, per_pass: int = per_pass) -> Tensor:
            k = min(per_pass, n_samples - first)
            noisy = (x[sl][None] + sigma * noise[first : first + k, sl]).flatten(0, 1)  # sample-major
            g = _input_gradient(module, noisy, t[sl].repeat(k)).abs().sum(dim=1)
            return g.view(k, n, *x.shape[-2:]).sum(dim=0)

        for summed in in_order(one_pass, range(0, n_samples, per_pass), x.device):  # added in order
            total[sl] += summed
        total[sl] /= n_samples
    extra = {"n_samples": n_samples, "sigma": sigma}
    return SaliencyMap(total, "smoothgrad", t, extra)
