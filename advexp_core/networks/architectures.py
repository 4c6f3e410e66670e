"""Network architectures written in this project's own code.

``WoodsResNet`` is the pre-activation ResNet of Woods et al. 2019 (docs/method.md §1.5); its module
names match the authors' published checkpoints (``input_offset``, ``pipe.0``, ``pipe.1.0.pre.0``, …)
so their state_dicts load with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from advexp_core.networks.layers import HHReLU

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.247, 0.243, 0.261)


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module: ``relu`` or ``hhrelu`` (δ = 0.5)."""
    if name == "relu":
        return nn.ReLU()
    if name == "hhrelu":
        return HHReLU(0.5)
    raise ValueError(f"unknown activation {name!r}; use 'relu' or 'hhrelu'")


class PreActBlock(nn.Module):
    """pre = BN→act(x); out = conv3×3(pre)→BN→act→conv3×3; shortcut = x or a 3×3 strided conv of pre."""

    def __init__(self, c_in: int, c_out: int, stride: int, activation: str) -> None:
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(c_in), make_activation(activation))
        self.main = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            make_activation(activation),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        )
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.pre(x)
        skip = x if self.shortcut is None else self.shortcut(pre)
        return self.main(pre) + skip


class WoodsResNet(nn.Module):
    """Pre-activation ResNet of docs/method.md §1.5 taking images in [0, 1].

    Args:
        num_blocks: blocks per stage ((7, 7, 7) is the paper's ResNet-44).
        widths: channels per stage.
        num_classes: number of logits.
        mean, std: per-channel normalisation applied first (stored as the ``input_offset`` buffer).
        activation: ``relu`` or ``hhrelu`` (the robust additions).

    Shapes: (N, 3, H, W) in [0, 1] -> (N, num_classes) logits.
    """

    input_offset: Tensor

    def __init__(
        self,
        num_blocks: Sequence[int] = (7, 7, 7),
        widths: Sequence[int] = (16, 32, 64),
        num_classes: int = 10,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.register_buffer("input_offset", torch.tensor([list(mean), list(std)], dtype=torch.float32))
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1, bias=False)]
        c_in = widths[0]
        for stage, (n, width) in enumerate(zip(num_blocks, widths, strict=True)):
            blocks = []
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(PreActBlock(c_in, width, stride, activation))
                c_in = width
            layers.append(nn.Sequential(*blocks))
        layers += [
            nn.BatchNorm2d(c_in),
            make_activation(activation),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c_in, num_classes, 1),
        ]
        self.pipe = nn.Sequential(*layers)

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last residual stage: its output is the last convolutional feature map."""
        return self.pipe[len(self.pipe) - 5]

    def forward(self, x: Tensor) -> Tensor:
        mean = self.input_offset[0].view(1, -1, 1, 1)
        std = self.input_offset[1].view(1, -1, 1, 1)
        return self.pipe((x - mean) / std).flatten(1)


def build_model(arch: dict) -> WoodsResNet:
    """A ``WoodsResNet`` from a checkpoint's "arch" entry: the one builder, for training and loading.

    Raises:
        ValueError: the entry names another architecture.
    """
    if arch.get("name") != "woods_resnet":
        raise ValueError(f"unknown architecture {arch.get('name')!r}")
    return WoodsResNet(
        num_blocks=tuple(arch["num_blocks"]),
        widths=tuple(arch["widths"]),
        num_classes=arch["num_classes"],
        mean=arch["mean"],
        std=arch["std"],
        activation=arch["activation"],
    )
