"""Can a robust network decide by the lesion? Measure one trained lesions network and record it.

Every attempt is a checkpoint made by ``advexp train`` (its config, ψ, training time and any warm start
are read from the file). For it this script measures, with the network as the app loads it:

- accuracy on the whole lesions ``test`` split (1,000 images) as drawn, with every ruler removed and
  with a ruler on every image, and on ``test-unbiased``;
- its reliance on the ruler on the first N ``test`` images (``reliance.shortcut_reliance``): the share
  of the images with a ruler whose decision changes when it is removed, and of those without one
  whose decision changes when one is drawn on;
- an L∞ 2/255 PGD attack (the scorecard's, `ScorecardConfig().attack`) on the same N images: how many
  of its correct decisions flip (a cheap robustness reading; the ARA is the full one).

The entry is written under LABEL in ``checkpoints/robust-attempts.json`` (replacing one of that label),
with the ``advexp train`` command that makes it; a warm-started attempt names the attempt it started
from. Every rate has its 95 % Wilson interval beside it (``<name>_ci``; docs/method.md §9);
``--intervals`` writes them into the stored entries from their counts, measuring nothing.
``scripts/update_readme.py`` renders research/README.md's table from that file.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m research.robust_lesion_attempts LABEL CHECKPOINT [--what TEXT]
     [--shipped ID] [--n-images N]
     .venv/bin/python -m research.robust_lesion_attempts --intervals
Exit codes: 0 recorded, 2 bad arguments (not an advexp lesions checkpoint).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from advexp_core.base.statistics import wilson_interval
from advexp_core.data.datasets import LESIONS_SIZES
from advexp_core.evaluation.reliance import RelianceError, lesion_twins, shortcut_reliance
from advexp_core.experiments.scorecard_results import ScorecardConfig
from advexp_core.methods.attacks import pgd
from advexp_core.networks.checkpoints import CheckpointError, load_checkpoint, sha256_file
from advexp_core.networks.registry import load_model
from advexp_core.networks.zoo import ModelError
from research.ship_groundtruth import train_argv

ROOT = Path(__file__).resolve().parent.parent

RECORD = ROOT / "checkpoints" / "robust-attempts.json"
ABOUT = (
    "Lesions networks trained while looking for a robust network that decides by the lesion rather than "
    "the ruler (docs/method.md §7). Each entry: the training command, the checkpoint's sha256, accuracy on "
    "the whole test split as drawn / rulers removed / rulers on all and on test-unbiased, reliance on the "
    "first n_images test images (decisions changed when the ruler is removed / drawn on) and the "
    "correct decisions of those images that an L-inf 2/255 PGD attack (20 steps) flips; each rate's 95 % "
    "Wilson interval in <name>_ci (docs/method.md §9). Written by research/robust_lesion_attempts.py."
)


def train_command(payload: dict[str, Any], label: str, attempts: dict[str, Any]) -> str:
    """The ``advexp train`` command that makes the checkpoint (the warm start named by its attempt)."""
    start, warm = payload.get("warm_start"), None
    if start:
        earlier = next((k for k, a in attempts.items() if a["sha256"] == start["sha256"]), None)
        warm = f"{earlier}.pt" if earlier else Path(start["file"]).name
    argv = train_argv(payload["config"], f"{label}.pt", warm_start=warm)
    return "OMP_NUM_THREADS=1 python -m advexp_core " + shlex.join(argv)


def pgd_flips(model: Any, n_images: int) -> tuple[int, int]:
    """(correct decisions, of those flipped) under the scorecard's attack on the first N test images."""
    twins = lesion_twins("test", n_images)
    attack, size = ScorecardConfig().attack, model.input_size
    result = pgd(
        model.module,
        twins.images.to(model.device),
        twins.labels.to(model.device),
        eps=attack.eps(size),
        steps=attack.effective_steps,
        step_size=attack.effective_step_size(size),
        norm=attack.norm,
        random_start=attack.random_start,
        generator=torch.Generator().manual_seed(attack.seed),
    )
    labels = twins.labels.to(model.device)
    correct = result.logits_before.argmax(1) == labels
    flipped = correct & (result.logits_after.argmax(1) != labels)
    return int(correct.sum()), int(flipped.sum())


