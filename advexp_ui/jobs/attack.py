"""Saliency under attack (PAPER.md §4): flip the decision and explain both images, or keep the
decision and move the map (Dombrowski et al. 2019)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from advexp_core import metrics
from advexp_core.attacks import AttackResult, fgsm, pgd
from advexp_core.cli.attack import attack_report
from advexp_core.cli.compare import explain_attack
from advexp_core.figures import compare_figure, figure_png
from advexp_core.imaging import decode_image, encode_png, prepare_image
from advexp_core.manipulation import MapMethod, manipulate_explanation, region_map
from advexp_core.models import LoadedModel
from advexp_core.saliency import colour_scales, explain
from advexp_ui import images
from advexp_ui.jobs.common import (
    OnStep,
    Outcome,
    cached_result,
    finite,
    header,
    logits_of,
    model_image,
    top_predictions,
)

REGIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")


@dataclass(frozen=True)
class AttackConfig:
    """Settings of the decision-flipping attack and of the maps compared before/after.

    ``eps_255`` is the budget in 1/255 steps: L∞ and RMS directly; for L2 the L2 size of an
    L∞ pattern of that size at the model's input size (so the three norms read alike).
    """

    method: str = "pgd"
    norm: str = "linf"
    eps_255: float = 2.0
    steps: int = 20
    target: int | None = None
    random_start: bool = False
    seed: int = 0
    methods: tuple[str, ...] = ("gradcam", "ig")
    ig_steps: int = 32
    topk: float = 0.2

    def eps(self, input_size: tuple[int, int]) -> float:
        """The budget in [0, 1] pixel units of the chosen norm."""
        scale = math.sqrt(3 * input_size[0] * input_size[1]) if self.norm == "l2" else 1.0
        return self.eps_255 / 255 * scale

    def saliency_settings(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "ig_steps": self.ig_steps,
            "ig_baseline": "black",
            "smoothgrad_samples": 16,
            "smoothgrad_sigma": 0.15,
            "topk": self.topk,
        }


def _attack(
    model: LoadedModel, image: torch.Tensor, config: AttackConfig, on_step: OnStep | None
) -> tuple[AttackResult, int]:
    """Run PGD or FGSM on one prepared image; untargeted attacks leave the model's own top-1 class."""
    label = config.target if config.target is not None else int(logits_of(model, image[None]).argmax())
    if not 0 <= label < model.num_classes:
        raise ValueError(f"Class {label} does not exist for this model (0..{model.num_classes - 1}).")
    eps, targeted = config.eps(model.input_size), config.target is not None
    if config.method == "fgsm":
        result = fgsm(
            model.module, image[None], [label], eps=eps, norm=config.norm, targeted=targeted, on_step=on_step
        )
    else:
        result = pgd(
            model.module,
            image[None],
            [label],
            eps=eps,
            steps=config.steps,
            norm=config.norm,
            targeted=targeted,
            random_start=config.random_start,
            generator=torch.Generator().manual_seed(config.seed),
            on_step=on_step,
        )
    return result, label


def compute_attack(
    image_bytes: bytes, config: AttackConfig, model: LoadedModel, on_step: OnStep | None = None
) -> Outcome:
    """Attack the image, explain the clean and the attacked image alike, measure how the maps moved."""
    image = model_image(image_bytes, model)
    with model.lock:  # see advexp_ui.jobs: one run at a time per shared model
        result, label = _attack(model, image, config, on_step)
        maps, numbers = explain_attack(model, image, result, config.saliency_settings(), seed=config.seed)
    report = {**header(model, config, "saliency under attack"), **attack_report(result, model)}
    report["settings"].update(
        eps=config.eps(model.input_size), attacked_class=label, attacked_label=model.class_names[label]
    )
    report["maps"] = numbers
    report["readings"] = _readings(report["perturbation"], numbers, config.topk)
    adversarial, delta = result.adversarial[0], result.delta[0]
    pairs = {m: (a.maps[0].cpu(), b.maps[0].cpu()) for m, (a, b) in maps.items()}
    figure = compare_figure(
        image.cpu(),
        adversarial.cpu(),
        pairs,
        predictions_before=report["predictions_before"],
        predictions_after=report["predictions_after"],
        metrics=numbers,
    )
    panels = {
        "clean": images.display_png(image),
        "attacked": images.display_png(adversarial),
        "delta": images.delta_png(delta),
    }
    for method, (m_clean, m_adv) in pairs.items():
        (_, vmax), _ = colour_scales(m_clean, m_adv)
        panels[f"{method}-clean"] = images.overlay_png(image, m_clean, vmax)
        panels[f"{method}-attacked"] = images.overlay_png(adversarial, m_adv, vmax)
    files = {"adversarial.png": encode_png(adversarial), "figure.png": figure_png(figure)}
    return Outcome(report, panels, files)


