"""The agreement heat map: one annotation per cell, a fixed colour scale per measure, and its CSV."""

from __future__ import annotations

import csv
import io
import math

import pytest

from advexp_core.plots.agreement import AGREEMENT_LIMITS, agreement_csv, agreement_figure
from advexp_core.plots.figures import figure_png

LABELS = ["Grad-CAM", "Gradient", "SmoothGrad"]
MATRIX = [[1.0, 0.25, -0.4], [0.25, 1.0, math.nan], [-0.4, math.nan, 1.0]]


@pytest.mark.parametrize(
    ("measure", "limits"), [("spearman", (-1, 1)), ("topk_intersection", (0, 1)), ("ssim", (0, 1))]
)
def test_every_cell_is_annotated_on_the_measures_fixed_scale(measure: str, limits: tuple[int, int]) -> None:
    fig = agreement_figure(MATRIX, LABELS, measure=measure)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(LABELS) ** 2
    assert texts[:3] == ["1.00", "0.25", "-0.40"] and texts.count("n/a") == 2
    (image,) = ax.images
    assert image.get_clim() == limits == AGREEMENT_LIMITS[measure]
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS
    assert figure_png(fig).startswith(b"\x89PNG")


def test_the_scale_does_not_follow_the_data() -> None:
    narrow = [[1.0, 0.9], [0.9, 1.0]]
    (image,) = agreement_figure(narrow, LABELS[:2], measure="ssim").axes[0].images
    assert image.get_clim() == (0.0, 1.0)


@pytest.mark.parametrize(
    ("matrix", "labels", "measure"),
    [(MATRIX, LABELS, "kendall"), (MATRIX, LABELS[:2], "spearman"), ([[1.0, 0.5]], LABELS[:1], "ssim")],
)
def test_bad_input_is_refused(matrix, labels, measure) -> None:
    with pytest.raises(ValueError):
        agreement_figure(matrix, labels, measure=measure)


def test_csv_holds_every_measure_with_empty_cells_for_missing_values() -> None:
    rows = list(csv.reader(io.StringIO(agreement_csv({"spearman": MATRIX, "ssim": MATRIX}, LABELS))))
    assert rows[0] == ["measure", "method", *LABELS]
    assert len(rows) == 1 + 2 * len(LABELS)
    assert rows[1] == ["spearman", "Grad-CAM", "1", "0.25", "-0.4"]
    assert rows[2][4] == "" and rows[4][0] == "ssim"
