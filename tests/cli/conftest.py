"""Shared fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advexp_core.cli import audit as audit_cli
from advexp_core.data.datasets import load_lesions
from advexp_core.data.imaging import encode_png
from tests.cli.test_cli_audit import N, SoftRulerReader, _mask_png
from tests.core.test_reliance import _loaded


@pytest.fixture()
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr(audit_cli, "load_model_or_usage_error", lambda _id: _loaded(SoftRulerReader()))
    data = load_lesions("test", with_masks=True)
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    rulers = data.masks["shortcut"][:N].flatten(1).any(1)
    assert 0 < int(rulers.sum()) < N  # both kinds among the first N
    for k in range(N):
        (images / f"lesion{k}.png").write_bytes(encode_png(data.images[k]))
        if rulers[k]:
            _mask_png(data.masks["shortcut"][k].numpy(), masks / f"lesion{k}.png")
    source = int(np.flatnonzero(rulers.numpy())[0])
    labels = tmp_path / "labels.csv"
    labels.write_text("name,class\n" + "".join(f"lesion{k}.png,{int(data.labels[k])}\n" for k in range(N)))
    return {"images": images, "masks": masks, "labels": labels, "source": images / f"lesion{source}.png",
            "source_mask": masks / f"lesion{source}.png", "out": tmp_path / "out", "rulers": tmp_path}  # fmt: skip
