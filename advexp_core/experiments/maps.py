"""What every experiment does alike: fit the image to the network, find Grad-CAM's layer, and make a
method's maps through the explainer registry (`advexp_core.methods.saliency.make_map`), so batching and
settings are the same from one experiment to the next."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.data.imaging import prepare_image
from advexp_core.experiments.configs import SaliencyConfig
from advexp_core.experiments.report import predictions
from advexp_core.methods.saliency import (
    CPU_IG_IMAGES,
    Options,
    cpu_pass_images,
    explainer,
    map_options,
)
from advexp_core.networks.introspect import find_last_conv_block
from advexp_core.networks.registry import LoadedModel


def fit_image(image: Tensor, model: LoadedModel) -> Tensor:
    """The image at the model's input size, on its device. Shapes: (3, H, W) -> (3, h, w)."""
    return prepare_image(image, model).to(model.device)


def check_class(model: LoadedModel, index: int) -> int:
    """``index`` when the model has that class; ValueError naming the model's range otherwise."""
    if not 0 <= index < model.num_classes:
        raise ValueError(f"Class {index} does not exist for this model (0..{model.num_classes - 1}).")
    return index


def classify(model: LoadedModel, image: Tensor, *, top_k: int) -> list[dict[str, Any]]:
    """The model's top-``top_k`` classes for one image. Shapes: image (3, H, W)."""
    x = fit_image(image, model)
    with model.lock, torch.no_grad():  # a forward pass through a layer another run has hooked
        logits = model.module(x[None])[0]
    return predictions(logits, model.class_names, top_k)


def gradcam_layer_for(model: LoadedModel, methods: tuple[str, ...]) -> nn.Module | None:
    """The Grad-CAM layer when an explainer that takes one is asked for (ValueError when the
    network has none)."""
    if not any(explainer(m).uses_layer for m in methods):
        return None
    if model.gradcam_layer is not None:
        return model.gradcam_layer
    return find_last_conv_block(model.module, input_size=model.input_size)


def method_maps(
    model: LoadedModel,
    images: Tensor,
    targets: Tensor,
    method: str,
    settings: object | None,
    *,
    layer: nn.Module | None = None,
    batch_size: int | None = None,
) -> Tensor:
    """One method's non-negative maps of ``images`` for ``targets``, in batches (no lock taken).

    Args:
        model: the network.
        images: images in [0, 1] at its input size.
        targets: the class to explain, per image.
        method: a key of `advexp_core.methods.saliency.EXPLAINERS`.
        settings: the method's settings (None: its defaults).
        layer: the Grad-CAM layer (None: found here when the method takes one).
        batch_size: images per call (None: all at once).

    Shapes: images (N, 3, H, W), targets (N,) -> (N, H, W) on the CPU.
    """
    if layer is None:
        layer = gradcam_layer_for(model, (method,))
    entry, kwargs = map_options(method, settings, model.module, images.shape[-2:], layer=layer)
    step = batch_size or max(1, len(images))
    out = []
    for start in range(0, len(images), step):
        x, t = images[start : start + step].to(model.device), targets[start : start + step].to(model.device)
        out.append(entry.make(model.module, x, t, **kwargs).maps.detach().cpu())
    return torch.cat(out) if out else torch.zeros(0, *images.shape[2:])


def method_kwargs(
    method: str,
    saliency: SaliencyConfig,
    layer: nn.Module | None,
    size: Sequence[int],
    *,
    device: torch.device | None = None,
) -> Options:
    """The keyword arguments of one method for `advexp_core.methods.saliency.explain` on images of ``size``
    (height, width), as `make_map` builds them (for callers of ``explain``; the experiments call
    `make_map` itself).

    On a CPU ``device``, the explainers with `Explainer.cpu_images` send `cpu_pass_images` images per
    pass.
    """
    entry = explainer(method)
    small = device is not None and device.type == "cpu"
    kwargs = entry.options(
        saliency.settings(method), cpu_pass_images(entry, size[0], size[1]) if small else None
    )
    if entry.uses_layer:
        kwargs["layer"] = layer
    return kwargs


__all__ = [
    "CPU_IG_IMAGES",
    "check_class",
    "classify",
    "fit_image",
    "gradcam_layer_for",
    "method_kwargs",
    "method_maps",
]
