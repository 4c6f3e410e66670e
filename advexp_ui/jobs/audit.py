"""Audit a shortcut (`advexp_core.experiments.audit`, docs/audit.md) as a background job: the user's
images with the artifact they marked (drawn boxes, mask PNGs, or a ZIP of images with masks or a CSV
of boxes), removed and pasted on, each decision read before and after, the maps graded against it.

The audit runs in batches on the server (`advexp_ui.background`): it goes on when the page is closed
or reloaded, each batch's rows are the partial result, and every picture is kept in the job's own
folder (`audit_store`), so memory holds numbers, not pixels. At the end: the summary, the HTML report
(the chosen images' pictures), and one ZIP with every picture, the tables, the report and its JSON.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from PIL import Image
from torch import Tensor

from advexp_core.data.datasets import load_lesions
from advexp_core.data.imaging import decode_image, to_uint8
from advexp_core.data.interventions import Artifact, AuditError
from advexp_core.experiments.audit_inputs import (
    AuditItem,
    fit_to_model,
    marks_loader,
    mask_from_png,
    mask_png,
)
from advexp_core.experiments.audit_records import (
    AuditConfig,
    ImageRow,
    Skipped,
    shown_images,
    summarise,
    weights_sha256,
)
from advexp_core.experiments.audit_store import AuditStore, fill
from advexp_core.experiments.audit_stream import audit_batches, batch_size_for
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.audit_report import (
    audit_html,
    csv_fields,
    image_pictures,
    summary_reading,
    table_texts,
)
from advexp_ui import background
from advexp_ui.downloads import report_bytes
from advexp_ui.jobs.common import header

__all__ = [
    "AuditConfig",
    "AuditOutcome",
    "AuditRequest",
    "AuditRun",
    "Item",
    "LESION_MODELS",
    "MAX_IMAGES",
    "lesion_items",
    "mask_png",
    "read_mask",
    "start",
]

LESION_MODELS = ("lesions-standard", "lesions-robust", "lesions-unbiased", "lesions-robust-unbiased")
LESION_IMAGES = (8, 24, 100, 200, 500)
"""How many of the first lesion test images the page offers (about half carry a ruler). A firm
verdict needs many: ruling out 5 % of decisions with none changed takes 73 ruler images, and a
network that changes one decision in a hundred needs several hundred to be told from 5 %."""
LESION_DEFAULT = 200
MAX_IMAGES = 500  # one audit on this page (the CLI takes up to 100,000)
FILES = ("audit-report.html", "audit.json", "audit.zip")


@dataclass(frozen=True)
class Item:
    """One image the page has read (uploaded or drawn from the lesions), with its mark.

    Attributes:
        name: its file name; data: its file's bytes.
        mask: a PNG of its mask at the file's size (b"": no artifact marked).
        label: its true class (None: not given).
    """

    name: str
    data: bytes
    mask: bytes = b""
    label: int | None = None

    def audit_item(self) -> AuditItem:
        mask = self.mask
        loader = marks_loader(lambda: self.data, self.name, read_mask=(lambda: mask) if mask else None)
        return AuditItem(self.name, loader, self.label)


def read_mask(data: bytes) -> Tensor:
    """A mask PNG's bytes as (H, W) bool: True where any channel is non-zero (transparent: unmarked).

    Raises:
        ValueError: not an image.
    """
    return mask_from_png(data, "the mask")


@st.cache_resource(show_spinner="Drawing the lesion test images…", max_entries=2)
def lesion_items(n: int = LESION_DEFAULT) -> tuple[Item, ...]:
    """The first ``n`` lesion test images as files, each ruler pre-marked with its exact mask."""
    data = load_lesions("test", with_masks=True)
    items = []
    for k in range(min(n, len(data.labels))):
        ruler = data.masks["shortcut"][k]
        items.append(
            Item(
                f"lesion-{k}.png",
                _png(data.images[k]),
                mask_png(ruler) if bool(ruler.any()) else b"",
                int(data.labels[k]),
            )
        )
    return tuple(items)


def _png(image: Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class AuditRequest:
    """One audit as the page asks for it.

    Attributes:
        items: the images (read when their batch comes).
        config: the settings; artifact, artifact_source: what is pasted, and the image it was cut from.
        left_out: what was left out before the audit (files of the upload, with why).
    """

    items: tuple[AuditItem, ...]
    config: AuditConfig
    artifact: Artifact | None = None
    artifact_source: str | None = None
    left_out: tuple[str, ...] = ()


def artifact_of(data: tuple[bytes, bytes] | None, model: LoadedModel) -> Artifact | None:
    """An artifact to paste from (image bytes, mask bytes), fitted to the network.

    Raises:
        ValueError: an unreadable image or mask, or a mask that marks nothing once fitted.
    """
    if data is None:
        return None
    image, mask = fit_to_model(decode_image(data[0]), read_mask(data[1]), model)
    if mask is None or not bool(mask.any()):
        raise AuditError("artifact", "the artifact's mask marks nothing once fitted to the network.")
    return Artifact(image, mask)


@dataclass(frozen=True)
class AuditOutcome:
    """A finished audit: its report (JSON-able), the HTML report and the ZIP of everything.

    Attributes:
        report: header, summary, verdict, settings and every image's row.
        html: the report as one HTML file; archive: the ZIP (pictures, tables, report) on disk.
        shown: the images shown with pictures, by index, with why.
    """

    report: dict[str, Any]
    html: bytes
    archive: Path
    shown: dict[int, tuple[str, ...]]


@dataclass
class AuditRun:
    """A running or finished audit job's own things, read by the page: its folder and store (every
    picture, the rows so far), and its outcome once done."""

    folder: Path
    class_names: tuple[str, ...]
    total: int
    left_out: tuple[str, ...]
    store: AuditStore | None = None
    outcome: AuditOutcome | None = None

    @property
    def rows(self) -> list[ImageRow]:
        """The rows done so far, in order."""
        return [] if self.store is None else self.store.rows

    @property
    def skipped(self) -> list[Skipped]:
        return [] if self.store is None else self.store.skipped

    def pictures(self, index: int) -> dict[str, bytes]:
        return {} if self.store is None else self.store.pictures(index)

    def remove(self) -> None:
        """Delete the job's files (its store's, then the ZIP) and its folder."""
        if self.store is not None:
            self.store.remove()
        for name in FILES:
            (self.folder / name).unlink(missing_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)  # a folder of the job's own, made by mkdtemp


def start(request: AuditRequest, model: LoadedModel, owner: str) -> background.Job:
    """Start the audit as a background job of ``owner`` (one per browser session).

    Raises:
        background.JobRefused: the session runs a job already, or the server is full.
    """
    run = AuditRun(
        Path(tempfile.mkdtemp(prefix="advexp-audit-")), tuple(model.class_names), len(request.items),
        request.left_out,
    )  # fmt: skip
    label = f"Auditing {len(request.items)} images on {model.title or model.model_id}"
    try:
        return background.registry().start(
            owner, label, lambda job: _work(job, run, request, model), context=run, cleanup=run.remove
        )
    except background.JobRefused:
        run.remove()
        raise


def _work(job: background.Job, run: AuditRun, request: AuditRequest, model: LoadedModel) -> AuditOutcome:
    """The audit, batch by batch: rows (the partial results) and every picture into the store."""
    config = request.config
    size = batch_size_for(model, config)
    fields = csv_fields(config.methods, config.adversarial)
    names = run.class_names
    run.store = AuditStore.create(
        run.folder / "store", {"model": model.model_id}, batch_size=size,
        tables=table_texts([], names, fields, header=True), keep_all_pictures=True,
    )  # fmt: skip
    batches = audit_batches(
        model, request.items, artifact=request.artifact, config=config, batch_size=size, on_step=job.on_step
    )
    fill(run.store, batches, pictures=image_pictures, tables=lambda rows: table_texts(rows, names, fields))
    result = summarise(
        model, weights_sha256(model), run.store.rows, config=config, batch_size=size, skipped=run.store.skipped,
        artifact_source=request.artifact_source if request.artifact is not None else None,
    )  # fmt: skip
    report = {
        **header(model, config, "audit a shortcut"), **result.to_json(), "verdict": summary_reading(result).to_json(),
        "left_out": list(request.left_out), "images": result.images_json(),
    }  # fmt: skip
    shown = shown_images(result.images)
    pictures = {k: run.store.pictures(k) for k in shown}
    made_by = "advexp, Audit a shortcut page"
    html = audit_html(result, pictures, generated_by=made_by, warnings=request.left_out).encode("utf-8")
    (run.folder / "audit-report.html").write_bytes(html)
    (run.folder / "audit.json").write_bytes(report_bytes(report))
    archive = run.folder / "audit.zip"
    _write_archive(archive, run, result.images)
    run.outcome = AuditOutcome(report, html, archive, shown)
    return run.outcome


def _write_archive(path: Path, run: AuditRun, rows: tuple[ImageRow, ...]) -> None:
    """One ZIP: the report, its JSON, the tables and every image's pictures (``pictures/NAME/KEY.png``)."""
    assert run.store is not None
    names = {r.index: r.name for r in rows}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in ("audit-report.html", "audit.json"):
            archive.write(run.folder / name, name)
        for name in ("images.csv", "images.jsonl"):
            archive.write(run.store.table(name), name)
        for index, key, file in run.store.picture_files():
            if index in names:
                archive.write(file, f"pictures/{index:04d}-{names[index]}/{key}.png")
