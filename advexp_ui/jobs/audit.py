"""Audit a shortcut (`advexp_core.experiments.audit`, docs/audit.md): the user's images with the artifact they
marked, removed and pasted on, each decision read before and after, the maps graded against it."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import streamlit as st
import torch
from PIL import Image
from torch import Tensor

from advexp_core.data.datasets import load_lesions
from advexp_core.data.imaging import decode_image, to_uint8
from advexp_core.data.interventions import Artifact
from advexp_core.experiments.audit import (
    AuditConfig,
    AuditResult,
    ImageAudit,
    audit,
    check_inputs,
    fit_to_model,
)
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.audit_report import (
    audit_html,
    delta_picture,
    image_readings,
    outlined,
    overlay,
    png_bytes,
    summary_reading,
    title,
)
from advexp_ui.downloads import report_bytes
from advexp_ui.jobs.common import Later, OnStep, Outcome, cached_result, header

__all__ = [
    "AuditConfig",
    "ImagePart",
    "Item",
    "LESION_MODELS",
    "lesion_items",
    "mask_png",
    "read_mask",
    "run",
]

LESION_MODELS = ("lesions-standard", "lesions-robust", "lesions-unbiased", "lesions-robust-unbiased")
LESION_IMAGES = 8  # the first test images offered with one click (rulers on some, not all)


@dataclass(frozen=True)
class Item:
    """One image as the page hands it to the audit (hashable: the cache key).

    Attributes:
        name: its file name; data: its file's bytes.
        mask: a PNG of its mask at the file's size (b"": no artifact marked).
        label: its true class (None: not given).
    """

    name: str
    data: bytes
    mask: bytes = b""
    label: int | None = None


@dataclass(frozen=True)
class ImagePart:
    """One image's finished block while the others still run.

    Attributes:
        name: the image; panels: title -> PNG; lines: its readings and numbers, in order.
        outcome: the intervention reading's outcome key.
    """

    name: str
    panels: dict[str, bytes] = field(default_factory=dict)
    lines: tuple[str, ...] = ()
    outcome: str = ""


def mask_png(mask: Tensor | np.ndarray) -> bytes:
    """A (H, W) bool mask as a black-and-white PNG."""
    array = np.asarray(mask, dtype=bool).astype(np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def read_mask(data: bytes) -> Tensor:
    """A mask PNG's bytes as (H, W) bool: True where any channel is non-zero (transparent: unmarked).

    Uploaded masks pass `advexp_ui.images.read_upload` first (bounds in bytes and pixels); this only
    reads them, and the app's own drawn masks.

    Raises:
        ValueError: not an image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            array = np.array(img.convert("RGBA"))
    except Exception as exc:  # PIL raises many types for a damaged file; all mean the same here
        raise ValueError(f"the mask is not a readable image ({exc}).") from exc
    return torch.from_numpy((array[..., :3] * (array[..., 3:] > 0)).any(-1))


@st.cache_resource(show_spinner="Drawing the lesion test images…", max_entries=1)
def lesion_items() -> tuple[Item, ...]:
    """The first lesion test images as files, each ruler pre-marked with its exact mask."""
    data = load_lesions("test", with_masks=True)
    items = []
    for k in range(LESION_IMAGES):
        ruler = data.masks["shortcut"][k]
        items.append(
            Item(
                f"lesion-{k}.png",
                _png(data.images[k]),
                mask_png(ruler) if bool(ruler.any()) else b"",
                int(data.labels[k]),
            )  # fmt: skip
        )
    return tuple(items)


