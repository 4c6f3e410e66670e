"""Keep the label, move the map (docs/method.md §4 step 5; Dombrowski et al. NeurIPS 2019)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import JsonObject, json_number
from advexp_core.base.runtime import OnStep
from advexp_core.experiments.configs import REGIONS, ManipulationConfig
from advexp_core.experiments.maps import fit_image
from advexp_core.experiments.progress import tick
from advexp_core.experiments.report import config_dict, predictions
from advexp_core.methods.manipulation import manipulate_explanation, region_map
from advexp_core.methods.saliency import make_map
from advexp_core.networks.registry import LoadedModel
from advexp_core.readings import Reading
from advexp_core.readings import attack as attack_readings


@dataclass(frozen=True)
class MoveTheMapResult:
    """An image whose map moved toward a goal while its decision stayed.

    Attributes:
        image, adversarial, delta: x, x + δ and δ in [0, 1] units, on the CPU (3, h, w).
        original_map, manipulated_map, goal_map: the map of x, of x + δ, and the goal (h, w).
        config: the settings.
        predictions_before, predictions_after: the top classes at x and at x + δ.
        label_kept: the top class stayed.
        max_logit_change: the largest change of a logit.
        linf_255: the largest change of a colour value, in 1/255 steps.
        similarity: "to_target_before", "to_target_after", "to_original_after" -> measure -> value.
        reading: the verdict on this run (`readings.attack.manipulation`).
    """

    image: Tensor
    adversarial: Tensor
    delta: Tensor
    original_map: Tensor
    manipulated_map: Tensor
    goal_map: Tensor
    config: ManipulationConfig
    predictions_before: list[dict[str, Any]]
    predictions_after: list[dict[str, Any]]
    label_kept: bool
    max_logit_change: float | None
    linf_255: float | None
    similarity: dict[str, dict[str, float | None]]
    reading: Reading

    def to_json(self) -> JsonObject:
        """The JSON of the page's report: predictions, label kept, logit and pixel change, similarities."""
        return copy.deepcopy(
            {
                "settings": config_dict(self.config),
                "predictions_before": self.predictions_before,
                "predictions_after": self.predictions_after,
                "label_kept": self.label_kept,
                "max_logit_change": self.max_logit_change,
                "linf_255": self.linf_255,
                "similarity": self.similarity,
                "reading": self.reading.to_json(),
            }
        )


def move_the_map(
    model: LoadedModel,
    image: Tensor,
    config: ManipulationConfig,
    *,
    goal_image: Tensor | None = None,
    on_step: OnStep | None = None,
) -> MoveTheMapResult:
    """Move the chosen map toward the goal region (or another image's map) while the logits stay put.

    Args:
        model: the network; its lock is held once for the whole run.
        image: x in [0, 1]; resized to the model's input when needed.
        config: the settings; a goal "image:…" needs ``goal_image``.
        goal_image: the image whose map to copy, in [0, 1].
        on_step: called as on_step(step, steps).

    Returns:
        MoveTheMapResult.

    Shapes: image (3, H, W), goal_image (3, H', W') -> maps (h, w).
    """
    x = fit_image(image, model)
    with model.lock:  # one run at a time per shared model: the map and its search hook the module
        goal = _goal_map(model, config, goal_image)
        layer = model.gradcam_layer if config.method == "gradcam" else None
        res = manipulate_explanation(
            model.module,
            x[None],
            target_map=goal,
            layer=layer,
            eps=config.eps,
            steps=config.steps,
            beta=config.beta,
            gamma=config.gamma,
            method=config.method,
            on_step=on_step,
        )
    tick(on_step, config.steps, config.steps)
    before = predictions(res.logits_before[0], model.class_names)
    after = predictions(res.logits_after[0], model.class_names)
    similarity = {
        name: {k: json_number(v[0]) for k, v in getattr(res, name).items()}
        for name in ("to_target_before", "to_target_after", "to_original_after")
    }
    linf_255 = json_number(res.delta[0].abs().max() * 255)
    reading = attack_readings.manipulation(
        before,
        after,
        label_kept=bool(res.label_kept[0]),
        linf_255=linf_255,
        to_goal_before=similarity["to_target_before"]["spearman"],
        to_goal_after=similarity["to_target_after"]["spearman"],
    )
    return MoveTheMapResult(
        x.detach().cpu(),
        res.adversarial[0].detach().cpu(),
        res.delta[0].detach().cpu(),
        res.original_map[0].cpu(),
        res.manipulated_map[0].cpu(),
        res.target_map[0].cpu(),
        config,
        before,
        after,
        bool(res.label_kept[0]),
        json_number(res.logit_change[0]),
        linf_255,
        similarity,
        reading,
    )


def _goal_map(model: LoadedModel, config: ManipulationConfig, goal_image: Tensor | None) -> Tensor:
    """The goal: a box of the image (a quarter or the centre), or the same map of another image."""
    h, w = model.input_size
    if config.goal.startswith("image:"):
        if goal_image is None:
            raise ValueError("Pick the image whose map should be copied.")
        other = fit_image(goal_image, model)[None]
        with torch.no_grad():
            label = model.module(other).argmax(1)
        return make_map(model.module, other, label, method=config.method, layer=model.gradcam_layer).maps[0]
    boxes = dict(
        zip(
            REGIONS,
            [
                (0, 0, h // 2, w // 2),
                (0, w - w // 2, h // 2, w),
                (h - h // 2, 0, h, w // 2),
                (h - h // 2, w - w // 2, h, w),
                (h // 4, w // 4, h - h // 4, w - w // 4),
            ],
            strict=True,
        )
    )
    return region_map((h, w), boxes[config.goal])
