"""``advexp attack IMAGE --out DIR``: an adversarial example, saved as a lossless PNG with a report.

PAPER.md §4 step 2: a small (L∞ a few /255, or small RMS) perturbation that flips the decision.
Writes ``adversarial.png`` (at the model's input size) and ``result.json``; the report says
whether the decision still flips once the PNG is read back, since that file is what gets shared.

``add_attack_arguments`` and ``attack_image`` are reused by ``advexp compare``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advexp_core.attacks import AttackResult, fgsm, pgd
from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    atomic_output_dir,
    load_model_or_usage_error,
    parse_fraction,
    predictions,
    read_image_for_model,
    resolve_class,
    versions,
)
from advexp_core.geometry import NORMS
from advexp_core.imaging import encode_png
from advexp_core.models import LoadedModel

DEFAULT_EPS_255 = 2.0  # L∞ and RMS: 2/255; L2: the L2 size of an L∞ 2/255 sign pattern
TOP_K = 5


def register(sub: Any) -> None:
    parser = sub.add_parser("attack", help="craft an adversarial example and save it as a PNG")
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    add_model_argument(parser)
    add_attack_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="output folder (replaced only on success)")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """The attack options shared by ``attack`` and ``compare``."""
    parser.add_argument("--method", choices=("pgd", "fgsm"), default="pgd", help="default pgd")
    parser.add_argument("--norm", choices=NORMS, default="linf", help="perturbation norm (default linf)")
    parser.add_argument(
        "--eps",
        default=None,
        help="budget in [0,1] pixel units, e.g. 2/255 (default 2/255 for linf and rms; "
        "for l2 the L2 size of a 2/255 L∞ sign pattern at the model's input size)",
    )
    parser.add_argument("--steps", type=int, default=20, help="PGD steps (default 20)")
    parser.add_argument("--step-size", default=None, help="PGD step size (default 2.5·eps/steps)")
    parser.add_argument("--target", default=None, help="class name or index to reach (default: untargeted)")
    parser.add_argument(
        "--random-start", action="store_true", help="PGD: start at a random point of the ball"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random start (default 0)")


def _settings(args: argparse.Namespace, model: LoadedModel, label: int) -> dict[str, Any]:
    """Validated attack settings from the command line (UsageError on impossible ones)."""
    h, w = model.input_size
    if args.eps is None:
        eps = DEFAULT_EPS_255 / 255 * (math.sqrt(3 * h * w) if args.norm == "l2" else 1.0)
    else:
        eps = parse_fraction(args.eps)
    if not math.isfinite(eps) or eps < 0:
        raise UsageError(f"--eps must be a number >= 0, got {args.eps}.")
    if args.method == "fgsm":
        steps, step_size = 1, eps
    else:
        if args.steps < 1:
            raise UsageError(f"--steps must be at least 1, got {args.steps}.")
        steps = args.steps
        step_size = 2.5 * eps / steps if args.step_size is None else parse_fraction(args.step_size)
        if not math.isfinite(step_size) or step_size < 0:
            raise UsageError(f"--step-size must be a number >= 0, got {args.step_size}.")
    targeted = args.target is not None
    return {
        "model": model.model_id,
        "method": args.method,
        "norm": args.norm,
        "eps": eps,
        "eps_255": eps * 255,
        "steps": steps,
        "step_size": step_size,
        "targeted": targeted,
        "target": {"index": label, "label": model.class_names[label]} if targeted else None,
        "attacked_class": {"index": label, "label": model.class_names[label]},
        "random_start": bool(args.random_start and args.method == "pgd"),
        "seed": args.seed,
        "input_size": [h, w],
        "device": str(model.device),
    }


def attack_image(
    args: argparse.Namespace, model: LoadedModel, image: Tensor
) -> tuple[AttackResult, dict[str, Any]]:
    """Run the attack the command line asks for on one prepared image.

    Untargeted attacks move away from the model's own top-1 class; ``--target`` reaches a class.
    Returns: (the attack's result for a batch of one, the settings as recorded in result.json).
    Shapes: image (3, h, w) at the model's input size.
    """
    if args.target is not None:
        label = resolve_class(args.target, model.class_names)
    else:
        with torch.no_grad():
            label = int(model.module(image[None]).argmax(1)[0])
    settings = _settings(args, model, label)
    labels = torch.tensor([label])
    if args.method == "fgsm":
        result = fgsm(
            model.module,
            image[None],
            labels,
            eps=settings["eps"],
            norm=args.norm,
            targeted=settings["targeted"],
        )
    else:
        result = pgd(
            model.module, image[None], labels, eps=settings["eps"], steps=settings["steps"],
            step_size=settings["step_size"], norm=args.norm, targeted=settings["targeted"],
            random_start=settings["random_start"], generator=torch.Generator().manual_seed(args.seed),
        )  # fmt: skip
    return result, settings


def _number(value: Tensor) -> float | None:
    """A scalar for JSON (no Infinity/NaN: PSNR of an unchanged image is reported as null)."""
    number = float(value)
    return number if math.isfinite(number) else None


def attack_report(result: AttackResult, model: LoadedModel) -> dict[str, Any]:
    """The decision and perturbation part of result.json for example 0 of ``result``."""
    return {
        "predictions_before": predictions(result.logits_before[0], model.class_names, TOP_K),
        "predictions_after": predictions(result.logits_after[0], model.class_names, TOP_K),
        "png_predictions_after": predictions(result.png_logits_after[0], model.class_names, TOP_K),
        "perturbation": {
            "linf_255": _number(result.linf_255[0]),
            "l2": _number(result.l2[0]),
            "rms": _number(result.rms[0]),
            "psnr": _number(result.psnr[0]),
            "ssim": _number(result.ssim[0]),
        },
        "success": bool(result.success[0]),
        "png_success": bool(result.png_success[0]),
        "steps_run": result.steps_run,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = load_model_or_usage_error(args.model)
    image = read_image_for_model(args.image, model)
    result, settings = attack_image(args, model, image)
    report = {
        "command": "attack",
        "image": str(args.image),
        "settings": {"image": str(args.image), **settings},
        "versions": versions(),
        **attack_report(result, model),
        "files": {"adversarial": "adversarial.png", "result": "result.json"},
        "out": str(args.out),
    }
    with atomic_output_dir(args.out) as tmp:
        (tmp / "adversarial.png").write_bytes(encode_png(result.adversarial[0]))
        (tmp / "result.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def summary(result: dict[str, Any]) -> str:
    before, after = result["predictions_before"][0], result["predictions_after"][0]
    png = result["png_predictions_after"][0]
    p = result["perturbation"]
    verdict = "flipped" if result["success"] else "did not flip"
    return (
        f"{result['settings']['method']} ({result['settings']['norm']}): the decision {verdict}: "
        f"{before['label']} {before['probability']:.1%} -> {after['label']} {after['probability']:.1%}\n"
        f"as 8-bit PNG: {png['label']} {png['probability']:.1%} "
        f"({'still flipped' if result['png_success'] else 'not flipped'})\n"
        f"size: L∞ {p['linf_255']:.2f}/255, L2 {p['l2']:.4f}, RMS {p['rms']:.5f}, "
        f"PSNR {p['psnr'] if p['psnr'] is None else round(p['psnr'], 1)} dB, SSIM {p['ssim']:.4f}\n"
        f"wrote {result['out']}/adversarial.png and result.json"
    )
