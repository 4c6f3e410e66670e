"""Showing adversarial explanations: a grid of x+δ and δ per target, and the standard-vs-robust rows."""

from __future__ import annotations

from typing import Any

import streamlit as st

from advexp_ui import render
from advexp_ui.jobs.common import Outcome
from advexp_ui.state import ImageChoice

COLUMNS = 5
FAILED_MEANING = (
    "The search toward class t takes S steps of decreasing size and must spend its budget "
    "(RMS(δ) = ρ) by step S/2. When it does not, the target's gradient was too weak or too unstable "
    "to follow — typical of a saturated, non-robust network — and the image shown is **not** an "
    "adversarial explanation: do not read it as one (the paper treats it as a failed explanation). "
    "More steps or another network may help. The JSON report keeps each target's full message."
)


def failure_badge(target: dict[str, Any], steps: int) -> tuple[str, str]:
    """The short badge of a failed explanation and its tooltip, from the report's numbers.

    A failure means RMS(δ) < ρ at step S/2 (`budget_reached_by_half` false); `reached_step` is
    the step at which RMS(δ) first reached ρ, or −1 when it never did.
    """
    reached = int(target["reached_step"])
    later = f"RMS(δ) reached ρ only at step {reached}." if reached >= 0 else "RMS(δ) never reached ρ."
    return f"failed: budget not reached by step {steps // 2} of {steps}", later


def _caption(t: dict[str, Any]) -> str:
    rms = f" · RMS {t['rms']:.3f}" if t["budget_reached_by_half"] else ""
    return f"{t['index']}: {t['label']} · p {t['probability_before']:.3f} → {t['probability_after_display']:.3f}{rms}"


def _grid(targets: list[dict[str, Any]], panels: dict[str, bytes], steps: int, prefix: str = "") -> None:
    """x+δ above δ for every target, COLUMNS per row; a failed one carries a badge, and the grid
    says once, folded, what failed means."""
    for start in range(0, len(targets), COLUMNS):
        cols = st.columns(COLUMNS)
        for k, col in enumerate(cols[: len(targets) - start], start=start):
            t = targets[k]
            col.image(panels[f"{prefix}x-{k}"], caption=_caption(t), width="stretch")
            col.image(panels[f"{prefix}d-{k}"], caption="δ (grey = no change)", width="stretch")
            if not t["budget_reached_by_half"]:
                label, detail = failure_badge(t, steps)
                col.badge(label, icon=":material/error:", color="red", help=detail)
    failed = sum(not t["budget_reached_by_half"] for t in targets)
    if failed:
        with st.expander(f"What “failed” means ({failed} of {len(targets)} explanations here)"):
            st.markdown(FAILED_MEANING)


def show_explanations(outcome: Outcome, choice: ImageChoice) -> None:
    """The grid of one network's explanations, with its predictions and the downloads."""
    report, panels = outcome.report, outcome.panels
    c1, c2 = st.columns([1, 2])
    c1.image(panels["input"], caption="the image as the network sees it", width="stretch")
    with c2:
        render.predictions("The network's top classes", report["predictions"])
    _grid(report["targets"], panels, report["steps"])
    render.look_at("explanations-grid")
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
        _grid(entry["targets"], panels, entry["steps"], prefix=f"m{k}-")
    render.look_at("explanations-contrast")
    st.caption(
        f"δ is amplified on one shared scale (0.5 + δ/(2·{report['delta_scale']:.3f})) so the rows compare by eye."
    )
    render.downloads_row(outcome, choice, stem="standard-vs-robust", key="dl-contrast")
