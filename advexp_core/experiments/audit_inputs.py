"""What a shortcut audit reads: images with their marks, one at a time (docs/audit.md).

An audit of hundreds of images never holds them all: each image is an `AuditItem`, a name with a
function that reads it (and its mask) when its batch comes. The marks come from mask PNGs (non-zero
pixels are the artifact; a transparent background is unmarked) or from a CSV of boxes
(``name,x0,y0,x1,y1``, pixels x0 ≤ x < x1, y0 ≤ y < y1 of the image as stored; several lines for one
image mark their union). A ZIP archive from a browser is read here too (`read_archive`): every member
is bounded before it is read, and anything that is not an image, a mask or a box list is named and
left out.

Every refusal is an `AuditError` (a ValueError) whose message names the file.
"""

from __future__ import annotations

import csv
import io
import posixpath
import stat
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from advexp_core.data.imaging import (
    ACCEPTED_EXTENSIONS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    decode_image,
    prepare_image,
)
from advexp_core.data.interventions import AuditError, size_text
from advexp_core.networks.registry import LoadedModel

MAX_MASK_SHARE = 0.5
"""A mask may cover at most this share of an image: beyond it inpainting invents most of the image."""
MAX_BOX_LINES = 1_000_000  # a CSV of boxes for the largest audit, several boxes an image
MAX_ARCHIVE_RATIO = 200  # a member that inflates more than this is a ZIP bomb (PNGs and JPEGs barely shrink)
MAX_ARCHIVE_TOTAL = 2_000_000_000  # bytes all members inflate to
MAX_ARCHIVE_MEMBERS = 5_000
MASK_FOLDER = "masks"  # in an archive, mask PNGs lie in a folder of this name, named like their images

Box = tuple[int, int, int, int]
Loader = Callable[[], tuple[Tensor, Tensor | None]]


@dataclass(frozen=True)
class AuditItem:
    """One image of an audit, read only when its batch comes.

    Attributes:
        name: its name (a file name), unique within the audit.
        load: returns (the image as `decode_image` gives it, its mask at the image's size or None
            for no artifact); raises a ValueError (an unreadable file, a mask that does not fit),
            and the audit then skips the image and names it with that message.
        label: its true class, or None.

    Shapes: load() -> ((3, H, W) in [0, 1], (H, W) bool or None).
    """

    name: str
    load: Loader = field(compare=False, repr=False)
    label: int | None = None


def stem(name: str) -> str:
    """A file name without its folder and last extension: how images, masks, labels and boxes match."""
    base = posixpath.basename(name.replace("\\", "/"))
    return base.rsplit(".", 1)[0] if "." in base else base


# --- masks ------------------------------------------------------------------------------------------


