"""Every explainer, registered once: its name, title, settings, needs and how it makes its map.

docs/method.md §4 steps 1 and 3: explain the clean and the attacked image the same way, on one
shared colour scale. The gradient maps (Grad-CAM, Integrated Gradients, gradient, SmoothGrad) live
in `advexp_core.methods.gradient_maps`, the forward-only LIME and occlusion in `advexp_core.methods.perturbation`
(docs/method.md §5) and the adversarial explanation as a map in `advexp_core.methods.explanations`
(docs/method.md §2); `EXPLAINERS` is the one table every experiment chooses them from, so a new
explainer is one entry. Every method returns the same `SaliencyMap` (`advexp_core.methods.maps`,
re-exported here: one non-negative (H, W) map per image at input resolution).

Every method takes a bare ``nn.Module`` (captum style) and takes no lock: callers that share a
module between threads (the experiment layer, with ``LoadedModel.lock``) hold it around the call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.base.runtime import device_of
from advexp_core.methods import perturbation
from advexp_core.methods.explanations import ExplanationSettings, adversarial_map
from advexp_core.methods.gradient_maps import (
    IG_BASELINES,
    IntegratedGradientsSettings,
    SmoothGradSettings,
    blurred_baseline,
    grad_cam,
    gradient,
    integrated_gradients,
    smoothgrad,
)
from advexp_core.methods.maps import SaliencyMap
from advexp_core.methods.perturbation import lime, occlusion

# Images per forward pass of Integrated Gradients and SmoothGrad on a CPU: at most CPU_IG_IMAGES, and
# at most CPU_PASS_PIXELS pixels. One thread per operation (`runtime.use_compute_threads`) is fastest
# with passes that stay in the cache, and the passes run side by side on the cores (measured by
# `python -m bench.bench_compare`, figures in bench/README.md); one pass of SmoothGrad's copies would
# also multiply the peak memory. Small inputs (32 and 64 px) go 8 at a time.
CPU_IG_IMAGES = 8
CPU_PASS_PIXELS = 4 * 224 * 224


def cpu_pass_images(entry: Explainer, height: int, width: int) -> int | None:
    """Images per pass of ``entry`` on a CPU for inputs of ``height`` x ``width`` pixels (None: the
    explainer batches on its own)."""
    if entry.cpu_images is None:
        return None
    return max(1, min(entry.cpu_images, CPU_PASS_PIXELS // max(1, height * width)))


Options = dict[str, Any]  # an explainer's keyword arguments, as its ``make`` takes them


# --- each explainer's settings (the gradient maps' in gradient_maps): every default written once ---


@dataclass(frozen=True)
class NoSettings:
    """An explainer without settings of its own (Grad-CAM's layer comes with the model)."""


@dataclass(frozen=True)
class LimeSettings:
    """LIME: perturbed samples and superpixels per image (`advexp_core.methods.perturbation`)."""

    n_samples: int = perturbation.LIME_SAMPLES
    n_segments: int = perturbation.LIME_SEGMENTS


# --- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Explainer:
    """One explainer of the registry.

    Attributes:
        name: its key ("gradcam", "ig", ...), as written in configs and reports.
        title: its display name.
        make: (module, images, targets, **options) -> SaliencyMap.
        settings: its settings type; ``settings()`` holds the defaults.
        options: (settings, images per pass or None) -> ``make``'s keyword arguments.
        needs_gradients: backward passes through the network (False: forward-only).
        uses_layer: takes the model's Grad-CAM layer.
        cpu_images: at most this many images per pass on a CPU (`cpu_pass_images`; None: one pass,
            or its own pixel budget, anywhere).
        saliency: a saliency map of `METHODS` (False: a map made by another experiment's algorithm).
    """

    name: str
    title: str
    make: Callable[..., SaliencyMap]
    settings: type = NoSettings
    options: Callable[[Any, int | None], Options] = field(default=lambda _s, _n: {})
    needs_gradients: bool = True
    uses_layer: bool = False
    cpu_images: int | None = None
    saliency: bool = True


def _ig_options(s: IntegratedGradientsSettings, per_pass: int | None) -> Options:
    return {"n_steps": s.n_steps, "baseline": s.baseline, "internal_batch_size": per_pass}


def _smoothgrad_options(s: SmoothGradSettings, per_pass: int | None) -> Options:
    return {
        "n_samples": s.n_samples,
        "sigma": s.sigma,
        "generator": torch.Generator().manual_seed(s.seed),  # fresh noise of the same seed per call
        "internal_batch_size": per_pass,
    }


def _adversarial_options(s: ExplanationSettings, _per_pass: int | None) -> Options:
    return {"rho": s.rho, "steps": s.steps, "overshoot": s.overshoot}


EXPLAINERS: dict[str, Explainer] = {
    e.name: e
    for e in (
        Explainer("gradcam", "Grad-CAM", grad_cam, uses_layer=True),
        Explainer(
            "ig",
            "Integrated Gradients",
            integrated_gradients,
            IntegratedGradientsSettings,
            _ig_options,
            cpu_images=CPU_IG_IMAGES,
        ),
        Explainer("gradient", "Gradient", gradient),
        Explainer(
            "smoothgrad",
            "SmoothGrad",
            smoothgrad,
            SmoothGradSettings,
            _smoothgrad_options,
            cpu_images=CPU_IG_IMAGES,
        ),
        Explainer(
            "lime",
            "LIME",
            lime,
            LimeSettings,
            lambda s, _n: {"n_samples": s.n_samples, "n_segments": s.n_segments},
            needs_gradients=False,
        ),
        Explainer("occlusion", "Occlusion", occlusion, needs_gradients=False),
        Explainer(
            "adversarial",
            "Adversarial explanation δ",
            adversarial_map,
            ExplanationSettings,
            _adversarial_options,
            saliency=False,
        ),
    )
}

GRADIENT_METHODS = tuple(n for n, e in EXPLAINERS.items() if e.saliency and e.needs_gradients)
PERTURBATION_METHODS = tuple(n for n, e in EXPLAINERS.items() if e.saliency and not e.needs_gradients)
METHODS = (*GRADIENT_METHODS, *PERTURBATION_METHODS)
METHOD_TITLES = {n: e.title for n, e in EXPLAINERS.items() if e.saliency}


def explainer(method: str) -> Explainer:
    """The registry entry of ``method`` (ValueError, naming the choices, for an unknown one)."""
    try:
        return EXPLAINERS[method]
    except KeyError:
        raise ValueError(f"unknown saliency method {method!r}; choose from {', '.join(METHODS)}") from None


def map_options(
    method: str,
    settings: object | None,
    module: nn.Module,
    size: Sequence[int],
    *,
    layer: nn.Module | None = None,
) -> tuple[Explainer, Options]:
    """An explainer and the keyword arguments its ``make`` takes for these settings (None: its
    defaults), batched by where the module lives: on a CPU, `cpu_pass_images` images of ``size``
    (height, width) per pass (the same map up to float rounding, faster there). Build them once
    for a run of several calls: SmoothGrad's noise then goes on from one call to the next."""
    entry = explainer(method)
    chosen = entry.settings() if settings is None else settings
    if not isinstance(chosen, entry.settings):
        raise TypeError(f"{method} takes {entry.settings.__name__}, got {type(chosen).__name__}")
    per_pass = cpu_pass_images(entry, size[0], size[1]) if device_of(module).type == "cpu" else None
    kwargs = entry.options(chosen, per_pass)
    if entry.uses_layer:
        kwargs["layer"] = layer
    return entry, kwargs


def make_map(
    module: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    method: str,
    settings: object | None = None,
    layer: nn.Module | None = None,
) -> SaliencyMap:
    """One explainer's maps with its settings (`map_options`): the one way the experiments make a map.

    Args:
        module: the network (images in [0, 1] -> logits); not modified.
        images: images in [0, 1].
        targets: class index to explain, per image or one for all.
        method: a key of `EXPLAINERS`.
        settings: an instance of the explainer's settings type; None: its defaults.
        layer: the model's Grad-CAM layer (None: `find_last_conv_block`); unused by the others.

    Shapes: images (N, 3, H, W) -> maps (N, H, W)
    """
    entry, kwargs = map_options(method, settings, module, images.shape[-2:], layer=layer)
    return entry.make(module, images, targets, **kwargs)


def explain(
    module: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    method: str,
    layer: nn.Module | None = None,
    **kwargs: Any,
) -> SaliencyMap:
    """Explain `images` for `targets` with one of `METHODS`, with the method's own keyword arguments.

    The gradient methods ("gradcam", "ig", "gradient", "smoothgrad") are in
    `advexp_core.methods.gradient_maps`; "lime" and "occlusion" are forward-only
    (`advexp_core.methods.perturbation`, docs/method.md §5). Concatenate clean and attacked images and
    `SaliencyMap.split` the result to explain both in one batched call.

    Args:
        module: the network (images in [0, 1] -> logits); not modified.
        images: images in [0, 1].
        targets: class index to explain, per image or one for all.
        method: one of `METHODS`.
        layer: Grad-CAM's layer (see `grad_cam`); the other methods do not use it, so one
            call site can pass a model's registered layer whatever the method.
        kwargs: the method's own keyword arguments (e.g. `n_steps` for "ig").

    Shapes: images (N, 3, H, W) -> maps (N, H, W)
    """
    entry = explainer(method)
    if entry.uses_layer:
        kwargs["layer"] = layer
    return entry.make(module, images, targets, **kwargs)


def colour_scales(
    *maps: Tensor, per_map: bool = False, outlier_share: float = 0.01
) -> list[tuple[float, float]]:
    """Colour limits (vmin, vmax) for displaying maps, shared by all maps or one per map.

    vmin is 0 (maps are non-negative); vmax is the (1 - outlier_share) quantile of the values,
    so a few extreme pixels (common with IG) do not wash the picture out.

    Args:
        maps: maps to display, any shapes.
        per_map: one scale per map instead of one shared scale.
        outlier_share: share of the highest values allowed to saturate.

    Returns:
        One (vmin, vmax) per map, all equal unless `per_map`.
    """

    def vmax(values: Tensor) -> float:
        v = values.detach().float().flatten()
        if v.numel() > 1_000_000:  # torch.quantile's input limit; a strided subsample suffices
            v = v[:: v.numel() // 1_000_000 + 1]
        top = float(torch.quantile(v, 1.0 - outlier_share)) if v.numel() else 0.0
        return top if top > 0 else max(float(v.max()) if v.numel() else 0.0, 1e-12)

    if per_map:
        return [(0.0, vmax(m)) for m in maps]
    shared = (0.0, vmax(torch.cat([m.detach().flatten().cpu() for m in maps])))
    return [shared] * len(maps)


__all__ = [
    "CPU_IG_IMAGES",
    "CPU_PASS_PIXELS",
    "EXPLAINERS",
    "GRADIENT_METHODS",
    "IG_BASELINES",
    "METHODS",
    "METHOD_TITLES",
    "PERTURBATION_METHODS",
    "Explainer",
    "ExplanationSettings",
    "IntegratedGradientsSettings",
    "LimeSettings",
    "NoSettings",
    "SaliencyMap",
    "SmoothGradSettings",
    "blurred_baseline",
    "colour_scales",
    "cpu_pass_images",
    "explain",
    "explainer",
    "grad_cam",
    "gradient",
    "integrated_gradients",
    "make_map",
    "map_options",
    "smoothgrad",
]
