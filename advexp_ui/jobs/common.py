"""Pieces shared by the jobs: the image as the model sees it, top predictions, the report header."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import streamlit as st
import torch
from torch import Tensor

from advexp_core.cli.common import predictions, versions
from advexp_core.imaging import decode_image, prepare_image
from advexp_core.models import LoadedModel

OnStep = Callable[[int, int], None]
TOP_K = 5
# Results keyed by (image bytes, model id, config); at most 32 per job, kept for six hours.
cached_result = st.cache_data(show_spinner=False, max_entries=32, ttl=6 * 3600)


@dataclass(frozen=True)
class Outcome:
    """What a page shows and offers for download.

    Attributes:
        report: JSON-able: settings (with the seed), versions, predictions, metrics.
        panels: name -> PNG for the screen (enlarged, amplified or overlaid).
        files: file name -> bytes for download, besides the report (lossless PNGs, figure.png).
    """

    report: dict[str, Any]
    panels: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def model_image(image_bytes: bytes, model: LoadedModel) -> Tensor:
    """The uploaded bytes decoded and fitted to the model's input, on its device. Shapes: -> (3, h, w)."""
    return prepare_image(decode_image(image_bytes), model).to(model.device)


@torch.no_grad()
def logits_of(model: LoadedModel, images: Tensor) -> Tensor:
    """Logits of a batch. Shapes: (N, 3, h, w) -> (N, C)."""
    return model.module(images.to(model.device)).float()


def top_predictions(logits: Tensor, model: LoadedModel, k: int = TOP_K) -> list[dict[str, Any]]:
    """The ``k`` best classes of one logit vector (``advexp_core.cli.common.predictions``)."""
    return predictions(logits, model.class_names, k)


def header(model: LoadedModel, config: Any, page: str) -> dict[str, Any]:
    """The report's common part: what ran, on which model, with which settings and versions."""
    return {
        "page": page,
        "model": {"id": model.model_id, "title": model.title, "source": model.source, "robust": model.robust},
        "input_size": list(model.input_size),
        "device": str(model.device),
        "settings": asdict(config) if hasattr(config, "__dataclass_fields__") else dict(config),
        "versions": versions(),
    }


def finite(value: float | Tensor) -> float | None:
    """A number for JSON: NaN/inf become None."""
    number = float(value)
    return number if math.isfinite(number) else None


@cached_result
def classify(image_bytes: bytes, model_id: str, _model: LoadedModel) -> list[dict[str, Any]]:
    """The top classes of the image for a model, cached by (image bytes, model id)."""
    image = model_image(image_bytes, _model)
    return top_predictions(logits_of(_model, image[None])[0], _model)
