"""``advexp classify IMAGE``: the model's top predictions for one image."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    load_model_or_usage_error,
    predictions,
    read_image_for_model,
)


def register(sub: Any) -> None:
    parser = sub.add_parser("classify", help="top-K predictions for an image")
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    add_model_argument(parser)
    parser.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.top < 1:
        raise UsageError("--top must be at least 1.")
    model = load_model_or_usage_error(args.model)
    image = read_image_for_model(args.image, model)
    with torch.no_grad():
        logits = model.module(image[None])[0]
    return {"model": model.model_id, "predictions": predictions(logits, model.class_names, args.top)}


def summary(result: dict[str, Any]) -> str:
    rows = [f"{p['probability']:7.2%}  {p['label']} ({p['index']})" for p in result["predictions"]]
    return f"{result['model']}:\n" + "\n".join(rows)
