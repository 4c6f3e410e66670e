"""``advexp reliance --model M --dataset lesions --out DIR``: does the network's decision follow the ruler?

Classifies the first N images of a lesions split as drawn, with the ruler removed and with a ruler
drawn on (exact twins, differing only inside the ruler's mask; `advexp_core.evaluation.reliance`), and reports
how often the decision changes and how far the true class's logit margin moves. Writes
``result.json`` (the summary) and ``images.csv`` (one row per image). Cost: 3·N forward passes.
"""

from __future__ import annotations

import argparse
import csv
import io
from typing import Any

from advexp_core.base.jsonsafe import format_number
from advexp_core.base.statistics import TOLERANCE
from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    json_text,
    load_model_or_usage_error,
)
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.data.datasets import LESIONS_SIZES
from advexp_core.evaluation.reliance import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_N_IMAGES,
    DEFAULT_SPLIT,
    RELIANCE_DATASET,
    RelianceError,
    RelianceImage,
    shortcut_reliance,
)
from advexp_core.experiments.report import versions
from advexp_core.readings.audit import interval_text, number_with_interval, tolerance_text

FILES = {"result": "result.json", "images": "images.csv"}
FLAGS = {
    "split": "--split",
    "n_images": "--n-images",
    "batch_size": "--batch-size",
    "tolerance": "--tolerance",
    "model": "--model",
}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "reliance", help="ground truth: how often the decision changes when the ruler is removed or added"
    )
    add_model_argument(parser, required=True)
    parser.add_argument(
        "--dataset",
        required=True,
        help=f"a dataset whose shortcut can be removed and added: {RELIANCE_DATASET}",
    )
    parser.add_argument(
        "--split", default=DEFAULT_SPLIT, help=f"one of {', '.join(LESIONS_SIZES)} (default {DEFAULT_SPLIT})"
    )
    parser.add_argument(
        "--n-images",
        type=int,
        default=DEFAULT_N_IMAGES,
        help=f"the first N images (default {DEFAULT_N_IMAGES})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"images per forward pass (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=TOLERANCE,
        help="share of decisions below which reliance on the ruler counts as negligible: the outcome "
        f"reads the 95%% interval of the share removing it changed against it (default {TOLERANCE})",
    )
    add_out_argument(parser, "result.json, images.csv")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def images_csv(rows: list[RelianceImage]) -> str:
    """The per-image records as CSV text, one header line then one line per image."""
    buffer = io.StringIO()
    fields = list(RelianceImage.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.to_json())
    return buffer.getvalue()


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.dataset != RELIANCE_DATASET:
        raise UsageError(
            f"--dataset {args.dataset!r}: reliance needs a dataset whose shortcut can be removed and "
            f"added; only {RELIANCE_DATASET!r} has one."
        )
    model = load_model_or_usage_error(args.model)
    try:
        result = shortcut_reliance(
            model, split=args.split, n_images=args.n_images, batch_size=args.batch_size,
            tolerance=args.tolerance,
        )  # fmt: skip
    except RelianceError as exc:
        raise UsageError(f"{FLAGS.get(exc.setting, exc.setting)}: {exc}") from exc
    report = {**result.to_json(), "versions": versions(), "files": FILES, "out": str(args.out)}
    with output_folder(args) as tmp:
        (tmp / FILES["result"]).write_text(json_text(report, indent=2) + "\n")
        (tmp / FILES["images"]).write_text(images_csv(result.images()))
    return report


def _changed(s: dict[str, Any], when: str) -> str:
    """The share of decisions changed with its interval: "(share 0.62; 95% interval 31% to 86%)"."""
    share, interval = s[f"decisions_changed_when_{when}"], s[f"decisions_changed_when_{when}_ci"]
    words = "" if interval is None else f"; {interval_text(*interval)}"
    return f"(share {format_number(share)}{words})"


def summary(result: dict[str, Any]) -> str:
    acc, ci, s = result["accuracy"], result["accuracy_ci"], result["shortcut"]
    tolerance = tolerance_text(result["settings"]["tolerance"])
    return "\n".join(
        [
            f"{result['model']} on {result['dataset']} {result['split']}, first {result['n_images']} images",
            f"accuracy [{result['settings']['confidence']:.0%} interval]: as drawn {number_with_interval(acc['as_is'], ci['as_is'])}, rulers removed "
            f"{number_with_interval(acc['shortcut_removed'], ci['shortcut_removed'])}, rulers on every image "
            f"{number_with_interval(acc['shortcut_added'], ci['shortcut_added'])}",
            f"removing the ruler changed {s['n_changed_when_removed']} of {s['images_with']} decisions "
            f"{_changed(s, 'removed')}; mean true-class margin change "
            f"{number_with_interval(s['mean_margin_effect'], s['mean_margin_effect_ci'])}",
            f"adding a ruler changed {s['n_changed_when_added']} of {s['images_without']} decisions "
            f"{_changed(s, 'added')}",
            f"outcome at a {tolerance} tolerance: {s['outcome']}",
            f"wrote {result['out']}/{FILES['result']} and {FILES['images']}",
        ]
    )
