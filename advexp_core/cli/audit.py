"""``advexp audit --model M --images DIR --masks DIR --out DIR``: does the network decide by a marked artifact?

For each image in DIR, its mark: the mask with the same name in the masks folder (a PNG; non-zero
pixels are the artifact) or its boxes in ``--boxes FILE`` (``name,x0,y0,x1,y1`` lines); an image
without a mark has no artifact. The artifact is removed by inpainting and, with ``--add-from IMAGE
--add-mask MASK``, pasted onto the images without one; each decision is read before and after, the
explainers are graded against the measured effect, and each image gets its adversarial explanation
(`advexp_core.experiments.audit`, docs/audit.md).

The images are streamed in batches: a row per image is appended to images.csv and images.jsonl as
its batch finishes (in ``DIR/.advexp-partial-audit/`` while the audit runs), and memory does not grow
with the number of images. An image that cannot be read, or whose mark does not fit it, is skipped,
named and counted, and the audit goes on. Interrupted (Ctrl-C, a killed process), it continues with
``--resume``. At the end ``result.json``, ``images.csv``, ``images.jsonl`` and ``report.html`` (the
summary, a chosen set of images with pictures, every image's numbers) are moved into DIR together,
with ``pictures.zip`` (every image's pictures) when ``--pictures all`` is given.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advexp_core.base.jsonsafe import format_number
from advexp_core.base.statistics import TOLERANCE
from advexp_core.base.text import terminal_text
from advexp_core.cli.common import (
    Progress,
    UsageError,
    add_json_argument,
    add_model_argument,
    folder_files,
    json_text,
    load_model_or_usage_error,
    read_file,
    resolve_class,
    usage_errors,
)
from advexp_core.cli.output import MARKER, add_out_argument, output_folder
from advexp_core.data.imaging import ACCEPTED_EXTENSIONS, MAX_IMAGE_BYTES, ImageError, decode_image
from advexp_core.data.interventions import BORDERS, WHERE, Artifact, AuditError
from advexp_core.experiments.audit_inputs import (
    AuditItem,
    Box,
    fit_to_model,
    marks_loader,
    mask_from_png,
    read_boxes,
    stem,
)
from advexp_core.experiments.audit_records import (
    DEFAULT_METHODS,
    AuditConfig,
    AuditResult,
    ImageRow,
    shown_images,
    summarise,
    weights_sha256,
)
from advexp_core.experiments.audit_store import AuditStore, StoreError, fill
from advexp_core.experiments.audit_stream import audit_batches, batch_size_for
from advexp_core.experiments.report import versions
from advexp_core.methods.saliency import METHODS
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.audit_report import (
    audit_html,
    csv_fields,
    image_pictures,
    summary_reading,
    table_texts,
)
from advexp_core.readings.audit import interval_text, number_with_interval

FILES = {"result": "result.json", "images": "images.csv", "rows": "images.jsonl", "report": "report.html"}
PICTURES_FILE = "pictures.zip"
FLAGS = {
    "images": "--images", "masks": "--masks", "boxes": "--boxes", "labels": "--labels",
    "artifact": "--add-from/--add-mask",
}  # fmt: skip
MAX_IMAGES = 100_000  # a bound on one audit's list (rows stay in memory: about 1 KB an image)
MAX_BOXES_BYTES = 64_000_000
PARTIAL = ".advexp-partial-audit"
Tables = Callable[
    [Sequence[ImageRow]], dict[str, str]
]  # starts like cli.output's scratch folders, which a rerun may find


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "audit", help="shortcut audit: remove / paste a marked artifact, grade the explainers"
    )
    add_model_argument(parser, required=True)
    parser.add_argument("--images", required=True, type=Path, help="folder of images")
    marks = parser.add_mutually_exclusive_group()
    marks.add_argument("--masks", type=Path, help="folder of mask PNGs named like the images")
    marks.add_argument(
        "--boxes", type=Path, help="CSV of name,x0,y0,x1,y1 lines: the artifact's boxes in pixels"
    )
    parser.add_argument("--labels", type=Path, help="CSV of name,class lines (optional)")
    parser.add_argument("--add-from", type=Path, help="an image holding the artifact to paste")
    parser.add_argument("--add-mask", type=Path, help="its mask PNG (non-zero: the artifact)")
    parser.add_argument(
        "--where", choices=WHERE, default="same", help="paste at the same place or along a border"
    )
    parser.add_argument("--border", choices=BORDERS, default="bottom", help="the border for --where border")
    parser.add_argument(
        "--methods", nargs="*", default=list(DEFAULT_METHODS), help=f"explainers ({', '.join(METHODS)})"
    )
    parser.add_argument("--toward", help="class of the adversarial explanations (default: the runner-up)")
    parser.add_argument("--no-adversarial", action="store_true", help="skip the adversarial explanations")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=TOLERANCE,
        help="share of decisions below which reliance on the artifact counts as negligible: the verdict "
        f"reads the 95%% interval of the share removing it changed against it (default {TOLERANCE})",
    )
    some = parser.add_mutually_exclusive_group()
    some.add_argument("--max-images", type=int, metavar="N", help="audit the first N images (by name)")
    some.add_argument("--sample", type=int, metavar="N", help="audit N images drawn at random (--seed)")
    parser.add_argument(
        "--seed", type=int, default=0, help="the sample, SmoothGrad's noise, the bootstrap (default 0)"
    )
    parser.add_argument("--batch-size", type=int, help="images per batch (default: from the device)")
    parser.add_argument(
        "--pictures", choices=("chosen", "all"), default="chosen",
        help="keep the pictures of the images the report shows (default), or of all in pictures.zip",
    )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue an interrupted audit in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_out_argument(parser, "result.json, images.csv, images.jsonl, report.html")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


# --- what is audited ------------------------------------------------------------------------------


def _image(data: bytes, path: Path) -> torch.Tensor:
    try:
        return decode_image(data)
    except ImageError as exc:
        raise UsageError(f"{path.name}: {exc}") from exc


def read_labels(data: bytes, class_names: Sequence[str]) -> dict[str, int]:
    """name,class lines -> the class of each image stem listed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError("--labels: not a UTF-8 text file.") from exc
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise UsageError(f"--labels: not a CSV of name,class lines ({exc}).") from exc
    found: dict[str, int] = {}
    for number, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if (
            not cells
            or not cells[0]
            or cells[0].startswith("#")
            or (number == 1 and cells[0].lower() == "name")
        ):
            continue
        if len(cells) < 2:
            raise UsageError(f"--labels: the line {','.join(row)!r} is not name,class.")
        found[stem(cells[0])] = resolve_class(cells[1], class_names)
    return found


