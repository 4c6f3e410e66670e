"""A shortcut audit as one self-contained HTML file (docs/audit.md): the settings, the network's
identity, every number, the readings and the pictures (PNG embedded as base64), to keep or send.

Written by `advexp audit` and offered for download by the "Audit a shortcut" page; nothing in it
is fetched from elsewhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from PIL import Image
from torch import Tensor

from advexp_core.base.statistics import CONFIDENCE
from advexp_core.data.imaging import to_uint8
from advexp_core.experiments.audit import AuditResult, ImageAudit, explainer_json, n_misleading
from advexp_core.experiments.report import versions
from advexp_core.methods.saliency import METHOD_TITLES
from advexp_core.readings import Reading
from advexp_core.readings import audit as readings
from advexp_core.readings.groundtruth import near_tie

SHOWN_PX = 192  # pictures are drawn at least this large (small images with visible pixels)
OUTLINE = (255, 40, 255)  # the artifact's mask, in magenta


def png_bytes(array: np.ndarray) -> bytes:
    """An 8-bit RGB array as PNG, small images enlarged with visible pixels."""
    factor = max(1, -(-SHOWN_PX // max(array.shape[:2])))
    big = array.repeat(factor, 0).repeat(factor, 1) if factor > 1 else array
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    return buffer.getvalue()


def outlined(image: Tensor, mask: Tensor | None) -> np.ndarray:
    """The image as 8-bit RGB with the mask's border in magenta. Shapes: (3, H, W), (H, W) -> (H, W, 3)."""
    array = to_uint8(image).copy()
    if mask is not None and bool(mask.any()):
        m = mask.cpu().numpy().astype(bool)
        p = np.pad(m, 1)
        inner = m & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        array[m & ~inner] = OUTLINE
    return array


def overlay(image: Tensor, saliency: Tensor) -> np.ndarray:
    """A map (inferno, 0..its maximum) over a grey copy of the image. Shapes: -> (H, W, 3) uint8."""
    grey = image.detach().float().cpu().mean(0).numpy()
    peak = float(saliency.max())
    heat = np.clip(saliency.detach().float().cpu().numpy() / (peak if peak > 0 else 1.0), 0.0, 1.0)
    mixed = 0.4 * grey[..., None] + 0.6 * colormaps["inferno"](heat)[..., :3]
    return (mixed * 255).round().clip(0, 255).astype(np.uint8)


def delta_picture(delta: Tensor) -> np.ndarray:
    """δ around mid-grey, scaled to its largest value. Shapes: (3, H, W) -> (H, W, 3) uint8."""
    peak = float(delta.abs().max())
    return to_uint8((0.5 + 0.5 * delta.float().cpu() / (peak if peak > 0 else 1.0)).clamp(0, 1))


def _img(array: np.ndarray, caption: str) -> str:
    data = base64.b64encode(png_bytes(array)).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def title(method: str) -> str:
    return METHOD_TITLES.get(method, method)


def image_readings(class_names: Sequence[str], row: ImageAudit) -> tuple[Reading, list[tuple[str, Reading]]]:
    """The image's intervention reading and one reading per map."""
    after = None if row.probabilities_after is None else row.probabilities_after.tolist()
    decision = readings.intervention(
        class_names, before=row.probabilities.tolist(), after=after, intervention=row.intervention
    )
    maps = [
        (
            method,
            readings.map_against_reliance(
                title(method),
                share=row.shares.get(method),
                area=row.artifact_area,
                relies=row.changed,
                intervention=row.intervention,
            ),
        )  # fmt: skip
        for method in row.maps
    ]
    return decision, maps


