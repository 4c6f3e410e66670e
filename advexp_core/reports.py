"""Report helpers shared by every experiment: predictions, versions, JSON-safe numbers."""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

import advexp_core


def json_number(value: float | Tensor) -> float | None:
    """A number for JSON: NaN and ±inf become None (JSON has no such values)."""
    number = float(value)
    return number if math.isfinite(number) else None


def predictions(logits: Tensor, class_names: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
    """The top-``k`` classes of one logit vector, best first, as ``{"index", "label", "probability"}``.

    Shapes: (C,) -> list of length min(k, C).
    """
    probs = torch.softmax(logits.detach().float().reshape(-1), dim=0).cpu()
    values, indices = probs.topk(min(int(k), probs.numel()))
    return [
        {"index": int(i), "label": class_names[int(i)], "probability": float(v)}
        for v, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def versions() -> dict[str, str]:
    """Versions of what produced a result, for reports."""
    import captum
    import torchvision

    return {
        "advexp": advexp_core.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": captum.__version__,
        "python": platform.python_version(),
    }
