"""``advexp explain IMAGE --out DIR``: adversarial explanations (PAPER.md §2) saved as lossless PNGs.

Writes ``explanation_<index>_<label>.png`` per target (x+δ clamped to [0,1], 8-bit, at the model's
input size), ``figure.png`` (a contact sheet with probabilities and δ on one scale) and
``result.json`` (settings, versions, per-target probabilities before/after, RMS, budget flags).
An explanation whose RMS(δ) did not reach ρ by step S/2 is written but flagged as failed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import torch

from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    atomic_output_dir,
    load_model_or_usage_error,
    parse_fraction,
    predictions,
    read_image_for_model,
    versions,
)
from advexp_core.explanation_figures import explanation_figure, figure_png
from advexp_core.explanations import (
    ExplanationResult,
    adversarial_explanation,
    check_settings,
    resolve_targets,
)
from advexp_core.imaging import encode_png, png_roundtrip
from advexp_core.models import LoadedModel

TOP_K = 5


def register(sub: Any) -> None:
    parser = sub.add_parser("explain", help="adversarial explanations of an image (PAPER §2)")
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    add_model_argument(parser)
    parser.add_argument(
        "--target",
        action="append",
        metavar="CLASS|predicted|runner-up|all|top-K",
        help="class to explain (index or name), or a keyword; repeat for several (default: predicted)",
    )
    parser.add_argument("--rho", default="0.1", help="RMS budget ρ in [0,1] pixel units (default 0.1)")
    parser.add_argument("--steps", type=int, default=35, help="steps S >= 2 (default 35)")
    parser.add_argument("--overshoot", default="5", help="total step length as a multiple of ρ (default 5)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (replaced only on success)")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def safe_label(label: str) -> str:
    """A class name as a file-name part: lower case, runs of other characters become '-'."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:60].strip("-")
    return cleaned or "class"


def run(args: argparse.Namespace) -> dict[str, Any]:
    rho, overshoot = parse_fraction(args.rho), parse_fraction(args.overshoot)
    try:
        check_settings(rho=rho, steps=args.steps, overshoot=overshoot)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    model = load_model_or_usage_error(args.model)
    image = read_image_for_model(args.image, model)
    requested = args.target or ["predicted"]
    with torch.no_grad():
        logits = model.module(image[None])[0]
    try:
        targets = resolve_targets(requested, logits, model.class_names)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    result = adversarial_explanation(model, image, targets, rho=rho, steps=args.steps, overshoot=overshoot)
    report = _report(args, model, requested, result, logits)
    with atomic_output_dir(args.out) as tmp:
        for entry, t in zip(report["targets"], result.targets, strict=True):
            (tmp / entry["file"]).write_bytes(encode_png(t.explanation))
        (tmp / "figure.png").write_bytes(figure_png(explanation_figure(result)))
        (tmp / "result.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def _png_probabilities(model: LoadedModel, result: ExplanationResult) -> list[float]:
    """Target probabilities at the saved 8-bit PNGs (what a user who opens the files gets)."""
    saved = png_roundtrip(result.explanations).to(model.device)
    with torch.no_grad():
        probs = torch.softmax(model.module(saved).float(), dim=1).cpu()
    return [float(probs[i, t.index]) for i, t in enumerate(result.targets)]


def _report(
    args: argparse.Namespace,
    model: LoadedModel,
    requested: list[str],
    result: ExplanationResult,
    logits: torch.Tensor,
) -> dict[str, Any]:
    per_target = result.to_dict()["targets"]
    for entry, p_png in zip(per_target, _png_probabilities(model, result), strict=True):
        entry["file"] = f"explanation_{entry['index']}_{safe_label(entry['label'])}.png"
        entry["probability_after_png"] = p_png
    return {
        "model": model.model_id,
        "image": str(args.image),
        "input_size": list(model.input_size),
        "settings": {
            "method": "adversarial explanation (PAPER.md §2)",
            "rho": result.rho,
            "steps": result.steps,
            "overshoot": result.overshoot,
            "targets_requested": requested,
        },
        "versions": versions(),
        "predictions": predictions(logits, model.class_names, TOP_K),
        "all_budgets_reached": result.all_valid,
        "targets": per_target,
        "figure": "figure.png",
        "out": str(args.out),
    }


def summary(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [f"{result['model']}: adversarial explanations, ρ={s['rho']:g}, S={s['steps']}"]
    for t in result["targets"]:
        status = "ok" if t["budget_reached_by_half"] else "FAILED (budget not reached by step S/2)"
        lines.append(
            f"  {t['label']} ({t['index']}): p {t['probability_before']:.3f} -> {t['probability_after']:.3f}, "
            f"RMS {t['rms']:.4f}  {status}"
        )
    if not result["all_budgets_reached"]:
        lines.append("  failed explanations are not explanations; see 'message' in result.json")
    lines.append(
        f"wrote {result['out']}/ ({len(result['targets'])} explanation PNGs, figure.png, result.json)"
    )
    return "\n".join(lines)
