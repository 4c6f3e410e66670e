"""``advexp audit --model M --images DIR --masks DIR --out DIR``: does the network decide by a marked artifact?

For each image in DIR, the mask with the same name in the masks folder (a PNG; non-zero pixels are
the artifact; an image without a mask has none). The artifact is removed by inpainting its mask and,
with ``--add-from IMAGE --add-mask MASK``, pasted onto the images without one (``--where same`` at its
own place, ``border`` along ``--border``); each decision is read before and after, the explainers
are graded against the measured effect, and each image gets its adversarial explanation
(`advexp_core.experiments.audit`, docs/audit.md). Writes ``result.json``, ``images.csv`` and ``report.html``
(one file with the pictures). Labels: a CSV of ``name,class`` lines (class index or name).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from advexp_core.base.jsonsafe import format_number
from advexp_core.base.statistics import TOLERANCE
from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    csv_safe,
    folder_files,
    json_text,
    load_model_or_usage_error,
    read_file,
    resolve_class,
    terminal_text,
    usage_errors,
)
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.data.imaging import (
    ACCEPTED_EXTENSIONS,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    ImageError,
    decode_image,
)
from advexp_core.data.interventions import BORDERS, WHERE, Artifact, AuditError
from advexp_core.experiments.audit import DEFAULT_METHODS, AuditConfig, audit, check_inputs, fit_to_model
from advexp_core.experiments.report import versions
from advexp_core.methods.saliency import METHODS
from advexp_core.plots.audit_report import audit_html, summary_reading
from advexp_core.readings.audit import interval_text, number_with_interval

FILES = {"result": "result.json", "images": "images.csv", "report": "report.html"}
FLAGS = {"images": "--images", "masks": "--masks", "labels": "--labels", "artifact": "--add-from/--add-mask"}
MAX_IMAGES = 500


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "audit", help="shortcut audit: remove / paste a marked artifact, grade the explainers"
    )
    add_model_argument(parser, required=True)
    parser.add_argument("--images", required=True, type=Path, help="folder of images")
    parser.add_argument("--masks", required=True, type=Path, help="folder of mask PNGs named like the images")
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
    add_out_argument(parser, "result.json, images.csv, report.html")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def read_mask(path: Path, *, flag: str = "--masks", within: Path | None = None) -> Tensor:
    """A mask PNG as (H, W) bool: True where any channel is non-zero."""
    data = read_file(path, flag=flag, limit=MAX_IMAGE_BYTES, within=within)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise UsageError(
                    f"{path.name}: a mask of {img.width}×{img.height} pixels; the limit is "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} million pixels."
                )
            array = np.array(img.convert("RGBA" if img.mode in ("RGBA", "LA", "P") else "RGB"))
    except Image.DecompressionBombError as exc:  # PIL refuses far too large images on opening
        raise UsageError(
            f"{path.name}: a mask of far more than {MAX_IMAGE_PIXELS / 1e6:.0f} million pixels, the limit."
        ) from exc
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise UsageError(f"{path.name}: not a readable mask image ({exc}).") from exc
    if array.shape[-1] == 4:  # a transparent background counts as unmarked
        array = array[..., :3] * (array[..., 3:] > 0)
    return torch.from_numpy(array.any(-1))


def _image(path: Path, *, flag: str, within: Path | None = None) -> Tensor:
    try:
        return decode_image(read_file(path, flag=flag, limit=MAX_IMAGE_BYTES, within=within))
    except ImageError as exc:
        raise UsageError(f"{path.name}: {exc}") from exc


def read_labels(path: Path, names: list[str], class_names: tuple[str, ...]) -> list[int | None]:
    """name,class lines -> one label per image (None for an image not listed)."""
    try:
        text = read_file(path, flag="--labels", limit=1 << 20).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--labels {path}: not a UTF-8 text file.") from exc
    found: dict[str, int] = {}
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise UsageError(f"--labels {path}: not a CSV of name,class lines ({exc}).") from exc
    for row in rows:
        if not row or row[0].startswith("#") or row[0].strip().lower() == "name":
            continue
        if len(row) < 2:
            raise UsageError(f"--labels: the line {','.join(row)!r} is not name,class.")
        found[Path(row[0].strip()).stem] = resolve_class(row[1], class_names)
    return [found.get(Path(n).stem) for n in names]


@dataclass(frozen=True)
class Inputs:
    """The audit's files as read: names, decoded images, their masks (None: no artifact), and what
    was left out (entries skipped, masks that match no image), each said in words."""

    names: list[str]
    images: list[Tensor]
    masks: list[Tensor | None]
    warnings: list[str]


def load_inputs(args: argparse.Namespace) -> Inputs:
    """The image files, decoded, with their masks (None where the masks folder has none)."""
    paths, skipped = folder_files(args.images, "--images", ACCEPTED_EXTENSIONS)
    mask_paths, skipped_masks = folder_files(args.masks, "--masks", ("png",))
    if not paths:
        raise UsageError(f"--images {args.images}: no images ({', '.join(ACCEPTED_EXTENSIONS)}) in it.")
    if len(paths) > MAX_IMAGES:
        raise UsageError(f"--images: {len(paths)} images; at most {MAX_IMAGES} per audit.")
    masks = {p.stem: p for p in mask_paths}
    stems = {p.stem for p in paths}
    warnings = [f"--images: skipped {', '.join(skipped)}."] if skipped else []
    if skipped_masks:
        warnings.append(f"--masks: skipped {', '.join(skipped_masks)}.")
    unmatched = sorted(p.name for p in mask_paths if p.stem not in stems)
    if unmatched:
        warnings.append(f"--masks: {', '.join(unmatched)} match(es) no image in --images and were not used.")
    return Inputs(
        [p.name for p in paths],
        [_image(p, flag="--images", within=args.images) for p in paths],
        [read_mask(masks[p.stem], within=args.masks) if p.stem in masks else None for p in paths],
        warnings,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if (args.add_from is None) != (args.add_mask is None):
        raise UsageError("--add-from and --add-mask go together: the artifact's image and its mask.")
    with usage_errors():
        config = AuditConfig(
            methods=tuple(args.methods),
            where=args.where,
            border=args.border,
            adversarial=not args.no_adversarial,
            tolerance=args.tolerance,
        )
    inputs = load_inputs(args)
    names, raw, raw_masks = inputs.names, inputs.images, inputs.masks
    for warning in inputs.warnings:
        sys.stderr.write(terminal_text(f"warning: {warning}") + "\n")
    model = load_model_or_usage_error(args.model)
    labels = None if args.labels is None else read_labels(args.labels, names, model.class_names)
    if args.toward is not None:
        config = AuditConfig(**{**config.__dict__, "toward": resolve_class(args.toward, model.class_names)})
    try:
        check_inputs(raw, raw_masks, names)  # the files as drawn: one size, masks that fit
        fitted = [fit_to_model(i, m, model) for i, m in zip(raw, raw_masks, strict=True)]
        artifact = None
        if args.add_from is not None:
            source = _image(args.add_from, flag="--add-from")
            source_mask = read_mask(args.add_mask, flag="--add-mask")
            if tuple(source_mask.shape) != tuple(source.shape[-2:]):
                raise UsageError(
                    f"--add-mask is {source_mask.shape[1]}×{source_mask.shape[0]} but --add-from is "
                    f"{source.shape[-1]}×{source.shape[-2]}; draw the mask on that image."
                )
            image, mask = fit_to_model(source, source_mask, model)
            assert mask is not None  # a mask in, a mask out
            artifact = Artifact(image, mask)
        result = audit(
            model, [f[0] for f in fitted], [f[1] for f in fitted], names=names, labels=labels,
            artifact=artifact, artifact_source=None if args.add_from is None else args.add_from.name,
            config=config,
        )  # fmt: skip
    except AuditError as exc:
        raise UsageError(f"{FLAGS.get(exc.setting, exc.setting)}: {exc}") from exc
    verdict = summary_reading(result)
    report = {
        **result.to_json(), "verdict": verdict.to_json(), "warnings": inputs.warnings, "versions": versions(),
        "files": FILES, "out": str(args.out),
    }  # fmt: skip
    with output_folder(args) as tmp:
        (tmp / FILES["result"]).write_text(json_text(report, indent=2) + "\n")
        (tmp / FILES["images"]).write_text(images_csv(report["images"]))
        (tmp / FILES["report"]).write_text(audit_html(result, generated_by="advexp audit"), encoding="utf-8")
    return report


def images_csv(rows: list[dict[str, Any]]) -> str:
    """The per-image values as CSV (the explainers' shares as one column each)."""
    buffer = io.StringIO()
    flat = [
        {
            **{k: csv_safe(v) for k, v in r.items() if k not in ("artifact_shares", "adversarial")},
            **{f"share_{m}": s for m, s in r["artifact_shares"].items()},
        }
        for r in rows
    ]
    writer = csv.DictWriter(buffer, fieldnames=list(flat[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


def summary(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} on {result['n_images']} images", result["verdict"]["verdict"]]
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
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
    lines.append(f"wrote {result['out']}/{FILES['result']}, {FILES['images']} and {FILES['report']}")
    return "\n".join(lines)
