"""``advexp explain IMAGE --out DIR``: adversarial explanations (docs/method.md §2) saved as lossless PNGs.

Writes ``explanation_<index>_<label>.png`` per target (x+δ clamped to [0,1], 8-bit, at the model's
input size), ``figure.png`` (a contact sheet with probabilities and δ on one scale) and
``result.json`` (settings, versions, per-target probabilities before/after, RMS, budget flags, and
the readings the app shows: how many explanations succeeded and how structured δ is).
An explanation whose RMS(δ) did not reach ρ by step S/2 is written but flagged as failed.
"""

from __future__ import annotations

import argparse
from typing import Any

from advexp_core.cli.common import (
    add_json_argument,
    add_model_argument,
    image_description,
    json_text,
    load_model_or_usage_error,
    parse_fraction,
    read_image_for_model,
    usage_errors,
)
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.data.imaging import encode_png
from advexp_core.experiments import ExplanationConfig, adversarial_explanations
from advexp_core.experiments.report import versions
from advexp_core.plots.explanations import explanation_figure
from advexp_core.plots.figures import figure_png

DEFAULT = ExplanationConfig()


def register(sub: Any) -> None:
    parser = sub.add_parser("explain", help="adversarial explanations of an image (docs/method.md §2)")
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF, DICOM)")
    add_model_argument(parser)
    parser.add_argument(
        "--target",
        action="append",
        metavar="CLASS|predicted|runner-up|all|top-K",
        help="class to explain (index or name), or a keyword; repeat for several (default: predicted)",
    )
    parser.add_argument(
        "--rho", default=str(DEFAULT.rho), help=f"RMS budget ρ in [0,1] pixel units (default {DEFAULT.rho:g})"
    )
    parser.add_argument(
        "--steps", type=int, default=DEFAULT.steps, help=f"steps S >= 2 (default {DEFAULT.steps})"
    )
    parser.add_argument(
        "--overshoot",
        default=f"{DEFAULT.overshoot:g}",
        help=f"total step length as a multiple of ρ (default {DEFAULT.overshoot:g})",
    )
    add_out_argument(parser, "one PNG a target, figure.png, result.json")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def run(args: argparse.Namespace) -> dict[str, Any]:
    requested = args.target or ["predicted"]
    rho, overshoot = parse_fraction(args.rho), parse_fraction(args.overshoot)
    with usage_errors():
        config = ExplanationConfig(targets=tuple(requested), rho=rho, steps=args.steps, overshoot=overshoot)
    model = load_model_or_usage_error(args.model)
    image = read_image_for_model(args.image, model)
    with usage_errors():  # e.g. an unknown class name among the targets
        result = adversarial_explanations(model, image, config)
    r = result.to_json()
    report = {
        "model": model.model_id,
        "image": str(args.image),
        **image_description(args),
        "input_size": r["input_size"],
        "settings": {
            "method": "adversarial explanation (docs/method.md §2)",
            "rho": r["rho"],
            "steps": r["steps"],
            "overshoot": r["overshoot"],
            "targets_requested": requested,
        },
        "versions": versions(),
        "predictions": r["predictions"],
        "all_budgets_reached": r["all_budgets_reached"],
        "targets": r["targets"],
        "structure_noise": r["structure_noise"],
        "readings": r["readings"],
        "figure": "figure.png",
        "out": str(args.out),
    }
    with output_folder(args) as tmp:
        for file, t in zip(result.files, result.explanations.targets, strict=True):
            (tmp / file).write_bytes(encode_png(t.explanation))
        (tmp / "figure.png").write_bytes(figure_png(explanation_figure(result.explanations)))
        (tmp / "result.json").write_text(json_text(report, indent=2) + "\n")
    return report


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
    lines += [result["readings"][k]["verdict"] for k in ("success", "structure")]
    lines.append(
        f"wrote {result['out']}/ ({len(result['targets'])} explanation PNGs, figure.png, result.json)"
    )
    return "\n".join(lines)
