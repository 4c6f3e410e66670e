"""Showing ARA: the shipped networks' table and curves, and the result of a live run."""

from __future__ import annotations

import streamlit as st

from advexp_ui import render
from advexp_ui.jobs import robustness as job
from advexp_ui.jobs.common import Outcome
from advexp_ui.state import ImageChoice

EXPLAINER = (
    "For each image, ρ* is the smallest change (RMS, in [0,1] pixel units) that makes the network wrong; "
    "the curve A(ρ) is the share of images that survive a change of size ρ. **ARA is the area under that "
    "curve above chance (1/C)**: the more change a network's accuracy survives, the larger it is. "
    "*Attack ARA* counts a misclassification; *BTR ARA* waits until the true class drops to chance."
)


def _curve_chart(curves: dict[str, tuple[list[float], list[float]]]) -> None:
    """A(ρ) as step points for each boundary."""
    rows = []
    for boundary, (rho, acc) in curves.items():
        rows += [{"ρ": r, "A(ρ)": a, "boundary": boundary} for r, a in zip(rho, acc, strict=True)]
    st.line_chart(rows, x="ρ", y="A(ρ)", color="boundary", height=240)


def show_shipped() -> None:
    """The project's digits networks (manifest) and the authors' published CIFAR-10 figures."""
    entries = job.manifest()
    if entries:
        st.markdown("**This project's digits networks** (from `checkpoints/manifest.json`):")
        st.dataframe([job.manifest_row(e) for e in entries], hide_index=True, width="stretch")
        with_curves = [(e, c) for e in entries if (c := job.manifest_curves(e))]
        if not with_curves:
            st.caption(
                "The manifest keeps the areas but not the per-image ρ*, so no curves here: "
                "measure one live below."
            )
        for first in range(0, len(with_curves), 4):
            row = with_curves[first : first + 4]
            for col, (entry, curves) in zip(st.columns(4), row, strict=False):
                with col:
                    st.caption(entry.get("id", "?"))
                    _curve_chart(curves)
    else:
        st.info("The digits networks' manifest (checkpoints/manifest.json) is not on this computer yet.")
    st.markdown(
        "**The paper's CIFAR-10 networks** (the authors' figures on 1000 test images, docs/method.md §3):"
    )
    rows = [
        {"network": k, "test accuracy": a, "Attack ARA": b, "BTR ARA": c}
        for k, (a, b, c) in job.PAPER_ARA.items()
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


def show_live(outcome: Outcome, choice: ImageChoice) -> None:
    r = outcome.report
    c1, c2, c3 = st.columns(3)
    c1.metric("Clean accuracy", f"{r['accuracy']:.3f}")
    c2.metric("Attack ARA", f"{r['attack_ara']:.5f}")
    c3.metric("BTR ARA", f"{r['btr_ara']:.5f}")
    for warning in r.get("warnings", []):
        st.warning(warning)
    st.image(outcome.files["curve.png"], width=640)
    st.caption(
        f"N = {r['n_images']} images, S = {r['settings']['steps']} steps, size {r['settings']['size']:g}, "
        f"momentum {r['settings']['momentum']:g}, "
        f"{'the authors’ random subset (seed 1776)' if r['settings']['sample'] == 'reference' else 'the first N'}. "
        "Few images give a rough estimate; the paper uses 1000."
    )
    render.downloads_row(outcome, choice, stem="robustness", key="dl-ara")
