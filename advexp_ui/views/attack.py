"""Showing saliency under attack: the verdict, the pictures, the maps on one scale, the numbers."""

from __future__ import annotations

from typing import Any

import streamlit as st

from advexp_core.experiments import AttackConfig
from advexp_core.figures import METHOD_TITLES
from advexp_core.models import LoadedModel
from advexp_ui import render
from advexp_ui.jobs.attack import AttackPart
from advexp_ui.jobs.common import Outcome
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


def _verdict(report: dict[str, Any]) -> None:
    """The decision verdict computed from this run's predictions (`readings.attack.decision`)."""
    reading = report["readings"]["decision"]
    show = st.warning if reading["outcome"] == "not-flipped" else st.success
    show(reading["verdict"])


class AttackSlots:
    """The places of the attack page's blocks, laid out before the run so that each block can be
    drawn as soon as it is computed and drawn again, in place, with the whole result."""

    def __init__(self, methods: tuple[str, ...]) -> None:
        self.decision = st.empty()
        self.maps = {method: st.empty() for method in methods}
        self.rest = st.empty()

    def show_part(self, part: AttackPart) -> None:
        """Draw one finished block (the decision, or one method's maps) in its place."""
        if part.block == "decision":
            with self.decision.container():
                _decision_block(part.report, part.panels)
        elif part.block in self.maps:
            with self.maps[part.block].container():
                _map_block(part.block, part.report, part.panels)


def show_attack(outcome: Outcome, choice: ImageChoice, slots: AttackSlots | None = None) -> None:
    """The full result of the decision-flipping attack (in ``slots`` when they were laid out)."""
    report, panels = outcome.report, outcome.panels
    slots = slots or AttackSlots(tuple(report["maps"]))
    with slots.decision.container():
        _decision_block(report, panels)
    for method, slot in slots.maps.items():
        with slot.container():
            if method in report["maps"]:
                _map_block(method, report, panels)
    with slots.rest.container():
        if report["maps"]:
            render.look_at("attack-maps")
            overall = report["readings"].get("overall")
            if overall:
                st.markdown(f"**In all:** {overall['verdict']}")
        render.figure_on_request(
            outcome, "figure.png", label="Show the whole figure (as downloaded)", key="figure-attack"
        )
        render.downloads_row(outcome, choice, stem="saliency-under-attack", key="dl-attack")


def _decision_block(report: dict[str, Any], panels: dict[str, bytes]) -> None:
    """The verdict, the three pictures, the predictions and how visible the change is."""
    _verdict(report)
    render.pictures(
        [
            ("clean", panels["clean"]),
            ("attacked", panels["attacked"]),
            ("δ amplified (grey = no change)", panels["delta"]),
        ]
    )
    c1, c2, c3 = st.columns(3)
    with c1:
        render.predictions("Before", report["predictions_before"])
    with c2:
        render.predictions("After the attack", report["predictions_after"])
    with c3:
        render.predictions("After saving as PNG", report["png_predictions_after"])
    render.look_at("attack-decision")
    st.subheader("How visible is the change?")
    for name, label in PERTURBATION_NAMES.items():
        value = report["perturbation"].get(name)
        render.reading(label, render.fmt(value, 4), report["readings"]["perturbation"].get(name))
    visibility = report["readings"].get("visibility")
    if visibility:
        st.markdown(f"**Verdict:** {visibility['verdict']}")
    render.look_at("attack-visibility")


def _map_block(method: str, report: dict[str, Any], panels: dict[str, bytes]) -> None:
    """One method's clean and attacked maps on one colour scale, and how far the map moved."""
    title = METHOD_TITLES.get(method, method)
    st.subheader(f"{title}: clean vs attacked (one colour scale)")
    render.pictures(
        [
            (f"{title}, clean", panels[f"{method}-clean"]),
            (f"{title}, attacked", panels[f"{method}-attacked"]),
        ],
        columns=3,
    )
    values = report["maps"][method]
    verdict = report["readings"]["maps"][method].get("verdict")
    if verdict:
        st.markdown(f"**Verdict:** {verdict}")
    for name, label in MAP_NAMES.items():
        if name in values:
            render.reading(label, render.fmt(values[name]), report["readings"]["maps"][method].get(name))
    gap = report.get("saliency", {}).get(method, {}).get("convergence_delta")
    if gap is not None:
        st.caption(
            f"Completeness error (sum of attributions minus the logit's change from the baseline): "
            f"clean {gap['clean']:.3g}, attacked {gap['attacked']:.3g}; closer to 0 is a more "
            "exact integral (more steps shrink it)."
        )


def show_manipulation(outcome: Outcome, choice: ImageChoice) -> None:
    """The result of keep-the-label, move-the-map."""
    report, panels = outcome.report, outcome.panels
    reading = report["reading"]
    (st.success if reading["outcome"] == "moved-kept" else st.warning)(reading["verdict"])
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
    sim = report["similarity"]
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
