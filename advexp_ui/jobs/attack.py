"""Saliency under attack (docs/method.md §4): flip the decision and explain both images, or keep the
decision and move the map (Dombrowski et al. 2019)."""

from __future__ import annotations

from advexp_core import reports
from advexp_core.experiments import (
    REGIONS,
    AttackConfig,
    ManipulationConfig,
    SaliencyConfig,
    move_the_map,
    saliency_under_attack,
    under_attack_figure,
)
from advexp_core.figures import figure_png
from advexp_core.imaging import decode_image, encode_png
from advexp_core.models import LoadedModel
from advexp_core.saliency import colour_scales
from advexp_ui import images
from advexp_ui.jobs.common import OnStep, Outcome, cached_result, header, model_image, settings_of

__all__ = ["REGIONS", "AttackConfig", "ManipulationConfig", "SaliencyConfig", "attack", "manipulate"]


def compute_attack(
    image_bytes: bytes,
    attack_config: AttackConfig,
    saliency: SaliencyConfig,
    model: LoadedModel,
    on_step: OnStep | None = None,
) -> Outcome:
    """Attack the image, explain the clean and the attacked image alike, measure how the maps moved."""
    result = saliency_under_attack(
        model, model_image(image_bytes, model), attack_config, saliency, on_step=on_step
    )
    example = result.example
    settings = {
        **settings_of(saliency, attack_config),  # the attack's seed is the page's one seed
        "eps": example.eps,
        "attacked_class": example.attacked_class,
        "attacked_label": model.class_names[example.attacked_class],
    }
    body = {k: v for k, v in result.report.items() if k != "settings"}
    report = {**reports.header(model, settings, "saliency under attack"), **body}
    panels = {
        "clean": images.display_png(example.image),
        "attacked": images.display_png(example.adversarial),
        "delta": images.delta_png(example.delta),
    }
    for method, (m_clean, m_adv) in result.maps.items():
        scale = report["saliency"][method]["colour_scale"]
        panels[f"{method}-clean"] = images.overlay_png(example.image, m_clean, scale["clean"][1])
        panels[f"{method}-attacked"] = images.overlay_png(example.adversarial, m_adv, scale["attacked"][1])
    files = {
        "adversarial.png": encode_png(example.adversarial),
        "figure.png": figure_png(under_attack_figure(result)),
    }
    return Outcome(report, panels, files)


@cached_result
def attack(
    image_bytes: bytes,
    model_id: str,
    attack_config: AttackConfig,
    saliency: SaliencyConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_attack``, cached by (image bytes, model id, configs)."""
    return compute_attack(image_bytes, attack_config, saliency, _model, _on_step)


def compute_manipulation(
    image_bytes: bytes,
    config: ManipulationConfig,
    model: LoadedModel,
    goal_bytes: bytes | None = None,
    on_step: OnStep | None = None,
) -> Outcome:
    """Move the chosen map toward the goal while the logits stay put (docs/method.md §4 step 5)."""
    goal = None if goal_bytes is None else decode_image(goal_bytes)
    result = move_the_map(model, model_image(image_bytes, model), config, goal_image=goal, on_step=on_step)
    body = {k: v for k, v in result.report.items() if k != "settings"}
    report = {**header(model, config, "keep the label, move the map"), **body}
    (_, vmax), _ = colour_scales(result.original_map, result.manipulated_map)
    panels = {
        "clean": images.display_png(result.image),
        "attacked": images.display_png(result.adversarial),
        "delta": images.delta_png(result.delta),
        "map-clean": images.overlay_png(result.image, result.original_map, vmax),
        "map-attacked": images.overlay_png(result.adversarial, result.manipulated_map, vmax),
        "map-goal": images.overlay_png(result.image, result.goal_map, float(result.goal_map.max())),
    }
    return Outcome(report, panels, {"manipulated.png": encode_png(result.adversarial)})


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
