"""The ground-truth scorecard as bars: each explainer's evidence and shortcut shares, clean and
attacked, one panel per network, with the chance levels as dotted lines.

Built without pyplot, like `advexp_core.plots.figures`: a plain Figure on an Agg canvas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from advexp_core.experiments.scorecard_results import ExplainerScore, ScorecardResult

_BARS: tuple[tuple[str, Callable[[ExplainerScore], float | None], str], ...] = (
    ("evidence, clean", lambda e: e.clean.evidence_share, "#2a7f3f"),
    ("evidence, attacked", lambda e: e.attacked.evidence_share, "#9ed3a8"),
    ("shortcut, clean", lambda e: e.clean.shortcut_share, "#b8860b"),
    ("shortcut, attacked", lambda e: e.attacked.shortcut_share, "#f0d78c"),
)


def scorecard_figure(results: Sequence[ScorecardResult]) -> Figure:
    """One bar panel per result of `advexp_core.experiments.scorecard.scorecard`."""
    fig = Figure(figsize=(4.0 + 1.1 * len(results[0].explainers), 3.2 * len(results)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(results), 1, squeeze=False)[:, 0]
    for ax, result in zip(axes, results, strict=True):
        names = list(result.explainers)
        width = 0.8 / len(_BARS)
        for k, (label, get, colour) in enumerate(_BARS):
            values = [get(result.explainers[m]) for m in names]
            if all(v is None for v in values):
                continue
            xs = [i + (k - 1.5) * width for i in range(len(names))]
            ax.bar(xs, [math.nan if v is None else v for v in values], width, label=label, color=colour)
        for level, colour in ((result.chance.evidence, "#2a7f3f"), (result.chance.shortcut, "#b8860b")):
            if level is not None:
                ax.axhline(level, color=colour, linestyle=":", linewidth=1.2)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of the map")
        ax.set_title(
            f"{result.model} on {result.dataset} {result.split}, N = {result.n_images} "
            f"(accuracy {result.accuracy:.3f}; attack flipped {result.attack.flipped}); dotted: chance",
            fontsize=9,
        )
        ax.legend(fontsize=7, ncols=2)
    return fig