def measure(label: str, path: Path, what: str, shipped: str | None, n_images: int) -> dict[str, Any]:
    payload = load_checkpoint(path)
    model = load_model(str(path), device="cpu")
    whole = shortcut_reliance(model, split="test", n_images=1000).accuracy()
    unbiased = shortcut_reliance(model, split="test-unbiased", n_images=1000).accuracy()
    shortcut = shortcut_reliance(model, split="test", n_images=n_images).shortcut()
    correct, flipped = pgd_flips(model, n_images)
    attempts = json.loads(RECORD.read_text())["attempts"] if RECORD.is_file() else {}
    start = payload.get("warm_start")
    return {
        "what": what,
        "shipped_as": shipped,
        "command": train_command(payload, label, attempts),
        "sha256": sha256_file(path),
        "recipe": payload["recipe"],
        "dataset": payload["config"]["dataset"],
        "epochs": payload["config"]["epochs"],
        "warm_start": None if not start else {k: start[k] for k in ("sha256", "dataset", "recipe", "epochs")},
        "psi": payload["psi_state"]["psi"],
        "train_seconds": round(payload["metrics"]["train_seconds"], 1),
        "test_accuracy": whole,
        "test_unbiased_accuracy": unbiased["as_is"],
        "n_images": n_images,
        "images_with_ruler": shortcut["images_with"],
        "changed_when_removed": shortcut["n_changed_when_removed"],
        "images_without_ruler": shortcut["images_without"],
        "changed_when_added": shortcut["n_changed_when_added"],
        "pgd_correct": correct,
        "pgd_flipped": flipped,
    }


def _wilson(k: int, n: int) -> list[float] | None:
    return list(wilson_interval(k, n)) if n else None


def with_intervals(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with each rate's Wilson interval beside it (accuracies over the whole splits)."""
    test, unbiased = LESIONS_SIZES["test"], LESIONS_SIZES["test-unbiased"]
    return {
        **entry,
        "test_accuracy_ci": {k: _wilson(round(v * test), test) for k, v in entry["test_accuracy"].items()},
        "test_unbiased_accuracy_ci": _wilson(round(entry["test_unbiased_accuracy"] * unbiased), unbiased),
        "changed_when_removed_ci": _wilson(entry["changed_when_removed"], entry["images_with_ruler"]),
        "changed_when_added_ci": _wilson(entry["changed_when_added"], entry["images_without_ruler"]),
        "pgd_flipped_ci": _wilson(entry["pgd_flipped"], entry["pgd_correct"]),
    }


def _write(record: dict[str, Any]) -> None:
    record["about"] = ABOUT
    tmp = RECORD.with_name(f".{RECORD.name}.partial")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(RECORD)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label", nargs="?", help="the attempt's name (its file in the command is LABEL.pt)")
    parser.add_argument("checkpoint", nargs="?", type=Path, help="the advexp checkpoint it made")
    parser.add_argument(
        "--intervals",
        action="store_true",
        help="only write the stored entries' Wilson intervals; measure nothing",
    )
    parser.add_argument("--what", default="", help="one line: what was tried")
    parser.add_argument("--shipped", default=None, help="the model id it is shipped as, if it is")
    parser.add_argument("--n-images", type=int, default=200, help="reliance and PGD on the first N (200)")
    args = parser.parse_args(argv)
    if args.intervals:
        record = json.loads(RECORD.read_text())
        record["attempts"] = {k: with_intervals(a) for k, a in record["attempts"].items()}
        _write(record)
        print(f"intervals written for {', '.join(record['attempts'])}")
        return 0
    if args.label is None or args.checkpoint is None:
        parser.error("LABEL and CHECKPOINT are required unless --intervals")
    try:
        entry = measure(args.label, args.checkpoint, args.what, args.shipped, args.n_images)
    except (CheckpointError, ModelError, RelianceError, KeyError) as exc:
        print(f"{args.checkpoint}: not a lesions network trained by advexp ({exc})", file=sys.stderr)
        return 2
    entry = with_intervals(entry)
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {"attempts": {}}
    record["attempts"][args.label] = entry
    _write(record)
    print(json.dumps({args.label: entry}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
