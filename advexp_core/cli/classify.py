"""``advexp classify IMAGE``: the model's top predictions for one image."""

from __future__ import annotations

import argparse
from typing import Any

from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    load_model_or_usage_error,
    read_image_described,
)
from advexp_core.experiments import classify
from advexp_core.experiments.report import TOP_K


def register(sub: Any) -> None:
    parser = sub.add_parser("classify", help="top-K predictions for an image")
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF, DICOM)")
    add_model_argument(parser)
    parser.add_argument("--top", type=int, default=TOP_K, help=f"how many classes to show (default {TOP_K})")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.top < 1:
        raise UsageError("--top must be at least 1.")
    model = load_model_or_usage_error(args.model)
    image, described = read_image_described(args.image, model)
    return {
        "model": model.model_id,
        "image": str(args.image),
        "image_description": described.to_json(),
        "predictions": classify(model, image, top_k=args.top),
    }


def summary(result: dict[str, Any]) -> str:
    rows = [f"{p['probability']:7.2%}  {p['label']} ({p['index']})" for p in result["predictions"]]
    read = f"image: {result['image_description']['summary']}"
    return f"{result['model']}:\n" + "\n".join(rows) + "\n" + read
