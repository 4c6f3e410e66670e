"""Grad-CAM computed by hand on a one-convolution network with known weights (captum's test style)."""

from __future__ import annotations

import torch

from advexp_core.methods.gradient_maps import grad_cam
from advexp_core.networks.introspect import find_last_conv_block
from tests.models import HandConv, hook_count

# A = conv(x): A_0 is channel 0 at even (row, col), A_1 channel 1 at odd (row, col).
A0 = torch.tensor([[0.8, 0.2], [0.4, 0.0]])
A1 = torch.tensor([[0.4, 0.8], [0.0, 1.0]])


def _image() -> torch.Tensor:
    x = torch.zeros(3, 4, 4)
    x[0, 0::2, 0::2] = A0
    x[1, 1::2, 1::2] = A1
    x[2] = 0.5  # channel 2 has zero weight: it must not matter
    return x


def test_grad_cam_equals_the_hand_computation() -> None:
    """logits = head · mean(A), so ∂y_c/∂A_k = head[c, k] / 4 everywhere and α_k = head[c, k] / 4.

    Class 0: α = (0.5, -0.25), cam = ReLU(0.5·A0 − 0.25·A1) = [[0.3, 0], [0.2, 0]].
    Class 1: α = (-0.25, 0.25), cam = ReLU(−0.25·A0 + 0.25·A1) = [[0, 0.15], [0, 0.25]].
    Bilinear 2 -> 4 upsampling (align_corners=False) weighs the two source pixels by
    (1, 0), (0.75, 0.25), (0.25, 0.75), (0, 1) along each axis.
    """
    model = HandConv().eval().requires_grad_(False)
    x = _image().expand(2, 3, 4, 4)
    expected = torch.tensor(
        [
            [
                [0.3, 0.225, 0.075, 0.0],
                [0.275, 0.20625, 0.06875, 0.0],
                [0.225, 0.16875, 0.05625, 0.0],
                [0.2, 0.15, 0.05, 0.0],
            ],
            [
                [0.0, 0.0375, 0.1125, 0.15],
                [0.0, 0.04375, 0.13125, 0.175],
                [0.0, 0.05625, 0.16875, 0.225],
                [0.0, 0.0625, 0.1875, 0.25],
            ],
        ]
    )
    for layer in (model.conv, None):  # explicit, and found by find_last_conv_block
        result = grad_cam(model, x, torch.tensor([0, 1]), layer=layer)
        torch.testing.assert_close(result.maps, expected)
        assert result.extra["layer"] == "Conv2d"
    assert find_last_conv_block(model, input_size=(4, 4)) is model.conv
    assert hook_count(model) == 0
