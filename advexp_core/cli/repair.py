"""``advexp repair --model M --images DIR --masks DIR --labels CSV --method augment --out DIR``: fine-tune a
network away from a marked artifact, and measure it on held-out images.

The images come with their artifact masks (a PNG named like the image; no mask: no artifact) and a
label for every image, or ``--dataset lesions``: the generated lesions' training split with its ruler
masks (held-out images then measured with their exact twins). A seeded share (``--held-out``) is set
aside, stratified by class and artifact; the network is fine-tuned on the rest by ``--method``
(`advexp_core.training.repair`) and measured before and after on the held-out images
(`advexp_core.experiments.repair`). Writes into ``--out``: the repaired weights in the format the
network came in (an advexp checkpoint for a model id or an advexp ``.pt``, a state_dict ``.pt`` for
a ``.pt``/``.pth`` file, ``.safetensors`` for ``.safetensors``), ``card.json`` (method, settings,
data, the SHA-256 of the weights before and after, how to load them), ``result.json`` and
``report.html``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advexp_core.base.jsonsafe import format_number
from advexp_core.base.statistics import TOLERANCE
from advexp_core.base.text import terminal_text
from advexp_core.cli.audit import read_labels
from advexp_core.cli.common import (
    ModelFile,
    Progress,
    UsageError,
    add_json_argument,
    add_model_argument,
    folder_files,
    json_text,
    load_model_or_usage_error,
    read_file,
)
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.data.datasets import load_lesions
from advexp_core.data.imaging import ACCEPTED_EXTENSIONS, MAX_IMAGE_BYTES
from advexp_core.evaluation.reliance import RelianceError, check_lesions_model
from advexp_core.experiments.audit_inputs import fit_to_model, marks_loader
from advexp_core.experiments.repair import DEFAULT_HELD_OUT, RepairConfig, RepairData, RepairResult, repair
from advexp_core.experiments.report import versions
from advexp_core.networks.checkpoints import CheckpointError, load_checkpoint, sha256_file
from advexp_core.networks.registry import LoadedModel, list_models
from advexp_core.plots.repair_report import repair_html
from advexp_core.training.loop import CHECKPOINT_FORMAT
from advexp_core.training.repair import METHOD_TITLES, METHODS, FineTuneConfig, RepairError, save_weights

FILES = {"result": "result.json", "card": "card.json", "report": "report.html"}
FLAGS = {
    "masks": "--masks", "labels": "--labels", "images": "--images", "held_out": "--held-out",
    "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "method": "--method",
    "tolerance": "--tolerance", "model": "--model",
}  # fmt: skip
DATASETS = ("lesions",)
MAX_IMAGES = 2000  # every image is held in memory three times (as drawn, without and with the artifact)
MAX_LABELS_BYTES = 16_000_000
DEFAULTS = FineTuneConfig(method="augment")  # the settings' defaults, shown in --help


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "repair", help="fine-tune a network away from a marked artifact; measure it on held-out images"
    )
    add_model_argument(parser, required=True)
    data = parser.add_argument_group("the images (--images, --masks, --labels together, or --dataset)")
    data.add_argument("--images", type=Path, help="folder of images")
    data.add_argument(
        "--masks", type=Path, help="folder of mask PNGs named like the images (none: no artifact)"
    )
    data.add_argument("--labels", type=Path, help="CSV of name,class lines, one for every image")
    data.add_argument(
        "--dataset", choices=DATASETS, help="the generated lesions' training split and ruler masks"
    )
    parser.add_argument("--method", required=True, choices=METHODS, help="; ".join(f"{k}: {v}" for k, v in METHOD_TITLES.items()))  # fmt: skip
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help=f"epochs of fine-tuning (default {DEFAULTS.epochs})")  # fmt: skip
    parser.add_argument(
        "--held-out", type=float, default=DEFAULT_HELD_OUT, metavar="FRACTION",
        help=f"share of the images set aside to measure the repair, per class and artifact (default {DEFAULT_HELD_OUT})",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="the held-out split and every draw of the fine-tuning (default 0)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help=f"images per step (default {DEFAULTS.batch_size})")  # fmt: skip
    parser.add_argument("--lr", type=float, default=DEFAULTS.lr, help=f"SGD learning rate, decayed to 0 (default {DEFAULTS.lr})")  # fmt: skip
    parser.add_argument("--rrr-weight", type=float, default=DEFAULTS.rrr_weight, help=f"lambda of the RRR penalty (default {DEFAULTS.rrr_weight})")  # fmt: skip
    parser.add_argument(
        "--tolerance", type=float, default=TOLERANCE,
        help=f"share of decisions below which reliance on the artifact counts as negligible (default {TOLERANCE})",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_out_argument(parser, "the repaired weights, card.json, result.json, report.html")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


# --- the weights ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weights:
    """Where the network's weights came from and how the repaired ones are written."""

    path: Path
    fmt: str
    out_name: str
    base: dict[str, Any] | None = None


