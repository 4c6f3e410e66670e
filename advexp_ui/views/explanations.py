"""Showing adversarial explanations: a grid of x+δ and δ per target, and the standard-vs-robust rows."""

from __future__ import annotations

import streamlit as st

from advexp_core.experiments.under_attack import Predictions
from advexp_core.methods.explanations import TargetExplanation
from advexp_ui import render, state
from advexp_ui.jobs.explanations import (
    ContrastOutcome,
    ExplainPart,
    ExplanationsOutcome,
    Network,
    NetworkRow,
    PairChoice,
    dataset_image,
)
from advexp_ui.state import ImageChoice

COLUMNS = 5
OWN_SCALE = "δ on its own scale until all targets are done"
FAILED_MEANING = (
    "The search toward class t takes S steps of decreasing size and must spend its budget "
    "(RMS(δ) = ρ) by step S/2. When it does not, the target's gradient was too weak or too unstable "
    "to follow — typical of a saturated, non-robust network — and the image shown is **not** an "
    "adversarial explanation: do not read it as one (the paper treats it as a failed explanation). "
    "More steps or another network may help. The JSON report keeps each target's full message."
)


def failure_badge(reached_step: int, steps: int) -> tuple[str, str]:
    """The short badge of a failed explanation and its tooltip, from the target's numbers.

    A failure means RMS(δ) < ρ at step S/2 (`budget_reached_by_half` false); ``reached_step`` is
    the step at which RMS(δ) first reached ρ, or −1 when it never did.
    """
    later = (
        f"RMS(δ) reached ρ only at step {reached_step}." if reached_step >= 0 else "RMS(δ) never reached ρ."
    )
    return f"failed: budget not reached by step {steps // 2} of {steps}", later


def _caption(t: TargetExplanation) -> str:
    rms = f" · RMS {t.rms:.3f}" if t.budget_reached_by_half else ""
    return f"{t.index}: {t.label} · p {t.probability_before:.3f} → {t.probability_after_display:.3f}{rms}"


class _Row:
    """One network's places: its heading, a grid of COLUMNS cells per row (x+δ above δ), and
    the note on failed explanations under it."""

    def __init__(self, targets: int) -> None:
        self.head = st.empty()
        self.cells = []
        for start in range(0, targets, COLUMNS):
            cols = st.columns(COLUMNS)
            self.cells += [col.empty() for col in cols[: targets - start]]
        self.foot = st.empty()

    def draw(self, row: NetworkRow, panels: dict[str, bytes], prefix: str) -> None:
        """Every target of a network's ``row`` on the shared δ scale, the network's readings
        (how many succeeded, how structured δ is) and (folded) what failed means when one failed."""
        targets, steps = row.result.explanations.targets, row.result.explanations.steps
        for k, t in enumerate(targets):
            with self.cells[k].container():
                _cell(t, panels[f"{prefix}x-{k}"], panels[f"{prefix}d-{k}"], "δ (grey = no change)", steps)
        failed = sum(not t.budget_reached_by_half for t in targets)
        with self.foot.container():
            st.markdown(f"**Explanations:** {render.defuse_markdown(row.success.text)}")
            st.markdown(f"**Structure of δ:** {render.defuse_markdown(row.structure.text)}")
            if failed:
                with st.expander(f"What “failed” means ({failed} of {len(targets)} explanations here)"):
                    st.markdown(FAILED_MEANING)


class ExplainSlots:
    """The places of the explanations page's blocks, laid out before the run so that each target
    can be drawn as soon as it is computed and drawn again, in place, with the whole result.

    One row per network (``networks`` > 1: the standard-vs-robust rows, ``contrast``), each with
    room for ``targets`` targets (at least as many as the run resolves), then the rest.
    """

    def __init__(self, targets: int, *, networks: int = 1, contrast: bool = False) -> None:
        self.contrast = contrast
        self.rows = [_Row(targets) for _ in range(networks)]
        self.rest = st.empty()

    def show_part(self, part: ExplainPart) -> None:
        """Draw one finished target in its place (the network's heading with its first target);
        δ is on its own scale until all targets are done."""
        row = self.rows[part.model]
        if part.position == 0:
            with row.head.container():
                if self.contrast:
                    _heading(part.network)
                else:
                    _input_block(part.panels["input"], part.network.predictions)
        with row.cells[part.position].container():
            _cell(part.target, part.panels["x"], part.panels["d"], OWN_SCALE, part.steps)


