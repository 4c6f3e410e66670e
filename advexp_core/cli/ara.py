"""``advexp ara --model ID|PATH --dataset D --out DIR``: Attack and BTR ARA (PAPER.md §3).

Writes ``DIR/result.json`` (both ARAs, clean accuracy, N, per-image ρ* for both boundaries, every
setting) and ``DIR/curve.png`` (A(ρ)); the folder appears only when everything succeeded. Under
``torchrun`` the test images are sharded over the processes (same result); process 0 writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import torch
import torch.distributed as dist

from advexp_core.ara import BoundaryNotReachedError, ara_figure, evaluate_ara
from advexp_core.cli.common import UsageError, add_json_argument, atomic_output_dir, versions
from advexp_core.datasets import DatasetError, load_dataset
from advexp_core.models import load_model


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "ara", help="Accuracy-Robustness Area (Attack and BTR) of a network on a test set"
    )
    parser.add_argument(
        "--model", required=True, help="model id (see `advexp models`) or an advexp .pt checkpoint"
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help="digits, cifar10, mnist, fashion-mnist, medmnist:FLAG, imagefolder:PATH",
    )
    parser.add_argument("--out", required=True, help="output folder (curve.png, result.json)")
    parser.add_argument("--split", default="test", help="dataset split (default test)")
    parser.add_argument(
        "--n-images", type=int, default=None, help="use the first N images of the split (default all)"
    )
    parser.add_argument("--steps", type=int, default=450, help="search steps S (default 450)")
    parser.add_argument("--size", type=float, default=20.0, help="search size, RMS units (default 20)")
    parser.add_argument("--momentum", type=float, default=0.9, help="search momentum (default 0.9)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per search batch (default 128)")
    parser.add_argument("--data-root", default=None, help="dataset download/cache folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)  # fmt: skip


def _check(args: argparse.Namespace) -> None:
    if args.steps < 1:
        raise UsageError("--steps must be at least 1.")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1.")
    if not args.size > 0:
        raise UsageError("--size must be > 0.")
    if not 0 <= args.momentum < 1:
        raise UsageError("--momentum must lie in [0, 1).")


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
    _check(args)
    owned = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo")  # ρ* are gathered as Python objects: gloo on any device
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - one result printed, by process 0
    try:
        return _run(args, rank)
    finally:
        if owned:
            dist.destroy_process_group()


def _run(args: argparse.Namespace, rank: int) -> dict[str, Any]:
    device = None
    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"  # one GPU per torchrun process
    model = load_model(args.model, device=device)
    try:
        dataset = load_dataset(args.dataset, args.split, root=args.data_root)
    except DatasetError as exc:
        raise UsageError(str(exc)) from exc
    if len(dataset.class_names) != model.num_classes:
        raise UsageError(
            f"{args.model} has {model.num_classes} classes but {args.dataset} has {len(dataset.class_names)}; "
            "the network was not trained on this dataset."
        )
    size = tuple(dataset[0][0].shape[-2:])
    if size != tuple(model.input_size):
        raise UsageError(
            f"{args.dataset} images are {size[0]}×{size[1]} but {args.model} takes {model.input_size}."
        )
    n = args.n_images if args.n_images is not None else len(dataset)
    if not 1 <= n <= len(dataset):
        raise UsageError(
            f"--n-images must be between 1 and {len(dataset)} (the size of the {args.split} split); got {n}."
        )
    try:
        result = evaluate_ara(
            model.module, dataset, n_images=n, num_classes=model.num_classes, steps=args.steps, size=args.size,
            momentum=args.momentum, batch_size=args.batch_size, on_progress=_progress(rank == 0 and not args.quiet),
        )  # fmt: skip
    except BoundaryNotReachedError as exc:
        raise UsageError(str(exc)) from exc
    data = result.to_dict()
    data["settings"].update(
        {
            "model": args.model,
            "dataset": args.dataset,
            "split": args.split,
            "n_images": n,
            "versions": versions(),
        }
    )
    data["model"] = model.model_id
    data["dataset"] = args.dataset
    if rank == 0:
        with atomic_output_dir(args.out) as tmp:
            (tmp / "result.json").write_text(json.dumps(data, indent=2))
            ara_figure(result, title=f"{model.model_id} on {args.dataset} (N = {n})").savefig(
                tmp / "curve.png"
            )
    data["out"] = str(args.out)
    return data


def summary(result: dict[str, Any]) -> str:
    return (
        f"{result['model']} on {result['dataset']} (N = {result['n_images']}): accuracy {result['accuracy']:.4f}, "
        f"Attack ARA {result['attack_ara']:.5f}, BTR ARA {result['btr_ara']:.5f}; wrote {result['out']}"
    )
