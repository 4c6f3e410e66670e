"""Showing adversarial explanations: a grid of x+δ and δ per target, and the standard-vs-robust rows."""

from __future__ import annotations

from typing import Any

import streamlit as st

from advexp_ui import render
from advexp_ui.jobs.common import Outcome
from advexp_ui.state import ImageChoice

COLUMNS = 5


def _caption(t: dict[str, Any]) -> str:
    status = (
        f"RMS {t['rms']:.3f}" if t["budget_reached_by_half"] else "FAILED: budget not reached by step S/2"
    )
    return f"{t['index']}: {t['label']} · p {t['probability_before']:.3f} → {t['probability_after_display']:.3f} · {status}"


def _grid(targets: list[dict[str, Any]], panels: dict[str, bytes], prefix: str = "") -> None:
    """x+δ above δ for every target, COLUMNS per row; failed ones carry their message."""
    for start in range(0, len(targets), COLUMNS):
        cols = st.columns(COLUMNS)
        for k, col in enumerate(cols[: len(targets) - start], start=start):
            t = targets[k]
            col.image(panels[f"{prefix}x-{k}"], caption=_caption(t), width="stretch")
            col.image(panels[f"{prefix}d-{k}"], caption="δ (grey = no change)", width="stretch")
            if t.get("message"):
                col.error(t["message"])


def show_explanations(outcome: Outcome, choice: ImageChoice) -> None:
    """The grid of one network's explanations, with its predictions and the downloads."""
    report, panels = outcome.report, outcome.panels
    c1, c2 = st.columns([1, 2])
    c1.image(panels["input"], caption="the image as the network sees it", width="stretch")
    with c2:
        render.predictions("The network's top classes", report["predictions"])
    if not report["all_budgets_reached"]:
        st.warning(
            "Some explanations did not spend their budget by half-way (marked FAILED): the network is "
            "too confident there for this ρ and S. The paper treats these as failed explanations."
        )
    _grid(report["targets"], panels)
    st.caption(
        f"ρ = {report['rho']:g} (RMS, [0,1] pixel units), S = {report['steps']}, overshoot {report['overshoot']:g}. "
        "Each x+δ answers: within this budget, what would the image look like if it were as much this class as possible?"
    )
    render.downloads_row(outcome, choice, stem="adversarial-explanations", key="dl-explain")


def show_contrast(outcome: Outcome, choice: ImageChoice) -> None:
    """One row pair per network, δ on one shared scale."""
    report, panels = outcome.report, outcome.panels
    for k, entry in enumerate(report["models"]):
        kind = "robust" if entry["robust"] else "standard"
        top = entry["predictions"][0]
        st.markdown(f"**{entry['title']}** ({kind}) — sees *{top['label']}* ({top['probability']:.1%})")
        _grid(entry["targets"], panels, prefix=f"m{k}-")
    st.caption(
        f"δ is amplified on one shared scale (0.5 + δ/(2·{report['delta_scale']:.3f})) so the rows compare by eye: "
        "on the robust network δ draws the target class; on the standard one it looks like noise."
    )
    render.downloads_row(outcome, choice, stem="standard-vs-robust", key="dl-contrast")
