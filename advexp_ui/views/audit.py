"""Showing a shortcut audit: taking in the uploads (every file left out named with its reason),
marking the artifact on each image (a box dragged on the picture, with streamlit-image-coordinates;
a mask PNG as the fallback), each image's block as soon as it is done, the summary verdict with its
numbers, and the report for download."""

from __future__ import annotations

from collections import Counter
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
from advexp_core.data.interventions import size_text
from advexp_core.experiments.audit import check_mask
from advexp_core.plots.audit_report import outlined, title, with_intervals
from advexp_ui import render
from advexp_ui.images import read_upload
from advexp_ui.jobs.audit import ImagePart, Item, mask_png, read_mask
from advexp_ui.jobs.common import Outcome, file_bytes

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
    out = []
    for name in names:
        stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
        new, k = name, 1
        while new in seen:
            k += 1
            new = f"{stem} ({k}){dot}{ext}"
        seen.add(new)
        out.append(new)
    return out


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _one_size(read: list[tuple[str, bytes, Tensor]], left_out: list[str]) -> list[tuple[str, bytes, Tensor]]:
    """The images of the most common size (a tie: the first uploaded's); the others go to ``left_out``."""
    sizes = Counter(tuple(image.shape[-2:]) for _, _, image in read)
    if len(sizes) < 2:
        return read
    common = sizes.most_common(1)[0][0]
    kept = [r for r in read if tuple(r[2].shape[-2:]) == common]
    left_out += [
        f"{name}: {size_text(image)} px, unlike the other images ({size_text(kept[0][2])} px); an audit "
        "compares images of one size. Resize it to match."
        for name, _, image in read
        if tuple(image.shape[-2:]) != common
    ]
    return kept


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
    read = _one_size(read, left_out)
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


class AuditSlots:
    """The places of the result's blocks, laid out before the run so each image shows when done."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.summary = st.empty()
        self.images = {name: st.empty() for name in names}

    def show_part(self, part: ImagePart) -> None:
        slot = self.images.get(part.name)
        if slot is not None:
            with slot.container():
                _image_block(part.name, part.lines, part.outcome, part.panels)


def _image_block(
    name: str, lines: tuple[str, ...] | list[str], outcome: str, panels: dict[str, bytes]
) -> None:
    st.subheader(name)
    first, *rest = lines
    (st.warning if outcome == "follows-artifact" else st.info)(first)
    items = list(panels.items())
    for start in range(0, len(items), 4):
        for column, (caption, png) in zip(st.columns(4), items[start : start + 4], strict=False):
            column.image(png, caption=caption, width="stretch")
    if rest:
        st.markdown("\n".join(f"- {line}" for line in rest))


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


def show_audit(outcome: Outcome, slots: AuditSlots | None = None) -> None:
    """The whole audit: the summary verdict and tables, every image's block, the downloads."""
    report = outcome.report
    slots = slots or AuditSlots(tuple(p["name"] for p in report["parts"]))
    with slots.summary.container():
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
            f"inpainting: {report['settings']['inpainting']}"
        )
        c1, c2 = st.columns(2)
        for column, (name, data) in zip((c1, c2), outcome.files.items(), strict=False):
            column.download_button(
                f"⬇ {name}", file_bytes(data), file_name=name, key=f"audit-dl-{name}",
                mime="text/html" if name.endswith(".html") else "application/json",
            )  # fmt: skip
    for part in report["parts"]:
        panels = {k: outcome.panels[f"{part['name']}|{k}"] for k in part["panels"]}
        slot = slots.images.get(part["name"])
        if slot is not None:
            with slot.container():
                _image_block(part["name"], part["lines"], part["outcome"], panels)


__all__ = ["INTRO", "AuditSlots", "mark_all", "show_audit", "take_artifact", "take_uploads", "unique_names"]
