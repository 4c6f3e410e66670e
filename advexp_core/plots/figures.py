"""Matplotlib figures for saliency under attack (docs/method.md §4), built without pyplot.

Figures are plain `matplotlib.figure.Figure` objects drawn on an Agg canvas: no global pyplot
state, nothing to close, safe in threads. `figure_png` turns one into PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from advexp_core.base.jsonsafe import json_number
from advexp_core.data.imaging import amplify_delta, delta_display_scale
from advexp_core.experiments.under_attack import SaliencyUnderAttackResult
from advexp_core.methods.saliency import METHOD_TITLES, colour_scales

_MAP_CMAP = "inferno"


def _hwc(image: Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) numpy for imshow."""
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def _show_image(ax: Axes, image: Tensor, title: str) -> None:
    ax.imshow(_hwc(image), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def show_map(ax: Axes, image: Tensor, saliency: Tensor, scale: tuple[float, float], title: str) -> Any:
    """Draw the map over a faded grey copy of the image, on the given colour scale.

    Args:
        ax: the axes to draw on (its axis lines are hidden).
        image: the image, [0, 1].
        saliency: the map, >= 0.
        scale: colour limits (vmin, vmax), e.g. from `advexp_core.methods.saliency.colour_scales`.
        title: the axes title.

    Returns:
        The map's AxesImage (for a colour bar).

    Shapes: image (3, H, W), saliency (H, W)
    """
    grey = image.detach().float().mean(dim=0).cpu().numpy()
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    im = ax.imshow(
        saliency.detach().float().cpu().numpy(),
        cmap=_MAP_CMAP, vmin=scale[0], vmax=scale[1], alpha=0.75, interpolation="nearest",
    )  # fmt: skip
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return im


def _predictions_text(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> str:
    def lines(preds: Sequence[Mapping[str, Any]]) -> str:
        return "\n".join(f"  {p['probability']:6.1%}  {str(p['label'])[:22]}" for p in preds)

    return f"clean:\n{lines(before)}\n\nattacked:\n{lines(after)}"


def _metrics_text(values: Mapping[str, float | None]) -> str:
    names = {
        "spearman": "Spearman",
        "topk_intersection": "top-k overlap",
        "ssim": "map SSIM",
        "center_shift_px": "centre shift px",
        "delta_energy_in_topk": "|δ|² in top-k",
    }

    def fmt(v: float | None) -> str:
        number = None if v is None else json_number(v)
        return "n/a" if number is None else f"{number:.3f}"

    return "\n".join(f"{label}: {fmt(values.get(key))}" for key, label in names.items() if key in values)


def compare_figure(
    clean: Tensor,
    adversarial: Tensor,
    maps: Mapping[str, tuple[Tensor, Tensor]],
    *,
    predictions_before: Sequence[Mapping[str, Any]],
    predictions_after: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, float | None]] | None = None,
    per_map_scale: bool = False,
) -> Figure:
    """The `compare` figure: clean | attacked | amplified δ | top predictions, then one row per map.

    docs/method.md §4 step 3: each method's clean and attacked maps share one colour scale (unless
    `per_map_scale`), shown with a colour bar and the map-similarity numbers.

    Args:
        clean, adversarial: the images, [0, 1].
        maps: method -> (clean map, attacked map).
        predictions_before, predictions_after: top classes as `{"label", "probability"}` dicts.
        metrics: method -> metric name -> value, written beside each row.
        per_map_scale: give every map its own colour scale.

    Returns:
        A Figure on an Agg canvas.

    Shapes: images (3, H, W); maps (H, W)
    """
    rows = 1 + len(maps)
    fig = Figure(figsize=(10.0, 2.6 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 4, squeeze=False)
    delta = adversarial.detach().float() - clean.detach().float()
    scale = delta_display_scale([delta])
    amp, gain = amplify_delta(delta, scale), 0.5 / scale
    top_before = predictions_before[0]["label"] if predictions_before else "?"
    top_after = predictions_after[0]["label"] if predictions_after else "?"
    _show_image(axes[0, 0], clean, f"clean: {top_before}")
    _show_image(axes[0, 1], adversarial, f"attacked: {top_after}")
    _show_image(axes[0, 2], amp, f"δ × {gain:.0f} (grey = 0)")
    axes[0, 3].text(
        0,
        1,
        _predictions_text(predictions_before, predictions_after),
        va="top",
        family="monospace",
        fontsize=7,
    )
    axes[0, 3].set_axis_off()
    for row, (method, (m_clean, m_adv)) in enumerate(maps.items(), start=1):
        scale_clean, scale_adv = colour_scales(m_clean, m_adv, per_map=per_map_scale)
        title = METHOD_TITLES.get(method, method)
        show_map(axes[row, 0], clean, m_clean, scale_clean, f"{title}, clean")
        im = show_map(axes[row, 1], adversarial, m_adv, scale_adv, f"{title}, attacked")
        fig.colorbar(im, ax=axes[row, 1], fraction=0.046, pad=0.02)
        diff = (m_adv - m_clean).detach().float().cpu().numpy()
        bound = max(scale_adv[1], 1e-12)
        axes[row, 2].imshow(diff, cmap="coolwarm", vmin=-bound, vmax=bound, interpolation="nearest")
        axes[row, 2].set_title("attacked − clean", fontsize=9)
        axes[row, 2].set_axis_off()
        axes[row, 3].text(0, 1, _metrics_text((metrics or {}).get(method, {})), va="top", fontsize=8)
        axes[row, 3].set_axis_off()
    return fig


def figure_png(fig: Figure, *, dpi: float | None = None) -> bytes:
    """Render a Figure to PNG bytes (Agg, no pyplot), cropped to what is drawn.

    Args:
        fig: any Figure; it is given an Agg canvas when it has none.
        dpi: resolution; default the figure's own (each figure builder sets one).
    """
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi="figure" if dpi is None else dpi, bbox_inches="tight")
    return buffer.getvalue()


def under_attack_figure(result: SaliencyUnderAttackResult) -> Figure:
    """The downloadable figure: clean | attacked | δ | predictions, then one row per map."""
    example = result.example
    return compare_figure(
        example.image,
        example.adversarial,
        result.maps,
        predictions_before=example.predictions_before,
        predictions_after=example.predictions_after,
        metrics=result.metrics,
        per_map_scale=result.saliency.per_map_scale,
    )
