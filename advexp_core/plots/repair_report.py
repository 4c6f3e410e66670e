"""A repair as one small self-contained HTML file (docs/audit.md, "Repair"): the network before and
after on the held-out images, each share with its interval, the fine-tuning's epochs, the settings
and the identities of both networks' weights. Written by `advexp repair`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from advexp_core.base.jsonsafe import json_safe
from advexp_core.experiments.repair import RepairResult
from advexp_core.experiments.report import versions
from advexp_core.training.repair import METHOD_TITLES

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:0.3rem 0.6rem;"
    "text-align:left}th{background:#f4f4f4}.relies{color:#b00020}.does-not-rely{color:#1b5e20}"
    ".inconclusive{color:#8a6d00}pre{background:#f8f8f8;padding:0.5rem;overflow-x:auto}"
)


def _e(value: Any) -> str:
    return html.escape(str(value))


def share_text(k: int | None, n: int | None, interval: Sequence[float] | None) -> str:
    """ "k of n: 0.62 [0.31, 0.86]" ("none measured" without images)."""
    if not n or interval is None or k is None:
        return "none measured"
    return f"{k} of {n}: {k / n:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def value_text(value: float | None, interval: Sequence[float] | None) -> str:
    """ "0.875 [0.84, 0.90]" (an interval only where there is one)."""
    if value is None:
        return "n/a"
    if interval is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _outcome(outcome: str | None) -> str:
    return "" if outcome is None else f' <span class="{_e(outcome)}">{_e(outcome)}</span>'


def _rows(m: Mapping[str, Any]) -> list[str]:
    """One measurement's cells, in the order of `ROW_TITLES`."""
    acc, ci, r, a, attack = m["accuracy"], m["accuracy_ci"], m["removed"], m["added"], m["attack"]
    n_drawn = r["n_images"] + a["n_images"]
    return [
        value_text(acc["as_drawn"], ci["as_drawn"]) + f" ({n_drawn} images)",
        value_text(acc["artifact_removed"], ci["artifact_removed"]),
        share_text(r["n_changed"], r["n_images"], r["decisions_changed_ci"]) + _outcome(r["outcome"]),
        share_text(a["n_changed"], a["n_images"], a["decisions_changed_ci"]) + _outcome(a["outcome"]),
        value_text(r["mean_margin_effect"], r["mean_margin_effect_ci"]),
        share_text(attack["n_flipped"], attack["n_correct"], attack["flip_rate_ci"]),
    ]


ROW_TITLES = (
    "accuracy as drawn",
    "accuracy with the artifact removed",
    "decisions changed when the artifact is removed (images with it)",
    "decisions changed when the artifact is added (images without it)",
    "mean change of the true class's margin when it is removed",
    "correct decisions flipped by PGD",
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def repair_html(result: RepairResult, *, card: Mapping[str, Any] | None = None) -> str:
    """The report of a repair (HTML text, nothing fetched from elsewhere).

    Args:
        result: the repair.
        card: the weights' card (`advexp repair` writes it beside them), shown at the end.
    """
    report = result.to_json()
    settings = report["settings"]
    before, after = _rows(report["before"]), _rows(report["after"])
    comparison = _table(
        ["on the held-out images", "before", "after"],
        [[_e(t), b, a] for t, b, a in zip(ROW_TITLES, before, after, strict=True)],
    )
    history = _table(
        ["epoch", "cross-entropy", "RRR penalty", "Lipschitz penalty", "training accuracy", "seconds"],
        [
            [str(h["epoch"]), f"{h['loss']:.4f}", f"{h['rrr']:.4f}", f"{h['lipschitz']:.4f}",
             f"{h['train_accuracy']:.3f}", f"{h['seconds']:.1f}"]
            for h in report["history"]
        ],
    )  # fmt: skip
    split = report["split"]
    attack = settings["attack"]
    method = report["method"]
    parts = [
        f"<h1>Repair of {_e(result.model)}</h1>",
        f"<p>Method: <b>{_e(METHOD_TITLES[method])}</b> ({_e(method)}; trained: {_e(report['trained'])}). "
        f"Data: {_e(result.source)}; {split['repair']} images to repair on, {split['held_out']} held out "
        f"(seed {split['seed']}, stratified by class and artifact; {split['held_out_with_artifact']} with the "
        f"artifact). The artifact was removed and added on the held-out images by {_e(report['intervention'])}. "
        f"Intervals: Wilson {settings['confidence']:.0%} for shares, paired bootstrap for the margin; the "
        f"outcome reads the interval against a tolerance of {settings['tolerance']:.0%} of decisions. Attack: "
        f"PGD L∞ {attack['eps_255']:.0f}/255, {attack['steps']} steps.</p>",
        comparison,
        "<h2>Fine-tuning</h2>",
        history,
        "<h2>Settings and identities</h2>",
        f"<pre>{_e(json.dumps(json_safe({'settings': settings, 'weights_sha256': report['weights_sha256']}), indent=1))}</pre>",
    ]
    if card is not None:
        parts += [
            "<h2>Card of the repaired weights</h2>",
            f"<pre>{_e(json.dumps(json_safe(dict(card)), indent=1))}</pre>",
        ]
    parts.append(
        f"<p>Generated by advexp repair; {_e(', '.join(f'{k} {v}' for k, v in versions().items()))}.</p>"
    )
    body = "\n".join(parts)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Repair of {_e(result.model)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


__all__ = ["ROW_TITLES", "repair_html", "share_text", "value_text"]
