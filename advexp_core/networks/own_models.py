"""The user's own network as it really comes: checkpoint layouts, timm architectures, token models.

`advexp_core.networks.registry.load_user_model` is the one entry point; this module holds its parts:

* `unwrap_state_dict` finds the weights inside the usual checkpoint layouts (a ``state_dict`` or
  ``model`` entry, ``module.`` / ``model.`` prefixes of DataParallel or Lightning) and says what it
  took off;
* `build_timm` creates any architecture of `timm.list_models()` offline (``pretrained=False``) and
  reads its preprocessing from timm's data config;
* `build_user_network` dispatches to torchvision, timm or an ONNX file (`advexp_core.networks.onnx_models`)
  and gives transformers their Grad-CAM layer (`advexp_core.networks.token_grid`).

Nothing here downloads anything or unpickles code (weights come through `advexp_core.networks.checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.data.imaging import Preprocess
from advexp_core.networks.checkpoints import check_finite, load_weights_file
from advexp_core.networks.onnx_models import (
    MAX_RELATIVE_DIFFERENCE,
    check_tensor_sizes,
    convert_onnx,
    last_spatial_operator,
    onnxruntime_difference,
    read_onnx,
)
from advexp_core.networks.token_grid import install_token_tap
from advexp_core.networks.zoo import IMAGENET_MEAN, IMAGENET_STD, ModelError, describe_mismatch

TIMM_PREFIX = "timm:"
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
"""The torchvision architectures offered first; any torchvision classification model loads."""
# Layouts seen in the wild, outermost first: torch.compile, DataParallel/DDP, Lightning, hand-made.
PREFIXES = ("_orig_mod.", "module.", "model.", "net.", "backbone.")
CANDIDATE_PREFIXES = (*PREFIXES, *(a + b for a in PREFIXES for b in PREFIXES if a != b))  # module.model.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "net", "ema_state_dict")


@dataclass(frozen=True)
class ModelCard:
    """What a loaded user model is and where each of its settings came from (shown on the page).

    ``*_from`` fields are short phrases such as "timm's data config for resnet50" or "your setting".
    """

    framework: str
    architecture: str
    parameters: int
    input_size: tuple[int, int]
    resize: int | None
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_from: str
    normalisation_from: str
    gradcam_layer: str
    gradcam_how: str
    notes: tuple[str, ...] = ()
    onnx_max_difference: float | None = None
    channels: int = 3


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing of a network: input (H, W), short-side resize, interpolation, mean, std."""

    input_size: tuple[int, int]
    resize: int | None
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(self.input_size, self.resize, self.interpolation)


# --- checkpoint layouts -------------------------------------------------------------------------


def unwrap_state_dict(
    obj: Mapping[str, Any], expected: set[str]
) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """The network's weights inside a loaded checkpoint, and sentences saying what was unwrapped.

    Args:
        obj: what the file holds (a dict; tensors or nested dicts).
        expected: the parameter and buffer names of the network the weights are for.

    Returns:
        (name -> tensor with the prefix removed, notes). A prefix is removed only when it makes
        more names match; entries without it (a Lightning module's loss weights, say) are then
        dropped and named in the notes.
    """
    notes: list[str] = []
    state: Mapping[str, Any] = obj
    for _ in range(3):  # {'state_dict': {...}} or {'model': {'state_dict': ...}}
        if _tensors(state):
            break
        key = next((k for k in NESTED_KEYS if isinstance(state.get(k), Mapping)), None)
        if key is None:
            break
        notes.append(f"took the weights from the file's '{key}' entry")
        state = state[key]
    tensors = _tensors(state)
    while True:
        best = max(CANDIDATE_PREFIXES, key=lambda p: _matches(tensors, expected, p))
        if _matches(tensors, expected, best) <= _matches(tensors, expected, ""):
            break
        kept = {k.removeprefix(best): v for k, v in tensors.items() if k.startswith(best)}
        dropped = sorted(k for k in tensors if not k.startswith(best))
        notes.append(f"removed the prefix '{best}' from {len(kept)} names")
        if dropped:
            notes.append(f"ignored {len(dropped)} entries outside the network, e.g. {dropped[0]}")
        tensors = kept
    return tensors, tuple(notes)


def _tensors(state: Mapping[str, Any]) -> dict[str, Tensor]:
    return {str(k): v for k, v in state.items() if isinstance(v, Tensor)}


def _matches(tensors: Mapping[str, Tensor], expected: set[str], prefix: str) -> int:
    return sum(1 for k in tensors if k.startswith(prefix) and k.removeprefix(prefix) in expected)


# --- timm ---------------------------------------------------------------------------------------


def timm_names(query: str = "") -> list[str]:
    """Architecture names timm can build (no weights needed), filtered by a substring or ``*`` pattern."""
    import timm

    pattern = query.strip().lower()
    if pattern and "*" not in pattern:
        pattern = f"*{pattern}*"
    return list(timm.list_models(pattern or ""))