def mask_from_png(data: bytes, name: str) -> Tensor:
    """A mask file's bytes as (H, W) bool: True where any channel is non-zero, a transparent pixel unmarked.

    Bounded like an image (`MAX_IMAGE_BYTES`, `MAX_IMAGE_PIXELS`, the size read before the pixels).

    Raises:
        AuditError ("masks"): too large, or not an image.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise AuditError(
            "masks", f"{name}: {len(data) / 1e6:.1f} MB; a mask may have {MAX_IMAGE_BYTES / 1e6:.0f} MB."
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise AuditError(
                    "masks",
                    f"{name}: a mask of {img.width}×{img.height} pixels; the limit is "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} million pixels.",
                )
            array = np.array(img.convert("RGBA"))
    except AuditError:
        raise
    except Image.DecompressionBombError as exc:  # PIL refuses far too large images on opening
        raise AuditError(
            "masks",
            f"{name}: a mask of far more than {MAX_IMAGE_PIXELS / 1e6:.0f} million pixels, the limit.",
        ) from exc
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError) as exc:
        raise AuditError("masks", f"{name}: not a readable mask image ({exc}).") from exc
    return torch.from_numpy((array[..., :3] * (array[..., 3:] > 0)).any(-1))


def mask_png(mask: Tensor | np.ndarray) -> bytes:
    """A (H, W) bool mask as a black-and-white PNG."""
    array = np.asarray(mask, dtype=bool).astype(np.uint8) * 255
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def check_mask(mask: Tensor, image: Tensor, name: str) -> None:
    """AuditError unless the mask is (H, W) like its image and marks some, but not most, of it."""
    if tuple(mask.shape) != tuple(image.shape[-2:]):
        raise AuditError(
            "masks",
            f"{name}: the mask is {size_text(mask) if mask.ndim >= 2 else tuple(mask.shape)} but the image "
            f"is {size_text(image)}; draw the mask on the image itself.",
        )
    share = float(mask.bool().float().mean())
    if share == 0:
        raise AuditError(
            "masks",
            f"{name}: the mask marks no pixel; mark the artifact, or give no mask for an image without one.",
        )
    if share > MAX_MASK_SHARE:
        raise AuditError(
            "masks",
            f"{name}: the mask covers {share:.0%} of the image (at most {MAX_MASK_SHARE:.0%}); inpainting "
            "would invent most of the image. Mark only the artifact.",
        )


def fit_to_model(image: Tensor, mask: Tensor | None, model: LoadedModel) -> tuple[Tensor, Tensor | None]:
    """The image fitted to the model's input (`imaging.prepare_image`), its mask fitted alike
    (resampled, then read as True where at least half covered).

    Shapes: (3, H, W), (H, W) -> (3, h, w), (h, w).
    """
    fitted = prepare_image(image, model)
    if mask is None:
        return fitted, None
    as_image = mask.float().cpu().expand(3, *mask.shape)
    return fitted, prepare_image(as_image, model)[0] >= 0.5


# --- boxes ------------------------------------------------------------------------------------------


def read_boxes(text: str, source: str = "boxes") -> dict[str, list[Box]]:
    """A CSV of ``name,x0,y0,x1,y1`` lines -> boxes by image stem (a header line and # comments skipped).

    Raises:
        AuditError ("boxes"): a line that is not five fields of a name and four whole pixel numbers
            with x0 < x1 and y0 < y1 (the line is quoted), or more than `MAX_BOX_LINES` lines.
    """
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise AuditError("boxes", f"{source}: not a CSV of name,x0,y0,x1,y1 lines ({exc}).") from exc
    if len(rows) > MAX_BOX_LINES:
        raise AuditError("boxes", f"{source}: {len(rows)} lines; at most {MAX_BOX_LINES}.")
    boxes: dict[str, list[Box]] = {}
    for number, row in enumerate(rows, 1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() == "name":
            continue
        cells = [c.strip() for c in row]
        numbers = cells[1:5]
        if len(cells) != 5 or not all(c.isascii() and c.isdigit() for c in numbers):
            raise AuditError(
                "boxes",
                f"{source}, line {number}: {','.join(row)[:80]!r} is not name,x0,y0,x1,y1 with whole pixel numbers.",
            )
        x0, y0, x1, y1 = (int(c) for c in numbers)
        if not (x0 < x1 and y0 < y1):
            raise AuditError(
                "boxes",
                f"{source}, line {number}: the box needs x0 < x1 and y0 < y1, got {x0},{y0},{x1},{y1}.",
            )
        boxes.setdefault(stem(cells[0]), []).append((x0, y0, x1, y1))
    return boxes


def box_mask(boxes: Sequence[Box], height: int, width: int, name: str) -> Tensor:
    """The union of the boxes as an (H, W) mask. AuditError ("boxes") for a box outside the image."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes:
        if x1 > width or y1 > height:
            raise AuditError(
                "boxes",
                f"{name}: the box {x0},{y0},{x1},{y1} reaches outside the image ({width}×{height} px).",
            )
        mask[y0:y1, x0:x1] = True
    return mask


def marks_loader(
    read_image: Callable[[], bytes],
    name: str,
    *,
    read_mask: Callable[[], bytes] | None = None,
    boxes: Sequence[Box] | None = None,
) -> Loader:
    """A loader for `AuditItem`: the image decoded (`decode_image`), its mask from a PNG or boxes
    (neither: no artifact), checked against the image (`check_mask`)."""

    def load() -> tuple[Tensor, Tensor | None]:
        image = decode_image(read_image())
        mask = None
        if read_mask is not None:
            mask = mask_from_png(read_mask(), name)
        elif boxes:
            mask = box_mask(boxes, int(image.shape[-2]), int(image.shape[-1]), name)
        if mask is not None:
            check_mask(mask, image, name)
        return image, mask

    return load


# --- archives ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    """A ZIP archive's images with their marks, ready to audit, and every member left out, with why.

    Attributes:
        items: one `AuditItem` per image (a mask from ``masks/NAME.png`` or the boxes CSV).
        left_out: "member: why" for each member not used (a path out of the archive, a link,
            not an image, a mask or box that matches no image, ...).
        n_masks, n_boxed: the images marked by a mask PNG and by boxes.
    """

    items: tuple[AuditItem, ...]
    left_out: tuple[str, ...]
    n_masks: int = 0
    n_boxed: int = 0


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a member may not be read (None: it may)."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path; refused"
    if ".." in parts:
        return "a path that leaves the archive (..); refused"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link; refused"
    if info.flag_bits & 0x1:
        return "encrypted; refused"
    if info.file_size > MAX_IMAGE_BYTES:
        return f"{info.file_size / 1e6:.0f} MB unpacked; a file may have {MAX_IMAGE_BYTES / 1e6:.0f} MB"
    return None


def _check_bomb(infos: Sequence[zipfile.ZipInfo], source: str) -> None:
    total = sum(i.file_size for i in infos)
    if total > MAX_ARCHIVE_TOTAL:
        raise AuditError(
            "archive",
            f"{source}: its files unpack to {total / 1e9:.1f} GB; at most {MAX_ARCHIVE_TOTAL / 1e9:.0f} GB.",
        )
    for info in infos:
        if info.file_size > MAX_ARCHIVE_RATIO * max(info.compress_size, 1) and info.file_size > 1_000_000:
            raise AuditError(
                "archive",
                f"{source}: {info.filename} unpacks {info.file_size // max(info.compress_size, 1)} times "
                "larger than it is stored (a ZIP bomb); refused.",
            )


def _reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    """Read a member, never more than its stated size plus one byte (a header that lies is caught)."""

    def read() -> bytes:
        with archive.open(info) as handle:
            data = handle.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise AuditError("archive", f"{info.filename}: larger than its header says; refused.")
        return data

    return read


def read_archive(data: bytes, *, source: str = "the archive", max_images: int = 500) -> Archive:
    """The images of a ZIP archive with their masks (``masks/NAME.png``) or boxes (a ``.csv`` of
    ``name,x0,y0,x1,y1`` lines), read lazily from ``data``.

    Members are bounded before anything is unpacked: at most `MAX_ARCHIVE_MEMBERS`, each at most
    `MAX_IMAGE_BYTES`, all together `MAX_ARCHIVE_TOTAL`, none inflating more than
    `MAX_ARCHIVE_RATIO` times. Absolute paths, ``..``, links, encrypted members and files that are
    neither an image, a mask nor a box list are left out and named; so are macOS's ``__MACOSX/``
    copies. Names repeated in different folders get " (2)", " (3)".

    Raises:
        AuditError ("archive"): not a ZIP, a ZIP bomb, too many members or images, no image;
            ("boxes"): a box list that cannot be read.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise AuditError("archive", f"{source} is not a readable ZIP archive ({exc}).") from exc
    if len(infos) > MAX_ARCHIVE_MEMBERS:
        raise AuditError("archive", f"{source} holds {len(infos)} files; at most {MAX_ARCHIVE_MEMBERS}.")
    _check_bomb(infos, source)
    left_out: list[str] = []
    images: list[zipfile.ZipInfo] = []
    masks: dict[str, zipfile.ZipInfo] = {}
    box_files: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] in (".DS_Store", "Thumbs.db"):
            continue  # the system's own copies and notes, never the user's images
        problem = _member_problem(info)
        extension = parts[-1].rsplit(".", 1)[-1].lower() if "." in parts[-1] else ""
        if problem is None and extension not in (*ACCEPTED_EXTENSIONS, "csv"):
            problem = f"not an image ({', '.join(ACCEPTED_EXTENSIONS)}), a mask or a CSV of boxes"
        if problem is not None:
            left_out.append(f"{name}: {problem}")
        elif extension == "csv":
            box_files.append(info)
        elif MASK_FOLDER in (p.lower() for p in parts[:-1]) and extension == "png":
            if stem(name) in masks:
                left_out.append(f"{name}: a second mask for {stem(name)}; the first is used")
            else:
                masks[stem(name)] = info
        else:
            images.append(info)
    if len(images) > max_images:
        raise AuditError("archive", f"{source} holds {len(images)} images; at most {max_images} per audit.")
    if not images:
        raise AuditError("archive", f"{source} holds no image ({', '.join(ACCEPTED_EXTENSIONS)}).")
    boxes = _archive_boxes(archive, box_files, left_out)
    return _archive_items(archive, images, masks, boxes, left_out)


