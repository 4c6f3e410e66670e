"""Showing a shortcut audit: taking in the uploads (every file left out named with its reason: single
images with mask PNGs, or one ZIP of images with masks or a CSV of boxes), marking the artifact on each
image (a box dragged on the picture, with streamlit-image-coordinates; a mask PNG as the fallback),
the running job (its progress, rate and time left, its partial results, Cancel), and the finished
audit: the summary verdict with its numbers, the images shown, every image's numbers, the downloads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import streamlit as st
import torch
from PIL import Image
from streamlit.runtime.uploaded_file_manager import UploadedFile
from streamlit_image_coordinates import streamlit_image_coordinates
from torch import Tensor

from advexp_core.base.statistics import images_to_rule_out, wilson_interval
from advexp_core.data.imaging import ImageError, decode_image
from advexp_core.data.interventions import AuditError
from advexp_core.experiments.audit_inputs import Archive, check_mask, read_archive, unique_name
from advexp_core.experiments.audit_records import ImageRow
from advexp_core.plots.audit_report import (
    caption,
    flat_row,
    image_lines,
    outlined,
    title,
    with_intervals,
)
from advexp_ui import background, progress, render
from advexp_ui.images import read_upload
from advexp_ui.jobs.audit import MAX_IMAGES, AuditOutcome, AuditRun, Item, mask_png, read_mask

DRAW_PX = 256  # the picture one draws on, in screen pixels
COLUMNS = 3

INTRO = (
    "Does your network decide by something that should not matter: a ruler, a pen mark, a text label? "
    "Mark the suspected artifact on each image that has one (drag a box over it), and the page measures "
    "the answer by intervention: the marked pixels are filled in from their surroundings (biharmonic "
    "inpainting) and the decision is read again; with an artifact to paste, it is put on the images without "
    "one. Then every explainer's map is graded against what was measured: would it have told you?"
)


def _box_key(name: str) -> str:
    return f"audit-mark-{name}"


def mark(item: Item, index: int) -> Item:
    """Draw the image with its current mark; a dragged box replaces the mark. Returns the item with
    its mask (b"": nothing marked)."""
    image = decode_image(item.data)
    height, width = image.shape[-2:]
    state = st.session_state.setdefault(_box_key(item.name), {"generation": 0, "cleared": False})
    shown = item.mask if item.mask and not state["cleared"] else b""
    mask = read_mask(shown) if shown else None
    picture = Image.fromarray(outlined(image, mask)).resize(
        (DRAW_PX, max(1, round(DRAW_PX * height / width))), Image.Resampling.NEAREST
    )
    value = streamlit_image_coordinates(
        picture, width=DRAW_PX, click_and_drag=True, cursor="crosshair",
        key=f"audit-draw-{index}-{state['generation']}",
    )  # fmt: skip
    box = _box(value, height, width)
    if box is not None:
        top, left, bottom, right = box
        drawn = torch.zeros(height, width, dtype=torch.bool)
        drawn[top:bottom, left:right] = True
        shown = mask_png(drawn)
        st.caption(f"{item.name}: box {left},{top} – {right},{bottom} (px)")
    elif shown:
        st.caption(
            f"{item.name}: artifact marked ({float(read_mask(shown).float().mean()):.0%} of the image)"
        )
    else:
        st.caption(f"{item.name}: nothing marked (no artifact)")
    if st.button("Clear the mark", key=f"audit-clear-{index}-{state['generation']}"):
        state["generation"] += 1
        state["cleared"] = True
        st.rerun()
    return Item(item.name, item.data, shown, item.label)


def _box(value: Any, height: int, width: int) -> tuple[int, int, int, int] | None:
    """The dragged box in the image's pixels (top, left, bottom, right), or None without one."""
    if not isinstance(value, dict) or "x1" not in value or not value.get("width"):
        return None
    sx, sy = width / float(value["width"]), height / float(value["height"])
    xs = sorted((float(value["x1"]) * sx, float(value["x2"]) * sx))
    ys = sorted((float(value["y1"]) * sy, float(value["y2"]) * sy))
    left, right = max(0, int(np.floor(xs[0]))), min(width, int(np.ceil(xs[1])))
    top, bottom = max(0, int(np.floor(ys[0]))), min(height, int(np.ceil(ys[1])))
    return (top, left, bottom, right) if right > left and bottom > top else None


