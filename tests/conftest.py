"""Shared fixtures. Tests never touch the network: ADVEXP_OFFLINE is set for the whole run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WOODS_DIR = Path(os.environ.get("ADVEXP_TEST_WOODS_DIR", ROOT.parent / "shared" / "woods2019"))
CIFAR_IMAGES = {
    "cifar10_test_0.png": 3,
    "cifar10_test_2.png": 8,
    "cifar10_test_5.png": 6,
    "cifar10_test_8.png": 3,
    "cifar10_test_9.png": 1,
}

os.environ["ADVEXP_OFFLINE"] = "1"
# One intra-op thread: the models here are small, and the browser tests run a server beside pytest;
# oversubscribed OpenMP threads on 2 cores slow torch down by orders of magnitude.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if WOODS_DIR.is_dir():
    os.environ.setdefault("ADVEXP_WEIGHTS_DIR", str(WOODS_DIR))


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def woods_dir() -> Path:
    """The paper's published networks and CIFAR-10 test images (skips when the folder is absent)."""
    if not (WOODS_DIR / "resnet44-standard.pt").is_file():
        pytest.skip(f"{WOODS_DIR} with the paper's networks is not present")
    os.environ["ADVEXP_WEIGHTS_DIR"] = str(WOODS_DIR)
    return WOODS_DIR


@pytest.fixture(scope="session")
def cifar_images(woods_dir: Path) -> dict:
    """name -> (tensor (3, 32, 32) in [0, 1], CIFAR-10 label) for the five test images."""
    from advexp_core.data.imaging import decode_image

    return {
        name: (decode_image((woods_dir / name).read_bytes()), label) for name, label in CIFAR_IMAGES.items()
    }


@pytest.fixture(scope="session")
def gallery_dir() -> Path:
    return ROOT / "gallery"


@pytest.fixture(scope="session")
def default_model():
    """The offline default ImageNet model, loaded once per test run."""
    from advexp_core.networks.registry import load_model

    return load_model("efficientnet-lite0-imagenet", device="cpu")
