"""Compare explainers: several saliency methods on one image, how much they agree, how faithful each is.

Any of `advexp_core.methods.saliency.METHODS`, the forward-only LIME and occlusion included (docs/method.md
§5), enters the agreement matrix and the deletion/insertion curves alike.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import JsonObject
from advexp_core.base.runtime import OnStep
from advexp_core.evaluation.faithfulness import deletion_insertion
from advexp_core.experiments.configs import ExplainersConfig
from advexp_core.experiments.maps import check_class, fit_image, gradcam_layer_for
from advexp_core.experiments.progress import stage, tick
from advexp_core.experiments.report import config_dict, predictions
from advexp_core.measures import metrics
from advexp_core.methods.maps import SaliencyMap
from advexp_core.methods.saliency import METHOD_TITLES, make_map
from advexp_core.networks.registry import LoadedModel
from advexp_core.readings.agreement import every_measure

AGREEMENT = {
    "spearman": metrics.spearman,
    "topk_intersection": metrics.topk_intersection,
    "ssim": metrics.map_ssim,
}


Scalar = bool | int | float | str


@dataclass(frozen=True)
class MethodMap:
    """One method's map, handed out as soon as it is computed (the partial result "map done" of
    `compare_explainers`).

    Attributes:
        method: the saliency method.
        map: the map (h, w) on the CPU, the very tensor the final result's ``maps`` holds.
        target: the explained class.
        details: its recorded settings and costs, as in the JSON's ``method_details``.
    """

    method: str
    map: Tensor
    target: int
    details: dict[str, Scalar]


@dataclass(frozen=True)
class Curves:
    """One map's deletion and insertion curves (`advexp_core.evaluation.faithfulness`) and their areas.

    Attributes:
        fractions: shares of pixels removed / inserted.
        deletion, insertion: the target's probability at each fraction.
        deletion_auc, insertion_auc: the areas under the curves.
    """

    fractions: tuple[float, ...]
    deletion: tuple[float, ...]
    insertion: tuple[float, ...]
    deletion_auc: float
    insertion_auc: float

    def to_json(self) -> dict[str, list[float] | float]:
        return {
            "fractions": list(self.fractions),
            "deletion": list(self.deletion),
            "insertion": list(self.insertion),
            "deletion_auc": self.deletion_auc,
            "insertion_auc": self.insertion_auc,
        }


@dataclass(frozen=True)
class MethodCurves:
    """One method's curves, handed out as soon as they are measured ("curves done").

    Attributes:
        method: the saliency method.
        curves: its deletion and insertion curves.
    """

    method: str
    curves: Curves


ExplainersPart = MethodMap | MethodCurves
"""The partial results of `compare_explainers`: each map done, then each method's curves done."""


@dataclass(frozen=True)
class CompareExplainersResult:
    """Every chosen map of one image for one class, their agreement and faithfulness.

    Attributes:
        image: x in [0, 1], on the CPU (3, h, w).
        target: the explained class.
        maps: method -> map (h, w) on the CPU, in the order asked.
        config: the settings.
        label: the explained class's name.
        predictions: the model's top classes at x.
        details: method -> its recorded settings and costs (e.g. LIME's sample count).
        agreement: measure -> the methods × methods matrix of map similarities.
        curves: method -> its deletion and insertion curves.
    """

    image: Tensor
    target: int
    maps: dict[str, Tensor]
    config: ExplainersConfig
    label: str
    predictions: list[dict[str, Any]]
    details: dict[str, dict[str, Scalar]]
    agreement: dict[str, list[list[float]]]
    curves: dict[str, Curves]

    def to_json(self) -> JsonObject:
        """The JSON of the CLI and the page: predictions, explained class, each method's details,
        agreement matrices with one reading per measure (`advexp_core.readings.agreement`),
        deletion/insertion curves."""
        titles = [METHOD_TITLES.get(m, m) for m in self.maps]
        return copy.deepcopy(
            {
                "settings": config_dict(self.config),
                "predictions": self.predictions,
                "explained_class": self.target,
                "explained_label": self.label,
                "methods": list(self.maps),
                "method_details": self.details,
                "agreement": self.agreement,
                "readings": {k: r.to_json() for k, r in every_measure(self.agreement, titles).items()},
                "faithfulness": {m: c.to_json() for m, c in self.curves.items()},
            }
        )


