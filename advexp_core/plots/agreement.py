"""The explainers' agreement matrix as a small annotated heat map, and as a CSV table.

Built without pyplot, like `advexp_core.plots.figures`: a plain Figure on an Agg canvas, turned into
PNG bytes by `advexp_core.plots.figures.figure_png`. The colour scale is fixed per measure (Spearman
−1..1, overlap and SSIM 0..1) so two matrices of one measure compare by eye.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from advexp_core.base.jsonsafe import json_number

AGREEMENT_TITLES = {
    "spearman": "Spearman rank correlation",
    "topk_intersection": "top-20 % overlap",
    "ssim": "map SSIM",
}
# One colour scale per measure: a rank correlation runs from −1 to 1, the others from 0 to 1.
AGREEMENT_LIMITS = {"spearman": (-1.0, 1.0), "topk_intersection": (0.0, 1.0), "ssim": (0.0, 1.0)}
_CMAPS = {"spearman": "RdBu_r", "topk_intersection": "viridis", "ssim": "viridis"}


def agreement_figure(
    matrix: Sequence[Sequence[float | None]], labels: Sequence[str], *, measure: str
) -> Figure:
    """An annotated heat map of one agreement matrix (methods × methods, 1 on the diagonal).

    Args:
        matrix: n rows of n values of `measure`; NaN or None (e.g. a constant map) is drawn grey, "n/a".
        labels: the n methods' titles, in the matrix's order.
        measure: a key of `AGREEMENT_LIMITS`; it fixes the colour scale and the colour bar's title.

    Returns:
        A Figure on an Agg canvas, one annotation per cell.

    Raises:
        ValueError: an unknown measure, or a matrix that is not n × n for n labels.

    Shapes: matrix (n, n).
    """
    if measure not in AGREEMENT_LIMITS:
        raise ValueError(f"unknown agreement measure {measure!r}; use one of {list(AGREEMENT_LIMITS)}")
    values = np.asarray(matrix, dtype=float)
    n = len(labels)
    if values.shape != (n, n):
        raise ValueError(f"agreement matrix of shape {values.shape} for {n} methods")
    vmin, vmax = AGREEMENT_LIMITS[measure]
    cmap = colormaps[_CMAPS[measure]].with_extremes(bad="lightgrey")
    fig = Figure(figsize=(1.6 + 0.85 * n, 0.9 + 0.75 * n), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax)
    for (i, j), value in np.ndenumerate(values):
        ax.text(
            j, i, _cell_text(value), ha="center", va="center", fontsize=8, color=_ink(cmap, value, vmin, vmax)
        )
    ax.set_xticks(range(n), labels, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.tick_params(length=0)
    bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(AGREEMENT_TITLES[measure], fontsize=8)
    return fig


def _cell_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _ink(cmap: Colormap, value: float, vmin: float, vmax: float) -> str:
    """Black on light cells, white on dark ones (relative luminance of the cell's colour)."""
    if math.isnan(value):
        return "black"
    r, g, b, _ = cmap((min(max(value, vmin), vmax) - vmin) / (vmax - vmin))
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 else "white"


def agreement_csv(agreement: Mapping[str, Sequence[Sequence[float | None]]], labels: Sequence[str]) -> str:
    """Every agreement matrix as one CSV table: a block of n rows per measure.

    Columns: measure, method, then one per method; NaN and None become empty cells.

    Args:
        agreement: measure -> n × n matrix (the compare-explainers report's "agreement").
        labels: the n methods' titles, in the matrices' order.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["measure", "method", *labels])
    for measure, matrix in agreement.items():
        for label, row in zip(labels, matrix, strict=True):
            cells = [None if v is None else json_number(float(v)) for v in row]
            writer.writerow([measure, label, *("" if v is None else f"{v:.6g}" for v in cells)])
    return buffer.getvalue()
