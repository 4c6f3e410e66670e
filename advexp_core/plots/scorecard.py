"""The ground-truth scorecard as bars: each explainer's evidence and shortcut shares, clean and
attacked, one panel per network, each bar with its 95 % interval as an error bar (a bootstrap over
images, docs/method.md §9), and the chance levels as dotted lines.

Built without pyplot, like `advexp_core.plots.figures`: a plain Figure on an Agg canvas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from advexp_core.experiments.scorecard_results import ExplainerScore, ScorecardResult, TopKShares
from advexp_core.readings.intervals import with_interval

_BARS: tuple[tuple[str, Callable[[ExplainerScore], TopKShares], str, str], ...] = (
    ("evidence, clean", lambda e: e.clean, "evidence_share", "#2a7f3f"),
    ("evidence, attacked", lambda e: e.attacked, "evidence_share", "#9ed3a8"),
    ("shortcut, clean", lambda e: e.clean, "shortcut_share", "#b8860b"),
    ("shortcut, attacked", lambda e: e.attacked, "shortcut_share", "#f0d78c"),
)


def _bar(shares: TopKShares, name: str) -> tuple[float, float, float]:
    """(height, distance down to the interval's low end, up to its high end); NaN where undefined."""
    value = getattr(shares, name)
    if value is None:
        return math.nan, 0.0, 0.0
    interval = shares.interval(name)
    if interval is None:
        return value, 0.0, 0.0
    return value, max(0.0, value - interval[0]), max(0.0, interval[1] - value)


def scorecard_figure(results: Sequence[ScorecardResult]) -> Figure:
    """One bar panel per result of `advexp_core.experiments.scorecard.scorecard`."""
    fig = Figure(figsize=(4.0 + 1.1 * len(results[0].explainers), 3.2 * len(results)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(results), 1, squeeze=False)[:, 0]
    for ax, result in zip(axes, results, strict=True):
        names = list(result.explainers)
        width = 0.8 / len(_BARS)
        for k, (label, get, name, colour) in enumerate(_BARS):
            bars = [_bar(get(result.explainers[m]), name) for m in names]
            if all(math.isnan(b[0]) for b in bars):
                continue
            xs = [i + (k - 1.5) * width for i in range(len(names))]
            heights, below, above = (list(column) for column in zip(*bars, strict=True))
            ax.bar(xs, heights, width, label=label, color=colour)
            ax.errorbar(
                xs, heights, yerr=[below, above], fmt="none", ecolor="#333333", elinewidth=0.8, capsize=2
            )
        for level, colour in ((result.chance.evidence, "#2a7f3f"), (result.chance.shortcut, "#b8860b")):
            if level is not None:
                ax.axhline(level, color=colour, linestyle=":", linewidth=1.2)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of the map")
        ax.set_title(
            f"{result.model} on {result.dataset} {result.split}, N = {result.n_images} "
            f"(accuracy {with_interval(result.accuracy, result.accuracy_ci, digits=3)}; attack flipped "
            f"{result.attack.flipped} of {result.attack.correct}); dotted: chance; "
            "bars: 95 % intervals",
            fontsize=9,
        )
        ax.legend(fontsize=7, ncols=2)
    return fig
