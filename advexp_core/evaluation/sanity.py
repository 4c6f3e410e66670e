"""Sanity checks for saliency maps (docs/method.md §5; Adebayo et al., NeurIPS 2018).

A map that explains a network's decision must change when what the network learned is
destroyed. Two checks test this:

* **Cascading model-parameter randomisation**: re-initialise the layers of a copy of the
  network one at a time from the output down, cumulatively, and compare each method's map
  after every step with the map of the trained network.
* **Data randomisation**: compare the maps of a network trained on the true labels with those
  of the same architecture trained on permuted labels (it can only memorise).

Maps that stay similar (Spearman rank correlation of absolute values, SSIM of the maps) after
the network is fully randomised depend on the image rather than on the model: they may look
plausible, e.g. like an edge detector, but they do not explain this model's decision.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.base.jsonsafe import format_number, json_number
from advexp_core.base.runtime import OnStep, device_of
from advexp_core.measures import metrics
from advexp_core.methods.maps import SaliencyMap
from advexp_core.methods.saliency import METHOD_TITLES, METHODS, explain
from advexp_core.networks.introspect import find_last_conv_block

SIMILAR = 0.5  # Spearman above this after full randomisation: the map did not follow the model
NONE = "none"  # the first point of every curve: the trained network

ExplainFn = Callable[..., SaliencyMap]
"""``explain_fn(module, images, targets, *, method, layer=None, **kwargs) -> SaliencyMap``."""


def _check_methods(methods: Sequence[str]) -> None:
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(
            f"unknown or no saliency methods {unknown or list(methods)!r}; choose from {', '.join(METHODS)}"
        )


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def randomisation_layers(module: nn.Module) -> list[str]:
    """The layers to randomise, output first, as module paths (`module.get_submodule(name)`).

    Descends through wrappers whose parameters all sit in one child (e.g. `Classifier` ->
    `net`), then lists that network's children that hold parameters in reverse order; a
    `Sequential`/`ModuleList` child is split into its own parameterised children (the blocks
    of a stage). On EfficientNet-Lite0: `net._fc`, `net._bn1`, `net._conv_head`,
    `net._blocks.15`, ..., `net._blocks.0`, `net._bn0`, `net._conv_stem`.

    Raises:
        ValueError: the module has no parameters.
    """
    if not _has_params(module):
        raise ValueError(
            f"{type(module).__name__} has no parameters, so there is no layer to randomise; "
            "the sanity check needs a trained network"
        )
    root, prefix = module, ""
    while True:
        kids = [(n, c) for n, c in root.named_children() if _has_params(c)]
        if len(kids) != 1 or next(root.parameters(recurse=False), None) is not None:
            break
        root, prefix = kids[0][1], _join(prefix, kids[0][0])
    layers: list[str] = []
    for name, child in reversed(list(root.named_children())):
        if not _has_params(child):
            continue
        inner = [(n, c) for n, c in child.named_children() if _has_params(c)]
        if isinstance(child, nn.Sequential | nn.ModuleList) and len(inner) > 1:
            layers.extend(_join(_join(prefix, name), n) for n, _ in reversed(inner))
        else:
            layers.append(_join(prefix, name))
    return layers or [prefix]  # a bare layer: randomise it whole


def reinitialise(layer: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise a layer's parameters in place (on a copy: never on a shared model).

    Matrices and kernels: normal with std sqrt(2 / fan_in) (He et al. 2015), fan_in = the
    inputs of one output unit (in_channels / groups x kernel area). Biases: 0. Other vectors
    (normalisation scales): 1, their usual initialisation. Buffers (running statistics) stay.
    Values are drawn on the CPU from `generator`, so a seed means the same network everywhere.
    """
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if p.dim() >= 2:
                std = math.sqrt(2.0 / max(1, p[0].numel()))
                value = torch.randn(p.shape, generator=generator, dtype=torch.float32) * std
                p.copy_(value.to(p.device, p.dtype))
            elif name.rsplit(".", 1)[-1] == "bias":
                p.zero_()
            else:
                p.fill_(1.0)


