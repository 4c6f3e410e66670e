"""Images offered without an upload: the bundled photos, the paper's five CIFAR-10 test images
(when their folder is present) and a few test digits for this project's digits networks."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
GALLERY_DIR = ROOT / "gallery"
# The true labels of the published CIFAR-10 test images shipped with the weights (indices 0, 2, 5, 8, 9).
CIFAR_IMAGES = {
    "cifar10_test_0.png": "cat",
    "cifar10_test_2.png": "ship",
    "cifar10_test_5.png": "frog",
    "cifar10_test_8.png": "cat",
    "cifar10_test_9.png": "automobile",
}
DIGITS_SHOWN = 5


@dataclass(frozen=True)
class GalleryEntry:
    """One offered image: a display title and where its bytes come from."""

    key: str
    title: str
    path: Path | None = None  # a file, or None for a generated digit
    digit_index: int = -1


def weights_dir() -> Path | None:
    """The folder of the paper's networks and CIFAR-10 images ($ADVEXP_WEIGHTS_DIR), if present."""
    value = os.environ.get("ADVEXP_WEIGHTS_DIR")
    return Path(value) if value and Path(value).is_dir() else None


def entries() -> dict[str, GalleryEntry]:
    """Every gallery image by key, photos first."""
    out: dict[str, GalleryEntry] = {}
    meta = json.loads((GALLERY_DIR / "gallery.json").read_text())
    for key, item in meta.items():
        title = f"{key} (photo; ImageNet label: {item.get('imagenet_label', '?')})"
        out[key] = GalleryEntry(key, title, GALLERY_DIR / item["file"])
    folder = weights_dir()
    if folder is not None:
        for name, label in CIFAR_IMAGES.items():
            if (folder / name).is_file():
                key = name.removesuffix(".png")
                out[key] = GalleryEntry(key, f"{key} (CIFAR-10, 32 px; true class: {label})", folder / name)
    for k in range(DIGITS_SHOWN):
        out[f"digit_{k}"] = GalleryEntry(f"digit_{k}", f"digit_{k} (digits test image {k}, 32 px)", None, k)
    return out


@st.cache_data(show_spinner=False, max_entries=64)
def entry_bytes(key: str) -> bytes:
    """The file bytes of a gallery image (a generated digit is encoded as a lossless PNG)."""
    entry = entries()[key]
    if entry.path is not None:
        return entry.path.read_bytes()
    from advexp_core.data.datasets import load_dataset
    from advexp_core.data.imaging import encode_png

    image, _label = load_dataset("digits", "test")[entry.digit_index]
    return encode_png(image)
