"""Saliency under attack (docs/method.md §4): flip the decision and explain both images, or keep the
decision and move the map (Dombrowski et al. 2019)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from advexp_core.data.imaging import decode_image, encode_png
from advexp_core.experiments import (
    REGIONS,
    AdversarialExampleResult,
    AttackConfig,
    ManipulationConfig,
    SaliencyConfig,
    SaliencyUnderAttackResult,
    move_the_map,
    saliency_under_attack,
)
from advexp_core.experiments import report as reports
from advexp_core.experiments.move_map import MoveTheMapResult
from advexp_core.experiments.under_attack import MapPair, UnderAttackPart, decision_reading
from advexp_core.methods.saliency import METHOD_TITLES, colour_scales
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.figures import figure_png, under_attack_figure
from advexp_core.readings import Reading
from advexp_core.readings import attack as attack_readings
from advexp_ui import images
from advexp_ui.jobs.common import Later, OnStep, Outcome, cached_result, header, model_image, settings_of

__all__ = [
    "REGIONS",
    "AttackConfig",
    "AttackOutcome",
    "AttackPart",
    "DecisionPart",
    "ManipulationConfig",
    "ManipulationOutcome",
    "MapPart",
    "SaliencyConfig",
    "attack",
    "manipulate",
]


@dataclass(frozen=True)
class DecisionReadings:
    """The readings of the attack itself (`advexp_core.readings.attack`), as the report writes them.

    Attributes:
        decision: did the decision flip, at x + δ and at the saved PNG.
        visibility: how visible δ is.
        perturbation: one sentence per size of δ (`Perturbation`'s names; None where undefined).
    """

    decision: Reading
    visibility: Reading
    perturbation: dict[str, str | None]


@dataclass(frozen=True)
class MapReadings:
    """The readings of one method's pair of maps, as the report writes them.

    Attributes:
        sentences: one sentence per map similarity number (`MapPair.metrics`' names).
        verdict: how far the map moved (`readings.attack.map_change`).
    """

    sentences: dict[str, str]
    verdict: Reading


@dataclass(frozen=True)
class DecisionPart:
    """The attack's block of the page (verdict, images, predictions, visibility), shown while the
    maps still run and again with the whole result.

    Attributes:
        example: the attacked image, its predictions and the size of δ.
        readings: its readings.
        panels: ``clean``, ``attacked`` and ``delta`` (the bytes the final Outcome holds).
    """

    example: AdversarialExampleResult
    readings: DecisionReadings
    panels: dict[str, bytes] = field(default_factory=dict)

    @property
    def block(self) -> str:
        return "decision"


@dataclass(frozen=True)
class MapPart:
    """One method's block of the page: its clean and attacked maps and how far the map moved.

    Attributes:
        pair: the method's maps, metrics and extras.
        readings: its readings.
        panels: ``<method>-clean`` and ``<method>-attacked`` (the bytes the final Outcome holds).
    """

    pair: MapPair
    readings: MapReadings
    panels: dict[str, bytes] = field(default_factory=dict)

    @property
    def block(self) -> str:
        return self.pair.method


AttackPart = DecisionPart | MapPart
"""One finished block of the attack page while the rest still runs: the decision, then each map."""


@dataclass(frozen=True)
class AttackOutcome(Outcome):
    """The attack's `Outcome` (the report and files for download) with what the page shows.

    Attributes:
        decision: the attack's block.
        maps: method -> its block, in the config's order.
        overall: one verdict over every map (`readings.attack.maps_overall`).
    """

    decision: DecisionPart = field(kw_only=True)
    maps: dict[str, MapPart] = field(kw_only=True)
    overall: Reading = field(kw_only=True)


@dataclass(frozen=True)
class ManipulationOutcome(Outcome):
    """Keep-the-label-move-the-map's `Outcome` (the report and files for download) with the result
    the page shows (its reading and similarities)."""

    result: MoveTheMapResult = field(kw_only=True)


class _Parts:
    """Turns the experiment's partial results into page blocks, keeping each block for the end."""

    def __init__(self, topk: float, send: Callable[[AttackPart], None] | None) -> None:
        self.topk, self.send = topk, send
        self.decision: DecisionPart | None = None
        self.maps: dict[str, MapPart] = {}

    def __call__(self, value: UnderAttackPart) -> None:
        part: AttackPart
        if isinstance(value, AdversarialExampleResult):
            part = self.decision = _decision_part(value)
        else:
            assert self.decision is not None  # the attack always comes first
            part = self.maps[value.method] = _map_part(self.decision.example, value, self.topk)
        if self.send is not None:
            self.send(part)

    @property
    def panels(self) -> dict[str, bytes]:
        """Every block's pictures."""
        assert self.decision is not None
        blocks: list[AttackPart] = [self.decision, *self.maps.values()]
        return {k: v for part in blocks for k, v in part.panels.items()}


def _decision_part(example: AdversarialExampleResult) -> DecisionPart:
    size = dataclasses.asdict(example.perturbation)
    readings = DecisionReadings(
        decision_reading(example), attack_readings.visibility(size), reports.perturbation_sentences(size)
    )
    panels = {
        "clean": images.display_png(example.image),
        "attacked": images.display_png(example.adversarial),
        "delta": images.delta_png(example.delta),
    }
    return DecisionPart(example, readings, panels)


def _map_part(example: AdversarialExampleResult, pair: MapPair, topk: float) -> MapPart:
    m = pair.method
    clean, attacked = pair.extras.colour_scales
    panels = {
        f"{m}-clean": images.overlay_png(example.image, pair.clean, clean[1]),
        f"{m}-attacked": images.overlay_png(example.adversarial, pair.attacked, attacked[1]),
    }
    verdict = attack_readings.map_change(pair.metrics, k=topk, side=max(example.image.shape[-2:]))
    return MapPart(pair, MapReadings(reports.map_sentences(pair.metrics, k=topk), verdict), panels)


def compute_attack(
    image_bytes: bytes,
    attack_config: AttackConfig,
    saliency: SaliencyConfig,
    model: LoadedModel,
    on_step: OnStep | None = None,
    on_part: Callable[[AttackPart], None] | None = None,
) -> AttackOutcome:
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
    assert parts.decision is not None
    overall = attack_readings.maps_overall(
        {m: p.readings.verdict for m, p in parts.maps.items()}, METHOD_TITLES
    )
    return AttackOutcome(
        report, parts.panels, files, decision=parts.decision, maps=dict(parts.maps), overall=overall
    )


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
) -> AttackOutcome:
    """``compute_attack``, cached by (image bytes, model id, configs); parts only when it runs."""
    return compute_attack(image_bytes, attack_config, saliency, _model, _on_step, _on_part)


def compute_manipulation(
    image_bytes: bytes,
    config: ManipulationConfig,
    model: LoadedModel,
    goal_bytes: bytes | None = None,
    on_step: OnStep | None = None,
) -> ManipulationOutcome:
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
    return ManipulationOutcome(
        report, panels, {"manipulated.png": encode_png(result.adversarial)}, result=result
    )


@cached_result
def manipulate(
    image_bytes: bytes,
    model_id: str,
    config: ManipulationConfig,
    goal_bytes: bytes | None,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> ManipulationOutcome:
    """``compute_manipulation``, cached by (image bytes, model id, config, goal image)."""
    return compute_manipulation(image_bytes, config, _model, goal_bytes, _on_step)
