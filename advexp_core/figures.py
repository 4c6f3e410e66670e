"""Matplotlib figures for saliency under attack (PAPER.md §4), built without pyplot.

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

from advexp_core.saliency import colour_scales

METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "ig": "Integrated Gradients",
    "gradient": "Gradient",
    "smoothgrad": "SmoothGrad",
}
_MAP_CMAP = "inferno"


def _hwc(image: Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) numpy for imshow."""
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def amplified_delta(delta: Tensor) -> tuple[Tensor, float]:
    """δ scaled so its largest entry reaches the edge of [0, 1] around mid-grey, and the factor.

    Shapes: (3, H, W) -> ((3, H, W) in [0, 1], float)
    """
    peak = float(delta.detach().abs().max())
    gain = 0.5 / peak if peak > 0 else 1.0
    return (0.5 + gain * delta.detach()).clamp(0, 1), gain


def _show_image(ax: Axes, image: Tensor, title: str) -> None:
    ax.imshow(_hwc(image), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _show_map(ax: Axes, image: Tensor, saliency: Tensor, scale: tuple[float, float], title: str) -> Any:
    """The map over a faded grey copy of the image, on the given colour scale."""
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
        return "n/a" if v is None or v != v else f"{v:.3f}"

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

    PAPER.md §4 step 3: each method's clean and attacked maps share one colour scale (unless
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
    fig = Figure(figsize=(10.0, 2.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 4, squeeze=False)
    delta = adversarial.detach().float() - clean.detach().float()
    amp, gain = amplified_delta(delta)
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
        _show_map(axes[row, 0], clean, m_clean, scale_clean, f"{title}, clean")
        im = _show_map(axes[row, 1], adversarial, m_adv, scale_adv, f"{title}, attacked")
        fig.colorbar(im, ax=axes[row, 1], fraction=0.046, pad=0.02)
        diff = (m_adv - m_clean).detach().float().cpu().numpy()
        bound = max(scale_adv[1], 1e-12)
        axes[row, 2].imshow(diff, cmap="coolwarm", vmin=-bound, vmax=bound, interpolation="nearest")
        axes[row, 2].set_title("attacked − clean", fontsize=9)
        axes[row, 2].set_axis_off()
        axes[row, 3].text(0, 1, _metrics_text((metrics or {}).get(method, {})), va="top", fontsize=8)
        axes[row, 3].set_axis_off()
    return fig


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render a Figure to PNG bytes (Agg, no pyplot)."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
