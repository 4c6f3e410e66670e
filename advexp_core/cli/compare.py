"""``advexp compare IMAGE --out DIR``: saliency maps of the clean and the attacked image, side by side.

docs/method.md §4 steps 1-4: explain the clean image, attack it (the same options as ``advexp
attack``), explain the attacked image the same way in the same batched call, and measure how far
each map moved and how much of |δ|² lies where the clean map points. Writes ``adversarial.png``,
``figure.png`` and ``result.json`` (everything ``attack`` writes, plus ``maps``).
"""

from __future__ import annotations

import argparse
from typing import Any

from advexp_core.base.jsonsafe import format_number
from advexp_core.cli.attack import add_attack_arguments, attack_config
from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    command_report,
    json_text,
    load_model_or_usage_error,
    parse_fraction,
    read_image_for_model,
    usage_errors,
)
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.data.imaging import encode_png
from advexp_core.experiments import SaliencyConfig, saliency_under_attack
from advexp_core.methods.gradient_maps import IG_BASELINES
from advexp_core.methods.perturbation import LIME_SAMPLES
from advexp_core.methods.saliency import METHODS
from advexp_core.plots.figures import figure_png, under_attack_figure

DEFAULT = SaliencyConfig()
FILES = {"adversarial": "adversarial.png", "figure": "figure.png", "result": "result.json"}


def register(sub: Any) -> None:
    parser = sub.add_parser("compare", help="saliency maps of the clean and the attacked image, with metrics")
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF, DICOM)")
    add_model_argument(parser)
    add_attack_arguments(parser)
    methods = ",".join(DEFAULT.methods)
    parser.add_argument(
        "--methods",
        default=methods,
        help=(
            f"comma-separated saliency methods from {','.join(METHODS)} (default {methods}); "
            f"lime costs {LIME_SAMPLES} forward passes per image, occlusion one per window position"
        ),
    )
    for flag, kind, default, text in (
        ("--ig-steps", int, DEFAULT.ig_steps, "Integrated Gradients steps"),
        ("--smoothgrad-samples", int, DEFAULT.smoothgrad_samples, "SmoothGrad samples"),
        ("--topk", str, str(DEFAULT.topk), "top-k region as a share of pixels"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    parser.add_argument(
        "--ig-baseline", choices=IG_BASELINES, default=DEFAULT.ig_baseline, help="IG baseline"
    )
    parser.add_argument(
        "--smoothgrad-sigma", default=str(DEFAULT.smoothgrad_sigma), help="SmoothGrad noise, [0,1] units"
    )
    parser.add_argument("--per-map-scale", action="store_true", help="one colour scale per map in the figure")
    add_out_argument(parser, "adversarial.png, figure.png, result.json")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def parse_methods(text: str) -> tuple[str, ...]:
    """``--methods gradcam,lime`` -> the named saliency methods, once each (UsageError if none)."""
    methods = tuple(dict.fromkeys(m.strip() for m in str(text).split(",") if m.strip()))
    if not methods:
        raise UsageError(f"--methods: none given; choose from {', '.join(METHODS)}.")
    return methods


def saliency_config(args: argparse.Namespace) -> SaliencyConfig:
    """The maps the command line asks for (UsageError on impossible settings)."""
    methods = parse_methods(args.methods)
    with usage_errors():
        return SaliencyConfig(
            methods=methods,
            ig_steps=args.ig_steps,
            ig_baseline=args.ig_baseline,
            smoothgrad_samples=args.smoothgrad_samples,
            smoothgrad_sigma=parse_fraction(args.smoothgrad_sigma),
            topk=parse_fraction(args.topk),
            per_map_scale=bool(args.per_map_scale),
            seed=args.seed,
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    saliency = saliency_config(args)
    model = load_model_or_usage_error(args.model)
    image = read_image_for_model(args.image, model)
    attack = attack_config(args, model)
    with usage_errors():  # e.g. Grad-CAM on a network without a convolutional layer
        result = saliency_under_attack(model, image, attack, saliency)
    report = command_report("compare", args, result.to_json(), FILES)
    with output_folder(args) as tmp:
        (tmp / FILES["adversarial"]).write_bytes(encode_png(result.example.adversarial))
        (tmp / FILES["figure"]).write_bytes(figure_png(under_attack_figure(result)))
        (tmp / FILES["result"]).write_text(json_text(report, indent=2) + "\n")
    return report


def summary(result: dict[str, Any]) -> str:
    readings = result["readings"]
    lines = [readings["decision"]["verdict"], readings["visibility"]["verdict"]]
    for method, v in result["maps"].items():
        lines.append(
            f"{method}: Spearman {format_number(v['spearman'])}, top-k overlap {format_number(v['topk_intersection'])}, "
            f"SSIM {format_number(v['ssim'])}, centre shift {format_number(v['center_shift_px'])} px, "
            f"|δ|² in top-k {format_number(v['delta_energy_in_topk'])} (clean map), "
            f"{format_number(v['delta_energy_in_attacked_topk'])} (attacked map)"
        )
        lines.append(f"  {readings['maps'][method]['verdict']}")
    lines.append(readings["overall"]["verdict"])
    lines.append(f"wrote {result['out']}/adversarial.png, figure.png and result.json")
    return "\n".join(lines)
