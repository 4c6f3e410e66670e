"""Showing several explainers side by side: the maps, their agreement and their faithfulness."""

from __future__ import annotations

import dataclasses

import streamlit as st

from advexp_core.experiments import SanityConfig, SanityPlan
from advexp_core.experiments.explainers import Curves
from advexp_core.methods.perturbation import LIME_SAMPLES, LIME_SEGMENTS, occlusion_window
from advexp_core.methods.saliency import METHOD_TITLES
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.agreement import AGREEMENT_TITLES, agreement_csv, agreement_figure
from advexp_core.plots.figures import figure_png
from advexp_core.readings import Reading
from advexp_ui import render
from advexp_ui.jobs.common import Outcome
from advexp_ui.jobs.explainers import ExplainedClass, ExplainerPart, ExplainersOutcome
from advexp_ui.state import ImageChoice

AGREEMENT_FILE = "agreement.csv"
READING = {
    "spearman": "1: the two maps rank the pixels identically; 0: nothing in common; −1: opposite.",
    "topk_intersection": "1: the same top 20 % of pixels; about 0.2: no more in common than chance.",
    "ssim": "1: the two maps look identical; near 0: no structure in common.",
}


@st.cache_data(show_spinner=False, max_entries=64)
def agreement_png(matrix: tuple[tuple[float, ...], ...], titles: tuple[str, ...], measure: str) -> bytes:
    """The annotated heat map of one agreement matrix (`advexp_core.plots.agreement`), as PNG."""
    return figure_png(agreement_figure(matrix, titles, measure=measure))


class ExplainerSlots:
    """The places of the compare page's blocks, laid out before the run: the explained class, then
    the image and one place per method side by side (in the order asked), then the rest
    (agreement, faithfulness, downloads). Each method's map is drawn as soon as it is computed,
    again with its deletion/insertion areas, and again, in place, with the whole result."""

    def __init__(self, methods: tuple[str, ...]) -> None:
        self.explained = st.empty()
        columns = st.columns(len(methods) + 1)
        self.input = columns[0].empty()
        self.maps = {method: column.empty() for method, column in zip(methods, columns[1:], strict=True)}
        self.rest = st.empty()

    def show_part(self, part: ExplainerPart) -> None:
        """Draw one method's finished block in its place (with the image and class, on the first)."""
        if part.explained is not None:
            self.show_input(part.explained, part.panels)
        if part.block in self.maps:
            with self.maps[part.block].container():
                _map_block(part.block, part.curves, part.panels)

    def show_input(self, explained: ExplainedClass, panels: dict[str, bytes]) -> None:
        """Draw the explained class and the image in their places."""
        self.explained.markdown(
            f"Explaining class **{render.escape_markdown(explained.label)}** ({explained.index})."
        )
        self.input.image(panels["input"], caption="image", width="stretch")


def show_explainers(
    outcome: ExplainersOutcome, choice: ImageChoice, slots: ExplainerSlots | None = None
) -> None:
    """The maps, their agreement and faithfulness, and the downloads (in ``slots`` when they were
    laid out)."""
    result, panels = outcome.result, outcome.panels
    methods = list(result.maps)
    titles = [METHOD_TITLES.get(m, m) for m in methods]
    slots = slots or ExplainerSlots(tuple(methods))
    slots.show_input(ExplainedClass(result.target, result.label), panels)
    for method, slot in slots.maps.items():
        with slot.container():
            _map_block(method, result.curves.get(method), panels)
    with slots.rest.container():
        render.look_at("explainers-maps")
        st.subheader("Do the explainers agree?")
        _agreement(result.agreement, titles, outcome.readings)
        st.subheader("Are they faithful to the network?")
        _faithfulness(result.curves, titles, methods)
        render.look_at("explainers-faithfulness")
        csv = agreement_csv(result.agreement, titles).encode()
        render.downloads_row(
            dataclasses.replace(outcome, files={**outcome.files, AGREEMENT_FILE: csv}),
            choice,
            stem="compare-explainers",
            key="dl-explainers",
        )


def _map_block(method: str, curves: Curves | None, panels: dict[str, bytes]) -> None:
    """One method's map over the image under its title, with its deletion/insertion areas once
    measured (docs/method.md §4)."""
    st.image(panels[method], caption=METHOD_TITLES.get(method, method), width="stretch")
    if curves is not None:
        st.caption(
            f"deletion area {render.fmt(curves.deletion_auc)} · "
            f"insertion area {render.fmt(curves.insertion_auc)}"
        )


