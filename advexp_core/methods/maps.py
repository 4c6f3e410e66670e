"""The saliency-map contract every explainer returns, and the one way targets are read.

Gradient methods (`advexp_core.methods.saliency`) and forward-only methods (`advexp_core.methods.perturbation`)
both return a `SaliencyMap`: one non-negative (H, W) map per image at the input resolution, where
larger means more evidence for the target class (docs/method.md §4 step 1 and §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class SaliencyMap:
    """Saliency maps for a batch of images, one non-negative map per image.

    Attributes:
        maps: attribution per pixel, >= 0, at the input resolution.
        method: one of `advexp_core.methods.saliency.METHODS`.
        target: the class each map explains.
        extra: method details, e.g. "convergence_delta" (N,) for IG, "layer" for Grad-CAM,
            "n_samples" for LIME.

    Shapes: maps (N, H, W), target (N,)
    """

    maps: Tensor
    method: str
    target: Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    def select(self, index: slice | Tensor) -> SaliencyMap:
        """The maps of a subset of the batch (per-example extras are sliced too)."""
        n = self.maps.shape[0]
        extra = {
            k: v[index] if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n else v
            for k, v in self.extra.items()
        }
        return SaliencyMap(self.maps[index], self.method, self.target[index], extra)

    def split(self, n_first: int) -> tuple[SaliencyMap, SaliencyMap]:
        """Split a batched explanation, e.g. clean + attacked, after the first `n_first` maps."""
        return self.select(slice(0, n_first)), self.select(slice(n_first, None))


def as_targets(targets: Tensor | int | Sequence[int], n: int, device: torch.device) -> Tensor:
    """The class to explain for each of `n` images, as int64 on `device` (one int applies to all).

    Raises:
        ValueError: `targets` is neither one int nor one per image.

    Shapes: -> (N,)
    """
    t = torch.as_tensor(targets, dtype=torch.long, device=device)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"targets must be an int or have shape ({n},), got {tuple(t.shape)}")
    return t.clone()
