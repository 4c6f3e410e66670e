"""Adversarial explanations (PAPER.md §2) on the chosen network, and the same image on a standard
and a robust network side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from advexp_core.cli.explain import safe_label
from advexp_core.explanation_figures import contrast_figure, explanation_figure, figure_png
from advexp_core.explanations import (
    ExplanationResult,
    adversarial_explanation,
    contrast,
    delta_display_scale,
    resolve_targets,
)
from advexp_core.imaging import decode_image, encode_png
from advexp_core.models import LoadedModel
from advexp_ui import images
from advexp_ui.jobs.common import OnStep, Outcome, cached_result, header, logits_of, model_image

MAX_TARGETS = 10  # one batch of this many 224-px images fits comfortably in memory on a laptop


@dataclass(frozen=True)
class ExplainConfig:
    """Targets (indices or ``predicted``, ``runner-up``, ``top-K``), ρ (RMS, [0,1] units), S, overshoot."""

    targets: tuple[int | str, ...] = ("predicted", "runner-up")
    rho: float = 0.1
    steps: int = 35
    overshoot: float = 5.0


def _panels(result: ExplanationResult, scale: float, prefix: str = "") -> dict[str, bytes]:
    """Per target: the explanation image and δ amplified on the shared ``scale``."""
    out = {f"{prefix}input": images.display_png(result.image)}
    for k, t in enumerate(result.targets):
        out[f"{prefix}x-{k}"] = images.display_png(t.explanation)
        out[f"{prefix}d-{k}"] = images.delta_png(t.delta, scale)
    return out


def _summary(result: ExplanationResult, model: LoadedModel) -> dict[str, Any]:
    """The JSON part of one model's explanations, with the lossless file name of each target."""
    summary = result.to_dict()
    summary["predictions"] = [
        {"index": i, "label": model.class_names[i], "probability": float(result.probabilities[i])}
        for i in result.probabilities.argsort(descending=True)[:5].tolist()
    ]
    summary["all_budgets_reached"] = result.all_valid
    for entry in summary["targets"]:
        entry["file"] = f"explanation_{entry['index']}_{safe_label(entry['label'])}.png"
    return summary


def compute_explanations(
    image_bytes: bytes, config: ExplainConfig, model: LoadedModel, on_step: OnStep | None = None
) -> Outcome:
    """The adversarial explanation of each target, one batch, with the contact-sheet figure."""
    image = model_image(image_bytes, model)
    targets = resolve_targets(list(config.targets), logits_of(model, image[None])[0], model.class_names)
    if len(targets) > MAX_TARGETS:
        raise ValueError(f"{len(targets)} targets asked; at most {MAX_TARGETS} at a time, please.")
    result = adversarial_explanation(
        model,
        image,
        list(targets),
        rho=config.rho,
        steps=config.steps,
        overshoot=config.overshoot,
        on_step=on_step,
    )
    summary = _summary(result, model)
    del summary["model"]  # the header describes the model in full
    report = {**header(model, config, "adversarial explanations"), **summary}
    scale = delta_display_scale([result.deltas])
    files = {
        e["file"]: encode_png(t.explanation) for e, t in zip(summary["targets"], result.targets, strict=True)
    }
    files["figure.png"] = figure_png(explanation_figure(result, delta_scale=scale))
    return Outcome(report, _panels(result, scale), files)


@cached_result
def explanations(
    image_bytes: bytes,
    model_id: str,
    config: ExplainConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_explanations``, cached by (image bytes, model id, config)."""
    return compute_explanations(image_bytes, config, _model, _on_step)


def compute_contrast(
    image_bytes: bytes, config: ExplainConfig, models: Sequence[LoadedModel], on_step: OnStep | None = None
) -> Outcome:
    """The same image and targets on several networks, δ on one shared scale (PAPER.md §2)."""
    res = contrast(
        list(models),
        decode_image(image_bytes),
        list(config.targets),
        rho=config.rho,
        steps=config.steps,
        overshoot=config.overshoot,
        on_step=on_step,
    )
    report: dict[str, Any] = {
        **header(models[0], config, "standard vs robust"),
        "delta_scale": res.delta_scale,
    }
    report["models"] = [
        {"id": m.model_id, "title": m.title, "robust": m.robust, **_summary(r, m)}
        for m, r in zip(models, res.results, strict=True)
    ]
    del report["model"]
    panels: dict[str, bytes] = {}
    for k, r in enumerate(res.results):
        panels.update(_panels(r, res.delta_scale, prefix=f"m{k}-"))
    figure = contrast_figure(res, model_labels=[m.title for m in models])
    return Outcome(report, panels, {"contrast.png": figure_png(figure)})


@cached_result
def contrast_run(
    image_bytes: bytes,
    model_ids: tuple[str, ...],
    config: ExplainConfig,
    _models: Sequence[LoadedModel],
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_contrast``, cached by (image bytes, model ids, config)."""
    return compute_contrast(image_bytes, config, _models, _on_step)
