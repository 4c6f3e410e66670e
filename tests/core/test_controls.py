"""The control networks of the sanity checks are shipped as the manifest says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advexp_core.data.datasets import load_dataset
from advexp_core.networks.checkpoints import load_checkpoint, sha256_file
from advexp_core.networks.registry import load_model
from advexp_core.training.loop import evaluate_accuracy

ROOT = Path(__file__).resolve().parents[2]


def test_random_labels_network_matches_its_manifest_entry() -> None:
    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())
    entry = next(e for e in manifest["controls"] if e["id"] == "digits-random-labels")
    path = ROOT / entry["file"]
    assert sha256_file(path) == entry["sha256"]
    assert "optimizer" not in load_checkpoint(path)
    loaded = load_model(entry["id"], device="cpu")
    accuracy = evaluate_accuracy(loaded.module, load_dataset("digits", "test"))
    assert accuracy == pytest.approx(entry["test_accuracy"], abs=1e-9)
    assert accuracy < 0.2  # it learnt the permuted labels, not the digits (chance is 0.1)