def _compare(original: Tensor, other: Tensor) -> tuple[float, float]:
    """(Spearman of absolute values, SSIM of the maps); Spearman is NaN for a constant map."""
    return metrics.spearman(original.abs(), other.abs()), metrics.map_ssim(original.abs(), other.abs())


@dataclass(frozen=True)
class SanityResult:
    """The curves of the cascading randomisation check, one per method.

    Attributes:
        layers: "none" (the trained network), then the module path of the layer randomised last
            before each measurement; point k is measured with every layer from the output
            down to layers[k] randomised (measurements may skip layers: `measured_steps`).
        spearman: method -> Spearman rank correlation of |map| with the trained network's map.
        ssim: method -> SSIM of the maps (each scaled to [0, 1] by its maximum).
        maps: method -> the map at each point, on the CPU.
        target: the class explained.
        seed: seed of the re-initialisation.
        model, image: names for reports.

    Shapes: maps[m][k] (H, W); len(spearman[m]) == len(ssim[m]) == len(maps[m]) == len(layers)
    """

    layers: tuple[str, ...]
    spearman: Mapping[str, tuple[float, ...]]
    ssim: Mapping[str, tuple[float, ...]]
    maps: Mapping[str, tuple[Tensor, ...]] = field(repr=False)
    target: int
    seed: int
    model: str = ""
    image: str = ""

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(self.spearman)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready curves (NaN -> null), without the maps."""
        return {
            "model": self.model,
            "image": self.image,
            "target": self.target,
            "methods": {
                m: {
                    "layers": list(self.layers),
                    "spearman": [json_number(v) for v in self.spearman[m]],
                    "ssim": [json_number(v) for v in self.ssim[m]],
                }
                for m in self.methods
            },
            "seed": self.seed,
        }


def _resolve_layers(module: nn.Module, layer_names: Sequence[str] | None) -> list[str]:
    if layer_names is None:
        return randomisation_layers(module)
    names = dict(module.named_modules())
    missing = [n for n in layer_names if n not in names or not _has_params(names[n])]
    if missing or not layer_names:
        raise ValueError(
            f"layer_names {missing or list(layer_names)!r} are not parameterised submodules; "
            f"the default order is {randomisation_layers(module)!r}"
        )
    return list(layer_names)


def layer_of_copy(original: nn.Module, twin: nn.Module, layer: nn.Module | None, image: Tensor) -> nn.Module:
    """The copy's module at the same path as `layer` in the original (`find_last_conv_block` of the
    copy when None). Shapes: image (N, C, H, W), for the input size."""
    if layer is None:
        return find_last_conv_block(twin, input_size=(image.shape[-2], image.shape[-1]))
    for name, m in original.named_modules():
        if m is layer:
            return twin.get_submodule(name)
    raise ValueError("gradcam_layer is not a submodule of the model")


def measured_steps(n_layers: int, max_points: int | None) -> list[int]:
    """The steps (1..n_layers) after which the maps are measured: all, or `max_points` spread evenly.

    The last step (every layer randomised) is always measured; randomisation stays cumulative
    through the steps skipped in between, so each point still means "everything above it".
    """
    if max_points is not None and max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if max_points is None or max_points >= n_layers:
        return list(range(1, n_layers + 1))
    return sorted({round(n_layers * (i + 1) / max_points) for i in range(max_points)})


def cascading_randomisation(
    module: nn.Module,
    image: Tensor,
    target: int,
    *,
    methods: Sequence[str],
    seed: int = 0,
    layer_names: Sequence[str] | None = None,
    max_points: int | None = None,
    gradcam_layer: nn.Module | None = None,
    explain_fn: ExplainFn = explain,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    in_place: bool = False,
    on_step: OnStep | None = None,
    model_name: str = "",
    image_name: str = "",
) -> SanityResult:
    """Cascading model-parameter randomisation (docs/method.md §5; Adebayo et al. 2018, §3.1).

    The module given is never touched: a deep copy is randomised layer by layer, from the
    output down and cumulatively (`reinitialise`, one seeded generator), and after each step
    (or each of `measured_steps`) every method explains the same image for the same class.

    Args:
        module: the trained network (images in [0, 1] -> logits).
        image: the image to explain, in [0, 1].
        target: the class to explain (e.g. the trained network's prediction).
        methods: names from `advexp_core.methods.saliency.METHODS`.
        seed: seed of the re-initialisation.
        layer_names: module paths to randomise, in order; default `randomisation_layers`.
        max_points: measure after at most this many steps (`measured_steps`); None: after each.
        gradcam_layer: the Grad-CAM layer of `module`; the copy's layer at the same path is
            used (default `find_last_conv_block`).
        explain_fn: computes the maps; default `advexp_core.methods.saliency.explain`.
        method_kwargs: method -> hyperparameters, e.g. {"lime": {"n_samples": 64}}.
        in_place: randomise `module` itself: only for a private copy the caller made (e.g.
            under a shared model's lock, which may be hooked by another run meanwhile).
        on_step: progress, called as (points done, points) after each measurement.
        model_name, image_name: recorded in the result for reports.

    Returns:
        SanityResult; every curve starts at 1.0 (the trained map against itself).

    Raises:
        ValueError: an unknown method, a bad image, or a model with no layer to randomise.

    Shapes: image (C, H, W) -> maps (H, W)
    """
    _check_methods(methods)
    if image.dim() != 3:
        raise ValueError(f"image must have shape (C, H, W), got {tuple(image.shape)}")
    names = _resolve_layers(module, layer_names)
    measure = measured_steps(len(names), max_points)
    twin = module if in_place else copy.deepcopy(module)
    x = image.detach().to(device_of(twin, image.device)).float()[None]
    layer = layer_of_copy(module, twin, gradcam_layer, x) if "gradcam" in methods else None
    kwargs = method_kwargs or {}

    def maps_now() -> dict[str, Tensor]:
        return {
            m: explain_fn(twin, x, target, method=m, layer=layer, **kwargs.get(m, {})).maps[0].detach().cpu()
            for m in methods
        }

    original = maps_now()
    curves: dict[str, list[tuple[float, float]]] = {m: [(1.0, 1.0)] for m in methods}
    maps = {m: [original[m]] for m in methods}
    generator = torch.Generator().manual_seed(seed)
    for k, name in enumerate(names, start=1):
        reinitialise(twin.get_submodule(name), generator)
        if k not in measure:
            continue
        for m, now in maps_now().items():
            curves[m].append(_compare(original[m], now))
            maps[m].append(now)
        if on_step is not None:
            on_step(measure.index(k) + 1, len(measure))
    return SanityResult(
        layers=(NONE, *(names[k - 1] for k in measure)),
        spearman={m: tuple(rho for rho, _ in v) for m, v in curves.items()},
        ssim={m: tuple(q for _, q in v) for m, v in curves.items()},
        maps={m: tuple(v) for m, v in maps.items()},
        target=int(target), seed=seed, model=model_name, image=image_name,
    )  # fmt: skip


def _title(method: str) -> str:
    return METHOD_TITLES.get(method, method)


def sanity_reading(result: SanityResult) -> str:
    """The cascading check in plain words: which maps followed the randomisation and which did not.

    A map "stayed similar" when its Spearman correlation with the trained network's map is
    still above 0.5 once every layer is randomised (Adebayo et al. 2018).
    """
    stayed, changed = [], []
    for m in result.methods:
        rho, q = result.spearman[m][-1], result.ssim[m][-1]
        if rho == rho and rho > SIMILAR:
            stayed.append(f"{_title(m)} (Spearman {rho:.2f}, SSIM {q:.2f})")
            continue
        below = next(
            (name for name, v in zip(result.layers, result.spearman[m], strict=True) if not v > SIMILAR),
            result.layers[-1],
        )
        state = "became constant" if rho != rho else f"Spearman {rho:.2f}, SSIM {q:.2f}"
        changed.append(f"{_title(m)} ({state}; below {SIMILAR} from {below} on)")
    parts = []
    if stayed:
        parts.append(
            f"Stayed similar with the whole network randomised: {'; '.join(stayed)}. These maps depend "
            "more on the image than on what the network learned, so they do not show why this "
            "model decided as it did; do not trust them as explanations of it."
        )
    if changed:
        parts.append(
            f"Changed as the network was randomised: {'; '.join(changed)}. These maps depend on the "
            "learned weights, as an explanation must; passing this check is necessary, not "
            "sufficient, for trusting them."
        )
    return " ".join(parts)


def data_randomisation(
    module_a: nn.Module,
    module_b: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    methods: Sequence[str],
    targets_b: Tensor | int | Sequence[int] | None = None,
    layer_a: nn.Module | None = None,
    layer_b: nn.Module | None = None,
    explain_fn: ExplainFn = explain,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Data randomisation test (Adebayo et al. 2018, §3.2): maps of two networks, image by image.

    Typically `module_a` is trained on the true labels (e.g. `digits-standard`) and `module_b`
    on permuted labels; maps that agree do not depend on what the labels taught. Explaining
    only runs the modules (Grad-CAM hooks are removed again): hold their locks if shared.

    Args:
        module_a, module_b: the networks (images in [0, 1] -> logits).
        images: images in [0, 1].
        targets: classes to explain with `module_a` (and with `module_b` unless `targets_b`).
        methods: names from `advexp_core.methods.saliency.METHODS`.
        targets_b: classes to explain with `module_b`, e.g. its own predictions.
        layer_a, layer_b: Grad-CAM layers (default `find_last_conv_block`).
        explain_fn: computes the maps; default `advexp_core.methods.saliency.explain`.
        method_kwargs: method -> hyperparameters.

    Returns:
        {"images": N, "methods": {method: {"spearman": [N], "ssim": [N], "mean_spearman",
        "mean_ssim"}}}, NaN as None.

    Shapes: images (N, C, H, W)
    """
    _check_methods(methods)
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    kwargs = method_kwargs or {}
    out: dict[str, Any] = {}
    for m in methods:
        kw = kwargs.get(m, {})
        a = explain_fn(module_a, images, targets, method=m, layer=layer_a, **kw).maps
        b_targets = targets if targets_b is None else targets_b
        b = explain_fn(module_b, images, b_targets, method=m, layer=layer_b, **kw).maps
        rho, q = zip(*(_compare(a[i], b[i]) for i in range(images.shape[0])), strict=True)
        out[m] = {
            "spearman": [json_number(v) for v in rho],
            "ssim": [json_number(v) for v in q],
            "mean_spearman": json_number(_nanmean(rho)),
            "mean_ssim": json_number(_nanmean(q)),
        }
    return {"images": images.shape[0], "methods": out}


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else math.nan


def data_reading(data: Mapping[str, Any], *, model: str, partner: str) -> str:
    """The data-randomisation check in plain words, from `data_randomisation`'s result.

    A method "passes" when its maps for the network trained on permuted labels are unlike those
    of the trained network (mean Spearman at most 0.5, as for `sanity_reading`).
    """
    same: list[str] = []
    differ: list[str] = []
    for m, v in data["methods"].items():
        rho, q = v["mean_spearman"], v["mean_ssim"]
        text = f"{_title(m)} (mean Spearman {format_number(rho)}, SSIM {format_number(q)})"
        (same if rho is not None and rho > SIMILAR else differ).append(text)
    parts = [f"Data randomisation, {model} against {partner} on {data['images']} test images."]
    if same:
        parts.append(
            f"Similar for the network that learned nothing but memorised labels: {'; '.join(same)}. "
            "These maps do not reflect what the true labels taught."
        )
    if differ:
        parts.append(f"Different for it, as they should be: {'; '.join(differ)}.")
    return " ".join(parts)
