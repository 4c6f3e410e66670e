"""Datasets: the offline digits (size, range, split), the torchvision/MedMNIST/ImageFolder
wrappers, and clear errors offline. Nothing here touches the network."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from advexp_core.data.datasets import (
    DatasetError,
    TensorImageDataset,
    digits_split_indices,
    load_dataset,
)


def test_digits_are_32px_rgb_in_unit_range_with_a_fixed_stratified_split() -> None:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert isinstance(train, TensorImageDataset) and isinstance(test, TensorImageDataset)
    assert (len(train), len(test)) == (1438, 359)
    image, label = test[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    assert 0.0 <= float(test.images.min()) and float(test.images.max()) <= 1.0
    assert torch.equal(test.images[:, 0], test.images[:, 1]) and torch.equal(
        test.images[:, 0], test.images[:, 2]
    )
    assert test.class_names == tuple(str(i) for i in range(10)) and not test.flip_ok
    # Stratified: every class contributes round(20 %) to the test split.
    from sklearn.datasets import load_digits

    raw = load_digits()
    counts = np.bincount(raw.target)
    assert np.bincount(test.labels.numpy()).tolist() == [round(0.2 * c) for c in counts]
    # Disjoint, complete, sorted, and the same on every call.
    train_idx, test_idx = digits_split_indices(torch.as_tensor(raw.target))
    assert sorted(train_idx.tolist() + test_idx.tolist()) == list(range(len(raw.target)))
    assert test_idx.tolist() == sorted(test_idx.tolist())
    assert torch.equal(load_dataset("digits", "test").images, test.images)
    # The pixels are the 8×8 digits /16, bilinearly upsampled ×4.
    first = torch.as_tensor(raw.images[int(test_idx[0])], dtype=torch.float32)[None, None] / 16
    up = F.interpolate(first, size=(32, 32), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(test.images[0, 0], up)
    assert test.labels[0] == int(raw.target[int(test_idx[0])])


def test_unknown_names_and_splits_are_clear_errors() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'.*digits.*lesions.*blockdigits"):
        load_dataset("svhn")
    with pytest.raises(DatasetError, match="no split 'val'"):
        load_dataset("digits", "val")


def test_missing_torchvision_dataset_offline_names_what_and_where(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ADVEXP_OFFLINE", "1")
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", root=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "cifar-10-python.tar.gz" in message


def _idx(path: Path, magic: int, dims: tuple[int, ...], data: bytes) -> None:
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data)


def test_mnist_already_on_disk_loads_as_rgb_without_a_download(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ADVEXP_OFFLINE", "1")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    pixels = bytes(range(0, 250, 5))[:28] * 28 * 3
    for prefix, n in (("train", 3), ("t10k", 3)):
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", 2051, (n, 28, 28), pixels[: n * 784])
        _idx(raw / f"{prefix}-labels-idx1-ubyte.gz", 2049, (n,), bytes([7, 1, 4]))
        for suffix in ("images-idx3-ubyte", "labels-idx1-ubyte"):  # torchvision reads the unpacked files
            (raw / f"{prefix}-{suffix}").write_bytes(
                gzip.decompress((raw / f"{prefix}-{suffix}.gz").read_bytes())
            )
    data = load_dataset("mnist", "test", root=tmp_path)
    image, label = data[0]
    assert len(data) == 3 and image.shape == (3, 28, 28) and label == 7
    assert torch.equal(image[0], image[1]) and float(image.max()) <= 1.0
    assert image[0, 0, 1].item() == pytest.approx(5 / 255)


def test_medmnist_without_the_package_says_how_to_get_it() -> None:
    try:
        import medmnist  # noqa: F401
    except ImportError:
        with pytest.raises(DatasetError, match="pip install medmnist"):
            load_dataset("medmnist:pathmnist")
    else:
        pytest.skip("medmnist is installed")


def test_imagefolder_resizes_and_uses_split_subfolders(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            Image.new("RGB", (40, 30), colour).save(folder / "a.png")
            Image.new("L", (20, 50), 128).save(folder / "b.png")
    data = load_dataset(f"imagefolder:{tmp_path}", "test", size=16)
    assert data.class_names == ("cat", "dog") and len(data) == 4
    image, label = data[0]
    assert image.shape == (3, 16, 16) and label == 0
    torch.testing.assert_close(image[:, 8, 8], torch.tensor([1.0, 0.0, 0.0]))
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