def choose(paths: list[Path], args: argparse.Namespace) -> list[Path]:
    """The images to audit: all, the first --max-images, or a --sample drawn with --seed (by name)."""
    for flag, n in (("--max-images", args.max_images), ("--sample", args.sample)):
        if n is not None and n < 1:
            raise UsageError(f"{flag} takes a positive number of images, got {n}.")
    if args.max_images is not None:
        paths = paths[: args.max_images]
    if args.sample is not None and args.sample < len(paths):
        order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(args.seed))
        paths = sorted(paths[int(k)] for k in order[: args.sample])
    if len(paths) > MAX_IMAGES:
        raise UsageError(
            f"--images: {len(paths)} images; at most {MAX_IMAGES:,} per audit (--sample N audits a random N)."
        )
    return paths


@dataclass(frozen=True)
class Inputs:
    """The audit's images as items (read when their batch comes), what identifies them for a resume,
    and what was left out before the audit (entries skipped, marks that match no image)."""

    items: list[AuditItem]
    identity: dict[str, Any]
    warnings: list[str]


def _fingerprint(paths: Sequence[Path]) -> list[list[Any]]:
    out = []
    for p in paths:
        info = p.stat()
        out.append([p.name, info.st_size, info.st_mtime_ns])
    return out


def _marks(
    args: argparse.Namespace, stems: set[str], warnings: list[str]
) -> tuple[dict[str, Path], dict[str, list[Box]], dict[str, Any]]:
    """The mask files or the boxes by image stem, and their identity."""
    if args.masks is not None:
        found, skipped = folder_files(args.masks, "--masks", ("png",))
        if skipped:
            warnings.append(f"--masks: skipped {', '.join(skipped)}.")
        unmatched = sorted(p.name for p in found if p.stem not in stems)
        if unmatched:
            warnings.append(
                f"--masks: {', '.join(unmatched[:20])}{' …' if len(unmatched) > 20 else ''} match(es) no image in --images and were not used."
            )
        masks = {p.stem: p for p in found if p.stem in stems}
        return masks, {}, {"masks": _fingerprint(sorted(masks.values()))}
    if args.boxes is not None:
        data = read_file(args.boxes, flag="--boxes", limit=MAX_BOXES_BYTES)
        try:
            boxes = read_boxes(data.decode("utf-8-sig"), args.boxes.name)
        except UnicodeDecodeError as exc:
            raise UsageError(f"--boxes {args.boxes}: not a UTF-8 text file.") from exc
        except AuditError as exc:
            raise UsageError(f"--boxes: {exc}") from exc
        unmatched = sorted(k for k in boxes if k not in stems)
        if unmatched:
            warnings.append(
                f"--boxes: the boxes of {', '.join(unmatched[:20])} match no image in --images and were not used."
            )
        return {}, boxes, {"boxes": hashlib.sha256(data).hexdigest()}
    return {}, {}, {}


