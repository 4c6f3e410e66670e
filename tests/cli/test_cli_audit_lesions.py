"""`advexp audit` on 200 lesion test images with rulers, written as files, against the generator's
exact ruler-free twins (as `research.audit_validation` compares them): the share of decisions that
removing the ruler changes is the twins' share within 0.05 (docs/audit.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advexp_core.cli import main
from advexp_core.data.imaging import encode_png
from advexp_core.evaluation.reliance import lesion_twins
from advexp_core.experiments.audit_inputs import mask_png
from advexp_core.networks.registry import load_model
from advexp_core.networks.zoo import ModelError

pytestmark = pytest.mark.slow
N = 200


def test_the_audit_of_200_rulers_matches_the_exact_twins(tmp_path: Path, capsys) -> None:
    try:
        model = load_model("lesions-standard", device="cpu")
    except ModelError as exc:
        pytest.skip(f"lesions-standard is not shipped ({exc})")
    twins = lesion_twins("test", 2 * N + 50)
    index = torch.nonzero(twins.ruler_masks.flatten(1).any(1)).flatten()[:N]
    assert len(index) == N
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for k in index.tolist():
        (images / f"lesion{k:04d}.png").write_bytes(encode_png(twins.images[k]))
        (masks / f"lesion{k:04d}.png").write_bytes(mask_png(twins.ruler_masks[k]))
    code = main([
        "audit", "--model", "lesions-standard", "--images", str(images), "--masks", str(masks),
        "--methods", "gradient", "--no-adversarial", "--quiet", "--out", str(tmp_path / "out"), "--json",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    removed = json.loads(out)["removed"]
    with torch.no_grad():
        as_drawn = model.module(twins.images[index]).argmax(1)
        twin = model.module(twins.removed[index]).argmax(1)
    twin_share = float((as_drawn != twin).float().mean())
    assert removed["n_images"] == N
    assert abs(removed["decisions_changed"] - twin_share) <= 0.05, (removed["decisions_changed"], twin_share)
