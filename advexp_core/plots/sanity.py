"""The cascading-randomisation figure (docs/method.md §5; Adebayo et al. 2018, Fig. 2 and 4), no pyplot.

Top: each method's Spearman (solid) and SSIM (dashed) curves against the trained network's map,
one point per randomised layer. Below: the maps themselves, one row per method, each column
under its point of the curve. Render with `advexp_core.plots.figures.figure_png`.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from advexp_core.evaluation.sanity import SIMILAR, SanityResult
from advexp_core.methods.saliency import METHOD_TITLES, colour_scales
from advexp_core.plots.figures import show_map


def _curves(ax: Axes, result: SanityResult) -> None:
    """Spearman and SSIM per method against the layer names."""
    xs = list(range(len(result.layers)))
    for index, method in enumerate(result.methods):
        colour = f"C{index % 10}"
        title = METHOD_TITLES.get(method, method)
        ax.plot(xs, result.spearman[method], "-o", color=colour, ms=3, label=f"{title}, Spearman")
        ax.plot(xs, result.ssim[method], "--", color=colour, lw=1, label=f"{title}, SSIM")
    ax.axhline(SIMILAR, color="grey", lw=0.8, ls=":")
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xticks(xs, result.layers, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("similarity to the trained map", fontsize=8)
    ax.set_title(
        "Cascading randomisation, output layer first (Adebayo et al. 2018); "
        f"dotted: {SIMILAR} (above = the map ignores the weights)",
        fontsize=9,
    )
    ax.legend(fontsize=6, ncols=2, loc="lower left")


def sanity_figure(result: SanityResult, image: Tensor) -> Figure:
    """Curves with the layer names on the x-axis, and every method's maps under them.

    Each map gets its own colour scale: a randomised network's logits, hence its maps, may be
    orders of magnitude larger or smaller, and the check is about where the map points.

    Args:
        result: from `cascading_randomisation`.
        image: the explained image, [0, 1], shown faded under the maps.

    Returns:
        A Figure on an Agg canvas.

    Shapes: image (C, H, W)
    """
    cols, rows = len(result.layers), len(result.methods)
    fig = Figure(figsize=(max(8.0, 0.75 * cols + 1.0), 3.2 + 0.9 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[3.0] + [1.0] * rows)
    _curves(fig.add_subplot(grid[0, :]), result)
    for row, method in enumerate(result.methods, start=1):
        maps = result.maps[method]
        for col, (scale, m) in enumerate(zip(colour_scales(*maps, per_map=True), maps, strict=True)):
            title = METHOD_TITLES.get(method, method) if col == 0 else ""
            show_map(fig.add_subplot(grid[row, col]), image.cpu(), m, scale, title)
    return fig