def mark_all(items: tuple[Item, ...]) -> tuple[Item, ...]:
    """Every image in a grid, each with its mark."""
    out = []
    for start in range(0, len(items), COLUMNS):
        for column, (k, item) in zip(
            st.columns(COLUMNS), enumerate(items[start : start + COLUMNS], start), strict=False
        ):
            with column:
                out.append(mark(item, k))
    return tuple(out)


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def unique_names(names: Sequence[str]) -> list[str]:
    """The names with repeats told apart: a.png, a (2).png, a (3).png (the first keeps its name)."""
    seen: set[str] = set()
    return [unique_name(name, seen) for name in names]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _masks(files: Sequence[UploadedFile], not_used: list[str]) -> dict[str, tuple[str, Tensor, bytes]]:
    """The readable mask files by name stem: (file name, mask, bytes); the others go to ``not_used``."""
    out: dict[str, tuple[str, Tensor, bytes]] = {}
    for f in files:
        if _stem(f.name) in out:
            not_used.append(
                f"{f.name}: a second mask for {out[_stem(f.name)][0]}'s image; the first is used."
            )
            continue
        try:
            data, _ = read_upload(f.name, f.size, f.getvalue)
            out[_stem(f.name)] = (f.name, read_mask(data), data)
        except ValueError as exc:
            not_used.append(str(exc))
    return out


def _with_masks(
    names: Sequence[str],
    read: Sequence[tuple[str, bytes, Tensor]],
    masks: Sequence[UploadedFile],
    not_used: list[str],
) -> list[Item]:
    """Each image with the uploaded mask of its name when that mask fits it; the masks that do not
    fit or match no image go to ``not_used``."""
    by_stem = _masks(masks, not_used)
    items = []
    for name, (_, data, image) in zip(names, read, strict=True):
        mask_name, mask, mask_data = by_stem.get(_stem(name), ("", None, b""))
        if mask is not None:
            try:
                check_mask(mask, image, mask_name)
            except ValueError as exc:
                not_used.append(str(exc))
                mask_data = b""
        items.append(Item(name, data, mask_data))
    stems = {_stem(name) for name in names}
    not_used += [
        f"{n}: no image of this name (the mask a.png goes with the image a.png or a.jpg)."
        for s, (n, _, _) in by_stem.items()
        if s not in stems
    ]
    return items


def take_uploads(files: Sequence[UploadedFile], mask_files: Sequence[UploadedFile]) -> tuple[Item, ...]:
    """The uploaded images an audit can use, each under a name of its own and with the uploaded mask
    of its name when that mask fits it. Every file left out, renamed or not used is named, with why."""
    left_out: list[str] = []
    read: list[tuple[str, bytes, Tensor]] = []
    for f in files:
        try:
            read.append((f.name, *read_upload(f.name, f.size, f.getvalue)))
        except ImageError as exc:
            left_out.append(str(exc))
    names = unique_names([name for name, _, _ in read])
    renamed = [f"{old} → {new}" for (old, _, _), new in zip(read, names, strict=True) if old != new]
    not_used: list[str] = []
    items = _with_masks(names, read, mask_files, not_used)
    if left_out:
        st.warning(
            f"**Left out of the audit** ({len(left_out)} of {len(files)} images):\n{_bullets(left_out)}"
        )
    if renamed:
        st.info(
            f"**Files with the same name**, renamed so that each has its own result: {', '.join(renamed)}."
        )
    if not_used:
        st.warning(
            f"**Masks not used** (their images stay unmarked unless you drag a box):\n{_bullets(not_used)}"
        )
    return tuple(items)


def take_artifact(image: UploadedFile | None, mask: UploadedFile | None) -> tuple[bytes, bytes] | None:
    """An uploaded artifact to paste, (image bytes, mask bytes), when both files are given and fit;
    otherwise None, with a message saying why."""
    if image is None or mask is None:
        st.info("Upload the artifact's image and its mask, or choose one cut from your images.")
        return None
    try:
        data, picture = read_upload(image.name, image.size, image.getvalue)
        mask_data, _ = read_upload(mask.name, mask.size, mask.getvalue)
        check_mask(read_mask(mask_data), picture, mask.name)
    except ValueError as exc:
        st.error(f"No artifact is pasted: {exc}")
        return None
    return data, mask_data


