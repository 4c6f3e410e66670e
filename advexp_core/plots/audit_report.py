"""A shortcut audit as one self-contained HTML file (docs/audit.md): the summary with its intervals,
a chosen set of images with their pictures (the most and least affected by each intervention, the
first on which a map hid the artifact that decided), every image's numbers in one table, the
settings and the network's identity; PNGs embedded as base64, nothing fetched from elsewhere.

The pictures of every image (`image_pictures`) are made here too: the page offers them all in a ZIP,
and a report of hundreds of images shows only the chosen ones, so it opens quickly in a browser.
Written by `advexp audit` and offered for download by the "Audit a shortcut" page.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from PIL import Image
from torch import Tensor

from advexp_core.base.jsonsafe import json_safe
from advexp_core.base.statistics import CONFIDENCE
from advexp_core.base.text import csv_safe
from advexp_core.data.imaging import to_uint8
from advexp_core.experiments.audit_records import (
    AuditResult,
    ImageAudit,
    ImageRow,
    explainer_json,
    n_misleading,
    shown_images,
)
from advexp_core.experiments.report import versions
from advexp_core.methods.saliency import METHOD_TITLES
from advexp_core.readings import Reading
from advexp_core.readings import audit as readings

SHOWN_PX = 192  # pictures are drawn at least this large (small images with visible pixels)
OUTLINE = (255, 40, 255)  # the artifact's mask, in magenta
PNG_LEVEL = 1  # zlib level: a 224-px picture in 4 ms instead of 13 ms, 6 % larger (an audit makes thousands)
TABLE_ROWS = 5000  # a report's table of every image stops here (the rest is in images.csv)

Pictures = Mapping[int, Mapping[str, bytes]]
"""Image index -> picture key (`image_pictures`) -> PNG."""


def png_bytes(array: np.ndarray) -> bytes:
    """An 8-bit RGB array as PNG, small images enlarged with visible pixels."""
    factor = max(1, -(-SHOWN_PX // max(array.shape[:2])))
    big = array.repeat(factor, 0).repeat(factor, 1) if factor > 1 else array
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG", compress_level=PNG_LEVEL)
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


def title(method: str) -> str:
    return METHOD_TITLES.get(method, method)


# --- one image's pictures and readings -----------------------------------------------------------------


def image_pictures(image: ImageAudit) -> dict[str, bytes]:
    """An image's pictures as PNG, by key (in the order shown; `caption` says what each is): as it is
    ("0-image"), after the intervention ("1-after"), each map ("2-mapK-METHOD"), the adversarial
    explanation ("3-adversarial") and its δ amplified ("4-delta")."""
    row = image.row
    out = {"0-image": png_bytes(outlined(image.image, image.mask if row.intervention == "removed" else None))}
    if image.after is not None:
        out["1-after"] = png_bytes(outlined(image.after, image.mask))
    for k, (method, m) in enumerate(image.maps.items()):
        out[f"2-map{k}-{method}"] = png_bytes(overlay(image.image, m))
    if image.adversarial is not None:
        out["3-adversarial"] = png_bytes(to_uint8(image.adversarial.explanation))
        out["4-delta"] = png_bytes(delta_picture(image.adversarial.delta))
    return out


def caption(key: str, row: ImageRow, class_names: Sequence[str]) -> str:
    """What the picture of ``key`` (`image_pictures`) shows."""
    if key == "0-image":
        return "as it is"
    if key == "1-after":
        return f"artifact {row.intervention}"
    if key.startswith("2-map"):
        return f"{title(key.split('-', 2)[2])} of {class_names[row.prediction]}"
    if key == "3-adversarial" and row.adversarial is not None:
        return f"adversarial explanation toward {class_names[row.adversarial.toward]}"
    if key == "4-delta":
        return "δ (amplified)"
    return key


def image_readings(class_names: Sequence[str], row: ImageRow) -> tuple[Reading, list[tuple[str, Reading]]]:
    """The image's intervention reading and one reading per map."""
    decision = readings.intervention(
        class_names, decided=row.prediction, confidence=row.confidence, decided_after=row.prediction_after,
        confidence_after=row.confidence_after, intervention=row.intervention, near_tie=row.near_tie,
    )  # fmt: skip
    maps = [
        (
            method,
            readings.map_against_reliance(
                title(method),
                share=share,
                area=row.artifact_area,
                relies=row.changed,
                intervention=row.intervention,
            ),
        )  # fmt: skip
        for method, share in row.shares.items()
    ]
    return decision, maps


