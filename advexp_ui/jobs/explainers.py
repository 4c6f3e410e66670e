"""Compare explainers: several saliency methods on one image, their agreement and faithfulness."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from advexp_core.experiments import ExplainersConfig, compare_explainers
from advexp_core.experiments.explainers import CompareExplainersResult, Curves, ExplainersPart, MethodMap
from advexp_core.methods.saliency import METHOD_TITLES, colour_scales
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.figures import figure_png
from advexp_core.readings import Reading
from advexp_core.readings.agreement import every_measure
from advexp_ui import images
from advexp_ui.jobs.common import Later, OnStep, Outcome, cached_result, header, model_image

__all__ = ["ExplainedClass", "ExplainerPart", "ExplainersOutcome", "compute_explainers", "explainers"]


@dataclass(frozen=True)
class ExplainedClass:
    """The class the maps explain: its index and name."""

    index: int
    label: str


@dataclass(frozen=True)
class ExplainerPart:
    """One method's finished block of the compare page while the rest still runs.

    Each method gives two: its map, then the same map with its deletion/insertion curves.

    Attributes:
        block: the method.
        curves: its deletion/insertion curves once measured (the final result's own), else None.
        explained: on the first map's block, the explained class; else None.
        panels: the block's pictures (the same bytes the final Outcome holds): the method's map
            over the image; the first map's block also the ``input`` image.
    """

    block: str
    curves: Curves | None = None
    explained: ExplainedClass | None = None
    panels: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ExplainersOutcome(Outcome):
    """The comparison's `Outcome` (the report and files for download) with what the page shows.

    Attributes:
        result: the maps, their agreement and faithfulness.
        readings: measure -> whether the explainers agree by it (`readings.agreement`).
    """

    result: CompareExplainersResult = field(kw_only=True)
    readings: dict[str, Reading] = field(kw_only=True)


class _Parts:
    """Turns the experiment's partial results into page blocks, keeping each picture for the end."""

    def __init__(
        self, image: torch.Tensor, class_names: Sequence[str], send: Callable[[ExplainerPart], None] | None
    ) -> None:
        self.image, self.class_names, self.send = image, class_names, send
        self.panels: dict[str, bytes] = {}

    def __call__(self, value: ExplainersPart) -> None:
        name = value.method
        if isinstance(value, MethodMap):
            panels: dict[str, bytes] = {}
            explained = None
            if not self.panels:  # the first map: the image and the explained class come with it
                panels["input"] = images.display_png(self.image)
                explained = ExplainedClass(value.target, self.class_names[value.target])
            panels[name] = _map_png(self.image, value.map)
            self.panels.update(panels)
            part = ExplainerPart(name, explained=explained, panels=panels)
        else:
            part = ExplainerPart(name, curves=value.curves, panels={name: self.panels[name]})
        if self.send is not None:
            self.send(part)


def _map_png(image: torch.Tensor, m: torch.Tensor) -> bytes:
    """One map over the image on its own scale (methods have different units). Shapes: (3, h, w), (h, w)."""
    ((_, vmax),) = colour_scales(m)
    return images.overlay_png(image, m, vmax)


def compute_explainers(
    image_bytes: bytes,
    config: ExplainersConfig,
    model: LoadedModel,
    on_step: OnStep | None = None,
    on_part: Callable[[ExplainerPart], None] | None = None,
) -> ExplainersOutcome:
    """Every chosen map for one class, their pairwise agreement and faithfulness.

    ``on_part`` gets each method's block as soon as the experiment has its map, and again with
    its deletion/insertion curves; the pictures made for it are the ones the Outcome holds (made
    once). The figure for download is drawn only when asked for.
    """
    x = model_image(image_bytes, model)
    parts = _Parts(x.detach().cpu(), model.class_names, on_part)
    result = compare_explainers(model, x, config, on_step=on_step, on_partial=parts)
    body = {k: v for k, v in result.to_json().items() if k != "settings"}
    report = {**header(model, config, "compare explainers"), **body}
    files: dict[str, bytes | Later] = {"explainers.png": Later(_figure_png, (result.image, result.maps))}
    readings = every_measure(result.agreement, [METHOD_TITLES.get(m, m) for m in result.maps])
    return ExplainersOutcome(report, parts.panels, files, result=result, readings=readings)


def _figure_png(image: torch.Tensor, maps: dict[str, torch.Tensor]) -> bytes:
    """All maps in one row, each over the image, for the download (drawn when asked for)."""
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
    _on_part: Callable[[ExplainerPart], None] | None = None,
) -> ExplainersOutcome:
    """``compute_explainers``, cached by (image bytes, model id, config); parts only when it runs."""
    return compute_explainers(image_bytes, config, _model, _on_step, _on_part)
