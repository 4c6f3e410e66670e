"""Compare explainers: several saliency methods on one image, their agreement and faithfulness."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from advexp_core import metrics
from advexp_core.figures import METHOD_TITLES
from advexp_core.metrics import deletion_insertion
from advexp_core.models import LoadedModel
from advexp_core.saliency import SaliencyMap, colour_scales, explain
from advexp_ui import images
from advexp_ui.jobs.common import (
    OnStep,
    Outcome,
    cached_result,
    header,
    logits_of,
    model_image,
    top_predictions,
)

AGREEMENT = {
    "spearman": metrics.spearman,
    "topk_intersection": metrics.topk_intersection,
    "ssim": metrics.map_ssim,
}


@dataclass(frozen=True)
class ExplainersConfig:
    """Which methods, for which class (None: the predicted one), and their main settings."""

    methods: tuple[str, ...] = ("gradcam", "ig", "gradient", "smoothgrad")
    target: int | None = None
    ig_steps: int = 32
    smoothgrad_samples: int = 16
    smoothgrad_sigma: float = 0.15
    seed: int = 0
    faithfulness_steps: int = 20


def _kwargs(method: str, config: ExplainersConfig) -> dict[str, Any]:
    if method == "ig":
        return {"n_steps": config.ig_steps}
    if method == "smoothgrad":
        return {
            "n_samples": config.smoothgrad_samples,
            "sigma": config.smoothgrad_sigma,
            "generator": torch.Generator().manual_seed(config.seed),
        }
    return {}


def agreement(maps: dict[str, torch.Tensor]) -> dict[str, list[list[float]]]:
    """Per agreement measure, the methods × methods matrix of map similarities (1 on the diagonal)."""
    names = list(maps)
    out: dict[str, list[list[float]]] = {}
    for measure, fn in AGREEMENT.items():
        matrix = [[1.0] * len(names) for _ in names]
        for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
            matrix[i][j] = matrix[j][i] = float(fn(maps[a], maps[b]))
        out[measure] = matrix
    return out


def _faithfulness(
    model: LoadedModel,
    image: torch.Tensor,
    maps: dict[str, torch.Tensor],
    target: int,
    config: ExplainersConfig,
) -> dict[str, Any]:
    """Deletion and insertion curves with their areas for every map (advexp_core.faithfulness)."""
    out: dict[str, Any] = {}
    for method, m in maps.items():
        curves = deletion_insertion(model, image, m, target, steps=config.faithfulness_steps)
        out[method] = {
            "fractions": [float(v) for v in curves.fractions],
            "deletion": [float(v) for v in curves.deletion],
            "insertion": [float(v) for v in curves.insertion],
            "deletion_auc": float(curves.deletion_auc),
            "insertion_auc": float(curves.insertion_auc),
        }
    return out


def compute_explainers(
    image_bytes: bytes, config: ExplainersConfig, model: LoadedModel, on_step: OnStep | None = None
) -> Outcome:
    """Every chosen map for one class, their pairwise agreement and faithfulness."""
    if not config.methods:
        raise ValueError("Choose at least one explanation method.")
    image = model_image(image_bytes, model)
    logits = logits_of(model, image[None])[0]
    target = int(logits.argmax()) if config.target is None else int(config.target)
    if not 0 <= target < model.num_classes:
        raise ValueError(f"Class {target} does not exist for this model (0..{model.num_classes - 1}).")
    maps: dict[str, SaliencyMap] = {}
    with model.lock:  # see advexp_ui.jobs: one run at a time per shared model
        for k, method in enumerate(config.methods, start=1):
            maps[method] = explain(model, image[None], target, method=method, **_kwargs(method, config))
            if on_step is not None:
                on_step(k, len(config.methods) + 1)
        plain = {m: s.maps[0].cpu() for m, s in maps.items()}
        faithful = _faithfulness(model, image, plain, target, config)
    report = header(model, config, "compare explainers")
    report.update(
        predictions=top_predictions(logits, model),
        explained_class=target,
        explained_label=model.class_names[target],
        methods=list(plain),
        agreement=agreement(plain),
        faithfulness=faithful,
    )
    panels = {"input": images.display_png(image)}
    for method, m in plain.items():  # each map on its own scale: methods have different units
        ((_, vmax),) = colour_scales(m)
        panels[method] = images.overlay_png(image, m, vmax)
    return Outcome(report, panels, {"explainers.png": _figure_png(image, plain)})


def _figure_png(image: torch.Tensor, maps: dict[str, torch.Tensor]) -> bytes:
    """All maps in one row, each over the image, for the download."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from advexp_core.figures import figure_png

    fig = Figure(figsize=(2.6 * (len(maps) + 1), 2.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(maps) + 1, squeeze=False)[0]
    axes[0].imshow(image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy())
    axes[0].set_title("image", fontsize=9)
    for ax, (method, m) in zip(axes[1:], maps.items(), strict=True):
        ((_, vmax),) = colour_scales(m)
        ax.imshow(image.detach().cpu().mean(0).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.imshow(m.numpy(), cmap="inferno", vmin=0, vmax=vmax, alpha=0.75)
        ax.set_title(METHOD_TITLES.get(method, method), fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    return figure_png(fig)


@cached_result
def explainers(
    image_bytes: bytes,
    model_id: str,
    config: ExplainersConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_explainers``, cached by (image bytes, model id, config)."""
    return compute_explainers(image_bytes, config, _model, _on_step)
