"""The shipped ground-truth networks: each loads offline from checkpoints/, has its
dataset's class names and input size, matches the sha256 the manifest records, and still classifies.

The accuracy floors sit well below what the shipped files measured on the same 64 test images
(see the comment at ``NETWORKS``), so they catch a wrong file or a broken loader, not a drift of a
few images.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advexp_core.data.datasets import load_dataset
from advexp_core.networks.checkpoints import sha256_file
from advexp_core.networks.registry import list_models, load_model
from advexp_core.networks.zoo import CHECKPOINTS_DIR

MANIFEST = CHECKPOINTS_DIR / "manifest.json"
N_IMAGES = 64
LESIONS = ("benign", "malignant")
DIGITS = tuple(str(i) for i in range(10))

# id -> (dataset, class names, accuracy floor on the first 64 "test" images). The shipped files
# measured 0.906, 0.828 (lesions-robust follows the ruler alone), 1.000 and 0.984 there.
NETWORKS = {
    "lesions-standard": ("lesions", LESIONS, 0.75),
    "lesions-robust": ("lesions", LESIONS, 0.70),
    "blockdigits-standard": ("blockdigits", DIGITS, 0.85),
    "blockdigits-robust": ("blockdigits", DIGITS, 0.85),
    "blockdigits-adv-train": ("blockdigits", DIGITS, 0.70),  # measured 0.812 there
}


def _checkpoint(model_id: str) -> Path:
    path = CHECKPOINTS_DIR / f"{model_id}.pt"
    if not path.is_file():
        pytest.skip(f"{path} is not shipped yet")
    return path


def _manifest_entry(model_id: str) -> dict:
    if not MANIFEST.is_file():
        pytest.skip("checkpoints/manifest.json is not there")
    manifest = json.loads(MANIFEST.read_text())
    networks = manifest.get("networks", []) + manifest.get("groundtruth", [])
    entry = next((n for n in networks if n.get("id") == model_id), None)
    if entry is None:
        pytest.skip(f"checkpoints/manifest.json has no entry for {model_id} yet")
    return entry


@pytest.mark.parametrize("model_id", list(NETWORKS))
def test_registered_and_available_offline(model_id: str) -> None:
    _checkpoint(model_id)
    info = {i.model_id: i for i in list_models()}[model_id]
    assert info.available_offline
    assert info.robust == model_id.endswith("-robust")


@pytest.mark.parametrize("model_id", list(NETWORKS))
def test_loads_with_its_datasets_classes_and_size(model_id: str) -> None:
    _checkpoint(model_id)
    dataset, names, _ = NETWORKS[model_id]
    model = load_model(model_id, device="cpu")
    assert model.class_names == names
    assert model.input_size == (64, 64)
    assert model.class_names == load_dataset(dataset, "test").class_names
    assert not model.module.training
    assert not any(p.requires_grad for p in model.module.parameters())


@pytest.mark.parametrize("model_id", list(NETWORKS))
def test_sha256_matches_the_manifest(model_id: str) -> None:
    path = _checkpoint(model_id)
    entry = _manifest_entry(model_id)
    assert entry["file"] == f"checkpoints/{path.name}"
    assert sha256_file(path) == entry["sha256"]


@pytest.mark.parametrize("model_id", list(NETWORKS))
def test_accuracy_on_64_test_images(model_id: str) -> None:
    _checkpoint(model_id)
    dataset, _, floor = NETWORKS[model_id]
    model = load_model(model_id, device="cpu")
    data = load_dataset(dataset, "test")
    images = torch.stack([data[i][0] for i in range(N_IMAGES)])
    labels = torch.tensor([data[i][1] for i in range(N_IMAGES)])
    with torch.no_grad():
        accuracy = float((model.module(images).argmax(1) == labels).float().mean())
    assert accuracy >= floor, f"{model_id}: {accuracy:.3f} on the first {N_IMAGES} test images"
