"""``advexp train --dataset D --recipe R --out PATH``: train a network with the paper's recipes (docs/method.md §1).

One process on the CPU by default; ``torchrun --nproc_per_node K -m advexp_core train …`` trains with
DDP on K processes (GPUs when present), with the same result as one process up to BatchNorm batch
statistics. A checkpoint is written atomically after every epoch; ``--resume`` continues an
interrupted run to the same result. A per-epoch log and a progress bar go to stderr (``--quiet``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from advexp_core.cli.common import UsageError, add_json_argument
from advexp_core.data.datasets import DATASET_NAMES, DatasetError, load_dataset
from advexp_core.networks.checkpoints import sha256_file
from advexp_core.training.loop import EpochLog, TrainConfig, train
from advexp_core.training.robust import RECIPES, TrainingError, get_recipe


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "train", help="train a network with the paper's recipes (standard/adv-train/robust/all)"
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help=f"one of {', '.join(DATASET_NAMES)}",
    )
    parser.add_argument("--recipe", required=True, help=f"one of {', '.join(RECIPES)}")
    parser.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    parser.add_argument("--epochs", type=int, default=200, help="number of epochs (default 200, the paper's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size (default 128)")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    parser.add_argument(
        "--num-blocks", default="7,7,7", help="residual blocks per stage (default 7,7,7: ResNet-44)"
    )
    parser.add_argument("--widths", default="16,32,64", help="channels per stage (default 16,32,64)")
    parser.add_argument(
        "--flip", choices=("auto", "yes", "no"), default="auto", help="horizontal flips (auto: per dataset)"
    )
    parser.add_argument(
        "--l-target",
        type=float,
        default=None,
        help="psi controller's target cross-entropy (default 1.5 * ln C / ln 10: 1.5 for 10 classes)",
    )
    parser.add_argument("--data-root", default=None, help="dataset download/cache folder")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    parser.add_argument(
        "--warm-start",
        default=None,
        metavar="CHECKPOINT",
        help="start from this advexp checkpoint's weights and psi (same recipe and classes): a curriculum's next stage",
    )
    parser.add_argument(
        "--release", action="store_true", help="drop the optimiser state from the final checkpoint"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or epoch log on stderr")
    add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise UsageError(f"{flag} must be comma-separated integers, e.g. 1,1,1; got {text!r}") from exc
    if not values or min(values) < 1:
        raise UsageError(f"{flag} values must be >= 1; got {text!r}")
    return values


def _config(args: argparse.Namespace, flip_ok: bool) -> TrainConfig:
    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1.")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1.")
    blocks, widths = _ints(args.num_blocks, "--num-blocks"), _ints(args.widths, "--widths")
    if len(blocks) != len(widths):
        raise UsageError("--num-blocks and --widths need the same number of stages.")
    flip = flip_ok if args.flip == "auto" else args.flip == "yes"
    if args.l_target is not None and not args.l_target > 0:
        raise UsageError("--l-target must be > 0.")
    return TrainConfig(
        recipe=args.recipe, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        flip=flip, seed=args.seed, num_blocks=blocks, widths=widths, l_target=args.l_target,
    )  # fmt: skip


class _Reporter:
    """Progress bar and epoch log on stderr, from process 0 only."""

    def __init__(self, epochs: int, enabled: bool) -> None:
        self.epochs, self.enabled = epochs, enabled
        self.bar: Any = None

    def step(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, file=sys.stderr, leave=False, unit="batch", dynamic_ncols=True)
        self.bar.update(1)

    def epoch(self, log: EpochLog) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            sys.stderr.write(
                f"epoch {log.epoch}/{self.epochs}  loss {log.loss:.4f}  penalty {log.penalty:.4f}  "
                f"psi {log.psi:.4g}  train acc {log.train_accuracy:.3f}  test acc {log.test_accuracy:.3f}  "
                f"lr {log.lr:g}  {log.seconds:.1f} s\n"
            )
            sys.stderr.flush()


def run(args: argparse.Namespace) -> dict[str, Any]:
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - one result printed, by process 0
    try:
        get_recipe(args.recipe)
        out = Path(args.out)
        if out.exists() and not args.resume:
            raise UsageError(f"--out {out} exists; pass --resume to continue it, or choose another path.")
        train_set = load_dataset(args.dataset, "train", root=args.data_root)
        test_set = load_dataset(args.dataset, "test", root=args.data_root)
        config = _config(args, train_set.flip_ok)
        report = _Reporter(config.epochs, enabled=rank == 0 and not args.quiet)
        result = train(
            config, train_set, test_set, checkpoint_path=out, resume=args.resume, release=args.release,
            warm_start=args.warm_start,
            device=args.device, on_step=report.step, on_epoch=report.epoch,
        )  # fmt: skip
    except (DatasetError, TrainingError) as exc:
        raise UsageError(str(exc)) from exc
    metrics = result.payload["metrics"]
    return {
        "out": str(out),
        "sha256": sha256_file(out) if out.is_file() else None,
        "recipe": config.recipe,
        "dataset": config.dataset,
        "epochs": config.epochs,
        "seed": config.seed,
        "test_accuracy": metrics["test_accuracy"],
        "psi": metrics["psi"],
        "l_target": result.payload["psi_state"]["l_target"],
        "train_seconds": metrics["train_seconds"],
        "history": metrics["history"],
    }


def summary(result: dict[str, Any]) -> str:
    return (
        f"{result['out']}: recipe {result['recipe']} on {result['dataset']}, {result['epochs']} epochs, "
        f"test accuracy {result['test_accuracy']:.4f}, psi {result['psi']:.4g}, "
        f"{result['train_seconds']:.0f} s of training"
    )