def sample_size_note(n_marked: int, tolerance: float) -> str:
    """Before a run: what this many marked images can tell, and how many ruling out ``tolerance`` needs."""
    needed = images_to_rule_out(tolerance)
    if n_marked == 0:
        return f"Mark the artifact on some images. Ruling out reliance above {tolerance:.1%} needs {needed} marked images with no change."
    upper = wilson_interval(0, n_marked)[1]
    more = "these are enough" if n_marked >= needed else f"{needed - n_marked} more would settle it"
    return (
        f"{n_marked} marked images: if no decision changed, the audit could rule out reliance above "
        f"{upper:.0%} (95 % interval). Ruling out {tolerance:.1%} needs {needed} marked images; {more}."
    )


# --- a ZIP archive -----------------------------------------------------------------------------------

MAX_ARCHIVE_MB = 200  # the one limit of the ZIP upload (Streamlit counts MB as 10^6 bytes)
ARCHIVE_HELP = (
    f"One ZIP of at most {MAX_ARCHIVE_MB} MB with up to {MAX_IMAGES} images; masks as PNGs in a folder "
    "named masks/ (masks/a.png marks a.png), or a CSV of boxes name,x0,y0,x1,y1 (pixels); an image "
    "without a mark has no artifact."
)


def take_archive(upload: UploadedFile) -> Archive | None:
    """The uploaded ZIP's images with their marks; every member left out is named with why (None,
    with a message, when the archive cannot be used at all)."""
    try:
        archive = read_archive(upload.getvalue(), source=upload.name, max_images=MAX_IMAGES)
    except AuditError as exc:
        st.error(render.defuse_markdown(str(exc)))
        return None
    if archive.left_out:
        shown = archive.left_out[:30]
        more = f"\n- … and {len(archive.left_out) - 30} more" if len(archive.left_out) > 30 else ""
        st.warning(f"**Left out of the audit** ({len(archive.left_out)} files):\n{_bullets(shown)}{more}")
    unmarked = len(archive.items) - archive.n_masks - archive.n_boxed
    st.info(
        f"{len(archive.items)} images: {archive.n_masks} marked by a mask, {archive.n_boxed} by boxes, "
        f"{unmarked} without a mark (no artifact). Each is read when its batch comes; one that cannot be "
        "read is named and left out then."
    )
    return archive


# --- a running audit ---------------------------------------------------------------------------------

REFRESH_S = 1.0


def show_job(job: background.Job) -> None:
    """A job's panel: its progress and partial results while it runs (refreshed every second, on the
    server, whether or not the page was reloaded), then the finished audit or why it stopped."""
    run = job.context
    if job.running:
        _follow(job.id)
        return
    if job.state == "cancelled":
        st.info("The audit was cancelled. Its partial results are below; start a new one to audit again.")
    elif job.state == "failed":
        st.error(render.defuse_markdown(job.error or "The audit stopped."))
    if isinstance(run, AuditRun) and run.outcome is not None:
        show_outcome(run, run.outcome)
    elif isinstance(run, AuditRun):
        _partial(run)


@st.fragment(run_every=REFRESH_S)
def _follow(job_id: str) -> None:
    job = background.registry().get(job_id)
    if job is None or not job.running:
        st.rerun()  # the whole page: it draws the result
        return
    waiting = progress.waiting_text(job.who)
    fraction = min(1.0, job.done / job.total) if job.total else 0.0
    st.progress(fraction, text=waiting or job.progress_text())
    st.button(
        "Cancel",
        key=f"audit-cancel-{job.id}",
        on_click=job.cancel,
        help="Stop the audit; what is done stays shown.",
    )
    st.caption(
        "The audit runs on the server: you may close or reload this page and come back to it with this "
        "page's address (its link ends in ?job=…)."
    )
    if isinstance(job.context, AuditRun):
        _partial(job.context)