def create_timm(
    arch: str, *, num_classes: int, input_size: int | None = None, in_chans: int = 3
) -> nn.Module:
    """An untrained timm network by name (``pretrained=False``: nothing is downloaded).

    Args:
        arch: a name of `timm.list_models()`, optionally with a ``.tag`` (its data config is the tag's).
        num_classes: outputs of the classifier head.
        input_size: for architectures with a fixed input size (vision transformers), build for this
            many pixels instead of the default; other architectures take any size.
        in_chans: input channels (1 for a network trained on grey images).

    Raises:
        ModelError: unknown name, or the architecture cannot be built at that size.
    """
    import timm

    base = arch.split(".", 1)[0]
    if not timm.is_model(base):
        close = timm.list_models(f"*{base[:6]}*")[:5]
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ModelError(f"timm has no architecture {arch!r}.{hint}")
    try:
        net = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans)
        fixed = fixed_input_size(net)
        if input_size is not None and fixed is not None and fixed != input_size:
            net = timm.create_model(
                arch, pretrained=False, num_classes=num_classes, img_size=input_size, in_chans=in_chans
            )
    except (TypeError, ValueError, RuntimeError, AssertionError) as exc:
        raise ModelError(f"timm could not build {arch!r} for {input_size} px: {exc}") from exc
    for module in net.modules():  # plain attention is twice differentiable (the map-moving attack)
        if hasattr(module, "fused_attn"):
            setattr(module, "fused_attn", False)  # noqa: B010 - a plain attribute of timm modules
    return net.eval()  # before any probe: a forward pass in train mode would move BatchNorm's statistics


