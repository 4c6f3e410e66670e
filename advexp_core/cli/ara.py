"""``advexp ara --model ID|PATH --dataset D --out DIR``: Attack and BTR ARA (docs/method.md §3).

Writes ``DIR/result.json`` (both ARAs and the clean accuracy, each with its 95 % interval as
``<name>_ci``: the areas a bootstrap over the images, seed 0; the dataset indices used, per-image ρ* and
the step each was first found at, how many were found after step S/2, every setting),
``DIR/rho.json`` (just the per-image ρ* with the settings: the file kept beside a shipped checkpoint,
``advexp_core.experiments.shipped``) and ``DIR/curve.png`` (A(ρ)); the folder appears only when everything succeeded. Under ``torchrun``
the images are sharded over the processes (same result); process 0 writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from advexp_core.base.distributed import DistContext, process_group
from advexp_core.cli.common import (
    UsageError,
    add_json_argument,
    add_model_argument,
    json_text,
    load_model_or_usage_error,
    usage_errors,
)
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.data.datasets import DATASET_NAMES, load_dataset
from advexp_core.experiments.ara import ARAConfig, RobustnessResult, robustness_experiment
from advexp_core.experiments.shipped import rho_record
from advexp_core.methods.ara import BoundaryNotReachedError, ara_figure
from advexp_core.readings.intervals import with_interval

_DEFAULT = ARAConfig()


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "ara", help="Accuracy-Robustness Area (Attack and BTR) of a network on a test set"
    )
    add_model_argument(parser, required=True)
    parser.add_argument("--dataset", required=True, help=f"one of {', '.join(DATASET_NAMES)}")
    add_out_argument(parser, "curve.png, result.json, rho.json")
    parser.add_argument("--split", default=_DEFAULT.split, help=f"dataset split (default {_DEFAULT.split})")
    parser.add_argument("--n-images", type=int, default=_DEFAULT.n_images, help="use N images (default all)")
    parser.add_argument(
        "--sample",
        choices=("reference", "first"),
        default=_DEFAULT.sample,
        help="which N: the authors' random subset (seed 1776, default) or the first N",
    )
    for flag, kind, default, text in (
        ("--steps", int, _DEFAULT.steps, "search steps S"),
        ("--size", float, _DEFAULT.size, "search size, RMS units"),
        ("--momentum", float, _DEFAULT.momentum, "search momentum"),
        ("--batch-size", int, _DEFAULT.batch_size, "images per search batch"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default:g})")
    parser.add_argument("--data-root", default=None, help="dataset download/cache folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def _config(args: argparse.Namespace) -> ARAConfig:
    config = ARAConfig(
        n_images=args.n_images, steps=args.steps, size=args.size, momentum=args.momentum,
        batch_size=args.batch_size, split=args.split, sample=args.sample,
    )  # fmt: skip
    with usage_errors("--"):  # "--steps must be at least 1."
        config.check()
    return config


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, file=sys.stderr, leave=False, unit="step", dynamic_ncols=True))
        bar[0].update(1)
        if done == total:
            bar[0].close()

    return update


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = _config(args)
    with process_group() as ctx:
        if ctx.rank != 0:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - one result printed, by process 0
        return _run(args, config, ctx)


def _run(args: argparse.Namespace, config: ARAConfig, ctx: DistContext) -> dict[str, Any]:
    model = load_model_or_usage_error(args.model, device=ctx.device)
    with usage_errors():
        dataset = load_dataset(args.dataset, config.split, root=args.data_root)
        if config.n_images is not None and config.n_images > len(dataset):
            raise UsageError(
                f"--n-images must be between 1 and {len(dataset)} (the size of the {config.split} split); "
                f"got {config.n_images}."
            )
        progress = _progress(ctx.rank == 0 and not args.quiet)
        try:
            result = robustness_experiment(model, dataset, config, on_step=progress, ctx=ctx)
        except BoundaryNotReachedError as exc:  # the core speaks of settings; name the flags here
            raise UsageError(f"{exc} (--steps, --size)") from exc
    for warning in result.warnings if ctx.rank == 0 else ():
        sys.stderr.write(f"warning: {warning}\n")
    data = _result_json(args, result)
    if ctx.rank == 0:
        with output_folder(args) as tmp:
            (tmp / "result.json").write_text(json_text(data, indent=2))
            rho = rho_record(
                result.ara,
                model_id=model.model_id,
                dataset=args.dataset,
                split=config.split,
                sample=config.sample,
            )
            (tmp / "rho.json").write_text(json.dumps(rho, indent=1) + "\n")
            title = f"{model.model_id} on {args.dataset} (N = {result.ara.n_images})"
            ara_figure(result.ara, title=title).savefig(tmp / "curve.png")
    return {**data, "out": str(args.out)}


def _result_json(args: argparse.Namespace, result: RobustnessResult) -> dict[str, Any]:
    """The experiment's report with the command line's own words for the model and the dataset."""
    data = dict(result.report)
    data["settings"] = {**data["settings"], "model": args.model, "dataset": args.dataset}
    data["dataset"] = args.dataset
    return data


def summary(result: dict[str, Any]) -> str:
    """The areas and the accuracy, each with its 95 % interval, and the reading."""
    late = sum(v["count"] for v in result["late_minimum"].values())
    flagged = f"; {late} minima found after step S/2 (see warnings)" if late else ""
    seed = result["settings"].get("bootstrap_seed", 0)
    return (
        f"{result['model']} on {result['dataset']} (N = {result['n_images']}): accuracy "
        f"{with_interval(result['accuracy'], result.get('accuracy_ci'), digits=4)}, "
        f"Attack ARA {with_interval(result['attack_ara'], result.get('attack_ara_ci'), digits=5)}, "
        f"BTR ARA {with_interval(result['btr_ara'], result.get('btr_ara_ci'), digits=5)}{flagged}; "
        f"wrote {result['out']}\n"
        f"[95 % intervals: the areas bootstrapped over the images (seed {seed}), the accuracy Wilson]\n"
        f"{result['reading']['verdict']}"
    )
