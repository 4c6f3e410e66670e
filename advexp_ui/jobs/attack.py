"""Saliency under attack (docs/method.md §4): flip the decision and explain both images, or keep the
decision and move the map (Dombrowski et al. 2019)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advexp_core import reports
from advexp_core.experiments import (
    REGIONS,
    AdversarialExampleResult,
    AttackConfig,
    ManipulationConfig,
    SaliencyConfig,
    SaliencyUnderAttackResult,
    move_the_map,
    saliency_under_attack,
    under_attack_figure,
)
from advexp_core.experiments.under_attack import MapPair, UnderAttackPart
from advexp_core.figures import figure_png
from advexp_core.imaging import decode_image, encode_png
from advexp_core.models import LoadedModel
from advexp_core.saliency import colour_scales
from advexp_ui import images
from advexp_ui.jobs.common import Later, OnStep, Outcome, cached_result, header, model_image, settings_of

__all__ = [
    "REGIONS",
    "AttackConfig",
    "AttackPart",
    "ManipulationConfig",
    "SaliencyConfig",
    "attack",
    "manipulate",
]


@dataclass(frozen=True)
class AttackPart:
    """One finished block of the attack page while the rest still runs.

    Attributes:
        block: "decision" (the attack: verdict, images, predictions, visibility) or a map method.
        report: the report's entries this block shows (the same values the final report holds).
        panels: the block's pictures (the same bytes the final Outcome holds).
    """

    block: str
    report: dict[str, Any] = field(default_factory=dict)
    panels: dict[str, bytes] = field(default_factory=dict)


class _Parts:
    """Turns the experiment's partial results into page blocks, keeping each picture for the end."""

    def __init__(self, topk: float, send: Callable[[AttackPart], None] | None) -> None:
        self.topk, self.send = topk, send
        self.panels: dict[str, bytes] = {}
        self.example: AdversarialExampleResult | None = None

    def __call__(self, value: UnderAttackPart) -> None:
        if isinstance(value, AdversarialExampleResult):
            self.example = value
            part = _decision_part(value, self.topk)
        else:
            assert self.example is not None  # the attack always comes first
            part = _map_part(self.example, value, self.topk)
        self.panels.update(part.panels)
        if self.send is not None:
            self.send(part)


def _decision_part(example: AdversarialExampleResult, topk: float) -> AttackPart:
    keys = ("predictions_before", "predictions_after", "png_predictions_after", "success", "png_success")
    everything = example.to_json()
    report: dict[str, Any] = {k: everything[k] for k in (*keys, "perturbation")}
    side = max(example.image.shape[-2:])
    report["readings"] = {
        **reports.readings(report["perturbation"], {}, k=topk, side=side),
        "decision": reports.decision_readings(report),
    }
    panels = {
        "clean": images.display_png(example.image),
        "attacked": images.display_png(example.adversarial),
        "delta": images.delta_png(example.delta),
    }
    return AttackPart("decision", report, panels)


def _map_part(example: AdversarialExampleResult, pair: MapPair, topk: float) -> AttackPart:
    m = pair.method
    clean, attacked = pair.extras.colour_scales
    panels = {
        f"{m}-clean": images.overlay_png(example.image, pair.clean, clean[1]),
        f"{m}-attacked": images.overlay_png(example.adversarial, pair.attacked, attacked[1]),
    }
    readings = reports.readings({}, {m: pair.metrics}, k=topk, side=max(example.image.shape[-2:]))
    report = {"maps": {m: pair.metrics}, "readings": readings, "saliency": {m: pair.extras.to_json()}}
    return AttackPart(m, report, panels)


def compute_attack(
    image_bytes: bytes,
    attack_config: AttackConfig,
    saliency: SaliencyConfig,
    model: LoadedModel,
    on_step: OnStep | None = None,
    on_part: Callable[[AttackPart], None] | None = None,
) -> Outcome:
    """Attack the image, explain the clean and the attacked image alike, measure how the maps moved.

    ``on_part`` gets each block as soon as the experiment has it (the decision, then each map);
    the pictures made for it are the ones the Outcome holds (made once).
    """
    parts = _Parts(saliency.topk, on_part)
    result = saliency_under_attack(
        model, model_image(image_bytes, model), attack_config, saliency, on_step=on_step, on_partial=parts
    )
    example = result.example
    settings = {
        **settings_of(saliency, attack_config),  # the attack's seed is the page's one seed
        "eps": example.eps,
        "attacked_class": example.attacked_class,
        "attacked_label": model.class_names[example.attacked_class],
    }
    body = {k: v for k, v in result.to_json().items() if k != "settings"}
    report = {**reports.header(model, settings, "saliency under attack"), **body}
    files: dict[str, bytes | Later] = {
        "adversarial.png": encode_png(example.adversarial),
        "figure.png": Later(_figure_png, (result,)),
    }
    return Outcome(report, parts.panels, files)


def _figure_png(result: SaliencyUnderAttackResult) -> bytes:
    """The whole result in one matplotlib figure (drawn when asked for)."""
    return figure_png(under_attack_figure(result))


@cached_result
def attack(
    image_bytes: bytes,
    model_id: str,
    attack_config: AttackConfig,
    saliency: SaliencyConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
    _on_part: Callable[[AttackPart], None] | None = None,
) -> Outcome:
    """``compute_attack``, cached by (image bytes, model id, configs); parts only when it runs."""
    return compute_attack(image_bytes, attack_config, saliency, _model, _on_step, _on_part)


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
    body = {k: v for k, v in result.to_json().items() if k != "settings"}
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