def _archive_boxes(
    archive: zipfile.ZipFile, files: Sequence[zipfile.ZipInfo], left_out: list[str]
) -> dict[str, list[Box]]:
    if len(files) > 1:
        left_out += [
            f"{i.filename}: a second CSV of boxes; only {files[0].filename} is read" for i in files[1:]
        ]
    if not files:
        return {}
    try:
        text = _reader(archive, files[0])().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AuditError("boxes", f"{files[0].filename}: not a UTF-8 text file.") from exc
    return read_boxes(text, files[0].filename)


def _archive_items(
    archive: zipfile.ZipFile,
    images: Sequence[zipfile.ZipInfo],
    masks: Mapping[str, zipfile.ZipInfo],
    boxes: Mapping[str, list[Box]],
    left_out: list[str],
) -> Archive:
    seen: set[str] = set()
    items = []
    used: set[str] = set()
    n_masks = n_boxed = 0
    for info in sorted(images, key=lambda i: i.filename):
        name = unique_name(posixpath.basename(info.filename.replace("\\", "/")), seen)
        key = stem(info.filename)
        mask_info = masks.get(key) if key not in used else None
        box_list = boxes.get(key) if key not in used else None
        if mask_info is not None and box_list:
            left_out.append(f"{mask_info.filename}: {name} also has boxes in the CSV; the mask is used")
        used.add(key)
        n_masks += mask_info is not None
        n_boxed += mask_info is None and bool(box_list)
        read_mask = _reader(archive, mask_info) if mask_info is not None else None
        load = marks_loader(_reader(archive, info), name, read_mask=read_mask, boxes=box_list)
        items.append(AuditItem(name, load))
    left_out += [f"{i.filename}: no image of this name" for k, i in masks.items() if k not in used]
    left_out += [f"boxes for {k}: no image of this name" for k in boxes if k not in used]
    return Archive(tuple(items), tuple(left_out), n_masks, n_boxed)


def unique_name(name: str, seen: set[str]) -> str:
    """``name``, or "a (2).png", "a (3).png"… when it was seen already; adds the result to ``seen``."""
    base, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    new, k = name, 1
    while new in seen:
        k += 1
        new = f"{base} ({k}){dot}{ext}"
    seen.add(new)
    return new


__all__ = [
    "MASK_FOLDER",
    "MAX_MASK_SHARE",
    "Archive",
    "AuditItem",
    "Box",
    "box_mask",
    "check_mask",
    "fit_to_model",
    "mask_from_png",
    "mask_png",
    "marks_loader",
    "read_archive",
    "read_boxes",
    "stem",
    "unique_name",
]