def load_inputs(args: argparse.Namespace, class_names: Sequence[str]) -> Inputs:
    """The image files as lazy items with their marks and labels (None where an image has none)."""
    found, skipped = folder_files(args.images, "--images", ACCEPTED_EXTENSIONS)
    if not found:
        raise UsageError(f"--images {args.images}: no images ({', '.join(ACCEPTED_EXTENSIONS)}) in it.")
    paths = choose(found, args)
    warnings = [f"--images: skipped {', '.join(skipped)}."] if skipped else []
    masks, boxes, identity = _marks(args, {p.stem for p in paths}, warnings)
    labels = {}
    if args.labels is not None:
        data = read_file(args.labels, flag="--labels", limit=MAX_BOXES_BYTES)
        labels = read_labels(data, class_names)
        identity["labels"] = hashlib.sha256(data).hexdigest()
    items = []
    for path in paths:
        read_mask = None
        if path.stem in masks:
            mask_path = masks[path.stem]
            read_mask = _reader(mask_path, "--masks", args.masks)
        load = marks_loader(
            _reader(path, "--images", args.images), path.name, read_mask=read_mask, boxes=boxes.get(path.stem)
        )
        items.append(AuditItem(path.name, load, labels.get(path.stem)))
    identity["images"] = _fingerprint(paths)
    return Inputs(items, identity, warnings)


def _reader(path: Path, flag: str, within: Path) -> Callable[[], bytes]:
    return lambda: read_file(path, flag=flag, limit=MAX_IMAGE_BYTES, within=within)


def load_artifact(args: argparse.Namespace, model: LoadedModel) -> tuple[Artifact | None, str | None]:
    """The artifact to paste, fitted to the network, and its identity (None: nothing pasted)."""
    if args.add_from is None:
        return None, None
    data = read_file(args.add_from, flag="--add-from", limit=MAX_IMAGE_BYTES)
    mask_data = read_file(args.add_mask, flag="--add-mask", limit=MAX_IMAGE_BYTES)
    source = _image(data, args.add_from)
    with usage_errors():
        source_mask = mask_from_png(mask_data, args.add_mask.name)
    if tuple(source_mask.shape) != tuple(source.shape[-2:]):
        raise UsageError(
            f"--add-mask is {source_mask.shape[1]}×{source_mask.shape[0]} but --add-from is "
            f"{source.shape[-1]}×{source.shape[-2]}; draw the mask on that image."
        )
    image, mask = fit_to_model(source, source_mask, model)
    assert mask is not None  # a mask in, a mask out
    if not bool(mask.any()):
        raise UsageError("--add-mask marks nothing once fitted to the network; mark more of the artifact.")
    digest = hashlib.sha256(data + mask_data).hexdigest()
    return Artifact(image, mask), digest


# --- the run --------------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> AuditConfig:
    if (args.add_from is None) != (args.add_mask is None):
        raise UsageError("--add-from and --add-mask go together: the artifact's image and its mask.")
    with usage_errors():
        return AuditConfig(
            methods=tuple(args.methods), where=args.where, border=args.border,
            adversarial=not args.no_adversarial, tolerance=args.tolerance, seed=args.seed,
            batch_size=args.batch_size,
        )  # fmt: skip