def refuse_onnx(model: str) -> None:
    """An ONNX graph has no weights to fine-tune here: say what to bring instead."""
    if isinstance(model, ModelFile) and Path(str(model)).suffix.lower() == ".onnx":
        raise UsageError(
            f"--model-file {Path(str(model)).name} is an ONNX model, which cannot be fine-tuned here. Export "
            "its weights instead (torch.save(model.state_dict(), 'weights.pt') or a .safetensors file) and "
            "give them with --model-file and --arch."
        )


def weights_of(model: str) -> Weights:
    """The file the network's weights came from, and the format its repaired weights take."""
    if isinstance(model, ModelFile):
        path = Path(str(model))
        if path.suffix.lower() == ".safetensors":
            return Weights(path, "safetensors", f"{path.stem}-repaired.safetensors")
        return Weights(path, "state_dict", f"{path.stem}-repaired.pt")
    path = Path(model)
    if not (path.suffix == ".pt" and path.is_file()):
        found = next((i.where for i in list_models() if i.model_id == model), "")
        path = Path(found)
    try:
        payload = load_checkpoint(path) if path.suffix == ".pt" and path.is_file() else None
    except CheckpointError:
        payload = None
    if payload is None or payload.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(
            f"--model {model}: repair writes this project's networks (advexp checkpoints) and your own "
            "weights (--model-file); this network's weights are neither. Give its weights with --model-file."
        )
    return Weights(path, "advexp", f"{path.stem}-repaired.pt", payload)


# --- the images -----------------------------------------------------------------------------------


def lesions_data(model: LoadedModel) -> RepairData:
    """The lesions' training split with its ruler masks and exact twins."""
    try:
        check_lesions_model(model)
    except RelianceError as exc:
        raise UsageError(f"--dataset lesions: {exc}") from exc
    drawn = load_lesions("train", with_masks=True)
    removed = load_lesions("train", shortcut=False).images
    added = load_lesions("train", force_ruler=True).images
    source = f"lesions train ({len(drawn)} images, ruler masks)"
    return RepairData(source, drawn.images, drawn.labels, drawn.masks["shortcut"], removed, added)


def folder_data(args: argparse.Namespace, model: LoadedModel) -> RepairData:
    """The images of --images with their masks and labels, fitted to the network."""
    paths, skipped = folder_files(args.images, "--images", ACCEPTED_EXTENSIONS)
    if not paths:
        raise UsageError(f"--images {args.images}: no images ({', '.join(ACCEPTED_EXTENSIONS)}) in it.")
    if len(paths) > MAX_IMAGES:
        raise UsageError(f"--images: {len(paths)} images; a repair takes at most {MAX_IMAGES}.")
    for entry in skipped:
        sys.stderr.write(terminal_text(f"warning: --images: skipped {entry}") + "\n")
    masks = {p.stem: p for p in folder_files(args.masks, "--masks", ("png",))[0]}
    if not any(p.stem in masks for p in paths):
        raise UsageError(
            f"--masks {args.masks}: no mask PNG is named like an image of --images, so no artifact is marked; "
            "mark it on every image that has it (a PNG named like the image, non-zero where the artifact is)."
        )
    labels = read_labels(read_file(args.labels, flag="--labels", limit=MAX_LABELS_BYTES), model.class_names)
    missing = [p.name for p in paths if p.stem not in labels]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(f"--labels: no class for {shown}; a repair needs the class of every image.")
    images, marks = [], []
    for path in paths:
        mask_path = masks.get(path.stem)
        load = marks_loader(
            _reader(path, "--images", args.images), path.name,
            read_mask=None if mask_path is None else _reader(mask_path, "--masks", args.masks),
        )  # fmt: skip
        try:
            image, mask = fit_to_model(*load(), model)
        except ValueError as exc:
            raise UsageError(f"{path.name}: {exc}") from exc
        images.append(image.cpu())
        marks.append(torch.zeros(image.shape[-2:], dtype=torch.bool) if mask is None else mask.cpu())
    y = torch.tensor([labels[p.stem] for p in paths], dtype=torch.int64)
    return RepairData(f"{args.images} ({len(paths)} images)", torch.stack(images), y, torch.stack(marks))


def _reader(path: Path, flag: str, within: Path) -> Any:
    return lambda: read_file(path, flag=flag, limit=MAX_IMAGE_BYTES, within=within)


def _data(args: argparse.Namespace, model: LoadedModel) -> RepairData:
    given = [
        f for f, v in (("--images", args.images), ("--masks", args.masks), ("--labels", args.labels)) if v
    ]
    if args.dataset is not None:
        if given:
            raise UsageError(f"--dataset {args.dataset} brings its own images; leave out {', '.join(given)}.")
        return lesions_data(model)
    if len(given) < 3:
        raise UsageError(
            "Give the images to repair on: --images DIR --masks DIR --labels CSV together, or --dataset lesions."
        )
    return folder_data(args, model)


