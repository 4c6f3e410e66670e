"""What a network is made of, found by running it: the layer Grad-CAM reads on a user's network."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.base.runtime import device_of, dtype_of

__all__ = ["find_last_conv_block"]


def find_last_conv_block(module: nn.Module, *, input_size: tuple[int, int]) -> nn.Module:
    """The last convolutional layer or block of a network, for Grad-CAM on user models.

    Runs one forward pass on a black image with temporary hooks (removed before returning)
    and picks the outermost module that finished last among those that contain an
    nn.Conv2d, are called once and output a spatial map larger than 1x1. On a torchvision
    ResNet this is `layer4`, on EfficientNet `features`; a 1x1-conv classifier head
    applied after global pooling is skipped.

    Args:
        module: the network (images in [0, 1] -> logits).
        input_size: (H, W) of the model input, in pixels.

    Returns:
        The chosen submodule.

    Raises:
        ValueError: no convolutional layer produces a spatial map (Grad-CAM cannot apply).
    """
    has_conv = {m for m in module.modules() if any(isinstance(s, nn.Conv2d) for s in m.modules())}
    finished: list[tuple[nn.Module, tuple[int, ...]]] = []
    calls: dict[nn.Module, int] = {}

    def hook(m: nn.Module, _inp: Any, out: Any) -> None:
        calls[m] = calls.get(m, 0) + 1
        if isinstance(out, Tensor):
            finished.append((m, tuple(out.shape)))

    candidates = [m for m in module.modules() if m is not module and m in has_conv]
    handles = [m.register_forward_hook(hook) for m in candidates]
    try:
        with torch.no_grad():
            x = torch.zeros(1, 3, *input_size, device=device_of(module), dtype=dtype_of(module))
            module(x)
    finally:
        for h in handles:
            h.remove()
    for m, shape in reversed(finished):
        if calls[m] == 1 and len(shape) == 4 and shape[2] * shape[3] > 1:
            return m
    raise ValueError("the model has no convolutional layer with a spatial output; Grad-CAM needs one")
