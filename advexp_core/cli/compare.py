"""``advexp compare IMAGE --out DIR``: saliency maps of the clean and the attacked image, side by side.

PAPER.md §4 steps 1-4: explain the clean image, attack it (the same options as ``advexp attack``),
explain the attacked image the same way in the same batched call, and measure how far each map
moved and how much of |δ|² lies where the clean map points. Writes ``adversarial.png``,
``figure.png`` and ``result.json`` (everything ``attack`` writes, plus ``maps``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advexp_core import metrics
from advexp_core.attacks import AttackResult
from advexp_core.cli.attack import add_attack_arguments, attack_image, attack_report
from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    atomic_output_dir,
    load_model_or_usage_error,
    parse_fraction,
    read_image_for_model,
    versions,
)
from advexp_core.figures import compare_figure, figure_png
from advexp_core.imaging import encode_png
from advexp_core.models import LoadedModel
from advexp_core.saliency import METHODS, SaliencyMap, colour_scales, explain_pair, find_last_conv_block

DEFAULT_METHODS = "gradcam,ig"


def register(sub: Any) -> None:
    parser = sub.add_parser("compare", help="saliency maps of the clean and the attacked image, with metrics")
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    add_model_argument(parser)
    add_attack_arguments(parser)
    parser.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated saliency methods from {','.join(METHODS)} (default {DEFAULT_METHODS})",
    )
    parser.add_argument("--ig-steps", type=int, default=32, help="Integrated Gradients steps (default 32)")
    parser.add_argument("--ig-baseline", choices=("black", "blur"), default="black", help="IG baseline")
    parser.add_argument("--smoothgrad-samples", type=int, default=16, help="SmoothGrad samples (default 16)")
    parser.add_argument("--smoothgrad-sigma", default="0.15", help="SmoothGrad noise, [0,1] units")
    parser.add_argument("--topk", default="0.2", help="top-k region as a share of pixels (default 0.2)")
    parser.add_argument("--per-map-scale", action="store_true", help="one colour scale per map in the figure")
    parser.add_argument("--out", required=True, type=Path, help="output folder (replaced only on success)")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def _saliency_settings(args: argparse.Namespace, model: LoadedModel) -> dict[str, Any]:
    """Validated saliency options (UsageError for impossible ones)."""
    methods = [m.strip() for m in str(args.methods).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise UsageError(
            f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(METHODS)}."
        )
    if "gradcam" in methods and model.gradcam_layer is None:
        try:
            with model.lock:  # the search hooks the shared module for one forward pass
                find_last_conv_block(model.module, input_size=model.input_size)
        except ValueError as exc:
            raise UsageError(f"--methods gradcam: {exc}.") from exc
    k = parse_fraction(args.topk)
    sigma = parse_fraction(args.smoothgrad_sigma)
    if not 0 < k <= 1:
        raise UsageError(f"--topk must be a share of pixels in (0, 1], got {args.topk}.")
    if args.ig_steps < 1 or args.smoothgrad_samples < 1 or not math.isfinite(sigma) or sigma < 0:
        raise UsageError("--ig-steps and --smoothgrad-samples must be >= 1 and --smoothgrad-sigma >= 0.")
    return {
        "methods": list(dict.fromkeys(methods)),
        "ig_steps": args.ig_steps,
        "ig_baseline": args.ig_baseline,
        "smoothgrad_samples": args.smoothgrad_samples,
        "smoothgrad_sigma": sigma,
        "topk": k,
        "per_map_scale": bool(args.per_map_scale),
        "explained_class": "each image's own top-1 class",
    }


def _method_kwargs(method: str, s: dict[str, Any], seed: int) -> dict[str, Any]:
    if method == "ig":
        return {"n_steps": s["ig_steps"], "baseline": s["ig_baseline"]}
    if method == "smoothgrad":
        gen = torch.Generator().manual_seed(seed)
        return {"n_samples": s["smoothgrad_samples"], "sigma": s["smoothgrad_sigma"], "generator": gen}
    return {}


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def explain_attack(
    model: LoadedModel, image: Tensor, result: AttackResult, s: dict[str, Any], *, seed: int
) -> tuple[dict[str, tuple[SaliencyMap, SaliencyMap]], dict[str, dict[str, float | None]]]:
    """Every requested map for the clean and the attacked image (one batched call per method) and
    their similarity numbers.

    Each image is explained for its own top-1 class. Returns (method -> (clean, attacked) maps,
    method -> metrics as in result.json, NaN written as None).

    Shapes: image (3, h, w); result for a batch of one.
    """
    clean, adv = image[None], result.adversarial.to(image.device)
    before = result.logits_before.argmax(dim=1)
    after = result.logits_after.argmax(dim=1)
    delta = (adv - clean)[0]
    maps: dict[str, tuple[SaliencyMap, SaliencyMap]] = {}
    numbers: dict[str, dict[str, float | None]] = {}
    for method in s["methods"]:
        kwargs = _method_kwargs(method, s, seed)
        pair = explain_pair(model, clean, adv, before, after, method=method, **kwargs)
        maps[method] = pair
        values = metrics.compare_maps(pair[0].maps[0], pair[1].maps[0], delta, k=s["topk"])
        numbers[method] = {name: _json_number(v) for name, v in values.items()}
    return maps, numbers


def _readings(report: dict[str, Any], k: float) -> dict[str, Any]:
    """One plain sentence per number of the report (null numbers get no sentence)."""
    out: dict[str, Any] = {"perturbation": {}, "maps": {}}
    for name, value in report["perturbation"].items():
        if value is None and name == "psnr":
            value = math.inf  # written as null in JSON: the image did not change
        out["perturbation"][name] = None if value is None else metrics.reading(name, value)
    for method, values in report["maps"].items():
        out["maps"][method] = {
            name: metrics.reading("map_ssim" if name == "ssim" else name, math.nan if v is None else v, k=k)
            for name, v in values.items()
        }
    return out


def _extras(maps: dict[str, tuple[SaliencyMap, SaliencyMap]], per_map: bool) -> dict[str, Any]:
    """Per-method details for result.json: explained classes, colour scales, IG completeness."""
    out: dict[str, Any] = {}
    for method, (m_clean, m_adv) in maps.items():
        scales = colour_scales(m_clean.maps, m_adv.maps, per_map=per_map)
        entry: dict[str, Any] = {
            "classes": {"clean": int(m_clean.target[0]), "attacked": int(m_adv.target[0])},
            "colour_scale": {"clean": list(scales[0]), "attacked": list(scales[1])},
        }
        if "convergence_delta" in m_clean.extra:
            entry["convergence_delta"] = {
                "clean": float(m_clean.extra["convergence_delta"][0]),
                "attacked": float(m_adv.extra["convergence_delta"][0]),
            }
        out[method] = entry
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = load_model_or_usage_error(args.model)
    image = read_image_for_model(args.image, model)
    saliency_settings = _saliency_settings(args, model)
    result, settings = attack_image(args, model, image)
    maps, numbers = explain_attack(model, image, result, saliency_settings, seed=args.seed)
    report: dict[str, Any] = {
        "command": "compare",
        "image": str(args.image),
        "settings": {"image": str(args.image), **settings, "saliency": saliency_settings},
        "versions": versions(),
        **attack_report(result, model),
        "maps": numbers,
        "saliency": _extras(maps, saliency_settings["per_map_scale"]),
        "files": {"adversarial": "adversarial.png", "figure": "figure.png", "result": "result.json"},
        "out": str(args.out),
    }
    report["readings"] = _readings(report, saliency_settings["topk"])
    fig = compare_figure(
        image, result.adversarial[0],
        {m: (a.maps[0], b.maps[0]) for m, (a, b) in maps.items()},
        predictions_before=report["predictions_before"], predictions_after=report["predictions_after"],
        metrics=numbers, per_map_scale=saliency_settings["per_map_scale"],
    )  # fmt: skip
    with atomic_output_dir(args.out) as tmp:
        (tmp / "adversarial.png").write_bytes(encode_png(result.adversarial[0]))
        (tmp / "figure.png").write_bytes(figure_png(fig))
        (tmp / "result.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def summary(result: dict[str, Any]) -> str:
    before, after = result["predictions_before"][0], result["predictions_after"][0]
    verdict = "flipped" if result["success"] else "did not flip"
    png = "still flipped" if result["png_success"] else "not flipped"
    lines = [
        f"the decision {verdict}: {before['label']} {before['probability']:.1%} -> "
        f"{after['label']} {after['probability']:.1%} (as 8-bit PNG: {png})"
    ]
    for method, values in result["maps"].items():

        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.2f}"

        lines.append(
            f"{method}: Spearman {fmt(values['spearman'])}, top-k overlap {fmt(values['topk_intersection'])}, "
            f"SSIM {fmt(values['ssim'])}, centre shift {fmt(values['center_shift_px'])} px, "
            f"|δ|² in top-k {fmt(values['delta_energy_in_topk'])}"
        )
    lines.append(f"wrote {result['out']}/adversarial.png, figure.png and result.json")
    return "\n".join(lines)