def image_lines(class_names: Sequence[str], row: ImageRow) -> tuple[Reading, list[str]]:
    """The image's decision reading and every line said about it: that reading, each map's, and
    its adversarial explanation's numbers."""
    decision, maps = image_readings(class_names, row)
    lines = [decision.text, *(r.text for _, r in maps)]
    ae = row.adversarial
    if ae is not None:
        valid = "" if ae.valid else " (RMS(δ) did not reach ρ by step S/2: not a valid explanation)"
        where = (
            "" if ae.artifact_share is None else f"; {ae.artifact_share:.0%} of δ's energy on the artifact"
        )
        lines.append(
            f"Adversarial explanation toward {class_names[ae.toward]}: p = {ae.probability_before:.2f} → "
            f"{ae.probability_after:.2f}{valid}{where}."
        )
    return decision, lines


def summary_reading(result: AuditResult) -> Reading:
    """The audit's plain-words verdict with its numbers and intervals (`readings.audit.summary`),
    read against the config's tolerance: outcome "relies", "does-not-rely" or "inconclusive"
    ("added-only" or "nothing-measured" when nothing was removed)."""
    removed = None if result.removed is None else (result.removed.n_changed, result.removed.n_images)
    added = None if result.added is None else (result.added.n_changed, result.added.n_images)
    hidden = [(title(g.method), n_misleading(g), g.n_images) for g in result.grades]
    ties = sum(r.near_tie for r in result.images if r.intervention == "removed")
    return readings.summary(
        removed=removed, added=added, hidden=hidden, ties=ties, tolerance=result.config.tolerance
    )


# --- the document --------------------------------------------------------------------------------------


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


def _table(rows: Sequence[dict[str, Any]], cls: str = "") -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table{f' class={cls!r}' if cls else ''}><tr>{head}</tr>{body}</table>"


def _img(png: bytes, text: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(text)}" loading="lazy">'
        f"<figcaption>{html.escape(text)}</figcaption></figure>"
    )


def flat_row(row: ImageRow, class_names: Sequence[str]) -> dict[str, Any]:
    """One image's numbers as one flat table row (the map shares one column each)."""
    values = row.to_json(class_names)
    ae = values.pop("adversarial")
    flat = {**values, **{f"share_{m}": s for m, s in values.pop("artifact_shares").items()}}
    if ae is not None:
        flat |= {f"adversarial_{k}": v for k, v in ae.items()}
    return flat


def _image_section(
    result: AuditResult, row: ImageRow, why: Sequence[str], pictures: Mapping[str, bytes]
) -> str:
    names = result.class_names
    _, lines = image_lines(names, row)
    figures = "".join(_img(png, caption(key, row, names)) for key, png in pictures.items())
    items = "".join(f"<li>{html.escape(t)}</li>" for t in lines)
    return (
        f"<section><h3>{html.escape(row.name)} <small>({html.escape('; '.join(why))})</small></h3>"
        f"<div class='row'>{figures or '<p>(no pictures kept)</p>'}</div><ul>{items}</ul></section>"
    )


STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}"
    "table.all td,table.all th{font-size:11px;white-space:nowrap}.scroll{overflow-x:auto;max-height:40em}"
    "figure{display:inline-block;margin:4px}figure img{width:192px;image-rendering:pixelated}"
    "figcaption{font-size:12px;max-width:192px}.verdict{font-size:1.15em;background:#f4f4f4;padding:.6em}"
)


def _summary_sections(result: AuditResult, report: dict[str, Any]) -> str:
    model_rows = [
        {
            "network": result.model,
            "weights SHA-256": result.weights_sha256,
            "classes": ", ".join(result.class_names),
        }
    ]
    interventions = [with_intervals({"intervention": name, **report[name]}) for name in ("removed", "added")]
    explainers = [with_intervals({"explainer": title(g.method), **explainer_json(g)}) for g in result.grades]
    return (
        f"<h2>The network</h2>{_table(model_rows)}"
        f"<h2>The interventions</h2><p>{len(result.images)} images audited"
        f"{f', {len(result.skipped)} skipped (below)' if result.skipped else ''}. Removed: the marked pixels "
        f"filled by {html.escape(report['settings']['inpainting'])} inpainting. Added: the artifact pasted onto "
        "the images without one. Shares are of the images each applies to; the margin is the followed class's "
        f"logit minus the largest other. Beside each share, in brackets, its {CONFIDENCE:.0%} Wilson interval "
        "(the margin's: a paired bootstrap, seeded); the verdict reads the interval of the decisions changed "
        f"by removal against a tolerance of {result.config.tolerance:g}.</p>{_table(interventions)}"
        f"<h2>The explainers against the measurement</h2>{_table(explainers)}"
    )


