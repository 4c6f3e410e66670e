"""Pieces shared by the jobs: the result type, the cache, the image as the model sees it, the report header."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, is_dataclass
from typing import Any

import streamlit as st
from torch import Tensor

from advexp_core import experiments
from advexp_core.base.runtime import OnStep
from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.experiments import report as reports
from advexp_core.networks.registry import LoadedModel

__all__ = [
    "Later",
    "OnStep",
    "Outcome",
    "cached_result",
    "classify",
    "file_bytes",
    "header",
    "model_image",
    "settings_of",
]

# Results keyed by (image bytes, model id, config); at most 32 per job, kept for six hours.
cached_result = st.cache_data(show_spinner=False, max_entries=32, ttl=6 * 3600)


@dataclass(frozen=True, eq=False)
class Later:
    """A download drawn only when someone asks for it.

    A matplotlib figure of a result can cost more than a page may add to its forward and backward
    passes (`python -m bench.profile_app` shows it); the page offers it at once and draws it on the click
    (Streamlit's deferred download) or when its preview is opened. Cached results are pickled:
    ``make`` must be a module-level function and ``args`` picklable.
    """

    make: Callable[..., bytes]
    args: tuple[Any, ...] = ()

    def __call__(self) -> bytes:
        return self.make(*self.args)


def file_bytes(data: bytes | Later) -> bytes:
    """A download's bytes, drawing it first when it is a `Later`."""
    return data() if isinstance(data, Later) else data


@dataclass(frozen=True)
class Outcome:
    """What a page shows and offers for download.

    Attributes:
        report: JSON-able: settings (with the seed), versions, predictions, metrics.
        panels: name -> PNG for the screen (enlarged, amplified or overlaid).
        files: file name -> bytes for download, besides the report (lossless PNGs), or a `Later`
            for what is drawn on request (figure.png).
    """

    report: dict[str, Any]
    panels: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes | Later] = field(default_factory=dict)


def model_image(image_bytes: bytes, model: LoadedModel) -> Tensor:
    """The uploaded bytes decoded and fitted to the model's input, on its device. Shapes: -> (3, h, w)."""
    return prepare_image(decode_image(image_bytes), model).to(model.device)


def settings_of(*configs: Any) -> dict[str, Any]:
    """The configs' fields in one flat dict, as a page's report records its settings."""
    out: dict[str, Any] = {}
    for config in configs:
        out.update(reports.config_dict(config) if is_dataclass(config) else dict(config))
    return out


def header(model: LoadedModel, config: Any, page: str) -> dict[str, Any]:
    """The report's common part (`advexp_core.experiments.report.header`) with the config as its settings."""
    return reports.header(model, settings_of(config), page)


@cached_result
def classify(image_bytes: bytes, model_id: str, _model: LoadedModel) -> list[dict[str, Any]]:
    """The top classes of the image for a model, cached by (image bytes, model id)."""
    return experiments.classify(_model, model_image(image_bytes, _model), top_k=reports.TOP_K)