# --- the run --------------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> RepairConfig:
    training = FineTuneConfig(
        method=args.method, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        rrr_weight=args.rrr_weight, flip=args.dataset == "lesions", seed=args.seed,
    )  # fmt: skip
    return RepairConfig(training, held_out=args.held_out, split_seed=args.seed, tolerance=args.tolerance)


def load_hint(model: str, out: Path, name: str) -> str:
    """The options that load the repaired weights."""
    if not isinstance(model, ModelFile):
        return f"--model {out / name}"
    options = model.options
    extra = [
        f"--{k.replace('_', '-')} {options[k]}"
        for k in ("arch", "classes", "input_size", "mean", "std")
        if options.get(k)
    ]
    return " ".join(
        [f"--model-file {out / name}", *extra, *(["--single-logit"] if options.get("single_logit") else [])]
    )


def card(result: RepairResult, args: argparse.Namespace, weights: Weights) -> dict[str, Any]:
    """What the repaired weights are: method, settings, data, where they came from (the file's sha256
    is added when written)."""
    report = result.to_json()
    return {
        "what": f"{result.model} repaired by {METHOD_TITLES[result.config.training.method]}",
        "method": result.config.training.method, "trained": result.tuned.trained,
        "settings": report["settings"],
        "data": {"source": result.source, **{k: v for k, v in report["split"].items() if k != "held_out_indices"}},
        "repaired_from": {"model": str(args.model), "file": weights.path.name, "sha256": sha256_file(weights.path)},
        "weights_sha256": report["weights_sha256"], "format": weights.fmt,
        "held_out": {k: {"accuracy": report[k]["accuracy"], "removed": report[k]["removed"]["decisions_changed"],
                         "added": report[k]["added"]["decisions_changed"]} for k in ("before", "after")},
        "load_with": load_hint(args.model, Path(args.out), weights.out_name),
    }  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    refuse_onnx(args.model)
    try:
        config = _config(args)
    except RepairError as exc:
        raise UsageError(f"{FLAGS.get(exc.setting, exc.setting)}: {exc}") from exc
    model = load_model_or_usage_error(args.model)
    weights = weights_of(args.model)
    data = _data(args, model)
    progress = Progress(args.quiet, desc="repair", unit="step")
    try:
        result = repair(model, data, config, on_step=progress)
    except RepairError as exc:
        raise UsageError(f"{FLAGS.get(exc.setting, exc.setting)}: {exc}") from exc
    finally:
        progress.close()
    about = card(result, args, weights)
    report = {**result.to_json(), "card": about, "versions": versions(), "files": {**FILES, "weights": weights.out_name}, "out": str(args.out)}  # fmt: skip
    with output_folder(args) as tmp:
        save_weights(
            result.tuned.module, tmp / weights.out_name, fmt=weights.fmt, base=weights.base, provenance=about
        )
        about["file"], about["sha256"] = weights.out_name, sha256_file(tmp / weights.out_name)
        (tmp / FILES["card"]).write_text(json_text(about, indent=2) + "\n", encoding="utf-8")
        (tmp / FILES["result"]).write_text(json_text(report, indent=2) + "\n", encoding="utf-8")
        (tmp / FILES["report"]).write_text(repair_html(result, card=about), encoding="utf-8")
    return report


def _line(name: str, m: dict[str, Any]) -> str:
    acc, ci = m["accuracy"], m["accuracy_ci"]
    r, a, attack = m["removed"], m["added"], m["attack"]
    return (
        f"{name}: accuracy {format_number(acc['as_drawn'])} {_ci(ci['as_drawn'])}, artifact removed "
        f"{format_number(acc['artifact_removed'])} {_ci(ci['artifact_removed'])}; removing it changed "
        f"{r['n_changed']} of {r['n_images']} decisions {_ci(r['decisions_changed_ci'])} ({r['outcome']}); adding it "
        f"changed {a['n_changed']} of {a['n_images']} {_ci(a['decisions_changed_ci'])}; PGD flipped "
        f"{attack['n_flipped']} of {attack['n_correct']} {_ci(attack['flip_rate_ci'])}"
    )


def _ci(interval: list[float] | None) -> str:
    return "" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def summary(result: dict[str, Any]) -> str:
    split = result["split"]
    lines = [
        f"{result['model']} repaired by {result['method']} on {result['source']}: {split['repair']} images, "
        f"{split['held_out']} held out (seed {split['seed']}; {split['held_out_with_artifact']} with the artifact), "
        f"measured by {result['intervention']}",
        _line("before", result["before"]),
        _line("after", result["after"]),
        f"wrote {result['files']['weights']}, {', '.join(FILES.values())} into {result['out']}",
        f"load it with {result['card']['load_with']}",
    ]
    return "\n".join(lines)


__all__ = ["FILES", "register", "run", "summary"]