def agreement(maps: dict[str, Tensor]) -> dict[str, list[list[float]]]:
    """Per agreement measure, the methods × methods matrix of map similarities (1 on the diagonal)."""
    names = list(maps)
    out: dict[str, list[list[float]]] = {}
    for measure, fn in AGREEMENT.items():
        matrix = [[1.0] * len(names) for _ in names]
        for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
            matrix[i][j] = matrix[j][i] = float(fn(maps[a], maps[b]))
        out[measure] = matrix
    return out


def method_details(explained: SaliencyMap) -> dict[str, Scalar]:
    """The scalar settings and costs a map records (e.g. LIME's "n_samples", "forward_passes")."""
    return {k: v for k, v in explained.extra.items() if isinstance(v, bool | int | float | str)}


def compare_explainers(
    model: LoadedModel,
    image: Tensor,
    config: ExplainersConfig,
    *,
    on_step: OnStep | None = None,
    on_partial: Callable[[ExplainersPart], None] | None = None,
) -> CompareExplainersResult:
    """Explain one decision with every chosen method; score agreement and deletion/insertion.

    Args:
        model: the network; its lock is held once for the whole run (Grad-CAM hooks it).
        image: x in [0, 1]; resized to the model's input when needed.
        config: methods, their settings, the class (None: the predicted one).
        on_step: called as on_step(done, total): one per map, then one per faithfulness curve.
        on_partial: called with each part as soon as it is done, from inside the run (keep it
            short: the lock is held): a MethodMap per method (its map done), in the order of the
            config, then a MethodCurves per method (its curves done). It gets the result's own
            values (nothing copied); the result is the same with or without it.

    Returns:
        CompareExplainersResult.

    Shapes: image (3, H, W) -> maps (h, w).
    """
    methods = config.saliency.methods
    if not methods:
        raise ValueError("Choose at least one explanation method.")
    x = fit_image(image, model)
    total = 2 * len(methods)
    with model.lock:  # one run at a time per shared model: Grad-CAM hooks the shared module
        with torch.no_grad():
            logits = model.module(x[None])[0]
        target = check_class(model, int(logits.argmax()) if config.target is None else int(config.target))
        layer = gradcam_layer_for(model, methods)
        maps: dict[str, Tensor] = {}
        details: dict[str, dict[str, Scalar]] = {}
        for k, method in enumerate(methods, start=1):
            settings = config.saliency.settings(method)
            explained = make_map(model.module, x[None], target, method=method, settings=settings, layer=layer)
            maps[method] = explained.maps[0].cpu()
            details[method] = method_details(explained)
            tick(on_step, k, total)
            if on_partial is not None:
                on_partial(MethodMap(method, maps[method], target, details[method]))
        faithful: dict[str, Curves] = {}
        for k, (method, m) in enumerate(maps.items(), start=len(methods)):
            faithful[method] = _curves(model, x, m, target, config, stage(on_step, k, 1, total))
            tick(on_step, k + 1, total)
            if on_partial is not None:
                on_partial(MethodCurves(method, faithful[method]))
    return CompareExplainersResult(
        x.detach().cpu(),
        target,
        maps,
        config,
        model.class_names[target],
        predictions(logits, model.class_names),
        details,
        agreement(maps),
        faithful,
    )


def _curves(
    model: LoadedModel, x: Tensor, m: Tensor, target: int, config: ExplainersConfig, on_step: OnStep | None
) -> Curves:
    """One map's deletion and insertion curves with their areas (advexp_core.evaluation.faithfulness)."""
    curves = deletion_insertion(model.module, x, m, target, steps=config.faithfulness_steps, on_step=on_step)
    return Curves(
        tuple(float(v) for v in curves.fractions),
        tuple(float(v) for v in curves.deletion),
        tuple(float(v) for v in curves.insertion),
        float(curves.deletion_auc),
        float(curves.insertion_auc),
    )
