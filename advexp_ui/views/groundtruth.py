"""Showing ground truth: the outlined image, both networks' maps with their shares, the adversarial
explanation toward another class, and the scorecard table."""

from __future__ import annotations

from typing import Any

import streamlit as st

from advexp_core.experiments.scorecard_results import ADVERSARIAL, ScorecardResult, Shares, TopKShares
from advexp_core.methods.saliency import METHOD_TITLES
from advexp_core.networks.registry import LoadedModel
from advexp_core.networks.zoo import ModelError
from advexp_core.readings import groundtruth as gt_readings
from advexp_core.readings.intervals import percent_with_interval, with_interval
from advexp_ui import downloads, loaders, render
from advexp_ui.jobs import groundtruth as job
from advexp_ui.jobs.common import Outcome

INTRO = (
    "Here the right answer is known pixel by pixel. The lesion images are synthetic: benign lesions are "
    "round and one-coloured, malignant ones irregular and multi-coloured, and a **ruler** was photographed "
    "beside 85 % of the malignant and 15 % of the benign training images, as in real dermatology archives. "
    "A network can learn the lesion or the ruler. Which explainer tells you which one it learned, and does "
    "the answer survive an invisible attack? (BlockDigits: the digit sits in one quadrant, the other three "
    "hold the same meaningless patch.)"
)
TITLES = {**METHOD_TITLES, ADVERSARIAL: "Adversarial δ (RMS)"}


def load_pair(dataset: str) -> tuple[LoadedModel, ...] | None:
    """Every network shown for the dataset (`job.networks`), or None after saying clearly which one
    is missing."""
    models, missing = [], []
    for model_id in job.networks(dataset):
        try:
            models.append(loaders.get_model(model_id))
        except (ModelError, ValueError) as exc:
            missing.append(f"**{model_id}** ({exc})")
    if missing:
        st.info(
            "The ground-truth networks for this dataset are not on this computer yet: "
            + "; ".join(missing)
            + ". They are trained with `advexp train` and shipped in `checkpoints/`; pick the other pair meanwhile."
        )
        return None
    return tuple(models)


def show_truth(dataset: str, index: int) -> None:
    """The image with its evidence and shortcut outlined, and the masks' areas."""
    data = job.test_split(dataset)
    masks = {k: v[index] for k, v in data.masks.items()}
    c1, c2 = st.columns([1, 2])
    c1.image(job.truth_png(dataset, index), caption=job.image_label(dataset, index), width=256)
    lines = [f"- green: **evidence**, {float(masks['evidence'].float().mean()):.0%} of the image"]
    if "shortcut" in masks:
        share = float(masks["shortcut"].float().mean())
        lines.append(
            f"- magenta: **ruler**, {share:.0%} of the image" if share else "- no ruler in this image"
        )
    c2.markdown("\n".join(lines))
    render.look_at("groundtruth-image")


def _network_line(ex: job.NetworkExample) -> str:
    names, label = ex.class_names, ex.example.label
    return (
        f"**{ex.network}** says **{names[ex.predicted]}** "
        f"(p({names[label]}) = {ex.probability(label):.2f}; true class {names[label]})"
    )


def _share_caption(title: str, shares: Shares) -> str:
    """The caption under one map: where it falls."""
    if shares.evidence_share is None:  # LIME can find no superpixel that speaks for the class
        return f"{title} · empty map"
    text = f"{title} · lesion {render.fmt(shares.evidence_share, 2)}"
    if shares.shortcut_share is not None:
        text += f" · ruler {render.fmt(shares.shortcut_share, 2)}"
    return text


