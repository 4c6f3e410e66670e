"""Adversarial explanations (docs/method.md §2) of one image on one network, and the same image on
several networks (standard vs robust) with δ on one shared scale."""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import JsonObject
from advexp_core.base.runtime import OnStep, in_order
from advexp_core.data.imaging import delta_display_scale, png_roundtrip
from advexp_core.experiments.configs import ExplanationConfig
from advexp_core.experiments.maps import fit_image
from advexp_core.experiments.progress import stage, tick
from advexp_core.experiments.report import explanation_file, predictions
from advexp_core.methods.explanations import (
    ContrastResult,
    ExplanationResult,
    TargetExplanation,
    adversarial_explanation,
    noise_low_frequency_share,
    resolve_targets,
)
from advexp_core.networks.registry import LoadedModel
from advexp_core.readings import explanations as readings


@dataclass(frozen=True)
class ExplainedTarget:
    """One target's finished explanation, handed to ``on_partial`` while the others still run (the
    partial result "target done").

    Attributes:
        model_id: the network's id.
        model: the network's position (0 on one network; in a contrast, the order given).
        position: the target's position in the resolved order.
        target: x+δ, δ and the numbers, on the CPU (the values the final result holds).
        entry: the target's entry of the report, as the final report holds it (with its file
            and the probability at the saved PNG).
        image: x as the network sees it, on the CPU.
        predictions: the network's top classes at x (the report's ``predictions``).

    Shapes: image (3, h, w).
    """

    model_id: str
    model: int
    position: int
    target: TargetExplanation
    entry: dict[str, Any]
    image: Tensor
    predictions: list[dict[str, Any]]


@dataclass(frozen=True)
class AdversarialExplanationsResult:
    """The adversarial explanation of each target class of one image on one network.

    Attributes:
        explanations: the algorithm's result (images, δ, per-target numbers), model id filled in.
        files: per target, in order, the lossless PNG name (``explanation_<index>_<label>.png``).
        config: the settings.
        targets: per target, its JSON entry: its numbers, its file, its probability at the saved
            8-bit PNG and whether it is the top class there.
        input_size: (h, w) the network takes.
        predictions: the network's top classes at x.
        structure_noise: δ's low-frequency share for white noise of its size.
    """

    explanations: ExplanationResult
    files: tuple[str, ...]
    config: ExplanationConfig
    targets: tuple[dict[str, Any], ...]
    input_size: tuple[int, int]
    predictions: list[dict[str, Any]]
    structure_noise: float

    def to_json(self) -> JsonObject:
        """The JSON of the CLI and the page: model, ρ, S, overshoot, predictions, per-target entries,
        whether every budget was reached, ``structure_noise`` and ``readings`` (``success`` and
        ``structure``, `advexp_core.readings.explanations`)."""
        out = self.explanations.to_dict()
        out.update(
            copy.deepcopy(
                {
                    "targets": list(self.targets),
                    "input_size": list(self.input_size),
                    "predictions": self.predictions,
                    "all_budgets_reached": self.explanations.all_valid,
                    "structure_noise": self.structure_noise,
                }
            )
        )
        out["readings"] = {k: r.to_json() for k, r in readings.network(out).items()}
        return out


@dataclass(frozen=True)
class NetworkExplanations:
    """One network's part of a contrast: who it is and its explanations.

    Attributes:
        id, title, robust: the network (`LoadedModel`'s).
        result: its explanations.
    """

    id: str
    title: str
    robust: bool
    result: AdversarialExplanationsResult

    def to_json(self) -> JsonObject:
        return {"id": self.id, "title": self.title, "robust": self.robust, **self.result.to_json()}


@dataclass(frozen=True)
class ContrastExplanationsResult:
    """The same image and targets explained on several networks.

    Attributes:
        contrast: the per-model results with one δ display scale (for `contrast_figure`).
        networks: each network with its explanations, in the order given.
    """

    contrast: ContrastResult
    networks: tuple[NetworkExplanations, ...]

    def to_json(self) -> JsonObject:
        """``delta_scale``, ``models`` (id, title, robust and each network's JSON) and ``reading``:
        does this run show the standard-vs-robust contrast (`readings.explanations.contrast_of`)."""
        entries = [n.to_json() for n in self.networks]
        reading = readings.contrast_of(entries).to_json()
        return {"delta_scale": self.contrast.delta_scale, "models": entries, "reading": reading}


def adversarial_explanations(
    model: LoadedModel,
    image: Tensor,
    config: ExplanationConfig,
    *,
    on_step: OnStep | None = None,
    on_partial: Callable[[ExplainedTarget], None] | None = None,
) -> AdversarialExplanationsResult:
    """Explain the image toward each target class within RMS ρ (docs/method.md §2).

    On a CPU each target runs alone, side by side on the cores; on other devices as one batch
    (`target_batches`).

    Args:
        model: the network; its lock is held once for the whole run.
        image: x in [0, 1]; resized to the model's input when needed.
        config: targets, ρ, S, overshoot.
        on_step: called as on_step(done, S), one count across all targets.
        on_partial: called with an ExplainedTarget for each target, in order, as
            soon as it is done, from inside the run (keep it short: the lock is held). The final
            result is the same with or without it.

    Returns:
        AdversarialExplanationsResult (failed targets, budget not reached by S/2, are flagged).

    Shapes: image (3, H, W) -> explanations (T, 3, h, w).
    """
    with model.lock:  # one run at a time per shared model
        result = _explain(model, image, config, on_step, on_partial)
    tick(on_step, config.steps, config.steps)
    return result


