"""Regenerate gallery/ from the real photos shipped inside scikit-image and scikit-learn.

Run: .venv/bin/python -m scripts.make_gallery  (the files are committed; this documents their origin)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image
from sklearn.datasets import load_sample_images

OUT = Path(__file__).resolve().parent.parent / "gallery"

# name -> (loader, source, licence, the ImageNet class the default model gives it)
PHOTOS = {
    "cat": (skimage.data.chelsea, "scikit-image data.chelsea (Stefan van der Walt)", "CC0", "tiger cat"),
    "coffee": (skimage.data.coffee, "scikit-image data.coffee (Rachel Michetti)", "CC0", "espresso"),
    "cameraman": (skimage.data.camera, "scikit-image data.camera", "CC0 (scikit-image)", "tripod"),
    "rocket": (skimage.data.rocket, "scikit-image data.rocket (SpaceX)", "CC0 / public domain", "missile"),
    "palace": (
        lambda: load_sample_images().images[0],
        "scikit-learn sample china.jpg",
        "CC BY 2.0 (scikit-learn)",
        "palace",
    ),
    "daisy": (
        lambda: load_sample_images().images[1],
        "scikit-learn sample flower.jpg",
        "CC BY 2.0 (scikit-learn)",
        "daisy",
    ),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    index = {}
    for name, (load, source, licence, expected) in PHOTOS.items():
        array = np.asarray(load())
        image = Image.fromarray(array).convert("RGB")
        image.save(OUT / f"{name}.jpg", quality=92)
        index[name] = {
            "file": f"{name}.jpg",
            "source": source,
            "licence": licence,
            "imagenet_label": expected,
        }
    (OUT / "gallery.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