def fixed_input_size(net: nn.Module) -> int | None:
    """The square input size a patch-embedding network was built for, when it accepts no other."""
    embed = getattr(net, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    if size is None or getattr(net, "dynamic_img_size", False) or not getattr(embed, "strict_img_size", True):
        return None
    return int(size[0]) if isinstance(size, tuple | list) else int(size)


def timm_data_config(net: nn.Module, arch: str) -> tuple[DataConfig, str, str]:
    """The preprocessing timm records for an architecture, and where its input size and its
    normalisation came from (phrases)."""
    from timm.data import resolve_model_data_config

    config = _data_config(resolve_model_data_config(net))
    origin = norm_origin = f"timm's data config for {arch}"
    fixed = fixed_input_size(net)
    if fixed is not None and (fixed, fixed) != config.input_size:  # built for another size
        ratio = (config.resize or config.input_size[0]) / config.input_size[0]
        resize = round(fixed * ratio) if config.resize else None
        config = replace(config, input_size=(fixed, fixed), resize=resize)
        origin = f"the architecture {arch} (built for {fixed} px; crop and interpolation from {origin})"
    return config, origin, norm_origin


def timm_default_config(arch: str) -> DataConfig | None:
    """timm's recorded preprocessing for an architecture name without building it (None if unknown)."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(arch)
    except (RuntimeError, ValueError, KeyError):
        return None
    return None if cfg is None else _data_config(cfg.to_dict())


def _data_config(cfg: Mapping[str, Any]) -> DataConfig:
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    resize = round(size / crop_pct) if crop_pct < 1 else None
    interpolation = str(cfg.get("interpolation") or "bilinear")
    if interpolation not in ("bilinear", "bicubic", "nearest"):
        interpolation = "bilinear"
    mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))
    return DataConfig((size, size), resize, interpolation, mean, std)  # type: ignore[arg-type]


@dataclass(frozen=True)
class UserNetwork:
    """A user network before normalisation and freezing, and where its preprocessing came from."""

    net: nn.Module
    config: DataConfig
    input_from: str
    normalisation_from: str
    framework: str
    architecture: str
    layer: nn.Module | None = None
    gradcam_how: str = "the last convolutional block (found by one forward pass)"
    notes: tuple[str, ...] = ()
    onnx_max_difference: float | None = None
    channels: int = 3


def build_user_network(
    arch: str | None, path: Path, n_out: int, size: int | None, *, file_size_first: bool = False
) -> UserNetwork:
    """The user's network with its weights, before normalisation (`models.load_user_model` adds it).

    Args:
        arch: a torchvision name, ``timm:NAME``, or None for an ``.onnx`` file.
        path: the weights or ``.onnx`` file.
        n_out: outputs the network must have.
        size: square input size that overrides the architecture's or the file's; None keeps it.
        file_size_first: an ONNX file that fixes its input size keeps it and ``size`` applies only
            to files that leave it open (else such a file is refused when ``size`` differs).

    Raises:
        ModelError, CheckpointError: see `models.load_user_model`.
    """
    if path.suffix.lower() == ".onnx":
        if arch:
            raise ModelError("An ONNX file carries its own architecture; give no architecture name.")
        return _build_onnx(path, n_out, size, file_size_first=file_size_first)
    if not arch:
        raise ModelError("Name the architecture these weights belong to (torchvision, or timm:NAME).")
    if arch.startswith(TIMM_PREFIX):
        return _build_timm(arch.removeprefix(TIMM_PREFIX), path, n_out, size)
    return _build_torchvision(arch, path, n_out, size)


def _user_network(
    path: Path, make: Callable[[], nn.Module], make_grey: Callable[[], nn.Module]
) -> tuple[nn.Module, tuple[str, ...], int]:
    """The network ``make`` builds, with the weights of ``path``: unwrapped, finite, of the right
    names and shapes; and its input channels.

    The file is read first (bounded in bytes, never running code), then checked against a skeleton
    of the network on the meta device (shapes, no memory) before the real network is built, so a
    bogus file for a 600-million-parameter architecture (or a head for 25,000 classes) is refused
    without allocating gigabytes first. Weights whose first convolution takes one channel are a
    network trained on grey images: ``make_grey`` builds that one instead.
    """
    loaded = load_weights_file(path)
    skeleton = _on_meta(make)
    state, notes = unwrap_state_dict(loaded, set(skeleton.state_dict()))
    channels = 3
    if takes_one_channel(skeleton, state):
        skeleton, make, channels = _on_meta(make_grey), make_grey, 1
        notes = (*notes, "the first convolution takes one channel: a network for grey images")
    count = parameter_count(skeleton)
    size = path.stat().st_size
    if size < count:  # even float8 weights take a byte each
        raise ModelError(
            f"{path.name} holds {size:,} bytes, too few for the architecture's {count:,} parameters "
            "(at least one byte each); it is not a full set of weights for this architecture."
        )
    if not state:
        raise ModelError(f"{path.name} holds no tensors; expected a state_dict (parameter name -> tensor).")
    state = as_float32(state, path.name)
    check_finite(state, path.name)
    problem = describe_mismatch(skeleton, state, path.name)
    if problem:
        raise ModelError(problem + (f" (Read it after: {'; '.join(notes)}.)" if notes else ""))
    net = make()
    net.load_state_dict(state, strict=True)
    return net, notes, channels


def first_convolution(net: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The convolution that reads the image: timm's recorded ``first_conv``, else the first
    ``Conv2d`` taking three channels in the network's definition order."""
    cfg = getattr(net, "pretrained_cfg", None) or {}
    named = cfg.get("first_conv") if isinstance(cfg, Mapping) else None
    for name in [named] if isinstance(named, str) else list(named or ()):
        module = _submodule(net, name)
        if isinstance(module, nn.Conv2d):
            return name, module
    return next(
        ((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3), None
    )


def _submodule(net: nn.Module, name: str) -> nn.Module | None:
    try:
        return net.get_submodule(name)
    except AttributeError:
        return None


def takes_one_channel(skeleton: nn.Module, state: Mapping[str, Tensor]) -> bool:
    """True when the weights' first convolution takes one channel where the architecture's takes three."""
    found = first_convolution(skeleton)
    if found is None or found[1].in_channels != 3:
        return False
    weight = state.get(f"{found[0]}.weight")
    return weight is not None and weight.ndim == 4 and weight.shape[1] == 1


def with_one_channel_input(net: nn.Module) -> nn.Module:
    """``net`` with its first convolution (`first_convolution`) replaced by one reading one channel,
    of the same shape otherwise (a torchvision network for grey images)."""
    found = first_convolution(net)
    if found is None:
        raise ModelError("The architecture has no convolution reading the image; it cannot take grey images.")
    name, conv = found
    grey = nn.Conv2d(
        1,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=1,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, grey)
    return net


def _on_meta(make: Callable[[], nn.Module]) -> nn.Module:
    """``make()`` with every tensor on the meta device: its parameter shapes, without their memory."""
    with torch.device("meta"):
        return make()


def as_float32(state: Mapping[str, Tensor], name: str) -> dict[str, Tensor]:
    """Weights with every floating tensor in float32, the network's own type, so their values can be
    checked: float16, bfloat16 and float8 files are common, and NaN checks do not run on float8;
    float64 values beyond float32's range would turn infinite when loaded.

    Raises:
        ModelError: complex or quantized tensors, or a floating type torch cannot convert (float4).
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if value.is_complex() or value.is_quantized:
            raise ModelError(f"{name} stores '{key}' as {value.dtype}; expected real-valued weights.")
        if not value.is_floating_point() or value.dtype == torch.float32:
            out[key] = value
            continue
        try:
            out[key] = value.float()
        except (NotImplementedError, RuntimeError) as exc:
            raise ModelError(
                f"{name} stores '{key}' as {value.dtype}, which cannot be read as float32; "
                "save the weights as float32, float16 or bfloat16."
            ) from exc
    return out


def _build_torchvision(arch: str, path: Path, n_out: int, size: int | None) -> UserNetwork:
    import torchvision.models as tvm

    known = tvm.list_models(module=tvm)
    if arch not in known:
        raise ModelError(
            f"Unknown architecture {arch!r}; choose a torchvision classification model such as "
            f"{', '.join(USER_ARCHS)}, or timm:NAME for a timm architecture."
        )

    def make() -> nn.Module:
        return tvm.get_model(arch, weights=None, num_classes=n_out)

    net, notes, channels = _user_network(path, make, lambda: with_one_channel_input(make()))
    side = 224 if size is None else size
    config = DataConfig((side, side), round(side * 256 / 224), "bilinear", IMAGENET_MEAN, IMAGENET_STD)
    recipe = "torchvision's ImageNet recipe (224 px, resize 256/224, bilinear)"
    return UserNetwork(
        net,
        config,
        "your setting" if size else recipe,
        "torchvision's ImageNet recipe",
        "torchvision",
        arch,
        notes=notes,
        channels=channels,
    )


def _build_timm(arch: str, path: Path, n_out: int, size: int | None) -> UserNetwork:
    net, notes, channels = _user_network(
        path,
        lambda: create_timm(arch, num_classes=n_out, input_size=size),
        lambda: create_timm(arch, num_classes=n_out, input_size=size, in_chans=1),
    )
    config, origin, norm_origin = timm_data_config(net, arch)
    if size is not None:
        ratio = (config.resize or config.input_size[0]) / config.input_size[0]
        resize = round(size * ratio) if config.resize else None
        config = replace(config, input_size=(size, size), resize=resize)
        origin = f"your setting (resize and interpolation from {origin})"
    tap = install_token_tap(net, input_size=config.input_size[0], channels=channels)
    if tap is None:
        return UserNetwork(net, config, origin, norm_origin, "timm", arch, notes=notes, channels=channels)
    layer, _, how = tap
    return UserNetwork(
        net,
        config,
        origin,
        norm_origin,
        "timm",
        arch,
        layer=layer,
        gradcam_how=how,
        notes=notes,
        channels=channels,
    )


def _build_onnx(path: Path, n_out: int, size: int | None, *, file_size_first: bool) -> UserNetwork:
    graph = read_onnx(path)
    input_from = "the ONNX file's input shape"
    if size is not None and graph.input_size is not None and graph.input_size != (size, size):
        h, w = graph.input_size
        if not file_size_first:
            raise ModelError(f"{path.name} fixes its input at {h}×{w} px; leave the input size to the file.")
        input_from += f" (the file fixes {h}×{w} px, so your {size} px was not used)"
    hw = graph.input_size or (size or 224, size or 224)
    if not graph.input_size:
        input_from = "your setting" if size else "advexp's default (the file leaves the size open)"
    if graph.outputs not in (None, n_out):
        raise ModelError(
            f"{path.name} returns {graph.outputs} outputs but {n_out} were expected from the class names."
        )
    check_tensor_sizes(graph, input_size=hw, name=path.name)  # before anything runs the graph
    net, done = convert_onnx(graph, input_size=hw, name=path.name)
    notes = list(done)
    diff = onnxruntime_difference(graph, net, input_size=hw, name=path.name)
    if diff > MAX_RELATIVE_DIFFERENCE:
        raise ModelError(
            f"{path.name} converted to PyTorch with a largest difference of {diff:.1e} (relative) from "
            f"ONNX Runtime, above {MAX_RELATIVE_DIFFERENCE:.0e}; refused rather than explain another network."
        )
    config = DataConfig(hw, round(min(hw) * 256 / 224), "bilinear", IMAGENET_MEAN, IMAGENET_STD)
    notes.append(f"largest difference from ONNX Runtime on 3 random images: {diff:.1e} (relative)")
    if net.one_at_a_time:
        notes.append("the file fixes the batch at one image, so images go through one at a time")
    layer = last_spatial_operator(net, input_size=hw, channels=graph.channels)
    return UserNetwork(
        net,
        config,
        input_from,
        "ImageNet's (an ONNX file does not record it: set yours if it differs)",
        "onnx",
        f"ONNX graph, {graph.nodes} operators",
        notes=tuple(notes),
        layer=layer,
        gradcam_how="the last operator of the graph with a spatial output",
        onnx_max_difference=diff,
        channels=graph.channels,
    )


def parameter_count(module: nn.Module) -> int:
    """Number of parameter values (each shared tensor once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def module_name(root: nn.Module, target: nn.Module) -> str:
    """The dotted name of ``target`` inside ``root`` ('' for the root; '?' when it is not inside)."""
    return next((name for name, m in root.named_modules() if m is target), "?")
