"""Saliency under attack (docs/method.md §4 steps 1-4): flip the decision with a small perturbation,
explain the clean and the attacked image alike, and measure how far each map moved."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.base.jsonsafe import JsonObject, json_number
from advexp_core.base.runtime import OnStep
from advexp_core.experiments.configs import AttackConfig, SaliencyConfig
from advexp_core.experiments.maps import check_class, fit_image, gradcam_layer_for
from advexp_core.experiments.progress import stage, tick
from advexp_core.experiments.report import config_dict, predictions, readings
from advexp_core.measures import metrics
from advexp_core.methods.attacks import AttackResult, fgsm, pgd
from advexp_core.methods.maps import SaliencyMap
from advexp_core.methods.saliency import METHOD_TITLES, colour_scales, make_map
from advexp_core.networks.registry import LoadedModel
from advexp_core.readings import Reading
from advexp_core.readings import attack as attack_readings

Predictions = list[dict[str, Any]]
"""The top classes of one logit vector as `reports.predictions` writes them ({index, label, probability})."""


@dataclass(frozen=True)
class Perturbation:
    """How large and how visible δ is: L∞ in 1/255 steps, L2 and RMS in [0, 1] units, PSNR and SSIM
    (None where undefined, e.g. PSNR of no change)."""

    linf_255: float | None
    l2: float | None
    rms: float | None
    psnr: float | None
    ssim: float | None


@dataclass(frozen=True)
class AdversarialExampleResult:
    """One attacked image.

    Attributes:
        image: the clean image x in [0, 1], on the CPU (3, h, w).
        adversarial: x + δ in [0, 1] (3, h, w).
        delta: δ (3, h, w).
        attacked_class: the class moved away from (untargeted) or reached (targeted).
        eps: the budget in [0, 1] units of the norm.
        config: the attack settings.
        attack: the attack's own result (batch of one, on the model's device).
        settings: the settings as they ran (FGSM: one step of size eps), with the model and device.
        predictions_before, predictions_after, png_predictions_after: the top classes at x, at x + δ
            and at x + δ saved as an 8-bit PNG.
        perturbation: the size of δ.
    """

    image: Tensor
    adversarial: Tensor
    delta: Tensor
    attacked_class: int
    eps: float
    config: AttackConfig
    attack: AttackResult
    settings: dict[str, Any]
    predictions_before: Predictions
    predictions_after: Predictions
    png_predictions_after: Predictions
    perturbation: Perturbation

    @property
    def success(self) -> bool:
        return bool(self.attack.success[0])

    @property
    def png_success(self) -> bool:
        return bool(self.attack.png_success[0])

    def to_json(self) -> JsonObject:
        """The JSON of the CLI's result.json and the page's report: settings, predictions
        before/after/as PNG, perturbation, success."""
        return copy.deepcopy(
            {
                "settings": self.settings,
                "predictions_before": self.predictions_before,
                "predictions_after": self.predictions_after,
                "png_predictions_after": self.png_predictions_after,
                "perturbation": dataclasses.asdict(self.perturbation),
                "success": self.success,
                "png_success": self.png_success,
                "steps_run": self.attack.steps_run,
            }
        )


@dataclass(frozen=True)
class MapExtras:
    """What one method's pair of maps records besides its metrics.

    Attributes:
        classes: the explained class of the clean and of the attacked image.
        colour_scales: (vmin, vmax) of the clean and of the attacked map.
        convergence_delta: IG's completeness gap of the clean and the attacked map (None: not IG).
    """

    classes: tuple[int, int]
    colour_scales: tuple[tuple[float, float], tuple[float, float]]
    convergence_delta: tuple[float, float] | None = None

    def to_json(self) -> JsonObject:
        out: dict[str, Any] = {
            "classes": {"clean": self.classes[0], "attacked": self.classes[1]},
            "colour_scale": {"clean": list(self.colour_scales[0]), "attacked": list(self.colour_scales[1])},
        }
        if self.convergence_delta is not None:
            out["convergence_delta"] = dict(zip(("clean", "attacked"), self.convergence_delta, strict=True))
        return out


@dataclass(frozen=True)
class MapPair:
    """One method's maps of the clean and the attacked image, and how far the map moved: the
    partial result "map done" of `saliency_under_attack`.

    Attributes:
        method: the saliency method.
        clean: the clean image's map (h, w), on the CPU.
        attacked: the attacked image's map (h, w), on the CPU.
        metrics: map similarity numbers by name (null where undefined), as in the JSON's ``maps``.
        extras: explained classes, colour scales, IG completeness (the JSON's ``saliency``).
    """

    method: str
    clean: Tensor
    attacked: Tensor
    metrics: dict[str, float | None]
    extras: MapExtras


UnderAttackPart = AdversarialExampleResult | MapPair
"""The partial results of `saliency_under_attack`: the attack done, then each map done."""


@dataclass(frozen=True)
class SaliencyUnderAttackResult:
    """An attacked image and the saliency maps of the clean and the attacked image.

    Attributes:
        example: the attack (images, δ, predictions).
        saliency: the map settings.
        pairs: method -> its maps, metrics and extras, in the config's order.
    """

    example: AdversarialExampleResult
    saliency: SaliencyConfig
    pairs: dict[str, MapPair]

    @property
    def maps(self) -> dict[str, tuple[Tensor, Tensor]]:
        """method -> (clean map, attacked map), each (h, w) on the CPU."""
        return {m: (p.clean, p.attacked) for m, p in self.pairs.items()}

    @property
    def metrics(self) -> dict[str, dict[str, float | None]]:
        """method -> map similarity numbers (null where undefined)."""
        return {m: p.metrics for m, p in self.pairs.items()}

    def to_json(self) -> JsonObject:
        """The example's JSON plus ``maps``, ``saliency`` (classes, colour scales, IG completeness)
        and ``readings`` (one sentence per number)."""
        out = self.example.to_json()
        out["settings"]["saliency"] = {
            **config_dict(self.saliency),
            "explained_class": "each image's own top-1 class",
        }
        numbers = self.metrics
        out["maps"] = copy.deepcopy(numbers)
        out["saliency"] = {m: p.extras.to_json() for m, p in self.pairs.items()}
        k, side = self.saliency.topk, max(self.example.image.shape[-2:])
        out["readings"] = {
            **readings(out["perturbation"], numbers, k=k, side=side),
            "decision": decision_reading(self.example).to_json(),
            "overall": overall_reading(numbers, k=k, side=side),
        }
        return out


def adversarial_example(
    model: LoadedModel, image: Tensor, attack: AttackConfig, *, on_step: OnStep | None = None
) -> AdversarialExampleResult:
    """Attack one image with PGD or FGSM (docs/method.md §4 step 2).

    Args:
        model: the network; its lock is held for the run.
        image: x in [0, 1]; resized to the model's input when needed.
        attack: the settings.
        on_step: called as on_step(step, steps).

    Returns:
        AdversarialExampleResult.

    Shapes: image (3, H, W) -> adversarial (3, h, w).
    """
    x = fit_image(image, model)
    with model.lock:  # one run at a time per shared model
        result, label = _attack(model, x, attack, on_step)
    return _example(model, x, attack, result, label)


def saliency_under_attack(
    model: LoadedModel,
    image: Tensor,
    attack: AttackConfig,
    saliency: SaliencyConfig,
    *,
    on_step: OnStep | None = None,
    on_partial: Callable[[UnderAttackPart], None] | None = None,
) -> SaliencyUnderAttackResult:
    """Attack the image, explain the clean and the attacked image alike, measure how the maps moved.

    docs/method.md §4 steps 1-4. Each image is explained for its own top-1 class, clean and
    attacked in one batched call per method; |δ|² in the clean map's top-k region is measured too.

    Args:
        model: the network; its lock is held once for the whole run (Grad-CAM hooks it).
        image: x in [0, 1]; resized to the model's input when needed.
        attack: the attack settings.
        saliency: the maps and their settings.
        on_step: called as on_step(done, total): attack steps, then one per map method.
        on_partial: called with each part as soon as it is done, from inside the run (keep it
            short: the lock is held): the AdversarialExampleResult (the attack done), then a MapPair
            per method (its map done). The final result is the same with or without it.

    Returns:
        SaliencyUnderAttackResult.

    Shapes: image (3, H, W) -> maps (h, w).
    """
    x = fit_image(image, model)
    steps = attack.effective_steps
    total = steps + len(saliency.methods)
    with model.lock:  # one run at a time per shared model: Grad-CAM hooks the shared module
        layer = gradcam_layer_for(model, saliency.methods)
        result, label = _attack(model, x, attack, stage(on_step, 0, steps, total))
        example = _example(model, x, attack, result, label)
        tick(on_step, steps, total)
        if on_partial is not None:
            on_partial(example)
        pairs: dict[str, MapPair] = {}
        for k, method in enumerate(saliency.methods, start=1):
            pairs[method] = _map_pair(model, example, saliency, method, layer)
            tick(on_step, steps + k, total)
            if on_partial is not None:
                on_partial(pairs[method])
    return SaliencyUnderAttackResult(example, saliency, pairs)


def decision_reading(example: AdversarialExampleResult) -> Reading:
    """Did the decision flip, at x + δ and at the saved PNG (`readings.attack.decision`)."""
    return attack_readings.decision(
        example.predictions_before,
        example.predictions_after,
        example.png_predictions_after,
        success=example.success,
        png_success=example.png_success,
    )


def overall_reading(maps: dict[str, dict[str, float | None]], *, k: float, side: int) -> dict[str, Any]:
    """One verdict over every map of the run (`readings.attack.maps_overall`), as written in reports."""
    verdicts = {m: attack_readings.map_change(v, k=k, side=side) for m, v in maps.items()}
    return attack_readings.maps_overall(verdicts, METHOD_TITLES).to_json()


def _attack(
    model: LoadedModel, x: Tensor, config: AttackConfig, on_step: OnStep | None
) -> tuple[AttackResult, int]:
    """PGD or FGSM on one fitted image; untargeted attacks leave the model's own top-1 class."""
    if config.target is None:
        with torch.no_grad():
            label = int(model.module(x[None]).argmax(1)[0])
    else:
        label = check_class(model, int(config.target))
    eps, targeted = config.eps(model.input_size), config.target is not None
    if config.method == "fgsm":
        result = fgsm(
            model.module, x[None], [label], eps=eps, norm=config.norm, targeted=targeted, on_step=on_step
        )
    else:
        result = pgd(
            model.module,
            x[None],
            [label],
            eps=eps,
            steps=config.steps,
            step_size=config.effective_step_size(model.input_size),
            norm=config.norm,
            targeted=targeted,
            random_start=config.random_start,
            generator=torch.Generator().manual_seed(config.seed),
            on_step=on_step,
        )
    return result, label


def _example(
    model: LoadedModel, x: Tensor, config: AttackConfig, result: AttackResult, label: int
) -> AdversarialExampleResult:
    image, adversarial = x.detach().cpu(), result.adversarial[0].detach().cpu()
    names = model.class_names
    size = Perturbation(
        **{name: json_number(getattr(result, name)[0]) for name in ("linf_255", "l2", "rms", "psnr", "ssim")}
    )
    return AdversarialExampleResult(
        image,
        adversarial,
        adversarial - image,
        label,
        config.eps(model.input_size),
        config,
        result,
        _settings(model, config, label),
        predictions(result.logits_before[0], names),
        predictions(result.logits_after[0], names),
        predictions(result.png_logits_after[0], names),
        size,
    )


def _settings(model: LoadedModel, config: AttackConfig, label: int) -> dict[str, Any]:
    """The settings as they ran (FGSM: one step of size eps), for the report."""
    h, w = model.input_size
    cls = {"index": label, "label": model.class_names[label]}
    return {
        "model": model.model_id,
        "method": config.method,
        "norm": config.norm,
        "eps": config.eps(model.input_size),
        "eps_255": config.eps_255,
        "steps": config.effective_steps,
        "step_size": config.effective_step_size(model.input_size),
        "targeted": config.target is not None,
        "target": cls if config.target is not None else None,
        "attacked_class": cls,
        "random_start": bool(config.random_start and config.method == "pgd"),
        "seed": config.seed,
        "input_size": [h, w],
        "device": str(model.device),
    }


def _map_pair(
    model: LoadedModel,
    example: AdversarialExampleResult,
    saliency: SaliencyConfig,
    method: str,
    layer: nn.Module | None,
) -> MapPair:
    """One method on clean + attacked in one batch, each image for its own top-1 class."""
    x = example.image.to(model.device)
    attack = example.attack
    both = torch.cat([x[None], attack.adversarial.to(x.device)])
    targets = torch.cat([attack.logits_before.argmax(1), attack.logits_after.argmax(1)]).to(x.device)
    explained = make_map(
        model.module, both, targets, method=method, settings=saliency.settings(method), layer=layer
    )
    clean, adv = explained.split(1)
    a, b = clean.maps[0].cpu(), adv.maps[0].cpu()
    numbers = metrics.compare_maps(a, b, example.delta, k=saliency.topk)
    return MapPair(
        method,
        a,
        b,
        {k: json_number(v) for k, v in numbers.items()},
        _extra(clean, adv, saliency.per_map_scale),
    )


def _extra(clean: SaliencyMap, adv: SaliencyMap, per_map: bool) -> MapExtras:
    """Explained classes, colour scales and (IG) the completeness gap of one method's pair."""
    scales = colour_scales(clean.maps, adv.maps, per_map=per_map)
    gap = clean.extra.get("convergence_delta")
    return MapExtras(
        (int(clean.target[0]), int(adv.target[0])),
        (scales[0], scales[1]),
        None if gap is None else (float(gap[0]), float(adv.extra["convergence_delta"][0])),
    )
