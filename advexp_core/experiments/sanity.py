"""Sanity checks: does each map follow the network? (docs/method.md §5; Adebayo et al. 2018).

Model randomisation runs on a private deep copy of the network, taken under the model's lock (a
shared module may carry another run's Grad-CAM hooks, which a copy would inherit) and randomised
without it. Data randomisation explains the shared model and its partner trained on permuted
labels, so it holds both locks, always in the order (model, partner).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.base.jsonsafe import JsonObject
from advexp_core.base.runtime import OnStep
from advexp_core.data.datasets import load_dataset
from advexp_core.evaluation.sanity import (
    ExplainFn,
    SanityResult,
    cascading_randomisation,
    data_randomisation,
    data_reading,
    layer_of_copy,
    measured_steps,
    randomisation_layers,
    sanity_reading,
)
from advexp_core.experiments.configs import RANDOM_LABEL_PARTNERS, SaliencyConfig, SanityConfig
from advexp_core.experiments.maps import check_class, fit_image, gradcam_layer_for
from advexp_core.experiments.progress import stage, tick
from advexp_core.experiments.report import config_dict
from advexp_core.methods.maps import SaliencyMap
from advexp_core.methods.saliency import make_map
from advexp_core.networks.registry import LoadedModel, load_model
from advexp_core.networks.zoo import ModelError


@dataclass(frozen=True)
class SanityPlan:
    """What a sanity check will randomise and measure, to state its cost before running it.

    Attributes:
        layers: every layer randomised, output first (module paths).
        measured: the layers after which the maps are measured.
        maps: saliency maps to compute: (1 + len(measured)) per method.
    """

    layers: tuple[str, ...]
    measured: tuple[str, ...]
    maps: int


@dataclass(frozen=True)
class SanityChecksResult:
    """The cascading randomisation curves, the data check when there is a partner, the readings.

    Attributes:
        image: x in [0, 1] on the CPU (3, h, w).
        cascade: the curves and maps (`advexp_core.evaluation.sanity.SanityResult`).
        data: `data_randomisation`'s numbers, or None without a partner network.
        reading: the plain-language reading of both checks.
        config: the settings.
        target_label: the explained class's name.
        layers_all: every layer of the network that can be randomised, output first.
    """

    image: Tensor
    cascade: SanityResult
    data: dict[str, Any] | None
    reading: str
    config: SanityConfig
    target_label: str
    layers_all: tuple[str, ...]

    def to_json(self) -> JsonObject:
        """The JSON of the CLI and the page: {"model", "image", "methods": {name: {"layers",
        "spearman", "ssim"}}, "seed", "target", "target_label", "layers_all", "data", "reading",
        "settings"}."""
        return {
            **self.cascade.to_dict(),
            "target_label": self.target_label,
            "layers_all": list(self.layers_all),
            "data": copy.deepcopy(self.data),
            "reading": self.reading,
            "settings": config_dict(self.config),
        }


def sanity_plan(model: LoadedModel, config: SanityConfig) -> SanityPlan:
    """The layers `sanity_checks` randomises and measures (ValueError: nothing to randomise)."""
    layers = randomisation_layers(model.module)
    steps = measured_steps(len(layers), config.max_layers)
    return SanityPlan(
        tuple(layers), tuple(layers[k - 1] for k in steps), (1 + len(steps)) * len(config.methods)
    )


def explainer(saliency: SaliencyConfig) -> ExplainFn:
    """`saliency.make_map` with each method's settings; SmoothGrad gets fresh noise of the same seed
    at every call, so the maps of one image differ only by what was randomised."""

    def run(
        module: nn.Module, images: Tensor, targets: Any, *, method: str, layer: nn.Module | None = None
    ) -> SaliencyMap:
        settings = saliency.settings(method)
        return make_map(module, images, targets, method=method, settings=settings, layer=layer)

    return run


def sanity_checks(
    model: LoadedModel,
    image: Tensor,
    config: SanityConfig,
    *,
    image_name: str = "",
    on_step: OnStep | None = None,
) -> SanityChecksResult:
    """Cascading model randomisation and, for digits-standard, data randomisation (docs/method.md §5).

    Args:
        model: the trained network; only a deep copy is randomised.
        image: x in [0, 1]; resized to the model's input when needed.
        config: methods, seed, how many layers to measure, the class, the data check.
        image_name: recorded in the report.
        on_step: called as on_step(done, total): one per measured point, then one per method of
            the data check.

    Returns:
        SanityChecksResult.

    Raises:
        ValueError: a model without a layer to randomise, or a class it does not have.

    Shapes: image (3, H, W) -> maps (h, w).
    """
    plan = sanity_plan(model, config)
    x = fit_image(image, model)
    with model.lock:  # a copy taken while another run hooks the shared module would keep its hooks
        twin = copy.deepcopy(model.module)
    with torch.no_grad():
        logits = twin(x[None])[0]
    target = check_class(model, int(logits.argmax()) if config.target is None else int(config.target))
    partner = _partner(model, config)
    points = len(plan.measured)
    total = points + (len(config.methods) if partner is not None else 0)
    layer = (
        layer_of_copy(model.module, twin, model.gradcam_layer, x[None])
        if "gradcam" in config.methods
        else None
    )
    cascade = cascading_randomisation(
        twin,
        x,
        target,
        methods=config.methods,
        seed=config.seed,
        layer_names=plan.layers,
        max_points=config.max_layers,
        gradcam_layer=layer,
        explain_fn=explainer(config.saliency),
        in_place=True,
        on_step=stage(on_step, 0, points, total),
        model_name=model.model_id,
        image_name=image_name,
    )
    tick(on_step, points, total)
    data = _data_check(model, partner, config, on_step, points, total) if partner is not None else None
    reading = sanity_reading(cascade)
    if data is not None and partner is not None:
        reading += "\n\n" + data_reading(data, model=model.model_id, partner=partner.model_id)
    return SanityChecksResult(
        x.detach().cpu(), cascade, data, reading, config, model.class_names[target], tuple(plan.layers)
    )


def _partner(model: LoadedModel, config: SanityConfig) -> LoadedModel | None:
    """The network trained on permuted labels for the data check, when there is one and it loads."""
    partner_id = RANDOM_LABEL_PARTNERS.get(model.model_id)
    if not config.data or partner_id is None:
        return None
    try:
        return load_model(partner_id, device=model.device)
    except ModelError:  # a checkout without the checkpoint: the model check still runs
        return None


def _data_check(
    model: LoadedModel,
    partner: LoadedModel,
    config: SanityConfig,
    on_step: OnStep | None,
    done: int,
    total: int,
) -> dict[str, Any]:
    """Both networks' maps of the first digits test images, each for its own prediction."""
    digits = load_dataset("digits", "test")
    n = min(config.data_images, len(digits))
    images = torch.stack([fit_image(digits[i][0], model) for i in range(n)])
    explain_fn = explainer(config.saliency)
    out: dict[str, Any] = {"images": n, "partner": partner.model_id, "methods": {}}
    with model.lock, partner.lock:  # Grad-CAM hooks both modules
        with torch.no_grad():
            targets_a = model.module(images).argmax(1)
            targets_b = partner.module(images.to(partner.device)).argmax(1)
        for k, method in enumerate(config.methods, start=1):
            one = data_randomisation(
                model.module,
                partner.module,
                images,
                targets_a,
                methods=[method],
                targets_b=targets_b,
                layer_a=gradcam_layer_for(model, (method,)),
                layer_b=gradcam_layer_for(partner, (method,)),
                explain_fn=explain_fn,
            )
            out["methods"].update(one["methods"])
            tick(on_step, done + k, total)
    return out
