"""Tiny networks the core tests share, each defined once (captum-style hand-made models).

Every factory returns a frozen module in eval mode, the contract ``advexp_core.networks.registry`` gives
every loaded model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def frozen(module: nn.Module) -> nn.Module:
    """The module in eval mode with parameters that do not require grad (load-time contract)."""
    return module.eval().requires_grad_(False)


def hook_count(module: nn.Module) -> int:
    """Forward, forward-pre, backward and backward-pre hooks registered anywhere in ``module``."""
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for m in module.modules()
    )


class TinyConv(nn.Module):
    """Conv -> act -> strided conv -> act -> global pool -> linear (a user model without registry).

    Grad-CAM's last convolutional block is ``features``.
    """

    def __init__(self, act: type[nn.Module] = nn.ReLU, classes: int = 4, width: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), act(), nn.Conv2d(width, 8, 3, padding=1, stride=2), act()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def tiny_conv(seed: int = 0, **kwargs: object) -> nn.Module:
    """A frozen `TinyConv` with weights drawn from ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return frozen(TinyConv(**kwargs))  # type: ignore[arg-type]


def linear_model(weight: Tensor, bias: Tensor | None = None) -> nn.Module:
    """logits = W · flatten(x) (+ b): the input gradient of logit t is exactly W[t].

    Shapes: weight (K, C·H·W), bias (K,).
    """
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return frozen(nn.Sequential(nn.Flatten(), lin))


class TwoClassLinear(nn.Module):
    """Logits (0, v·x + b): the CE gradient always points along ±v, so every attack path is 1-D.

    No parameters (only buffers): also checks the device fallback of the algorithms.
    """

    def __init__(self, v: Tensor, bias: float) -> None:
        super().__init__()
        self.register_buffer("v", v)
        self.bias = bias

    def forward(self, x: Tensor) -> Tensor:
        z = (x * self.v).flatten(1).sum(1) + self.bias
        return torch.stack([torch.zeros_like(z), z], dim=1)


class HandConv(nn.Module):
    """One 2x2 stride-2 convolution, global average pooling and a linear head, all hand-weighted.

    With A = conv(x) (N, 2, H/2, W/2): A_0 is channel 0's top-left pixel of each 2x2 block and A_1
    channel 1's bottom-right pixel; logits = head · mean(A), head = [[2, -1], [-1, 1]].
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel_size=2, stride=2, bias=False)
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0, 0, 0] = 1.0
            self.conv.weight[1, 1, 1, 1] = 1.0
            self.head.weight.copy_(torch.tensor([[2.0, -1.0], [-1.0, 1.0]]))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))
