"""Showing ARA: the shipped networks' table and curves (from their stored ρ*), and the result of a live run."""

from __future__ import annotations

import streamlit as st

from advexp_core.experiments.ara import PAPER_ARA
from advexp_core.readings import Reading
from advexp_ui import render
from advexp_ui.jobs import robustness as job
from advexp_ui.jobs.common import Outcome, file_bytes
from advexp_ui.state import ImageChoice

EXPLAINER = (
    "For each image, ρ* is the smallest change (RMS, in [0,1] pixel units) that makes the network wrong; "
    "the curve A(ρ) is the share of images that survive a change of size ρ. **ARA is the area under that "
    "curve above chance (1/C)**: the more change a network's accuracy survives, the larger it is. "
    "*Attack ARA* counts a misclassification; *BTR ARA* waits until the true class drops to chance."
)


def show_shipped_curves() -> None:
    """A(ρ) of every shipped network from its stored ρ*, one network's area shaded (picked here)."""
    curves = job.shipped_curves()
    for message in curves.refused:
        st.error(message)
    if curves.not_measured:
        st.info(f"No stored per-image ρ* yet for {', '.join(curves.not_measured)}, so no curve for it.")
    if not curves.networks:
        return
    names = [n.model_id for n in curves.networks]
    robust = [n.model_id for n in curves.networks if n.robust_additions]
    c1, c2 = st.columns([1, 1])
    highlight = c1.selectbox(
        "Shade the area of", names, index=names.index(robust[0]) if robust else 0, key="ara-highlight"
    )
    boundary = c2.radio(
        "Boundary",
        list(job.BOUNDARY_NAMES),
        format_func=job.BOUNDARY_NAMES.get,
        horizontal=True,
        key="ara-boundary",
    )
    st.image(job.curves_png(curves, boundary, highlight), width=640)
    st.caption(
        f"{len(names)} networks drawn from their stored per-image ρ* (`checkpoints/<id>.rho.json`, each checked "
        "against the sha256 in the manifest). Solid red: the robust additions; dashed blue: without them. "
        "The shaded area above chance (1/C) is the picked network's ARA."
    )


def show_shipped() -> None:
    """The project's digits networks (manifest table and curves) and the authors' published CIFAR-10 figures."""
    entries = job.manifest()
    if entries:
        st.markdown("**This project's digits networks** (from `checkpoints/manifest.json`):")
        render.table([job.manifest_row(e) for e in entries], hide_index=True, width="stretch")
        st.caption(
            "In brackets: the 95 % interval, a bootstrap over the images (seed 0); a ratio's, a paired one "
            "over the images both networks were measured on (docs/method.md §9)."
        )
        _reading(job.shipped_reading())
        show_shipped_curves()
    else:
        st.info("The digits networks' manifest (checkpoints/manifest.json) is not on this computer yet.")
    st.markdown(
        "**The paper's CIFAR-10 networks** (the authors' figures on 1000 test images, docs/method.md §3; "
        "they published no per-image ρ*, so these have no interval):"
    )
    rows = [
        {"network": k, "test accuracy": a, "Attack ARA": b, "BTR ARA": c}
        for k, (a, b, c) in PAPER_ARA.items()
    ]
    render.table(rows, hide_index=True, width="stretch")
    _reading(job.paper_reading())
    render.look_at("robustness-curves")


def show_live(outcome: Outcome, choice: ImageChoice) -> None:
    r = outcome.report
    c1, c2, c3 = st.columns(3)
    c1.metric("Clean accuracy", f"{r['accuracy']:.3f}")
    c2.metric("Attack ARA", f"{r['attack_ara']:.5f}")
    c3.metric("BTR ARA", f"{r['btr_ara']:.5f}")
    c1.caption(f"95 % interval {_ends(r.get('accuracy_ci'), 3)} (Wilson)")
    seed = r["settings"].get("bootstrap_seed", 0)
    for column, key in ((c2, "attack_ara_ci"), (c3, "btr_ara_ci")):
        column.caption(
            f"95 % interval {_ends(r.get(key), 5)} (a bootstrap over the {r['n_images']} images, seed {seed})"
        )
    for warning in r.get("warnings", []):
        st.warning(warning)
    st.image(file_bytes(outcome.files["curve.png"]), width=640)
    st.markdown(f"**Reading:** {r['reading']['verdict']}")
    render.look_at("robustness-live")
    st.caption(
        f"N = {r['n_images']} images, S = {r['settings']['steps']} steps, size {r['settings']['size']:g}, "
        f"momentum {r['settings']['momentum']:g}, "
        f"{'the authors’ random subset (seed 1776)' if r['settings']['sample'] == 'reference' else 'the first N'}. "
        "Few images give a rough estimate; the paper uses 1000."
    )
    render.downloads_row(outcome, choice, stem="robustness", key="dl-ara")


def _ends(interval: list[float] | None, digits: int) -> str:
    """ "[a, b]", or why there is none."""
    if not interval or None in interval:
        return "undefined (fewer than two images)"
    return f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def _reading(reading: Reading | None) -> None:
    """The ratios of the table just above, computed from its numbers."""
    if reading is not None:
        st.markdown(f"**Reading:** {render.defuse_markdown(reading.text)}")
