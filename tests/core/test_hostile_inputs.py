"""Hostile and odd files: each is handled correctly or refused with a clear message;
no payload ever runs; nothing is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advexp_core.data.imaging import ImageError, Preprocess, decode_image, prepare_image
from advexp_core.networks.registry import load_user_model
from advexp_core.networks.zoo import ModelError
from tests.corpus import checkpoint_corpus, image_corpus

IMAGES = image_corpus()


def test_the_corpus_is_large_enough() -> None:
    assert len(IMAGES) >= 60


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_is_decoded_or_refused_clearly(name: str) -> None:
    data, expect = IMAGES[name]
    if expect == "ok":
        image = decode_image(data)
        assert image.ndim == 3 and image.shape[0] == 3 and image.dtype == torch.float32
        assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
        assert prepare_image(image, Preprocess((32, 32), 36)).shape == (3, 32, 32)
    else:
        with pytest.raises(ImageError) as info:
            decode_image(data)
        assert str(info.value).endswith(".") and "Traceback" not in str(info.value)


def test_exif_orientations_give_the_right_shape() -> None:
    for orientation in range(1, 9):
        image = decode_image(IMAGES[f"exif-orientation-{orientation}"][0])
        assert image.shape[1:] == ((64, 48) if orientation >= 5 else (48, 64)), orientation


def test_hostile_checkpoints_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    folder = tmp_path / "files"
    files = checkpoint_corpus(folder, marker)
    assert len(files) >= 15
    before = set(folder.iterdir())
    for name, path in files.items():
        with pytest.raises(ModelError) as info:
            load_user_model("resnet18", path, ["negative", "positive"], device="cpu")
        message = str(info.value)
        assert path.name in message or "Give" in message or "match" in message, (name, message)
    assert not marker.exists(), "a hostile payload ran"
    assert set(folder.iterdir()) == before, "loading left files behind"
