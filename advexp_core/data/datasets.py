"""Datasets as ``(image 3×H×W float in [0, 1], int label)`` — the tensor contract of every model here.

``digits`` works offline: scikit-learn ships its 1,797 8×8 handwritten digits (values 0..16). They are
scaled to [0, 1], upsampled bilinearly to 32×32 and replicated to RGB, with a fixed, stratified
80/20 train/test split (seed 0). Why 32×32: it is the input size of the paper's CIFAR-10 network
(docs/method.md §1.5), so the same architecture, image intake and UI serve the digits networks and the
authors' networks alike; bilinear (not nearest) so strokes are smooth and an RMS budget is not spent
on the edges of 4×4 pixel blocks.

CIFAR-10, MNIST and Fashion-MNIST come through torchvision, MedMNIST through its own package
(``medmnist:<flag>``, e.g. ``medmnist:pathmnist``), and any directory of class folders through
``imagefolder:<path>``. A download is attempted only when the files are not already under ``root``;
when it fails (offline) the error names what to fetch and where to put it.

``lesions`` and ``blockdigits`` are generated (``groundtruth.py``) and come with ground-truth masks
(``with_masks=True``: items ``(image, label, masks)``, ``masks["evidence"]`` and, for lesions,
``masks["shortcut"]``, each an (H, W) bool tensor). ``lesions``: 64×64 synthetic dermoscopy, benign
vs malignant, with a ruler shortcut present in 85 % of malignant and 15 % of benign images of
``train`` (4,000) and ``test`` (1,000), and independent of the class in ``test-unbiased`` (1,000);
``shortcut=False`` gives the same images without the ruler (``load_lesions(force_ruler=True)``: with
a ruler on every one). ``lesions-unbiased`` is ``train-unbiased`` (4,000) and ``test-unbiased``
under the names ``train`` and ``test``: a network trained there sees rulers that say nothing about
the class. ``blockdigits``: BlockMNIST on the digits
above (same split), 64×64 with the digit in one random quadrant. Each split has its own fixed seed.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from advexp_core.data.groundtruth import (
    BIASED_RULER_RATES,
    LESION_CLASS_NAMES,
    UNBIASED_RULER_RATES,
    block_digits,
    generate_lesions,
    quadrant_masks,
)

DIGITS_SIZE = 32
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
IMAGEFOLDER_SIZE = 224
LESIONS_SIZES = {"train": 4000, "test": 1000, "test-unbiased": 1000, "train-unbiased": 4000}
LESIONS_SEEDS = {"train": 1001, "test": 1002, "test-unbiased": 1003, "train-unbiased": 1004}
# ``lesions-unbiased``, for the command line: the lesions with the ruler independent of the class.
_UNBIASED_SPLITS = {"train": "train-unbiased", "test": "test-unbiased"}
BLOCKDIGITS_SEEDS = {"train": 2001, "test": 2002}

_TORCHVISION = {
    "cifar10": ("CIFAR10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "mnist": ("MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/ (4 *-ubyte.gz files)"),
    "fashion-mnist": (
        "FashionMNIST",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (4 *-ubyte.gz files)",
    ),
}
_CLASS_NAMES = {
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}
# Horizontal flips are a fair augmentation for photos and clothes, not for digits or medical slides.
_FLIP_OK = {"cifar10", "fashion-mnist"}

DATASET_NAMES = (
    "digits",
    "lesions",
    "lesions-no-ruler",
    "lesions-unbiased",
    "blockdigits",
    "cifar10",
    "mnist",
    "fashion-mnist",
    "medmnist:<flag>",
    "imagefolder:<path>",
)
_MASKED = ("lesions", "lesions-no-ruler", "lesions-unbiased", "blockdigits")


class DatasetError(ValueError):
    """A dataset cannot be provided: unknown name or split, files missing offline, package missing."""


class ImageDataset(Dataset[tuple[Tensor, int]]):
    """A map-style dataset of (image (3, H, W) float32 in [0, 1], label) with its class names.

    Attributes:
        name: the dataset name given to ``load_dataset``.
        split: ``train``, ``test`` (or ``val`` for MedMNIST).
        class_names: one name per label index.
        flip_ok: whether horizontal flips are a label-preserving augmentation here.
    """

    def __init__(
        self,
        name: str,
        split: str,
        class_names: Sequence[str],
        *,
        length: int,
        get: Callable[[int], tuple[Tensor, int]],
        flip_ok: bool = False,
    ) -> None:
        self.name = name
        self.split = split
        self.class_names = tuple(class_names)
        self.flip_ok = flip_ok
        self._length = length
        self._get = get

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not -self._length <= index < self._length:
            raise IndexError(f"index {index} out of range for {self._length} images")
        return self._get(index % self._length)


class TensorImageDataset(ImageDataset):
    """An ``ImageDataset`` held in memory as tensors (``images`` (N, 3, H, W), ``labels`` (N,))."""

    def __init__(
        self, name: str, split: str, class_names: Sequence[str], images: Tensor, labels: Tensor, **kw: Any
    ) -> None:
        self.images = images
        self.labels = labels
        super().__init__(
            name,
            split,
            class_names,
            length=len(labels),
            get=lambda i: (self.images[i], int(self.labels[i])),
            **kw,
        )


class MaskedImageDataset(TensorImageDataset):
    """A ``TensorImageDataset`` with ground-truth masks (``masks``: key -> (N, H, W) bool).

    Items are ``(image, label)`` like every dataset, or ``(image, label, {key: (H, W) bool})`` when
    ``with_masks`` is set (the default collate stacks the dicts into (B, H, W) tensors).
    """

    def __init__(
        self,
        name: str,
        split: str,
        class_names: Sequence[str],
        images: Tensor,
        labels: Tensor,
        masks: dict[str, Tensor],
        *,
        with_masks: bool = False,
        **kw: Any,
    ) -> None:
        self.masks = masks
        self.with_masks = with_masks
        super().__init__(name, split, class_names, images, labels, **kw)

    # The item type widens to a triple only on request; the training code never asks for it.
    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        image, label = super().__getitem__(index)
        if not self.with_masks:
            return image, label
        i = index % len(self)
        return image, label, {key: mask[i] for key, mask in self.masks.items()}


def default_root() -> Path:
    """Where downloadable datasets live: ``$ADVEXP_DATA_DIR`` or ``~/.cache/advexp/datasets``."""
    env = os.environ.get("ADVEXP_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "advexp" / "datasets"


def load_dataset(
    name: str,
    split: str = "test",
    *,
    root: str | Path | None = None,
    download: bool = True,
    size: int | None = None,
    with_masks: bool = False,
    shortcut: bool = True,
) -> ImageDataset:
    """Load a dataset of (image 3×H×W float32 in [0, 1], int label).

    Args:
        name: one of ``DATASET_NAMES``.
        split: ``train`` or ``test`` (``lesions`` also ``test-unbiased``; MedMNIST also ``val``; an
            image folder uses ``<path>/<split>`` when that exists, else the whole folder).
        root: download/cache directory (default ``default_root()``); unused by ``digits``.
        download: try to download missing files (never when they are already there, nor when
            ``$ADVEXP_OFFLINE`` is set).
        size: side length in pixels for ``imagefolder`` (resize shorter side + centre crop;
            default 224) and MedMNIST (28, 64, 128 or 224; default 28). Ignored elsewhere.
        with_masks: items ``(image, label, masks)`` (``lesions`` and ``blockdigits`` only).
        shortcut: ``False`` draws ``lesions`` without the ruler (same images otherwise).

    Returns:
        An ``ImageDataset`` (``class_names``, ``flip_ok`` attached).

    Raises:
        DatasetError: unknown name or split, files missing and not downloadable, package missing.

    Shapes: item -> ((3, H, W), int); digits: H = W = 32; lesions, blockdigits: H = W = 64.
    """
    root_path = Path(root) if root is not None else default_root()
    download = download and os.environ.get("ADVEXP_OFFLINE", "") in ("", "0", "false")
    if with_masks and name not in _MASKED:
        raise DatasetError(f"dataset {name!r} has no ground-truth masks; {' and '.join(_MASKED)} do")
    if not shortcut and name != "lesions":
        raise DatasetError(f"dataset {name!r} has no shortcut to remove; shortcut=False is for 'lesions'")
    if name == "digits":
        return load_digits(split)
    if name == "lesions-no-ruler":  # the same images without the shortcut, for the command line
        return load_lesions(split, with_masks=with_masks, shortcut=False)
    if name == "lesions":
        return load_lesions(split, with_masks=with_masks, shortcut=shortcut)
    if name == "lesions-unbiased":
        _check_split(name, split, tuple(_UNBIASED_SPLITS))
        return load_lesions(_UNBIASED_SPLITS[split], with_masks=with_masks)
    if name == "blockdigits":
        return load_blockdigits(split, with_masks=with_masks)
    if name in _TORCHVISION:
        return _load_torchvision(name, split, root_path, download)
    if name.startswith("medmnist:"):
        return _load_medmnist(name, split, root_path, download, size or 28)
    if name.startswith("imagefolder:"):
        return _load_imagefolder(name, split, size or IMAGEFOLDER_SIZE)
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASET_NAMES)}")


def _check_split(name: str, split: str, allowed: Sequence[str] = ("train", "test")) -> None:
    if split not in allowed:
        raise DatasetError(f"dataset {name!r} has no split {split!r}; use one of {', '.join(allowed)}")


def digits_split_indices(labels: Tensor) -> tuple[Tensor, Tensor]:
    """The fixed stratified split of the digits: per class, a seeded 20 % goes to test.

    Returns:
        (train indices, test indices), each sorted ascending (so "the first N test images" are
        well mixed: the digits are stored cycling through the classes).

    Shapes: (N,) -> (N_train,), (N_test,).
    """
    gen = torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    test = []
    for c in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == c).flatten()
        n_test = round(DIGITS_TEST_FRACTION * len(members))
        test.append(members[torch.randperm(len(members), generator=gen)[:n_test]])
    test_idx = torch.cat(test).sort().values
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[test_idx] = True
    return torch.nonzero(~is_test).flatten(), test_idx


def load_digits(split: str = "test") -> TensorImageDataset:
    """scikit-learn's 8×8 digits as 32×32 RGB images in [0, 1] (offline; see the module docstring).

    Shapes: images (N, 3, 32, 32); N = 1437 (train) or 360 (test).
    """
    _check_split("digits", split)
    from sklearn.datasets import load_digits as sk_load_digits

    raw = sk_load_digits()
    pixels = torch.as_tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.as_tensor(raw.target, dtype=torch.int64)
    train_idx, test_idx = digits_split_indices(labels)
    idx = train_idx if split == "train" else test_idx
    up = F.interpolate(pixels[idx], size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    images = up.clamp(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()
    return TensorImageDataset("digits", split, [str(i) for i in range(10)], images, labels[idx])


def load_lesions(
    split: str = "test", *, with_masks: bool = False, shortcut: bool = True, force_ruler: bool = False
) -> MaskedImageDataset:
    """Synthetic dermoscopy with a ruler shortcut (``groundtruth.generate_lesions``), from a fixed seed.

    Args:
        split: ``train``, ``test`` (ruler in 85 % of malignant, 15 % of benign images) or
            ``test-unbiased``, ``train-unbiased`` (ruler in half of each class).
        with_masks: items ``(image, label, {"evidence": lesion, "shortcut": ruler})``.
        shortcut: ``False``: the same images with no ruler (the shortcut-free twin of the split).
        force_ruler: the same images with a ruler on every one (the ruler-forced twin).

    Shapes: images (N, 3, 64, 64); N = ``LESIONS_SIZES[split]``; masks (N, 64, 64) bool.
    """
    _check_split("lesions", split, tuple(LESIONS_SIZES))
    rates = UNBIASED_RULER_RATES if split.endswith("-unbiased") else BIASED_RULER_RATES
    generator = torch.Generator().manual_seed(LESIONS_SEEDS[split])
    data = generate_lesions(
        LESIONS_SIZES[split],
        generator=generator,
        ruler_rates=rates,
        shortcut=shortcut,
        force_ruler=force_ruler,
    )
    masks = {"evidence": data.lesion_masks, "shortcut": data.ruler_masks}
    # Flips are fair: a lesion has no orientation and the ruler's edge is uniform over the four.
    return MaskedImageDataset(
        "lesions",
        split,
        LESION_CLASS_NAMES,
        data.images,
        data.labels,
        masks,
        with_masks=with_masks,
        flip_ok=True,
    )


def load_blockdigits(split: str = "test", *, with_masks: bool = False) -> MaskedImageDataset:
    """BlockMNIST on the digits (``groundtruth.block_digits``): ``load_digits``' images and split, each
    in a seeded random quadrant of a 64×64 canvas, the null patch in the other three.

    Shapes: images (N, 3, 64, 64); N = 1438 (train) or 359 (test); masks {"evidence": (N, 64, 64)}.
    """
    _check_split("blockdigits", split)
    digits = load_digits(split)
    generator = torch.Generator().manual_seed(BLOCKDIGITS_SEEDS[split])
    images, quadrant = block_digits(digits.images[:, 0], generator=generator)
    masks = {"evidence": quadrant_masks(quadrant)}
    return MaskedImageDataset(
        "blockdigits", split, digits.class_names, images, digits.labels, masks, with_masks=with_masks
    )


def _to_rgb_tensor(pil_image: Any) -> Tensor:
    import numpy as np

    array = np.asarray(pil_image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255.0)


def _missing_message(name: str, root: Path, url: str, cause: BaseException | None) -> str:
    reason = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return (
        f"dataset {name!r} is not in {root} and could not be downloaded{reason}. "
        f"Download it on a machine with network access (e.g. run the same command there, or fetch {url}) "
        f"and copy it into {root} (or point --data-root / ADVEXP_DATA_DIR at a directory holding it)."
    )


def _load_torchvision(name: str, split: str, root: Path, download: bool) -> ImageDataset:
    _check_split(name, split)
    import torchvision.datasets as tvd

    cls_name, url = _TORCHVISION[name]
    cls = getattr(tvd, cls_name)
    train = split == "train"
    try:
        base = cls(str(root), train=train, download=False)
    except RuntimeError as first:
        if not download:
            raise DatasetError(_missing_message(name, root, url, first)) from first
        try:
            # torchvision prints progress to stdout; the core never prints.
            with contextlib.redirect_stdout(io.StringIO()):
                base = cls(str(root), train=train, download=True)
        except Exception as exc:  # URLError, OSError, RuntimeError: all mean "not available"
            raise DatasetError(_missing_message(name, root, url, exc)) from exc
    return ImageDataset(
        name,
        split,
        _CLASS_NAMES[name],
        length=len(base),
        get=lambda i: (_to_rgb_tensor(base[i][0]), int(base[i][1])),
        flip_ok=name in _FLIP_OK,
    )


def _load_medmnist(name: str, split: str, root: Path, download: bool, size: int) -> ImageDataset:
    _check_split(name, split, ("train", "val", "test"))
    flag = name.split(":", 1)[1]
    try:
        import medmnist  # type: ignore[import-not-found]
    except ImportError as exc:
        raise DatasetError(
            f"dataset {name!r} needs the 'medmnist' package (pip install medmnist), which is not installed"
        ) from exc
    info = medmnist.INFO.get(flag)
    if info is None:
        raise DatasetError(f"unknown MedMNIST flag {flag!r}; known: {', '.join(sorted(medmnist.INFO))}")
    if info.get("task") == "multi-label, binary-class":
        raise DatasetError(f"MedMNIST {flag!r} is multi-label; only single-label datasets are supported")
    cls = getattr(medmnist, info["python_class"])
    root.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            base = cls(split=split, root=str(root), download=download, size=size)
    except Exception as exc:
        raise DatasetError(_missing_message(name, root, info.get("url", "medmnist.com"), exc)) from exc
    names = [info["label"][k] for k in sorted(info["label"], key=int)]
    return ImageDataset(
        name,
        split,
        names,
        length=len(base),
        get=lambda i: (_to_rgb_tensor(base[i][0]), int(base[i][1].reshape(-1)[0])),
    )


def _load_imagefolder(name: str, split: str, size: int) -> ImageDataset:
    path = Path(name.split(":", 1)[1]).expanduser()
    if (path / split).is_dir():
        path = path / split
    if not path.is_dir():
        raise DatasetError(f"image folder {path} does not exist")
    import torchvision.datasets as tvd
    import torchvision.transforms as T

    resize = T.Compose([T.Resize(size), T.CenterCrop(size)])
    try:
        base = tvd.ImageFolder(str(path), transform=resize)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DatasetError(f"image folder {path}: {exc}") from exc
    return ImageDataset(
        name,
        split,
        base.classes,
        length=len(base),
        get=lambda i: (_to_rgb_tensor(base[i][0]), int(base[i][1])),
    )