def _check_clashes(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Refuse before any work when --out holds a file of one of the audit's names that advexp did
    not write (`output.output_folder` would refuse it only at the end of a long run)."""
    out = Path(args.out)
    try:
        own = json.loads((out / MARKER).read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        own = []
    clashes = [n for n in names if n not in own and os.path.lexists(out / n)]
    if clashes:
        raise UsageError(
            f"--out {args.out} already holds {', '.join(clashes)}, which advexp did not write; "
            "nothing was replaced. Choose another folder."
        )


def _open_store(
    args: argparse.Namespace, manifest: dict[str, Any], size: int, tables: Tables, keep_all: bool
) -> AuditStore:
    """The store in --out: a new one, or with --resume the interrupted audit's (refused when its
    manifest differs); an interrupted audit there without --resume is refused, never replaced."""
    folder = Path(args.out) / PARTIAL
    if AuditStore.holds_audit(folder):
        if not args.resume:
            raise UsageError(
                f"--out {args.out} holds an interrupted audit; add --resume to continue it, "
                "or choose another folder."
            )
        try:
            return AuditStore.resume(folder, manifest, tables=tables, keep_all_pictures=keep_all)
        except StoreError as exc:
            raise UsageError(f"--resume: {exc}") from exc
    if args.resume and not args.quiet:
        sys.stderr.write(terminal_text(f"advexp audit: nothing to resume in {args.out}; starting.") + "\n")
    try:
        return AuditStore.create(
            folder, manifest, batch_size=size, tables=tables([]), keep_all_pictures=keep_all
        )
    except (StoreError, OSError) as exc:
        raise UsageError(f"--out {args.out}: {exc}") from exc


def _stream(
    args: argparse.Namespace, store: AuditStore, model: LoadedModel, inputs: Inputs,
    artifact: Artifact | None, config: AuditConfig, progress: Progress,
) -> None:  # fmt: skip
    """Audit the batches not done yet, committing each to the store as it finishes. Interrupted
    (Ctrl-C), say what is kept and how to go on, and exit with 130 (the partial folder stays)."""
    fields = csv_fields(config.methods, config.adversarial)
    batches = audit_batches(
        model, inputs.items, artifact=artifact, config=config, batch_size=store.progress.batch_size,
        first_batch=store.batches_done, on_step=progress,
    )  # fmt: skip
    try:
        fill(
            store,
            batches,
            pictures=image_pictures,
            tables=lambda rows: table_texts(rows, model.class_names, fields),
        )
    except KeyboardInterrupt:
        progress.close()
        done = len(store.rows) + len(store.skipped)
        sys.stderr.write(
            terminal_text(
                f"advexp audit: interrupted after {done} of {len(inputs.items)} images; what is done is kept "
                f"in {Path(args.out) / PARTIAL}. Run the same command with --resume to continue."
            )
            + "\n"
        )
        raise SystemExit(130) from None
    progress.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = _config(args)
    if not (args.masks or args.boxes or args.add_from):
        raise UsageError(
            "Mark the artifact (--masks DIR or --boxes FILE), or give one to paste (--add-from)."
        )
    model = load_model_or_usage_error(args.model)
    if args.toward is not None:
        config = AuditConfig(**{**config.__dict__, "toward": resolve_class(args.toward, model.class_names)})
    inputs = load_inputs(args, model.class_names)
    artifact, artifact_id = load_artifact(args, model)
    quiet = args.quiet
    for warning in inputs.warnings:
        sys.stderr.write(terminal_text(f"warning: {warning}") + "\n")
    weights = weights_sha256(model)
    size = batch_size_for(model, config)
    manifest = {
        "model": str(args.model), "weights_sha256": weights, "settings": {**config.__dict__, "batch_size": size},
        "inputs": inputs.identity, "artifact": artifact_id,
    }  # fmt: skip
    keep_all = args.pictures == "all"
    _check_clashes(args, [*FILES.values(), *([PICTURES_FILE] if keep_all else [])])
    fields = csv_fields(config.methods, config.adversarial)
    started = time.perf_counter()
    progress = Progress(quiet, desc="audit", unit="image")
    store = _open_store(args, manifest, size, lambda rows: _tables(model, rows, fields), keep_all)
    resumed_from = len(store.rows) + len(store.skipped)
    _stream(args, store, model, inputs, artifact, config, progress)
    result = summarise(
        model, weights, store.rows, config=config, batch_size=size, skipped=store.skipped,
        artifact_source=None if args.add_from is None else args.add_from.name,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    report = _report(args, result, inputs.warnings, keep_all)
    report["timing"] = {
        "seconds": round(seconds, 2), "resumed_from": resumed_from,
        "images_per_second": round((len(inputs.items) - resumed_from) / seconds, 3) if seconds > 0 else None,
    }  # fmt: skip
    _write(args, report, result, store, inputs.warnings, keep_all)
    store.remove()
    return report


def _tables(model: LoadedModel, rows: Sequence[ImageRow], fields: list[str]) -> dict[str, str]:
    """images.csv and images.jsonl as they are with ``rows`` done."""
    return table_texts(rows, model.class_names, fields, header=True)


def _report(
    args: argparse.Namespace, result: AuditResult, warnings: list[str], keep_all: bool
) -> dict[str, Any]:
    files = dict(FILES) | ({"pictures": PICTURES_FILE} if keep_all else {})
    return {
        **result.to_json(), "verdict": summary_reading(result).to_json(), "warnings": warnings,
        "versions": versions(), "files": files, "out": str(args.out),
    }  # fmt: skip


def _write(
    args: argparse.Namespace,
    report: dict[str, Any],
    result: AuditResult,
    store: AuditStore,
    warnings: list[str],
    keep_all: bool,
) -> None:
    """The audit's files, moved into --out together (`output.output_folder`)."""
    chosen = {k: store.pictures(k) for k in shown_images(result.images)}
    with output_folder(args) as tmp:
        (tmp / FILES["result"]).write_text(json_text(report, indent=2) + "\n", encoding="utf-8")
        (tmp / FILES["images"]).write_bytes(store.table(FILES["images"]).read_bytes())
        (tmp / FILES["rows"]).write_bytes(store.table(FILES["rows"]).read_bytes())
        html = audit_html(result, chosen, generated_by="advexp audit", warnings=warnings)
        (tmp / FILES["report"]).write_text(html, encoding="utf-8")
        if keep_all:
            write_pictures_zip(tmp / PICTURES_FILE, store, result)