def _input_block(image: bytes, predictions: Predictions) -> None:
    """The input as the network sees it, beside its top classes."""
    c1, c2 = st.columns([1, 2])
    c1.image(image, caption="the image as the network sees it", width="stretch")
    with c2:
        render.predictions("The network's top classes", predictions)


def _heading(network: Network) -> None:
    """A contrast row's title: the network, its kind and what it sees."""
    kind = "robust" if network.robust else "standard"
    top = network.predictions[0]
    st.markdown(
        f"**{render.escape_markdown(network.title)}** ({kind}) — sees "
        f"*{render.escape_markdown(top['label'])}* ({top['probability']:.1%})"
    )


def _cell(t: TargetExplanation, x: bytes, d: bytes, d_caption: str, steps: int) -> None:
    """One target: x+δ above δ; a failed one carries a badge."""
    st.image(x, caption=_caption(t), width="stretch")
    st.image(d, caption=d_caption, width="stretch")
    if not t.budget_reached_by_half:
        label, detail = failure_badge(t.reached_step, steps)
        st.badge(label, icon=":material/error:", color="red", help=detail)


def show_explanations(
    outcome: ExplanationsOutcome, choice: ImageChoice, slots: ExplainSlots | None = None
) -> None:
    """The grid of one network's explanations, with its predictions and the downloads (in
    ``slots`` when they were laid out)."""
    (entry,) = outcome.rows
    explanations = entry.result.explanations
    slots = slots or ExplainSlots(len(explanations.targets))
    row = slots.rows[0]
    with row.head.container():
        _input_block(outcome.panels["input"], entry.network.predictions)
    row.draw(entry, outcome.panels, prefix="")
    with slots.rest.container():
        render.look_at("explanations-grid")
        st.caption(
            f"ρ = {explanations.rho:g} (RMS, [0,1] pixel units), S = {explanations.steps}, overshoot {explanations.overshoot:g}. "
            "Each x+δ answers: within this budget, what would the image look like if it were as much this class as possible?"
        )
        render.downloads_row(outcome, choice, stem="adversarial-explanations", key="dl-explain")


def show_contrast(outcome: ContrastOutcome, choice: ImageChoice, slots: ExplainSlots | None = None) -> None:
    """One row pair per network, δ on one shared scale (in ``slots`` when they were laid out)."""
    most = max(len(entry.result.explanations.targets) for entry in outcome.rows)
    slots = slots or ExplainSlots(most, networks=len(outcome.rows), contrast=True)
    for k, (entry, row) in enumerate(zip(outcome.rows, slots.rows, strict=True)):
        with row.head.container():
            _heading(entry.network)
        row.draw(entry, outcome.panels, prefix=f"m{k}-")
    with slots.rest.container():
        reading = outcome.reading
        (st.success if reading.outcome == "contrast" else st.warning)(render.defuse_markdown(reading.text))
        render.look_at("explanations-contrast")
        st.caption(
            f"δ is amplified on one shared scale (0.5 + δ/(2·{outcome.delta_scale:.3f})) so the rows compare by eye."
        )
        render.downloads_row(outcome, choice, stem="standard-vs-robust", key="dl-contrast")


def show_pair_choice(choice: PairChoice) -> None:
    """Which pair the contrast uses and why; when none fits, a button per image kind that has one."""
    if choice.pair is not None:
        st.caption(f"**Standard vs robust:** {choice.reason}")
        return
    st.info(choice.reason)
    c1, c2 = st.columns(2)
    c1.button("Use a digit image", on_click=_use, args=("digits",), key="pair-digits")
    c2.button("Use a lesion image", on_click=_use, args=("lesions",), key="pair-lesions")


def _use(dataset: str) -> None:
    """Make the first test image of ``dataset`` the session's image (before the page reruns)."""
    state.set_image(dataset_image(dataset))