def contrast_explanations(
    models: Sequence[LoadedModel],
    image: Tensor,
    config: ExplanationConfig,
    *,
    on_step: OnStep | None = None,
    on_partial: Callable[[ExplainedTarget], None] | None = None,
) -> ContrastExplanationsResult:
    """The same image and targets on several networks (docs/method.md §2's contrast).

    The paper reports that on a robust network an explanation looks like its target class and on a
    standard one δ looks like noise; the report's ``reading`` says whether this run shows it. Targets
    resolve per model (``predicted`` may differ); δ shares one display scale,
    known only once every model is done.

    Args:
        models: the networks (at least one); each one's lock is held once, one model at a time.
        image: x in [0, 1]; resized to each model's input when needed.
        config: targets, ρ, S, overshoot.
        on_step: called as on_step(done, S·len(models)).
        on_partial: as in `adversarial_explanations`, for each model and target in order
            (``ExplainedTarget.model`` tells the models apart).

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
            results.append(_explain(model, image, config, progress, on_partial, k))
        tick(on_step, (k + 1) * config.steps, total)
    scale = delta_display_scale([r.explanations.deltas for r in results])
    contrast = ContrastResult(results=tuple(r.explanations for r in results), delta_scale=scale)
    networks = tuple(
        NetworkExplanations(m.model_id, m.title, m.robust, r) for m, r in zip(models, results, strict=True)
    )
    return ContrastExplanationsResult(contrast, networks)


def target_batches(targets: tuple[int, ...], device: torch.device) -> list[tuple[int, ...]]:
    """How the targets of one image are optimised: each alone on a CPU, one batch elsewhere.

    On a CPU a batch saves little (`python -m bench.bench_explanations` measures it), so each
    target runs alone, the targets run side by side on the cores (`runtime.in_order`), and each is
    shown as soon as it and those before it are done; on a GPU one batch is expected to be much
    faster (not measured here), and all targets then finish together. Each example's steps depend
    on it alone (eval-mode BatchNorm, a per-example loss, unit-RMS direction and budget test:
    `attacks.step_schedule`), so both give the same result up to float rounding (docs/method.md §2).
    """
    if device.type == "cpu":
        return [(t,) for t in targets]
    return [targets]


def _explain(
    model: LoadedModel,
    image: Tensor,
    config: ExplanationConfig,
    on_step: OnStep | None,
    on_partial: Callable[[ExplainedTarget], None] | None,
    position: int = 0,
) -> AdversarialExplanationsResult:
    """`adversarial_explanations` without the lock (the caller holds it); ``position`` is the
    model's place in a contrast, for the partial results."""
    x = fit_image(image, model)
    with torch.no_grad():
        logits = model.module(x[None])[0]
    targets = resolve_targets(list(config.targets), logits, model.class_names)
    if config.max_targets is not None and len(targets) > config.max_targets:
        raise ValueError(f"{len(targets)} targets asked; at most {config.max_targets} at a time, please.")
    top = predictions(logits, model.class_names, config.top_k)
    batches = target_batches(targets, model.device)
    overall = stage(on_step, 0, config.steps, config.steps)  # every batch's steps as one count of S
    parts: list[ExplanationResult] = []
    entries: list[dict[str, Any]] = []
    shares = _batch_shares(overall, len(batches))

    def one_batch(b: int) -> ExplanationResult:
        return adversarial_explanation(
            model.module,
            x,
            list(batches[b]),
            rho=config.rho,
            steps=config.steps,
            overshoot=config.overshoot,
            class_names=model.class_names,
            model_id=model.model_id,
            on_step=shares[b],
        )

    for part in in_order(one_batch, range(len(batches)), model.device):  # side by side on a CPU
        for t, entry in zip(part.targets, _entries(model, part), strict=True):
            entries.append(entry)
            if on_partial is not None:
                on_partial(
                    ExplainedTarget(model.model_id, position, len(entries) - 1, t, entry, part.image, top)
                )
        parts.append(part)
    files = tuple(entry["file"] for entry in entries)
    noise = noise_low_frequency_share(*x.shape[1:])
    size = (int(model.input_size[0]), int(model.input_size[1]))
    return AdversarialExplanationsResult(_merge(parts), files, config, tuple(entries), size, top, noise)


def _batch_shares(on_step: OnStep | None, count: int) -> list[OnStep | None]:
    """One progress callback per batch of ``count`` equal batches, each reporting (step, S), that
    together report one count over all of them: (the sum of each batch's last step, count·S). The
    batches may run side by side (`runtime.in_order`), so the count is kept under a lock."""
    if on_step is None:
        return [None] * count
    done, lock = [0] * count, threading.Lock()

    def share(index: int) -> OnStep:
        def report(step: int, steps: int) -> None:
            with lock:  # in order, so the count never goes back
                done[index] = step
                on_step(sum(done), count * steps)

        return report

    return [share(index) for index in range(count)]


def _merge(parts: Sequence[ExplanationResult]) -> ExplanationResult:
    """The results of the target batches of one image as one result, targets in order."""
    return dataclasses.replace(
        parts[0],
        targets=tuple(t for part in parts for t in part.targets),
        rms_history=torch.cat([part.rms_history for part in parts], dim=1),
    )


def _entries(model: LoadedModel, result: ExplanationResult) -> list[dict[str, Any]]:
    """The report's entry of each target: its numbers, its file and its probability at the saved
    8-bit PNG (what a user who opens the file gets)."""
    saved = png_roundtrip(result.explanations).to(model.device)
    with torch.no_grad():
        probs = torch.softmax(model.module(saved).float(), dim=1).cpu()
    entries = result.to_dict()["targets"]
    for i, (entry, t) in enumerate(zip(entries, result.targets, strict=True)):
        entry["file"] = explanation_file(t.index, t.label)
        entry["probability_after_png"] = float(probs[i, t.index])
        entry["target_is_top_after_png"] = bool(int(probs[i].argmax()) == t.index)
    return entries
