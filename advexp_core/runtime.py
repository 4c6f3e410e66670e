"""What every algorithm shares: the progress callback type and where a module lives.

Algorithms take a bare ``nn.Module`` (captum style); the device and dtype of their work come
from the module, never from a literal (docs/method.md, "Conventions").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

OnStep = Callable[[int, int], None]
"""Progress callback: ``on_step(done, total)`` after each unit of work (a step, a batch, an image)."""


def device_of(module: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the module's first parameter or buffer (``fallback`` when it has none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device(fallback)


def dtype_of(module: nn.Module) -> torch.dtype:
    """The floating dtype of the module's parameters (float32 when it has none)."""
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32
