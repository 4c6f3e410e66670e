"""Adversarial explanations (docs/method.md §2) of one image on one network, and the same image on
several networks (standard vs robust) with δ on one shared scale."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from advexp_core.experiments.configs import ExplanationConfig
from advexp_core.experiments.progress import stage, tick
from advexp_core.experiments.under_attack import fit_image
from advexp_core.explanations import (
    ContrastResult,
    ExplanationResult,
    adversarial_explanation,
    delta_display_scale,
    resolve_targets,
)
from advexp_core.imaging import png_roundtrip
from advexp_core.models import LoadedModel
from advexp_core.reports import explanation_file, predictions
from advexp_core.runtime import OnStep


@dataclass(frozen=True)
class AdversarialExplanationsResult:
    """The adversarial explanation of each target class of one image on one network.

    Attributes:
        explanations: the algorithm's result (images, δ, per-target numbers), model id filled in.
        files: per target, in order, the lossless PNG name (``explanation_<index>_<label>.png``).
        config: the settings.
        report: JSON-able: model, ρ, S, overshoot, predictions, per-target numbers with their file
            and the target's probability at the saved 8-bit PNG, whether every budget was reached.
    """

    explanations: ExplanationResult
    files: tuple[str, ...]
    config: ExplanationConfig
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The report, as a fresh JSON-able dict."""
        return copy.deepcopy(self.report)


@dataclass(frozen=True)
class ContrastExplanationsResult:
    """The same image and targets explained on several networks.

    Attributes:
        contrast: the per-model results with one δ display scale (for `contrast_figure`).
        per_model: one AdversarialExplanationsResult per model, in the order given.
        report: JSON-able: ``delta_scale`` and ``models`` (id, title, robust and each model's report).
    """

    contrast: ContrastResult
    per_model: tuple[AdversarialExplanationsResult, ...]
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The report, as a fresh JSON-able dict."""
        return copy.deepcopy(self.report)


def adversarial_explanations(
    model: LoadedModel, image: Tensor, config: ExplanationConfig, *, on_step: OnStep | None = None
) -> AdversarialExplanationsResult:
    """Explain the image toward each target class within RMS ρ (docs/method.md §2).

    Args:
        model: the network; its lock is held once for the whole run.
        image: x in [0, 1]; resized to the model's input when needed.
        config: targets, ρ, S, overshoot.
        on_step: called as on_step(step, S).

    Returns:
        AdversarialExplanationsResult (failed targets, budget not reached by S/2, are flagged).

    Shapes: image (3, H, W) -> explanations (T, 3, h, w).
    """
    with model.lock:  # one run at a time per shared model
        result = _explain(model, image, config, on_step)
    tick(on_step, config.steps, config.steps)
    return result


def contrast_explanations(
    models: Sequence[LoadedModel],
    image: Tensor,
    config: ExplanationConfig,
    *,
    on_step: OnStep | None = None,
) -> ContrastExplanationsResult:
    """The same image and targets on several networks (docs/method.md §2's contrast).

    On a robust network an explanation looks like its target class; on a standard one δ looks
    like noise. Targets resolve per model (``predicted`` may differ); δ shares one display scale.

    Args:
        models: the networks (at least one); each one's lock is held once, one model at a time.
        image: x in [0, 1]; resized to each model's input when needed.
        config: targets, ρ, S, overshoot.
        on_step: called as on_step(done, S·len(models)).

    Returns:
        ContrastExplanationsResult.

    Shapes: image (3, H, W).
    """
    if not models:
        raise ValueError("contrast needs at least one model")
    total = config.steps * len(models)
    results = []
    for k, model in enumerate(models):
        with model.lock:  # one model at a time, so runs on other models never wait for both
            progress = stage(on_step, k * config.steps, config.steps, total)
            results.append(_explain(model, image, config, progress))
        tick(on_step, (k + 1) * config.steps, total)
    scale = delta_display_scale([r.explanations.deltas for r in results])
    contrast = ContrastResult(results=tuple(r.explanations for r in results), delta_scale=scale)
    report = {
        "delta_scale": scale,
        "models": [
            {"id": m.model_id, "title": m.title, "robust": m.robust, **r.report}
            for m, r in zip(models, results, strict=True)
        ],
    }
    return ContrastExplanationsResult(contrast, tuple(results), report)


def _explain(
    model: LoadedModel, image: Tensor, config: ExplanationConfig, on_step: OnStep | None
) -> AdversarialExplanationsResult:
    """`adversarial_explanations` without the lock (the caller holds it)."""
    x = fit_image(image, model)
    with torch.no_grad():
        logits = model.module(x[None])[0]
    targets = resolve_targets(list(config.targets), logits, model.class_names)
    if config.max_targets is not None and len(targets) > config.max_targets:
        raise ValueError(f"{len(targets)} targets asked; at most {config.max_targets} at a time, please.")
    result = adversarial_explanation(
        model.module, x, list(targets), rho=config.rho, steps=config.steps, overshoot=config.overshoot,
        class_names=model.class_names, on_step=on_step,
    )  # fmt: skip
    result = dataclasses.replace(result, model_id=model.model_id)  # a bare module has no id
    summary = result.to_dict()
    files = tuple(explanation_file(t.index, t.label) for t in result.targets)
    for entry, file, p_png in zip(summary["targets"], files, _png_probabilities(model, result), strict=True):
        entry["file"] = file
        entry["probability_after_png"] = p_png
    summary["input_size"] = list(model.input_size)
    summary["predictions"] = predictions(logits, model.class_names, config.top_k)
    summary["all_budgets_reached"] = result.all_valid
    return AdversarialExplanationsResult(result, files, config, summary)


def _png_probabilities(model: LoadedModel, result: ExplanationResult) -> list[float]:
    """Target probabilities at the saved 8-bit PNGs (what a user who opens the files gets)."""
    saved = png_roundtrip(result.explanations).to(model.device)
    with torch.no_grad():
        probs = torch.softmax(model.module(saved).float(), dim=1).cpu()
    return [float(probs[i, t.index]) for i, t in enumerate(result.targets)]
