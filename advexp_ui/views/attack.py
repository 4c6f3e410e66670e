"""Showing saliency under attack: the verdict, the pictures, the maps on one scale, the numbers."""

from __future__ import annotations

import dataclasses

import streamlit as st

from advexp_core.experiments import AttackConfig
from advexp_core.methods.saliency import METHOD_TITLES
from advexp_core.networks.registry import LoadedModel
from advexp_ui import render
from advexp_ui.jobs.attack import AttackOutcome, AttackPart, DecisionPart, ManipulationOutcome, MapPart
from advexp_ui.state import ImageChoice

PERTURBATION_NAMES = {
    "linf_255": "Largest change (L∞, /255)",
    "rms": "RMS",
    "l2": "L2",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
}
MAP_NAMES = {
    "spearman": "Rank correlation (Spearman)",
    "topk_intersection": "Top-20 % overlap",
    "ssim": "Map SSIM",
    "center_shift_px": "Centre-of-mass shift (px)",
    "delta_energy_in_topk": "Share of |δ|² inside the clean map's top 20 %",
    "delta_energy_in_attacked_topk": "Share of |δ|² inside the attacked map's top 20 %",
}


def budget_text(config: AttackConfig, model: LoadedModel) -> str:
    """The budget in the units people use: k/255 for L∞, RMS as in the paper, L2 for L2."""
    eps = config.eps(model.input_size)
    unit = {"linf": "L∞", "rms": "RMS", "l2": "L2"}[config.norm]
    return f"Budget: {unit} ε = {eps:.5g} in [0,1] pixel units ({config.eps_255:g}/255 per value, at {model.input_size[0]}×{model.input_size[1]} px)."


class AttackSlots:
    """The places of the attack page's blocks, laid out before the run so that each block can be
    drawn as soon as it is computed and drawn again, in place, with the whole result."""

    def __init__(self, methods: tuple[str, ...]) -> None:
        self.decision = st.empty()
        self.maps = {method: st.empty() for method in methods}
        self.rest = st.empty()

    def show_part(self, part: AttackPart) -> None:
        """Draw one finished block (the decision, or one method's maps) in its place."""
        if isinstance(part, DecisionPart):
            with self.decision.container():
                _decision_block(part)
        elif part.block in self.maps:
            with self.maps[part.block].container():
                _map_block(part)


def show_attack(outcome: AttackOutcome, choice: ImageChoice, slots: AttackSlots | None = None) -> None:
    """The full result of the decision-flipping attack (in ``slots`` when they were laid out)."""
    slots = slots or AttackSlots(tuple(outcome.maps))
    with slots.decision.container():
        _decision_block(outcome.decision)
    for method, slot in slots.maps.items():
        with slot.container():
            if method in outcome.maps:
                _map_block(outcome.maps[method])
    with slots.rest.container():
        if outcome.maps:
            render.look_at("attack-maps")
            st.markdown(f"**In all:** {render.defuse_markdown(outcome.overall.text)}")
        render.figure_on_request(
            outcome, "figure.png", label="Show the whole figure (as downloaded)", key="figure-attack"
        )
        render.downloads_row(outcome, choice, stem="saliency-under-attack", key="dl-attack")


def _decision_block(part: DecisionPart) -> None:
    """The verdict (`readings.attack.decision`), the three pictures, the predictions and how
    visible the change is."""
    example, readings, panels = part.example, part.readings, part.panels
    show = st.warning if readings.decision.outcome == "not-flipped" else st.success
    show(render.defuse_markdown(readings.decision.text))
    render.pictures(
        [
            ("clean", panels["clean"]),
            ("attacked", panels["attacked"]),
            ("δ amplified (grey = no change)", panels["delta"]),
        ]
    )
    c1, c2, c3 = st.columns(3)
    with c1:
        render.predictions("Before", example.predictions_before)
    with c2:
        render.predictions("After the attack", example.predictions_after)
    with c3:
        render.predictions("After saving as PNG", example.png_predictions_after)
    render.look_at("attack-decision")
    st.subheader("How visible is the change?")
    size = dataclasses.asdict(example.perturbation)
    for name, label in PERTURBATION_NAMES.items():
        render.reading(label, render.fmt(size[name], 4), readings.perturbation.get(name))
    st.markdown(f"**Verdict:** {render.defuse_markdown(readings.visibility.text)}")
    render.look_at("attack-visibility")


def _map_block(part: MapPart) -> None:
    """One method's clean and attacked maps on one colour scale, and how far the map moved."""
    pair, readings, panels = part.pair, part.readings, part.panels
    method, title = pair.method, METHOD_TITLES.get(pair.method, pair.method)
    st.subheader(f"{title}: clean vs attacked (one colour scale)")
    render.pictures(
        [
            (f"{title}, clean", panels[f"{method}-clean"]),
            (f"{title}, attacked", panels[f"{method}-attacked"]),
        ],
        columns=3,
    )
    st.markdown(f"**Verdict:** {render.defuse_markdown(readings.verdict.text)}")
    for name, label in MAP_NAMES.items():
        if name in pair.metrics:
            render.reading(label, render.fmt(pair.metrics[name]), readings.sentences.get(name))
    gap = pair.extras.convergence_delta
    if gap is not None:
        st.caption(
            f"Completeness error (sum of attributions minus the logit's change from the baseline): "
            f"clean {gap[0]:.3g}, attacked {gap[1]:.3g}; closer to 0 is a more "
            "exact integral (more steps shrink it)."
        )


def show_manipulation(outcome: ManipulationOutcome, choice: ImageChoice) -> None:
    """The result of keep-the-label, move-the-map."""
    result, panels = outcome.result, outcome.panels
    (st.success if result.reading.outcome == "moved-kept" else st.warning)(
        render.defuse_markdown(result.reading.text)
    )
    render.pictures(
        [("clean", panels["clean"]), ("manipulated", panels["attacked"]), ("δ amplified", panels["delta"])]
    )
    render.pictures(
        [
            ("map of the clean image", panels["map-clean"]),
            ("map after manipulation", panels["map-attacked"]),
            ("the goal", panels["map-goal"]),
        ]
    )
    render.look_at("manipulation")
    sim = result.similarity
    rows = [
        {"comparison": label, **{k: render.fmt(v) for k, v in sim[key].items()}}
        for key, label in (
            ("to_target_before", "goal vs clean map"),
            ("to_target_after", "goal vs new map"),
            ("to_original_after", "clean map vs new map"),
        )
    ]
    render.table(rows, hide_index=True, width="stretch")
    render.downloads_row(outcome, choice, stem="move-the-map", key="dl-manip")
