"""``advexp attack IMAGE --out DIR``: an adversarial example, saved as a lossless PNG with a report.

docs/method.md §4 step 2: a small (L∞ a few /255, or small RMS) perturbation that flips the decision.
Writes ``adversarial.png`` (at the model's input size) and ``result.json``; the report says
whether the decision still flips once the PNG is read back, since that file is what gets shared.

``add_attack_arguments`` and ``attack_config`` are reused by ``advexp compare``.
"""

from __future__ import annotations

import argparse
from typing import Any

from advexp_core.cli import common
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.data.imaging import encode_png
from advexp_core.experiments import ATTACK_METHODS, AttackConfig, adversarial_example, norm_scale
from advexp_core.methods.geometry import NORMS
from advexp_core.networks.registry import LoadedModel

DEFAULT = AttackConfig()
FILES = {"adversarial": "adversarial.png", "result": "result.json"}


def register(sub: Any) -> None:
    parser = sub.add_parser("attack", help="craft an adversarial example and save it as a PNG")
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF, DICOM)")
    common.add_model_argument(parser)
    add_attack_arguments(parser)
    add_out_argument(parser, "adversarial.png, result.json")
    common.add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """The attack options shared by ``attack`` and ``compare`` (defaults from AttackConfig)."""
    parser.add_argument(
        "--method", choices=ATTACK_METHODS, default=DEFAULT.method, help=f"default {DEFAULT.method}"
    )
    parser.add_argument(
        "--norm", choices=NORMS, default=DEFAULT.norm, help=f"perturbation norm (default {DEFAULT.norm})"
    )
    parser.add_argument(
        "--eps",
        default=None,
        help=f"budget in [0,1] pixel units, e.g. 2/255 (default {DEFAULT.eps_255:g}/255 for linf and rms; "
        f"for l2 the L2 size of a {DEFAULT.eps_255:g}/255 L∞ sign pattern at the model's input size)",
    )
    parser.add_argument(
        "--steps", type=int, default=DEFAULT.steps, help=f"PGD steps (default {DEFAULT.steps})"
    )
    parser.add_argument("--step-size", default=None, help="PGD step size (default 2.5·eps/steps)")
    parser.add_argument("--target", default=None, help="class name or index to reach (default: untargeted)")
    parser.add_argument(
        "--random-start", action="store_true", help="PGD: start at a random point of the ball"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT.seed, help=f"seed of the random start (default {DEFAULT.seed})"
    )


def attack_config(args: argparse.Namespace, model: LoadedModel) -> AttackConfig:
    """The attack the command line asks for (UsageError on impossible settings).

    An explicit ``--eps`` is in [0,1] units of the norm; the config keeps budgets in 1/255 steps.
    """
    target = None if args.target is None else common.resolve_class(args.target, model.class_names)
    eps_255 = DEFAULT.eps_255
    if args.eps is not None:
        eps_255 = common.parse_fraction(args.eps) * 255 / norm_scale(args.norm, model.input_size)
    step_size = None if args.step_size is None else common.parse_fraction(args.step_size)
    with common.usage_errors("--"):
        return AttackConfig(
            method=args.method, norm=args.norm, eps_255=eps_255, steps=args.steps, step_size=step_size,
            target=target, random_start=bool(args.random_start), seed=args.seed,
        )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = common.load_model_or_usage_error(args.model)
    image = common.read_image_for_model(args.image, model)
    config = attack_config(args, model)
    with common.usage_errors():
        result = adversarial_example(model, image, config)
    report = common.command_report("attack", args, result.to_json(), FILES)
    with output_folder(args) as tmp:
        (tmp / FILES["adversarial"]).write_bytes(encode_png(result.adversarial))
        (tmp / FILES["result"]).write_text(common.json_text(report, indent=2) + "\n")
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