def _partial(run: AuditRun) -> None:
    """What is done so far: the removals' count, the latest image, the latest rows."""
    rows = list(run.rows)
    if not rows:
        return
    removed = [r for r in rows if r.intervention == "removed"]
    changed = sum(bool(r.changed) for r in removed)
    st.markdown(
        f"**So far** {len(rows)} of {run.total} images audited"
        + (f", {len(run.skipped)} skipped" if run.skipped else "")
        + (f"; removing the artifact changed {changed} of {len(removed)} decisions." if removed else ".")
    )
    _image_block(run, rows[-1], ("the latest",))
    render.table([flat_row(r, run.class_names) for r in rows[-20:]], hide_index=True)


# --- a finished audit --------------------------------------------------------------------------------


def _image_block(run: AuditRun, row: ImageRow, why: Sequence[str]) -> None:
    decision, lines = image_lines(run.class_names, row)
    st.subheader(row.name)
    if why and why != ("one of few images",):
        st.caption("; ".join(why))
    (st.warning if decision.outcome == "follows-artifact" else st.info)(lines[0])
    panels = [(caption(key, row, run.class_names), png) for key, png in run.pictures(row.index).items()]
    for start in range(0, len(panels), 4):
        for column, (text, png) in zip(st.columns(4), panels[start : start + 4], strict=False):
            column.image(png, caption=text, width="stretch")
    if lines[1:]:
        st.markdown("\n".join(f"- {render.defuse_markdown(line)}" for line in lines[1:]))


def _downloads(run: AuditRun, outcome: AuditOutcome) -> None:
    files = {
        "audit-report.html": ("text/html", lambda: outcome.html),
        "audit.json": ("application/json", lambda: (run.folder / "audit.json").read_bytes()),
        "audit.zip": ("application/zip", lambda: outcome.archive.read_bytes()),
    }
    for column, (name, (mime, data)) in zip(st.columns(len(files)), files.items(), strict=True):
        column.download_button(f"⬇ {name}", data, file_name=name, mime=mime, key=f"audit-dl-{name}")
    st.caption("audit.zip holds every image's pictures, images.csv, images.jsonl, the report and its JSON.")


def show_outcome(run: AuditRun, outcome: AuditOutcome) -> None:
    """The whole audit: the summary verdict and tables, what was left out, the downloads, the images
    shown with their pictures, every image's numbers."""
    report = outcome.report
    st.header("What the audit measured")
    verdict = report["verdict"]
    show = {"relies": st.warning, "does-not-rely": st.success}.get(verdict["outcome"], st.info)
    show(render.defuse_markdown(verdict["verdict"]))
    rows = [
        with_intervals({"intervention": k, **report[k]})
        for k in ("removed", "added")
        if report[k]["n_images"]
    ]
    render.table(rows, hide_index=True)
    grades = [with_intervals({"explainer": title(m), **g}) for m, g in report["explainers"].items()]
    if grades:
        st.markdown(
            "**Each explainer against the measurement** (on the images whose decision changed when the artifact was removed)"
        )
        render.table(grades, hide_index=True)
    st.caption(
        f"Network {report['model']} · weights SHA-256 {report['weights_sha256'][:16]}… · "
        f"inpainting: {report['settings']['inpainting']} · {report['n_images']} images audited"
    )
    left = [
        f"{s['name']}: {s['reason']}" if not s["reason"].startswith(s["name"]) else s["reason"]
        for s in report["skipped"]
    ]
    if left:
        st.warning(f"**Skipped while the audit ran** ({len(left)} images):\n{_bullets(left[:30])}")
    _downloads(run, outcome)
    by_index = {r.index: r for r in run.rows}
    st.header(f"Images shown ({len(outcome.shown)} of {len(run.rows)})")
    for index, why in outcome.shown.items():
        _image_block(run, by_index[index], why)
    st.header("Every image")
    render.table([flat_row(r, run.class_names) for r in run.rows], hide_index=True)


__all__ = [
    "ARCHIVE_HELP",
    "INTRO",
    "MAX_ARCHIVE_MB",
    "mark_all",
    "sample_size_note",
    "show_job",
    "show_outcome",
    "take_archive",
    "take_artifact",
    "take_uploads",
    "unique_names",
]
