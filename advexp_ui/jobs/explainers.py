"""Compare explainers: several saliency methods on one image, their agreement and faithfulness."""

from __future__ import annotations

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from advexp_core.experiments import ExplainersConfig, compare_explainers
from advexp_core.figures import METHOD_TITLES, figure_png
from advexp_core.models import LoadedModel
from advexp_core.saliency import colour_scales
from advexp_ui import images
from advexp_ui.jobs.common import OnStep, Outcome, cached_result, header, model_image


def compute_explainers(
    image_bytes: bytes, config: ExplainersConfig, model: LoadedModel, on_step: OnStep | None = None
) -> Outcome:
    """Every chosen map for one class, their pairwise agreement and faithfulness."""
    result = compare_explainers(model, model_image(image_bytes, model), config, on_step=on_step)
    body = {k: v for k, v in result.report.items() if k != "settings"}
    report = {**header(model, config, "compare explainers"), **body}
    panels = {"input": images.display_png(result.image)}
    for method, m in result.maps.items():  # each map on its own scale: methods have different units
        ((_, vmax),) = colour_scales(m)
        panels[method] = images.overlay_png(result.image, m, vmax)
    return Outcome(report, panels, {"explainers.png": _figure_png(result.image, result.maps)})


def _figure_png(image: torch.Tensor, maps: dict[str, torch.Tensor]) -> bytes:
    """All maps in one row, each over the image, for the download."""
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
