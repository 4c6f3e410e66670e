"""Showing several explainers side by side: the maps, their agreement and their faithfulness."""

from __future__ import annotations

import streamlit as st

from advexp_core.figures import METHOD_TITLES
from advexp_ui import render
from advexp_ui.jobs.common import Outcome
from advexp_ui.state import ImageChoice

MEASURES = {
    "spearman": "Spearman rank correlation",
    "topk_intersection": "top-20 % overlap",
    "ssim": "map SSIM",
}


def show_explainers(outcome: Outcome, choice: ImageChoice) -> None:
    report, panels = outcome.report, outcome.panels
    methods = report["methods"]
    titles = [METHOD_TITLES.get(m, m) for m in methods]
    st.markdown(f"Explaining class **{report['explained_label']}** ({report['explained_class']}).")
    render.pictures(
        [("image", panels["input"]), *((t, panels[m]) for t, m in zip(titles, methods, strict=True))]
    )
    st.subheader("Do the explainers agree?")
    measure = st.radio(
        "Agreement measure", list(MEASURES), format_func=MEASURES.get, horizontal=True, key="agreement"
    )
    matrix = report["agreement"][measure]
    st.dataframe(
        {"": titles, **{t: [round(row[j], 3) for row in matrix] for j, t in enumerate(titles)}},
        hide_index=True,
    )
    st.caption(
        "1 means the two maps rank the pixels identically; around 0 (Spearman) or 0.2 (top-20 % overlap) "
        "means they have nothing in common. Explainers that disagree cannot all be right."
    )
    st.subheader("Are they faithful to the network?")
    _faithfulness(report["faithfulness"], titles, methods)
    render.downloads_row(outcome, choice, stem="compare-explainers", key="dl-explainers")


def _faithfulness(faith: dict, titles: list[str], methods: list[str]) -> None:
    st.markdown(
        "**Deletion**: remove the pixels a map calls most important first; a faithful map makes the "
        "probability fall fast (small area). **Insertion**: add them first to a blurred image; a faithful "
        "map makes it rise fast (large area)."
    )
    c1, c2 = st.columns(2)
    for col, curve in ((c1, "deletion"), (c2, "insertion")):
        data = {"share of pixels": faith[methods[0]]["fractions"]}
        data.update({t: faith[m][curve] for t, m in zip(titles, methods, strict=True)})
        col.markdown(f"**{curve.capitalize()}**")
        col.line_chart(data, x="share of pixels", y=titles, height=260)
    rows = [
        {
            "method": t,
            "deletion area (lower is better)": round(faith[m]["deletion_auc"], 4),
            "insertion area (higher is better)": round(faith[m]["insertion_auc"], 4),
        }
        for t, m in zip(titles, methods, strict=True)
    ]
    st.dataframe(rows, hide_index=True)
