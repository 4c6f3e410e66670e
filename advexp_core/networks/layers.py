"""Layers of the paper's robust recipe (Woods et al. 2019, §1.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def hhrelu(x: Tensor, delta: float | Tensor = 0.5) -> Tensor:
    """Half-Huber ReLU (docs/method.md §1.3), written from the formula so any δ is right.

    f(x) = 0 for x ≤ 0; x²/(2δ) for 0 < x ≤ δ; x − δ/2 for x > δ.  f′(x) = clamp(x, 0, δ)/δ.

    Args:
        x: any tensor.
        delta: width of the quadratic part, > 0.

    Returns:
        Tensor shaped like ``x``.

    Shapes: (*) -> (*).
    """
    pos = x.clamp(min=0.0)
    quad = pos.clamp(max=delta)
    # quad²/(2δ) covers the quadratic part; (pos − quad) adds the linear tail beyond δ.
    return quad * quad / (2 * delta) + (pos - quad)


class HHReLU(nn.Module):
    """Half-Huber ReLU module; ``d`` is a buffer so the paper's checkpoints load unchanged."""

    d: Tensor

    def __init__(self, delta: float = 0.5) -> None:
        super().__init__()
        if not delta > 0:
            raise ValueError(f"HHReLU needs delta > 0, got {delta}")
        self.register_buffer("d", torch.tensor(float(delta)))

    def forward(self, x: Tensor) -> Tensor:
        return hhrelu(x, self.d)

    def extra_repr(self) -> str:
        return f"delta={float(self.d):g}"
