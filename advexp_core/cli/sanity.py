"""``advexp sanity IMAGE --model M --out DIR``: do the maps follow the network? (docs/method.md §5).

Cascading model randomisation (Adebayo et al. 2018): a copy of the network is re-initialised from
the output layer down, and after each step every method's map is compared with the trained
network's (Spearman of absolute values, SSIM). For ``digits-standard`` the data-randomisation check
compares it with ``digits-random-labels`` map by map on digits test images. Writes ``sanity.json``
({"model", "image", "methods": {name: {"layers", "spearman", "ssim"}}, "seed", ...}) and
``sanity.png`` (the curves with the maps under them).

Cost: (1 + measured points) maps per method; ``--max-layers`` spreads the points evenly down the
network (EfficientNet-Lite0 has 21 layers to randomise), ``--max-layers all`` measures after each.
"""

from __future__ import annotations

import argparse
from typing import Any

from advexp_core.base.jsonsafe import format_number
from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    image_description,
    json_text,
    load_model_or_usage_error,
    read_image_for_model,
    usage_errors,
)
from advexp_core.cli.compare import parse_methods
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.experiments import SanityConfig, sanity_checks, sanity_plan
from advexp_core.experiments.report import versions
from advexp_core.methods.saliency import METHODS
from advexp_core.plots.figures import figure_png
from advexp_core.plots.sanity import sanity_figure

DEFAULT = SanityConfig()
FILES = {"result": "sanity.json", "figure": "sanity.png"}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "sanity", help="randomisation sanity checks: do the maps change when the weights are destroyed?"
    )
    parser.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF, DICOM)")
    add_model_argument(parser)
    methods = ",".join(DEFAULT.methods)
    parser.add_argument(
        "--methods",
        default=methods,
        help=f"comma-separated methods from {','.join(METHODS)} (default {methods})",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT.seed, help=f"re-initialisation seed (default {DEFAULT.seed})"
    )
    parser.add_argument(
        "--max-layers",
        default=str(DEFAULT.max_layers),
        metavar="N|all",
        help=f"measure after at most N randomisation steps, spread evenly (default {DEFAULT.max_layers}; all: every layer)",
    )
    parser.add_argument(
        "--no-data", action="store_true", help="skip the data-randomisation check (digits-standard)"
    )
    add_out_argument(parser, "sanity.json, sanity.png")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def sanity_config(args: argparse.Namespace) -> SanityConfig:
    """The checks the command line asks for (UsageError on an unknown method or a bad --max-layers)."""
    text = str(args.max_layers).strip().lower()
    if text != "all" and not text.isdigit():
        raise UsageError(f"--max-layers must be a positive integer or 'all', got {args.max_layers!r}.")
    with usage_errors("--methods/--max-layers: "):
        return SanityConfig(
            methods=parse_methods(args.methods),
            seed=args.seed,
            max_layers=None if text == "all" else int(text),
            data=not args.no_data,
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = sanity_config(args)
    model = load_model_or_usage_error(args.model)
    image = read_image_for_model(args.image, model)
    with usage_errors():  # e.g. a model with no layer to randomise, Grad-CAM without a conv layer
        plan = sanity_plan(model, config)
        result = sanity_checks(model, image, config, image_name=str(args.image))
    report = {
        **result.to_json(),
        **image_description(args),
        "layers_measured": len(plan.measured),
        "maps_computed": plan.maps,
        "versions": versions(),
        "files": FILES,
        "out": str(args.out),
    }
    with output_folder(args) as tmp:
        (tmp / FILES["figure"]).write_bytes(figure_png(sanity_figure(result.cascade, result.image)))
        (tmp / FILES["result"]).write_text(json_text(report, indent=2) + "\n")
    return report


def summary(result: dict[str, Any]) -> str:
    layers = len(result["layers_all"])
    lines = [
        f"{result['model']}: randomised {layers} layers from the output down, maps measured after "
        f"{result['layers_measured']} of them ({result['maps_computed']} maps)"
    ]
    for method, curve in result["methods"].items():
        lines.append(
            f"{method}: fully randomised, Spearman {format_number(curve['spearman'][-1])}, SSIM {format_number(curve['ssim'][-1])}"
        )
    if result.get("data"):
        for method, v in result["data"]["methods"].items():
            lines.append(
                f"{method} vs {result['data']['partner']}: mean Spearman {format_number(v['mean_spearman'])}, "
                f"mean SSIM {format_number(v['mean_ssim'])}"
            )
    lines.append(result["reading"])
    lines.append(f"wrote {result['out']}/{FILES['result']} and {FILES['figure']}")
    return "\n".join(lines)