def audit_html(
    result: AuditResult,
    pictures: Pictures | None = None,
    *,
    generated_by: str = "advexp",
    warnings: Sequence[str] = (),
) -> str:
    """The whole audit as one HTML document (UTF-8 text, no external resources).

    Args:
        result: the audit.
        pictures: the pictures of (some of) its images, by index and key (`image_pictures`); the
            report shows those of the images `audit_records.shown_images` picks.
        generated_by: who made it, for its last line.
        warnings: what was left out before the audit (files skipped, masks matching no image).
    """
    pictures = pictures or {}
    report = result.to_json()
    verdict = summary_reading(result)
    chosen = shown_images(result.images)
    by_index = {r.index: r for r in result.images}
    sections = "".join(
        _image_section(result, by_index[k], why, pictures.get(k, {})) for k, why in chosen.items()
    )
    every = [flat_row(r, result.class_names) for r in result.images[:TABLE_ROWS]]
    more = len(result.images) - len(every)
    left_out = [{"image": s.name, "why": s.reason} for s in result.skipped] + [
        {"image": "", "why": w} for w in warnings
    ]
    settings = [{"setting": k, "value": json.dumps(v)} for k, v in report["settings"].items()]
    raw = html.escape(
        json.dumps({k: v for k, v in report.items() if k != "skipped"}, indent=1, ensure_ascii=False)
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Shortcut audit of {html.escape(result.model)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Shortcut audit of {html.escape(result.model)}</h1>"
        f"<p class='verdict'>{html.escape(verdict.text)}</p>"
        f"{_summary_sections(result, report)}"
        f"<h2>Images shown ({len(chosen)} of {len(result.images)})</h2><p>Of a large audit, the most and least "
        "affected by each intervention (the followed class's margin change, in size) and the first on which a "
        "map hid the artifact that decided. Every image's numbers are in the table below.</p>"
        f"{sections or '<p>(none)</p>'}"
        f"<h2>Every image</h2><div class='scroll'>{_table(every, 'all')}</div>"
        + (f"<p>… and {more} more images: see images.csv.</p>" if more > 0 else "")
        + (f"<h2>Left out</h2>{_table(left_out)}" if left_out else "")
        + f"<h2>Settings</h2>{_table(settings)}"
        f"<h2>The summary (JSON)</h2><pre>{raw}</pre>"
        f"<p>Made by {html.escape(generated_by)}; versions: {html.escape(json.dumps(versions()))}.</p>"
        "</body></html>"
    )


__all__ = [
    "Pictures",
    "audit_html",
    "caption",
    "csv_fields",
    "csv_lines",
    "delta_picture",
    "flat_row",
    "image_lines",
    "image_pictures",
    "image_readings",
    "jsonl_lines",
    "outlined",
    "overlay",
    "png_bytes",
    "summary_reading",
    "table_texts",
    "title",
    "with_intervals",
]


# --- the images' table as files ------------------------------------------------------------------------

_BASE_FIELDS = (
    "index", "name", "label", "reference", "intervention", "artifact_area", "decision_before",
    "decision_after", "probability_before", "probability_after", "margin_before", "margin_after",
    "decision_changed", "margin_effect", "near_tie",
)  # fmt: skip
_ADVERSARIAL_FIELDS = ("toward", "probability_before", "probability_after", "valid", "artifact_share")


def csv_fields(methods: Sequence[str], adversarial: bool) -> list[str]:
    """The columns of images.csv (`flat_row`'s keys) for an audit with these settings."""
    fields = [*_BASE_FIELDS, *(f"share_{m}" for m in methods)]
    return fields + ([f"adversarial_{k}" for k in _ADVERSARIAL_FIELDS] if adversarial else [])


def csv_lines(
    rows: Sequence[ImageRow], class_names: Sequence[str], fields: Sequence[str], *, header: bool = False
) -> str:
    """The rows as CSV lines of ``fields`` (with the header line first when asked)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(fields), lineterminator="\n", restval="", extrasaction="ignore"
    )
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_safe(v) for k, v in flat_row(row, class_names).items()})
    return buffer.getvalue()


def table_texts(
    rows: Sequence[ImageRow], class_names: Sequence[str], fields: Sequence[str], *, header: bool = False
) -> dict[str, str]:
    """The lines ``rows`` add to images.csv and images.jsonl (with the CSV's header when asked)."""
    return {
        "images.csv": csv_lines(rows, class_names, fields, header=header),
        "images.jsonl": jsonl_lines(rows, class_names),
    }


def jsonl_lines(rows: Sequence[ImageRow], class_names: Sequence[str]) -> str:
    """The rows as JSON lines (`ImageRow.to_json`), strict JSON (no NaN)."""
    return "".join(
        json.dumps(json_safe(row.to_json(class_names)), ensure_ascii=False, allow_nan=False) + "\n"
        for row in rows
    )