def _readings(perturbation: dict[str, Any], maps: dict[str, dict[str, Any]], k: float) -> dict[str, Any]:
    """One plain sentence per number (metrics.reading); an unchanged image has PSNR = ∞."""
    out: dict[str, Any] = {"perturbation": {}, "maps": {}}
    for name, value in perturbation.items():
        value = math.inf if value is None and name == "psnr" else value
        if value is not None:
            out["perturbation"][name] = metrics.reading(name, value)
    for method, values in maps.items():
        out["maps"][method] = {
            name: metrics.reading("map_ssim" if name == "ssim" else name, math.nan if v is None else v, k=k)
            for name, v in values.items()
        }
    return out


@cached_result
def attack(
    image_bytes: bytes,
    model_id: str,
    config: AttackConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_attack``, cached by (image bytes, model id, config)."""
    return compute_attack(image_bytes, config, _model, _on_step)


@dataclass(frozen=True)
class ManipulationConfig:
    """Keep the label, move the map: which map, where to move it, and the budget (L∞, 1/255 steps)."""

    method: MapMethod = "gradient"
    goal: str = "top-left"  # one of REGIONS, or "image:<gallery key>" (that image's map)
    eps_255: float = 8.0
    steps: int = 100
    beta: float = 10.0
    gamma: float = 1.0


def _goal_map(config: ManipulationConfig, model: LoadedModel, goal_bytes: bytes | None) -> torch.Tensor:
    h, w = model.input_size
    if config.goal.startswith("image:"):
        if goal_bytes is None:
            raise ValueError("Pick the image whose map should be copied.")
        other = prepare_image(decode_image(goal_bytes), model)[None].to(model.device)
        return explain(model, other, logits_of(model, other).argmax(1), method=config.method).maps[0]
    boxes = {
        "top-left": (0, 0, h // 2, w // 2),
        "top-right": (0, w - w // 2, h // 2, w),
        "bottom-left": (h - h // 2, 0, h, w // 2),
        "bottom-right": (h - h // 2, w - w // 2, h, w),
        "centre": (h // 4, w // 4, h - h // 4, w - w // 4),
    }
    if config.goal not in boxes:
        raise ValueError(f"Unknown goal {config.goal!r}; choose one of {', '.join(REGIONS)} or an image.")
    return region_map((h, w), boxes[config.goal])


def compute_manipulation(
    image_bytes: bytes,
    config: ManipulationConfig,
    model: LoadedModel,
    goal_bytes: bytes | None = None,
    on_step: OnStep | None = None,
) -> Outcome:
    """Move the chosen map toward the goal while the logits stay put (PAPER.md §4 step 5)."""
    image = model_image(image_bytes, model)
    with model.lock:  # see advexp_ui.jobs: one run at a time per shared model
        goal = _goal_map(config, model, goal_bytes)
        res = manipulate_explanation(
            model,
            image[None],
            target_map=goal,
            eps=config.eps_255 / 255,
            steps=config.steps,
            beta=config.beta,
            gamma=config.gamma,
            method=config.method,
            on_step=on_step,
        )
    report = header(model, config, "keep the label, move the map")
    report.update(
        predictions_before=top_predictions(res.logits_before[0], model),
        predictions_after=top_predictions(res.logits_after[0], model),
        label_kept=bool(res.label_kept[0]),
        max_logit_change=finite(res.logit_change[0]),
        linf_255=finite(res.delta[0].abs().max() * 255),
        similarity={
            name: {k: finite(v[0]) for k, v in getattr(res, name).items()}
            for name in ("to_target_before", "to_target_after", "to_original_after")
        },
    )
    original, moved, target = res.original_map[0].cpu(), res.manipulated_map[0].cpu(), res.target_map[0].cpu()
    (_, vmax), _ = colour_scales(original, moved)
    adversarial = res.adversarial[0]
    panels = {
        "clean": images.display_png(image),
        "attacked": images.display_png(adversarial),
        "delta": images.delta_png(res.delta[0]),
        "map-clean": images.overlay_png(image, original, vmax),
        "map-attacked": images.overlay_png(adversarial, moved, vmax),
        "map-goal": images.overlay_png(image, target, float(target.max())),
    }
    return Outcome(report, panels, {"manipulated.png": encode_png(adversarial)})


@cached_result
def manipulate(
    image_bytes: bytes,
    model_id: str,
    config: ManipulationConfig,
    goal_bytes: bytes | None,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_manipulation``, cached by (image bytes, model id, config, goal image)."""
    return compute_manipulation(image_bytes, config, _model, goal_bytes, _on_step)