def _agreement(
    agreement: dict[str, list[list[float]]], titles: list[str], readings: dict[str, Reading]
) -> None:
    """The chosen measure's matrix as a heat map on its fixed scale; the numbers folded below."""
    measure = st.radio(
        "Agreement measure",
        list(AGREEMENT_TITLES),
        format_func=AGREEMENT_TITLES.get,
        horizontal=True,
        key="agreement",
    )
    matrix = agreement[measure]
    png = agreement_png(tuple(tuple(row) for row in matrix), tuple(titles), measure)
    st.image(png, caption=READING[measure], width=120 + 90 * len(titles))
    reading = readings[measure]
    (st.success if reading.outcome == "agree" else st.warning)(render.defuse_markdown(reading.text))
    render.look_at("explainers-agreement")
    with st.expander(f"The numbers (all three measures in {AGREEMENT_FILE}, with the downloads)"):
        render.table(
            {"": titles, **{t: [_rounded(row[j]) for row in matrix] for j, t in enumerate(titles)}},
            hide_index=True,
        )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _faithfulness(curves: dict[str, Curves], titles: list[str], methods: list[str]) -> None:
    st.markdown(
        "**Deletion**: remove the pixels a map calls most important first; a faithful map makes the "
        "probability fall fast (small area). **Insertion**: add them first to a blurred image; a faithful "
        "map makes it rise fast (large area)."
    )
    c1, c2 = st.columns(2)
    for col, curve in ((c1, "deletion"), (c2, "insertion")):
        data = {"share of pixels": list(curves[methods[0]].fractions)}
        for t, m in zip(titles, methods, strict=True):
            data[t] = list(curves[m].deletion if curve == "deletion" else curves[m].insertion)
        col.markdown(f"**{curve.capitalize()}**")
        col.line_chart(data, x="share of pixels", y=titles, height=260)
    rows = [
        {
            "method": t,
            "deletion area (lower is better)": round(curves[m].deletion_auc, 4),
            "insertion area (higher is better)": round(curves[m].insertion_auc, 4),
        }
        for t, m in zip(titles, methods, strict=True)
    ]
    render.table(rows, hide_index=True)


def perturbation_cost_text(model: LoadedModel) -> str:
    """What LIME and occlusion cost on this model, shown beside the method choice."""
    h, w = model.input_size
    window = occlusion_window(h, w)
    stride = max(1, window // 2)
    positions = ((h - window) // stride + 1) * ((w - window) // stride + 1)
    return (
        f"LIME and occlusion are opt-in and forward-only: LIME fits {LIME_SAMPLES} samples over about "
        f"{LIME_SEGMENTS} superpixels ({LIME_SAMPLES} forward passes); occlusion slides a {window}-px "
        f"black square with a {stride}-px stride ({positions} forward passes)."
    )


def sanity_cost_text(plan: SanityPlan, config: SanityConfig) -> str:
    """The cost of a sanity check before it runs: layers randomised, points measured, maps."""
    every = "after every layer" if len(plan.measured) == len(plan.layers) else "at evenly spread layers"
    return (
        f"{len(plan.layers)} layers to randomise, from the output down; the maps are measured "
        f"{every} ({len(plan.measured)} points): {plan.maps} maps for {len(config.methods)} method(s)."
    )


def show_sanity(outcome: Outcome, choice: ImageChoice) -> None:
    """The randomisation curves with the maps under them, the reading, the data check, downloads."""
    report = outcome.report
    st.image(
        outcome.panels["figure"],
        caption="Similarity of each map to the trained network's, as more and more layers are re-initialised "
        "(left: none; right: all).",
    )
    st.markdown("**What this means**")
    for paragraph in report["reading"].split("\n\n"):
        st.markdown(paragraph)
    if report.get("data"):
        data = report["data"]
        st.markdown(f"**Data randomisation** against **{data['partner']}** ({data['images']} test digits)")
        render.table(
            [
                {
                    "method": METHOD_TITLES.get(m, m),
                    "mean Spearman": _rounded(v["mean_spearman"]),
                    "mean SSIM": _rounded(v["mean_ssim"]),
                }
                for m, v in data["methods"].items()
            ],
            hide_index=True,
        )
    render.downloads_row(outcome, choice, stem="sanity-checks", key="dl-sanity")
