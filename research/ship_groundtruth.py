"""Record a trained ground-truth network in checkpoints/manifest.json's ``groundtruth`` list.

For each id given, reads ``checkpoints/<id>.pt`` (trained by ``advexp train`` on a dataset with
ground-truth masks) and writes the entry the other ground-truth networks have: file, sha256, recipe,
config, arch, the training command rebuilt from the recorded config, ψ, training time, and the accuracy
of the network as the app loads it on the whole test split, and the ARA settings of the dataset's
standard network (so that the networks compare). The ARA itself is measured by
research/ship_robustness.py, which reads those settings.

Only this script's fields of the entry are written; the manifest is re-read just before the write, so
entries and fields added meanwhile by other scripts are kept.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m research.ship_groundtruth ID [ID ...]
Options: --checkpoints DIR (default checkpoints/).
Exit codes: 0 recorded, 2 a checkpoint is missing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from advexp_core.data.datasets import load_dataset
from advexp_core.experiments.scorecard import split_accuracy
from advexp_core.networks.checkpoints import load_checkpoint, sha256_file
from advexp_core.networks.registry import load_model

ROOT = Path(__file__).resolve().parent.parent


def train_argv(config: dict[str, Any], out: str, *, warm_start: str | None = None) -> list[str]:
    """``advexp train`` arguments that reproduce a recorded training config (its ψ target when one
    was set, and the checkpoint it started from when it was warm-started)."""
    argv = [
        "train", "--dataset", config["dataset"], "--recipe", config["recipe"], "--epochs", str(config["epochs"]),
        "--batch-size", str(config["batch_size"]), "--lr", f"{config['lr']:g}",
        "--num-blocks", ",".join(map(str, config["num_blocks"])), "--widths", ",".join(map(str, config["widths"])),
        "--seed", str(config["seed"]),
    ]  # fmt: skip
    if config.get("l_target") is not None:
        argv += ["--l-target", f"{config['l_target']:g}"]
    if warm_start is not None:
        argv += ["--warm-start", warm_start]
    return [*argv, "--out", out, "--release"]


def entry_fields(folder: Path, model_id: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest fields of one network, from its checkpoint and a measurement of its accuracy."""
    path = folder / f"{model_id}.pt"
    payload = load_checkpoint(path)
    config = payload["config"]
    standard = next(
        (
            g
            for g in manifest.get("groundtruth", [])
            if g.get("dataset") == config["dataset"] and g.get("recipe") == "standard" and "ara_settings" in g
        ),
        None,
    )
    if standard is None:
        raise SystemExit(
            f"the manifest has no standard {config['dataset']} network with ARA settings to take"
        )
    test = load_dataset(config["dataset"], "test")
    accuracy = split_accuracy(load_model(model_id, device="cpu"), test, batch_size=128)  # type: ignore[arg-type]
    shown = f"checkpoints/{path.name}"
    return {
        "dataset": config["dataset"], "file": shown, "sha256": sha256_file(path), "recipe": payload["recipe"],
        "robust_additions": bool(payload["robust"]), "seed": payload["seed"], "epochs": config["epochs"],
        "config": config, "arch": payload["arch"],
        "command": "OMP_NUM_THREADS=1 python -m advexp_core " + shlex.join(train_argv(config, shown)),
        "test_accuracy": accuracy, "n_test_images": len(test), "ara_settings": standard["ara_settings"],
        "psi": payload["psi_state"]["psi"], "psi_integral": payload["psi_state"]["integral"],
        "l_target": payload["psi_state"]["l_target"],
        "train_seconds": round(payload["metrics"]["train_seconds"], 1),
    }  # fmt: skip


def record(folder: Path, model_id: str) -> dict[str, Any]:
    """Write one network's entry (appended when new); returns the fields written."""
    path = folder / "manifest.json"
    fields = entry_fields(folder, model_id, json.loads(path.read_text()))
    manifest = json.loads(path.read_text())  # re-read: another script may have written meanwhile
    entries = manifest.setdefault("groundtruth", [])
    entry = next((e for e in entries if e.get("id") == model_id), None)
    if entry is None:
        entry = {"id": model_id}
        entries.append(entry)
    entry.update(fields)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)
    return fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="+", help="network ids, each with checkpoints/<id>.pt")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    args = parser.parse_args(argv)
    for model_id in args.ids:
        if not (args.checkpoints / f"{model_id}.pt").is_file():
            print(f"{model_id}: {args.checkpoints / model_id}.pt not found", file=sys.stderr)
            return 2
        fields = record(args.checkpoints, model_id)
        print(
            f"{model_id}: sha256 {fields['sha256'][:12]}…, test accuracy {fields['test_accuracy']:.4f} "
            f"on {fields['n_test_images']} images, trained {fields['train_seconds']:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