def summary_reading(result: AuditResult) -> Reading:
    """The audit's plain-words verdict with its numbers and intervals (`readings.audit.summary`),
    read against the config's tolerance: outcome "relies", "does-not-rely" or "inconclusive"
    ("added-only" or "nothing-measured" when nothing was removed)."""
    removed = None if result.removed is None else (result.removed.n_changed, result.removed.n_images)
    added = None if result.added is None else (result.added.n_changed, result.added.n_images)
    hidden = [(title(g.method), n_misleading(g), g.n_images) for g in result.grades]
    ties = sum(
        near_tie(r.probabilities.tolist())
        or (r.probabilities_after is not None and near_tie(r.probabilities_after.tolist()))
        for r in result.images
        if r.intervention == "removed"
    )
    return readings.summary(
        removed=removed, added=added, hidden=hidden, ties=ties, tolerance=result.config.tolerance
    )


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def with_intervals(row: dict[str, Any]) -> dict[str, Any]:
    """A row with each ``<name>_ci`` interval written beside its rate, "0.625 [0.306, 0.863]", in one cell."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_ci") and key[: -len("_ci")] in row:
            continue
        interval = row.get(f"{key}_ci")
        if isinstance(value, float) and interval is not None and None not in interval:
            value = f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"
        out[key] = value
    return out


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image_section(result: AuditResult, row: ImageAudit) -> str:
    names = result.class_names
    decision, maps = image_readings(names, row)
    pictures = [_img(outlined(row.image, row.mask if row.intervention == "removed" else None), "as it is")]
    if row.after is not None:
        pictures.append(_img(outlined(row.after, row.mask), f"artifact {row.intervention}"))
    for method, m in row.maps.items():
        pictures.append(_img(overlay(row.image, m), f"{title(method)} of {names[row.prediction]}"))
    ae = row.adversarial
    if ae is not None:
        pictures.append(_img(to_uint8(ae.explanation), f"adversarial explanation toward {names[ae.toward]}"))
        pictures.append(_img(delta_picture(ae.delta), "δ (amplified)"))
    lines = [decision.text, *(r.text for _, r in maps)]
    if ae is not None:
        lines.append(
            f"Adversarial explanation toward {names[ae.toward]}: p = {ae.probability_before:.2f} → "
            f"{ae.probability_after:.2f}"
            + ("" if ae.valid else " (RMS(δ) did not reach ρ by step S/2: not a valid explanation)")
            + (
                ""
                if ae.artifact_share is None
                else f"; {ae.artifact_share:.0%} of δ's energy on the artifact"
            )
            + "."
        )
    items = "".join(f"<li>{html.escape(t)}</li>" for t in lines)
    numbers = _table(
        [{k: v for k, v in row.to_json(names).items() if k not in ("artifact_shares", "adversarial")}]
    )
    return (
        f"<section><h3>{html.escape(row.name)}</h3><div class='row'>{''.join(pictures)}</div>"
        f"<ul>{items}</ul>{numbers}</section>"
    )


def audit_html(result: AuditResult, *, generated_by: str = "advexp") -> str:
    """The whole audit as one HTML document (UTF-8 text, no external resources)."""
    report = result.to_json()
    verdict = summary_reading(result)
    model_rows = [
        {
            "network": result.model,
            "weights SHA-256": result.weights_sha256,
            "classes": ", ".join(result.class_names),
        }
    ]
    interventions = [with_intervals({"intervention": name, **report[name]}) for name in ("removed", "added")]
    explainers = [with_intervals({"explainer": title(g.method), **explainer_json(g)}) for g in result.grades]
    settings = [{"setting": k, "value": json.dumps(v)} for k, v in report["settings"].items()]
    sections = "".join(_image_section(result, row) for row in result.images)
    raw = html.escape(json.dumps(report, indent=1, ensure_ascii=False))
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}"
        "figure{display:inline-block;margin:4px}figure img{width:192px;image-rendering:pixelated}"
        "figcaption{font-size:12px;max-width:192px}.verdict{font-size:1.15em;background:#f4f4f4;padding:.6em}"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Shortcut audit of {html.escape(result.model)}</title><style>{style}</style></head><body>"
        f"<h1>Shortcut audit of {html.escape(result.model)}</h1>"
        f"<p class='verdict'>{html.escape(verdict.text)}</p>"
        f"<h2>The network</h2>{_table(model_rows)}"
        f"<h2>The interventions</h2><p>Removed: the marked pixels filled by {html.escape(report['settings']['inpainting'])} "
        "inpainting. Added: the artifact pasted onto the images without one. Shares are of the images each applies to; "
        "the margin is the followed class's logit minus the largest other. Beside each share, in brackets, "
        f"its {CONFIDENCE:.0%} Wilson interval (the margin's: a paired bootstrap, seeded); the verdict reads the "
        f"interval of the decisions changed by removal against a tolerance of {result.config.tolerance:g}.</p>"
        f"{_table(interventions)}"
        f"<h2>The explainers against the measurement</h2>{_table(explainers)}"
        f"<h2>Settings</h2>{_table(settings)}"
        f"<h2>Each image</h2>{sections}"
        f"<h2>Every number (JSON)</h2><pre>{raw}</pre>"
        f"<p>Made by {html.escape(generated_by)}; versions: {html.escape(json.dumps(versions()))}.</p>"
        "</body></html>"
    )


__all__ = [
    "audit_html",
    "delta_picture",
    "image_readings",
    "outlined",
    "overlay",
    "png_bytes",
    "summary_reading",
    "with_intervals",
]