def show_reliance(outcome: Outcome) -> None:
    """The image as drawn, without its ruler and with one; each network's decision on the three and
    its computed reading."""
    r = outcome.report
    render.pictures(
        [
            (
                "as drawn" + (" (with its ruler)" if r["has_ruler"] else " (no ruler)"),
                outcome.panels["as_is"],
            ),
            ("ruler removed", outcome.panels["ruler_removed"]),
            ("ruler drawn on", outcome.panels["ruler_added"]),
        ]
    )
    names = ("benign", "malignant")

    def said(probs: list[float]) -> str:
        k = max(range(len(probs)), key=probs.__getitem__)
        return f"{names[k]} ({probs[k]:.0%})"

    rows = [
        {
            "network": n["network"],
            "as drawn": said(n["as_is"]),
            "ruler removed": said(n["ruler_removed"]),
            "ruler drawn on": said(n["ruler_added"]),
        }
        for n in r["networks"]
    ]
    render.table(rows)
    for n in r["networks"]:
        (st.warning if n["reads_ruler"] else st.success)(n["reading"]["verdict"])
    render.look_at("groundtruth-reliance")


def map_verdicts(ex: job.NetworkExample, reliance: Outcome | None) -> dict[str, str]:
    """Each map's verdict against the measured reliance of its network on this image (lesions only)."""
    if reliance is None:
        return {}
    measured = {n["network"]: n["reads_ruler"] for n in reliance.report["networks"]}
    if ex.network not in measured:
        return {}
    return {
        method: gt_readings.map_against_reliance(
            TITLES.get(method, method),
            ruler_share=shares.shortcut_share,
            ruler_area=reliance.report["ruler_area"],
            relies=measured[ex.network],
            has_ruler=reliance.report["has_ruler"],
        ).text
        for method, shares in ex.example.shares.items()
    }


def show_maps(examples: list[job.NetworkExample], reliance: Outcome | None = None) -> None:
    """Every explainer's map of the true class on each network, with its shares, and (on the lesions)
    whether each map would have told you what the intervention measured."""
    for ex in examples:
        st.markdown(_network_line(ex))
        items = [(_share_caption(TITLES.get(m, m), s), ex.panels[m]) for m, s in ex.example.shares.items()]
        render.pictures(items, columns=max(4, len(items)))
        verdicts = map_verdicts(ex, reliance)
        if verdicts:
            st.markdown("\n".join(f"- {v}" for v in verdicts.values()))
    st.caption("Share of each map inside the green outline (lesion) and the magenta one (ruler).")
    render.look_at("groundtruth-maps")


def show_explanations(examples: list[job.NetworkExample]) -> None:
    """x+δ and amplified δ toward another class on each network, with δ's energy in each mask."""
    cols = st.columns(len(examples))
    for col, ex in zip(cols, examples, strict=True):
        goal = ex.example.toward
        with col:
            st.markdown(
                f"**{ex.network}**: pushed toward **{ex.class_names[goal]}** (p = {ex.probability(goal):.2f} before)"
            )
            render.pictures([("x+δ", ex.panels["explanation"]), ("δ, amplified", ex.panels["delta"])])
            d, area = ex.example.delta_shares, ex.mask_area
            text = f"δ energy in the lesion: **{render.fmt(d['evidence'], 2)}** (area {area['evidence']:.2f})"
            if d.get("shortcut") is not None:
                text += f"; in the ruler: **{render.fmt(d['shortcut'], 2)}** (area {area['shortcut']:.2f})"
            st.markdown(text)
            if not ex.example.valid:
                st.warning("This explanation did not reach its budget by half-way: treat it as failed.")
    render.look_at("groundtruth-explanation")
    files = {name: data for ex in examples for name, data in ex.files.items()}
    files["report.json"] = downloads.report_bytes({"networks": [ex.to_json() for ex in examples]})
    downloads.buttons(files, stem="ground-truth", key="dl-groundtruth")


def _share(shares: TopKShares, name: str) -> str:
    """A mean with its 95 % interval, "0.86 [0.83, 0.89]" ("—": undefined)."""
    return with_interval(getattr(shares, name), shares.interval(name))


