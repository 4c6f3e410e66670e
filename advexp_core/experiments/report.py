"""Report helpers shared by every experiment and its callers: predictions, versions, JSON-safe
numbers, plain-language readings, the report header and file-name parts."""

from __future__ import annotations

import dataclasses
import math
import platform
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

import advexp_core
from advexp_core.base import runtime
from advexp_core.measures import metrics
from advexp_core.networks.zoo import ModelError
from advexp_core.readings import attack as attack_readings

if TYPE_CHECKING:  # models imports the saliency registry, which reaches this module
    from advexp_core.networks.registry import LoadedModel

TOP_K = 5  # classes listed in every report and on every page


def predictions(logits: Tensor, class_names: Sequence[str], k: int = TOP_K) -> list[dict[str, Any]]:
    """The top-``k`` classes of one logit vector, best first, as ``{"index", "label", "probability"}``.

    Shapes: (C,) -> list of length min(k, C).

    Raises:
        ModelError: the logits are NaN or infinite (JSON has no NaN, and a NaN probability is no answer).
    """
    probs = torch.softmax(logits.detach().float().reshape(-1), dim=0).cpu()
    if not torch.isfinite(probs).all():
        raise ModelError(
            "The network gave NaN or infinite outputs for this image, so it has no probabilities; "
            "its weights or its normalisation make its numbers overflow."
        )
    values, indices = probs.topk(min(int(k), probs.numel()))
    return [
        {"index": int(i), "label": class_names[int(i)], "probability": float(v)}
        for v, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def versions() -> dict[str, str]:
    """Versions of what produced a result, for reports, and the threads per tensor operation it ran
    with (`torch.get_num_threads()` when the report is made, right after the run, and where that
    count came from: `advexp_core.base.runtime.thread_policy`): a CPU run's numbers depend on it."""
    import captum
    import torchvision

    return {
        "advexp": advexp_core.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": captum.__version__,
        "python": platform.python_version(),
        "torch_threads": str(torch.get_num_threads()),
        "thread_policy": runtime.thread_policy(),
    }


def config_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready settings: nested configs become dicts, tuples lists."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))  # type: ignore[no-any-return]


def header(model: LoadedModel, settings: dict[str, Any], page: str) -> dict[str, Any]:
    """The common head of a page's report: what ran, on which model, with which settings and versions."""
    return {
        "page": page,
        "model": {"id": model.model_id, "title": model.title, "source": model.source, "robust": model.robust},
        "input_size": list(model.input_size),
        "device": str(model.device),
        "settings": settings,
        "versions": versions(),
    }


def readings(
    perturbation: dict[str, float | None],
    maps: dict[str, dict[str, float | None]],
    *,
    k: float,
    side: int,
) -> dict[str, Any]:
    """One plain sentence per number (`metrics.reading`; a null number gets None), the visibility
    verdict when the perturbation was measured, and each map's verdict (`readings.attack.map_change`)
    as ``maps.<method>.verdict`` with its ``outcome`` key.

    Args:
        perturbation: linf_255, l2, rms, psnr, ssim as written in a report (null PSNR: no change).
        maps: method -> map metrics as written in a report.
        k: the top-k share of pixels the map metrics used.
        side: the longer image side in pixels (a map's centre shift is judged against it).
    """
    out: dict[str, Any] = {"perturbation": perturbation_sentences(perturbation), "maps": {}}
    if perturbation:
        out["visibility"] = attack_readings.visibility(perturbation).to_json()
    for method, values in maps.items():
        out["maps"][method] = map_sentences(values, k=k)
        verdict = attack_readings.map_change(values, k=k, side=side)
        out["maps"][method].update(verdict=verdict.text, outcome=verdict.outcome)
    return out


def perturbation_sentences(perturbation: dict[str, float | None]) -> dict[str, str | None]:
    """One plain sentence per size of δ (`metrics.reading`; None for a null number but PSNR, whose
    null means no change)."""
    out: dict[str, str | None] = {}
    for name, value in perturbation.items():
        if value is None and name == "psnr":
            value = math.inf  # written as null in JSON: the image did not change
        out[name] = None if value is None else metrics.reading(name, value)
    return out


def map_sentences(values: dict[str, float | None], *, k: float) -> dict[str, str]:
    """One plain sentence per map similarity number (`metrics.reading`; k = the top-k share)."""
    return {
        name: metrics.reading("map_ssim" if name == "ssim" else name, math.nan if v is None else v, k=k)
        for name, v in values.items()
    }


def safe_label(label: str) -> str:
    """A class name as a file-name part: lower case, runs of other characters become '-'."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:60].strip("-")
    return cleaned or "class"


def explanation_file(index: int, label: str) -> str:
    """The lossless PNG name of one adversarial explanation, e.g. ``explanation_8_ship.png``."""
    return f"explanation_{index}_{safe_label(label)}.png"
