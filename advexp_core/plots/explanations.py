"""Figures for adversarial explanations: a contact sheet per image and the standard-vs-robust contrast.

Matplotlib with the Agg canvas only, through `matplotlib.figure.Figure` (no pyplot, so no global
figure state). δ is always shown amplified on ONE scale per figure (`imaging.amplify_delta`), so
the panels can be compared by eye: mid-grey is "no change". Save with `figures.figure_png`.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from advexp_core.data.imaging import amplify_delta, delta_display_scale
from advexp_core.methods.explanations import ContrastResult, ExplanationResult, TargetExplanation

_PANEL_INCHES = 1.35
_MAX_COLUMNS = 10
_MAX_TARGETS = 100
_DPI = 150  # small panels: saved sharper than the default 100


def _show(ax: Axes, image: Tensor, title: str = "", *, color: str = "black") -> None:
    ax.imshow(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=6.5, color=color)


def _sheet(columns: int, row_pairs: int) -> Figure:
    """An empty Agg figure sized for `row_pairs` of (titled image row, δ row) panels."""
    height = row_pairs * (2 * _PANEL_INCHES + 0.75) + 0.35
    fig = Figure(figsize=(_PANEL_INCHES * columns, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _target_title(t: TargetExplanation) -> str:
    status = f"RMS {t.rms:.3f}" if t.valid else f"FAILED, RMS {t.rms:.3f}"
    name = t.label[:18] if t.label == str(t.index) else f"{t.index} {t.label[:18]}"
    return f"{name}\np {t.probability_before:.3f}→{t.probability_after_display:.3f}\n{status}"


def explanation_figure(result: ExplanationResult, *, delta_scale: float | None = None) -> Figure:
    """Contact sheet: the image, then per target x+δ (clamped) above δ amplified on one scale.

    Titles give the target's probability before → after (at the saved, clamped image) and the
    RMS reached; failed explanations (budget not reached by step S/2) are marked in red.
    At most 100 targets are drawn, 10 per row pair.

    Args:
        result: from `adversarial_explanation`.
        delta_scale: δ amplification scale; default the largest |δ| in `result`.

    Returns:
        A matplotlib Figure (Agg canvas); save with `figures.figure_png`.
    """
    shown = result.targets[:_MAX_TARGETS]
    scale = delta_scale if delta_scale is not None else delta_display_scale([result.deltas])
    columns = min(len(shown), _MAX_COLUMNS)
    row_pairs = -(-len(shown) // columns)
    fig = _sheet(columns + 1, row_pairs)
    grid = fig.add_gridspec(2 * row_pairs, columns + 1)
    top = int(result.probabilities.argmax())
    _show(
        fig.add_subplot(grid[0, 0]),
        result.image,
        f"input\n{result.class_names[top][:18]} p {float(result.probabilities[top]):.3f}",
    )
    for k, t in enumerate(shown):
        row, col = 2 * (k // columns), 1 + k % columns
        color = "black" if t.valid else "red"
        _show(fig.add_subplot(grid[row, col]), t.explanation, _target_title(t), color=color)
        _show(fig.add_subplot(grid[row + 1, col]), amplify_delta(t.delta, scale), "δ", color=color)
    note = "" if len(shown) == len(result.targets) else f" (first {_MAX_TARGETS} of {len(result.targets)})"
    fig.suptitle(
        f"Adversarial explanations{note} · {result.model_id or 'model'} · ρ={result.rho:g}, S={result.steps}"
        f" · δ shown as 0.5+δ/(2·{scale:.3f})",
        fontsize=8,
    )
    return fig


def contrast_figure(result: ContrastResult, *, model_labels: Sequence[str] | None = None) -> Figure:
    """Side by side: the same image's explanations on each network, δ on one shared scale.

    One row pair per network (x+δ above, δ amplified below), one column per target; the first
    column holds the input as that network sees it with its top prediction.

    Args:
        result: from `contrast`.
        model_labels: row labels; default the model ids.

    Returns:
        A matplotlib Figure (Agg canvas).
    """
    labels = list(model_labels) if model_labels is not None else [r.model_id for r in result.results]
    columns = max(min(len(r.targets), _MAX_COLUMNS) for r in result.results)
    rows = 2 * len(result.results)
    fig = _sheet(columns + 1, len(result.results))
    grid = fig.add_gridspec(rows, columns + 1)
    for m, (res, label) in enumerate(zip(result.results, labels, strict=True)):
        top = int(res.probabilities.argmax())
        ax = fig.add_subplot(grid[2 * m, 0])
        _show(ax, res.image, f"{label}\n{res.class_names[top][:18]} p {float(res.probabilities[top]):.3f}")
        for k, t in enumerate(res.targets[:columns]):
            color = "black" if t.valid else "red"
            _show(fig.add_subplot(grid[2 * m, 1 + k]), t.explanation, _target_title(t), color=color)
            _show(fig.add_subplot(grid[2 * m + 1, 1 + k]), amplify_delta(t.delta, result.delta_scale), "δ")
    first = result.results[0]
    fig.suptitle(
        f"Same image, same budget (ρ={first.rho:g}, S={first.steps}); δ on one shared scale: "
        f"0.5+δ/(2·{result.delta_scale:.3f})",
        fontsize=8,
    )
    return fig


__all__ = ["contrast_figure", "explanation_figure"]
