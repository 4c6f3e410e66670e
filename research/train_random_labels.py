"""Train ``digits-random-labels``: the standard digits recipe on permuted training labels.

The network of the data-randomisation sanity check (docs/method.md §5; Adebayo et al. 2018, §3.2):
the same architecture and recipe as ``digits-standard`` (``advexp train --dataset digits --recipe
standard --num-blocks 1,1,1 --widths 8,16,32``), but every training image carries the label of
another image, drawn by one seeded permutation of the label vector (class balance is kept), and,
so that this small network can memorise them, 150 epochs without random crops (with the recipe's
crops it fitted 27 % of the permuted labels after 60 epochs; without, 100 % after 150). The
network can only memorise, so a saliency map that looks the same for it as for ``digits-standard``
does not depend on what the true labels taught. Test accuracy is measured on the *true* test
labels (about chance, 0.1); the memorised training accuracy is measured on the permuted labels.

It trains through the public training API (`advexp_core.training.loop.train`) with a label-permuting
wrapper around the digits training set, then records how the labels were drawn in the checkpoint
and prints the manifest entry (JSON) on stdout.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m research.train_random_labels
Options: --out PATH (default checkpoints/digits-random-labels.pt), --epochs N, --seed S,
         --label-seed S, --crop-padding P, --force (replace an existing --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from advexp_core.data.datasets import load_dataset
from advexp_core.networks.checkpoints import load_checkpoint, save_checkpoint, sha256_file
from advexp_core.training.loop import TrainConfig, evaluate_accuracy, train

ROOT = Path(__file__).resolve().parent.parent
ID = "digits-random-labels"


class PermutedLabels(Dataset[tuple[Tensor, int]]):
    """A dataset whose labels are the original labels permuted across images (seeded).

    Image i keeps its pixels and gets the label of image perm[i]; the class counts are unchanged.

    Attributes:
        base: the wrapped dataset.
        labels: the permuted labels, (N,) int64.
        class_names, flip_ok: those of `base` (the training loop reads them).
    """

    def __init__(self, base: Any, *, seed: int) -> None:
        self.base = base
        original = torch.tensor([int(base[i][1]) for i in range(len(base))], dtype=torch.int64)
        perm = torch.randperm(len(original), generator=torch.Generator().manual_seed(seed))
        self.labels = original[perm]
        self.class_names = tuple(base.class_names)
        self.flip_ok = bool(getattr(base, "flip_ok", False))
        self.agreement = float((self.labels == original).float().mean())

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, _ = self.base[index]
        return image, int(self.labels[index])


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / f"{ID}.pt")
    parser.add_argument("--epochs", type=int, default=150, help="epochs (default 150: memorising takes long)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0, as digits-standard)")
    parser.add_argument("--label-seed", type=int, default=0, help="seed of the label permutation")
    parser.add_argument(
        "--crop-padding", type=int, default=0, help="random-crop padding (default 0: none; the recipe's is 4)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    return parser.parse_args(argv)


def _manifest_entry(args: argparse.Namespace, payload: dict[str, Any], extra: dict[str, Any]) -> dict:
    out = args.out.resolve()
    rel = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    command = (
        f"OMP_NUM_THREADS=1 python -m research.train_random_labels --epochs {args.epochs} "
        f"--seed {args.seed} --label-seed {args.label_seed} --crop-padding {args.crop_padding} --out {rel}"
    )
    return {
        "id": ID,
        "file": str(rel),
        "sha256": sha256_file(out),
        "recipe": payload["recipe"],
        "robust_additions": False,
        "labels": "permuted",
        "label_seed": args.label_seed,
        "seed": args.seed,
        "epochs": args.epochs,
        "config": payload["config"],
        "arch": payload["arch"],
        "command": command,
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.out.exists() and not args.force:
        sys.stderr.write(f"{args.out} exists; pass --force to replace it\n")
        return 2
    train_set = PermutedLabels(load_dataset("digits", "train"), seed=args.label_seed)
    test_set = load_dataset("digits", "test")
    # The flags of digits-standard's `advexp train` command, as a config.
    config = TrainConfig(
        recipe="standard", dataset="digits", epochs=args.epochs, batch_size=64, lr=0.1,
        crop_padding=args.crop_padding, flip=False, seed=args.seed, num_blocks=(1, 1, 1), widths=(8, 16, 32),
    )  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, train_set, test_set, checkpoint_path=Path(tmp) / "run.pt", release=True)
        payload = load_checkpoint(Path(tmp) / "run.pt")
    seconds = time.perf_counter() - start
    memorised = evaluate_accuracy(result.model, train_set)
    labels = {"labels": "permuted", "label_seed": args.label_seed, "label_agreement": train_set.agreement}
    payload.update(labels)
    payload["metrics"]["train_accuracy_permuted"] = memorised
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, payload)
    extra = {
        "test_accuracy": payload["metrics"]["test_accuracy"],
        "test_accuracy_note": "on the true test labels: chance is about 0.1",
        "train_accuracy_permuted": memorised,
        "label_agreement": train_set.agreement,
        "n_test_images": len(test_set),
        "train_seconds": round(seconds, 1),
    }
    sys.stdout.write(json.dumps(_manifest_entry(args, payload, extra), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
