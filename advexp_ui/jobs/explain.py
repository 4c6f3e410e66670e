"""Adversarial explanations (docs/method.md §2) on the chosen network, and the same image on a
standard and a robust network side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advexp_core.experiments import (
    AdversarialExplanationsResult,
    ExplanationConfig,
    adversarial_explanations,
    contrast_explanations,
)
from advexp_core.explanation_figures import contrast_figure, explanation_figure
from advexp_core.explanations import ExplanationResult, delta_display_scale
from advexp_core.figures import figure_png
from advexp_core.imaging import decode_image, encode_png
from advexp_core.models import LoadedModel
from advexp_ui import images
from advexp_ui.jobs.common import OnStep, Outcome, cached_result, header, model_image

MAX_TARGETS = 10  # the page's ExplanationConfig.max_targets: one batch of this many 224-px images fits comfortably in memory on a laptop


def _panels(result: ExplanationResult, scale: float, prefix: str = "") -> dict[str, bytes]:
    """Per target: the explanation image and δ amplified on the shared ``scale``."""
    out = {f"{prefix}input": images.display_png(result.image)}
    for k, t in enumerate(result.targets):
        out[f"{prefix}x-{k}"] = images.display_png(t.explanation)
        out[f"{prefix}d-{k}"] = images.delta_png(t.delta, scale)
    return out


def _files(result: AdversarialExplanationsResult) -> dict[str, bytes]:
    """The lossless PNG of each target."""
    return {
        f: encode_png(t.explanation) for f, t in zip(result.files, result.explanations.targets, strict=True)
    }


def compute_explanations(
    image_bytes: bytes, config: ExplanationConfig, model: LoadedModel, on_step: OnStep | None = None
) -> Outcome:
    """The adversarial explanation of each target, one batch, with the contact-sheet figure."""
    result = adversarial_explanations(model, model_image(image_bytes, model), config, on_step=on_step)
    summary: dict[str, Any] = result.to_dict()
    del summary["model"]  # the header describes the model in full
    report = {**header(model, config, "adversarial explanations"), **summary}
    scale = delta_display_scale([result.explanations.deltas])
    files = _files(result)
    files["figure.png"] = figure_png(explanation_figure(result.explanations, delta_scale=scale))
    return Outcome(report, _panels(result.explanations, scale), files)


@cached_result
def explanations(
    image_bytes: bytes,
    model_id: str,
    config: ExplanationConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_explanations``, cached by (image bytes, model id, config)."""
    return compute_explanations(image_bytes, config, _model, _on_step)


def compute_contrast(
    image_bytes: bytes,
    config: ExplanationConfig,
    models: Sequence[LoadedModel],
    on_step: OnStep | None = None,
) -> Outcome:
    """The same image and targets on several networks, δ on one shared scale (docs/method.md §2)."""
    res = contrast_explanations(list(models), decode_image(image_bytes), config, on_step=on_step)
    report: dict[str, Any] = {**header(models[0], config, "standard vs robust"), **res.to_dict()}
    del report["model"]  # each entry of "models" describes its network
    panels: dict[str, bytes] = {}
    for k, r in enumerate(res.contrast.results):
        panels.update(_panels(r, res.contrast.delta_scale, prefix=f"m{k}-"))
    figure = contrast_figure(res.contrast, model_labels=[m.title for m in models])
    return Outcome(report, panels, {"contrast.png": figure_png(figure)})


@cached_result
def contrast_run(
    image_bytes: bytes,
    model_ids: tuple[str, ...],
    config: ExplanationConfig,
    _models: Sequence[LoadedModel],
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_contrast``, cached by (image bytes, model ids, config)."""
    return compute_contrast(image_bytes, config, _models, _on_step)
