"""research/ship_groundtruth.py rebuilds a shipped ground-truth network's manifest entry from its
checkpoint: the entry recorded for blockdigits-robust is reproduced field by field."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINTS = ROOT / "checkpoints"


def _script():
    spec = importlib.util.spec_from_file_location(
        "ship_groundtruth", ROOT / "research" / "ship_groundtruth.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_rebuilds_the_recorded_entry_of_a_shipped_network() -> None:
    if not (CHECKPOINTS / "blockdigits-robust.pt").is_file():
        pytest.skip("blockdigits-robust is not shipped in this checkout")
    manifest = json.loads((CHECKPOINTS / "manifest.json").read_text())
    recorded = next(e for e in manifest["groundtruth"] if e["id"] == "blockdigits-robust")
    fields = _script().entry_fields(CHECKPOINTS, "blockdigits-robust", manifest)
    assert fields.pop("test_accuracy") == pytest.approx(recorded["test_accuracy"], abs=1e-6)
    # The recorded command left the learning rate at its default; the rebuilt one names it.
    assert fields.pop("command") == recorded["command"].replace("--batch-size 64", "--batch-size 64 --lr 0.1")
    assert fields == {k: recorded[k] for k in fields}


def test_refuses_a_dataset_without_a_standard_network_to_take_the_ara_settings_from() -> None:
    if not (CHECKPOINTS / "blockdigits-robust.pt").is_file():
        pytest.skip("blockdigits-robust is not shipped in this checkout")
    with pytest.raises(SystemExit, match="no standard blockdigits network"):
        _script().entry_fields(CHECKPOINTS, "blockdigits-robust", {"groundtruth": []})