def _png(image: Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def image_part(names: tuple[str, ...], row: ImageAudit) -> ImagePart:
    """One image's pictures and readings (made once: the partial block and the final page use them)."""
    decision, maps = image_readings(names, row)
    panels = {"as it is": png_bytes(outlined(row.image, row.mask if row.intervention == "removed" else None))}
    if row.after is not None:
        panels[f"artifact {row.intervention}"] = png_bytes(outlined(row.after, row.mask))
    for method, m in row.maps.items():
        panels[f"{title(method)} of {names[row.prediction]}"] = png_bytes(overlay(row.image, m))
    lines = [decision.text, *(r.text for _, r in maps)]
    ae = row.adversarial
    if ae is not None:
        panels[f"adversarial explanation toward {names[ae.toward]}"] = png_bytes(to_uint8(ae.explanation))
        panels["δ (amplified)"] = png_bytes(delta_picture(ae.delta))
        where = (
            ""
            if ae.artifact_share is None
            else f"; {ae.artifact_share:.0%} of δ's energy lies on the artifact"
        )
        valid = "" if ae.valid else " (δ did not reach its budget by half-way: not a valid explanation)"
        lines.append(
            f"Adversarial explanation toward {names[ae.toward]}: p = {ae.probability_before:.2f} → "
            f"{ae.probability_after:.2f}{valid}{where}."
        )
    return ImagePart(row.name, panels, tuple(lines), decision.outcome)


def _inputs(
    items: tuple[Item, ...], artifact: tuple[bytes, bytes] | None, model: LoadedModel
) -> tuple[list[Tensor], list[Tensor | None], Artifact | None]:
    """Decoded, checked at the files' size, then fitted to the model."""
    names = [i.name for i in items]
    raw = [decode_image(i.data) for i in items]
    masks = [read_mask(i.mask) if i.mask else None for i in items]
    check_inputs(raw, masks, names)
    fitted = [fit_to_model(image, mask, model) for image, mask in zip(raw, masks, strict=True)]
    pasted = None
    if artifact is not None:
        image, mask = fit_to_model(decode_image(artifact[0]), read_mask(artifact[1]), model)
        assert mask is not None  # a mask in, a mask out
        pasted = Artifact(image, mask)
    return [f[0] for f in fitted], [f[1] for f in fitted], pasted


def compute(
    items: tuple[Item, ...],
    artifact: tuple[bytes, bytes] | None,
    artifact_source: str | None,
    config: AuditConfig,
    model: LoadedModel,
    on_step: OnStep | None = None,
    emit: Callable[[ImagePart], None] | None = None,
) -> Outcome:
    """The audit, each image handed to ``emit`` as it is done; the report, pictures and HTML file."""
    images, masks, pasted = _inputs(items, artifact, model)
    labels = [i.label for i in items]
    parts: list[ImagePart] = []

    def done(row: ImageAudit) -> None:
        part = image_part(tuple(model.class_names), row)
        parts.append(part)
        if emit is not None:
            emit(part)

    result: AuditResult = audit(
        model, images, masks, names=[i.name for i in items], labels=None if all(y is None for y in labels) else labels,
        artifact=pasted, artifact_source=artifact_source, config=config, on_step=on_step, on_image=done,
    )  # fmt: skip
    verdict = summary_reading(result)
    report = {**header(model, config, "audit a shortcut"), **result.to_json(), "verdict": verdict.to_json()}
    panels = {f"{p.name}|{k}": v for p in parts for k, v in p.panels.items()}
    report["parts"] = [
        {"name": p.name, "lines": list(p.lines), "outcome": p.outcome, "panels": list(p.panels)}
        for p in parts
    ]
    files: dict[str, bytes | Later] = {
        "audit-report.html": audit_html(result, generated_by="advexp, Audit a shortcut page").encode("utf-8"),
        "audit.json": report_bytes({k: v for k, v in report.items() if k != "parts"}),
    }
    return Outcome(report, panels, files)


@cached_result
def run(
    items: tuple[Item, ...],
    artifact: tuple[bytes, bytes] | None,
    artifact_source: str | None,
    model_id: str,
    config: AuditConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
    _emit: Callable[[ImagePart], None] | None = None,
) -> Outcome:
    """``compute``, cached by (the images, masks and labels, the artifact, model id, config)."""
    return compute(items, artifact, artifact_source, config, _model, _on_step, _emit)