def grades_rows(results: tuple[ScorecardResult, ...]) -> list[dict[str, Any]]:
    """One row per explainer and graded network: how its maps fare against what the decisions
    measurably rest on, each grade with its 95 % interval (empty when no network was graded)."""
    graded = [r for r in results if r.grades is not None]
    rows = []
    for method in results[0].explainers if graded else ():
        for result in graded:
            assert result.grades is not None  # for mypy: filtered above
            g = next((g for g in result.grades.grades if g.method == method), None)
            if g is None:
                continue
            rows.append(
                {
                    "explainer": TITLES.get(method, method),
                    "network": result.model,
                    "graded images": g.n_images,
                    "misleading rate": with_interval(g.misleading_rate, g.interval("misleading_rate")),
                    f"AUROC vs {result.grades.control}": with_interval(
                        g.shortcut_detection_auroc, g.interval("shortcut_detection_auroc")
                    ),
                    "effect Spearman": with_interval(g.effect_spearman, g.interval("effect_spearman")),
                }
            )
    return rows


def scorecard_rows(results: tuple[ScorecardResult, ...]) -> list[dict[str, Any]]:
    """One table row per explainer and network (chance first), each mean with its 95 % interval; the
    columns say where the maps fall (on the lesions: where a dermatologist would look)."""
    (ev, sc, pt), (a_ev, a_sc, a_pt) = gt_readings.share_titles(results[0].dataset)
    chance = results[0].chance
    rows: list[dict[str, Any]] = [
        {
            "explainer": "chance (mask area)",
            "network": "—",
            ev: with_interval(chance.evidence, None),
            sc: with_interval(chance.shortcut, None),
        }
    ]
    for method in results[0].explainers:
        for result in results:
            s = result.explainers[method]
            c, a = s.clean, s.attacked
            rows.append(
                {
                    "explainer": TITLES.get(method, method),
                    "network": result.model,
                    ev: _share(c, "evidence_share"),
                    sc: _share(c, "shortcut_share"),
                    pt: _share(c, "pointing_game"),
                    f"attacked: {a_ev}": _share(a, "evidence_share"),
                    f"attacked: {a_sc}": _share(a, "shortcut_share"),
                    f"attacked: {a_pt}": _share(a, "pointing_game"),
                }
            )
    return rows


def show_scorecard(pair: job.PairScorecard) -> None:
    """The grades first (what the maps say about the decisions), then where the maps fall, the
    accuracies and flips, the figure, downloads."""
    results = pair.results
    st.markdown(
        " · ".join(
            f"**{r.model}**: accuracy {percent_with_interval(r.accuracy, r.accuracy_ci)} on {r.accuracy_images} "
            f"test images; the attack flipped {r.attack.flipped} of {r.attack.correct} correct decisions "
            f"({percent_with_interval(r.attack.flipped / r.attack.correct if r.attack.correct else None, r.attack.flipped_ci)})"
            for r in results
        )
    )
    grades = grades_rows(results)
    if grades:
        st.markdown(
            "**Would each map have told you what the decisions rest on?** On the images whose decision "
            "changes when the ruler is removed: how often the map gives the ruler less than its area "
            "(misleading rate, lower is better), how well its ruler share tells the network from a control "
            "the ruler says nothing to (AUROC), and how its ruler share follows the decision's dependence on "
            "the ruler (effect Spearman). In brackets: the 95 % interval (misleading rate: Wilson; AUROC and "
            "Spearman: a bootstrap over the graded images)."
        )
        render.table(grades, hide_index=True, width="stretch")
        st.markdown("**Where the maps fall**")
    render.table(scorecard_rows(results), hide_index=True, width="stretch")
    st.caption(
        f"First {results[0].n_images} test images, each explained for its true class. Where the maps fall: the "
        "share of each map inside the evidence (on the lesions, where a dermatologist would look, which the "
        "network need not use) and inside the shortcut (over images that have one), and the share of images "
        "whose map maximum lies on the evidence; 'attacked': the flipped images, explained for their new class. "
        "In brackets: the 95 % interval (shares: a bootstrap over the images, seed "
        f"{results[0].config.bootstrap_seed}; the maximum's share: Wilson)."
    )
    render.look_at("groundtruth-scorecard")
    st.image(pair.figure, width="stretch")
    files = {"scorecard.png": pair.figure, "report.json": downloads.report_bytes(pair.to_json())}
    downloads.buttons(files, stem="scorecard", key="dl-scorecard")