def write_pictures_zip(path: Path, store: AuditStore, result: AuditResult) -> None:
    """Every picture the store kept, as ``NAME/KEY.png`` in one ZIP (PNGs are stored, not recompressed)."""
    names = {r.index: r.name for r in result.images}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for index, key, file in store.picture_files():
            if index in names:
                archive.write(file, f"{index:06d}-{names[index]}/{key}.png")


def summary(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} on {result['n_images']} images", result["verdict"]["verdict"]]
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    if result.get("n_skipped"):
        shown = "; ".join(f"{s['reason']}" for s in result["skipped"][:5])
        more = f" (and {result['n_skipped'] - 5} more)" if result["n_skipped"] > 5 else ""
        lines.append(f"skipped {result['n_skipped']} image(s): {shown}{more}")
    for name in ("removed", "added"):
        s = result[name]
        if s["n_images"]:
            lines.append(
                f"{name}: {s['n_changed']} of {s['n_images']} decisions changed "
                f"({interval_text(*s['decisions_changed_ci'])}); mean margin change "
                f"{number_with_interval(s['mean_margin_effect'], s['mean_margin_effect_ci'])}; accuracy "
                f"{number_with_interval(s['accuracy_before'], s['accuracy_before_ci'])} -> "
                f"{number_with_interval(s['accuracy_after'], s['accuracy_after_ci'])}"
            )
    for method, g in result["explainers"].items():
        lines.append(
            f"{method}: artifact share {format_number(g['artifact_share'])}, misleading rate "
            f"{number_with_interval(g['misleading_rate'], g['misleading_rate_ci'])}, effect Spearman "
            f"{format_number(g['effect_spearman'])}"
        )
    written = ", ".join(result["files"].values())
    lines.append(f"wrote {written} into {result['out']}")
    return "\n".join(lines)


__all__ = ["FILES", "MAX_IMAGES", "PARTIAL", "read_labels", "register", "run", "summary"]
