"""Adversarial explanations (AE), exactly as docs/method.md §2 defines them.

On a robust network the budgeted targeted attack toward class t *is* the explanation of t:
within RMS ρ, what would this image look like if it were as much t as possible? The optimisation
is the shared step-schedule loop of `advexp_core.methods.attacks` (S = 35 linearly decaying steps summing
to overshoot·ρ, unit-RMS directions, toward t while RMS(δ) < ρ, otherwise back along −δ; no
clamping while optimising). All targets of one image run as one batch: one forward and one
backward pass per step for all of them.

An example whose RMS(δ) has not reached ρ by step S/2 is a failed explanation (the authors'
reference treats it as an error): it is flagged, with a message, and never presented as valid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advexp_core.base.jsonsafe import json_number
from advexp_core.base.runtime import OnStep, device_of, dtype_of
from advexp_core.data.imaging import delta_display_scale
from advexp_core.methods.attacks import StepScheduleResult, step_schedule
from advexp_core.methods.maps import SaliencyMap, as_targets

TargetSpec = int | str | Sequence[int | str]

_TOP_K = re.compile(r"top-?(\d+)")
LOW_FREQUENCY_CUTOFF = 0.25
"""Radial frequency (cycles/pixel; 0.5 is Nyquist) up to which δ's energy counts as structure."""


@dataclass(frozen=True)
class ExplanationSettings:
    """The budget and schedule of an adversarial explanation (docs/method.md §2); each default of
    the project's explanations is written here once.

    Attributes:
        rho: RMS budget ρ in [0,1] pixel units.
        steps: steps S >= 2.
        overshoot: total step length as a multiple of ρ.
    """

    rho: float = 0.1
    steps: int = 35
    overshoot: float = 5.0

    def __post_init__(self) -> None:
        check_settings(rho=self.rho, steps=self.steps, overshoot=self.overshoot)


@dataclass(frozen=True)
class TargetExplanation:
    """The adversarial explanation of one target class (docs/method.md §2).

    `delta` is the optimised perturbation, never clamped; `explanation` is x+δ clamped to [0, 1]
    for display and saving only. Probabilities are softmax values of the target class at x,
    at x+δ as optimised, and at the clamped image that is shown. `valid` is False when RMS(δ)
    did not reach ρ by step S/2; `message` then says why this is not an explanation.

    Shapes: explanation (3, H, W), delta (3, H, W).
    """

    index: int
    label: str
    explanation: Tensor
    delta: Tensor
    probability_before: float
    probability_after: float
    probability_after_display: float
    rms: float
    reached_step: int
    budget_reached_by_half: bool
    structure: float
    message: str | None

    @property
    def valid(self) -> bool:
        """True when the budget was reached by step S/2 (docs/method.md §2)."""
        return self.budget_reached_by_half


@dataclass(frozen=True)
class ExplanationResult:
    """Adversarial explanations of one image for several targets, one model.

    Attributes:
        image: the input image x in [0, 1] (3, H, W).
        model_id: id of the model ("" for a bare module).
        class_names: the model's class names.
        probabilities: softmax at x (C,).
        targets: one `TargetExplanation` per target, in the resolved order.
        rho, steps, overshoot: settings (ρ in RMS pixel units).
        rms_history: RMS(δ) after 0..S steps, (S+1, T).
    """

    image: Tensor
    model_id: str
    class_names: tuple[str, ...]
    probabilities: Tensor
    targets: tuple[TargetExplanation, ...]
    rho: float
    steps: int
    overshoot: float
    rms_history: Tensor

    @property
    def deltas(self) -> Tensor:
        """All δ stacked, (T, 3, H, W)."""
        return torch.stack([t.delta for t in self.targets])

    @property
    def explanations(self) -> Tensor:
        """All clamped explanation images stacked, (T, 3, H, W)."""
        return torch.stack([t.explanation for t in self.targets])

    @property
    def all_valid(self) -> bool:
        """True when every target reached its budget by step S/2."""
        return all(t.valid for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: settings and per-target numbers (no tensors)."""
        return {
            "model": self.model_id,
            "rho": self.rho,
            "steps": self.steps,
            "overshoot": self.overshoot,
            "image_size": list(self.image.shape[1:]),
            "targets": [_target_dict(t) for t in self.targets],
        }


def _target_dict(t: TargetExplanation) -> dict[str, Any]:
    return {
        "index": t.index,
        "label": t.label,
        "probability_before": t.probability_before,
        "probability_after": t.probability_after,
        "probability_after_display": t.probability_after_display,
        "rms": t.rms,
        "reached_step": t.reached_step,
        "budget_reached_by_half": t.budget_reached_by_half,
        "structure": json_number(t.structure),
        "message": t.message,
    }


def resolve_targets(targets: TargetSpec, logits: Tensor, class_names: Sequence[str]) -> tuple[int, ...]:
    """Turn a target specification into class indices (docs/method.md §2's choice of targets).

    Args:
        targets: a class index, a class name, ``predicted``, ``runner-up``, ``all``, ``top-K``,
            a decimal index as a string, or a list of these. Duplicates are dropped, order kept.
            ``predicted`` is the top class at x, ``runner-up`` the second-ranked one (the paper's
            "second" class when the image is classified correctly), ``top-K`` the K best.
        logits: the model's logits at the clean image, ranking the classes.
        class_names: names of the C classes.

    Returns:
        Distinct class indices in the order asked.

    Raises:
        ValueError: an unknown name, an index out of range, or an empty list.

    Shapes: logits (C,).
    """
    if isinstance(targets, int | str):
        items: list[int | str] = [targets]
    elif isinstance(targets, Sequence):
        items = list(targets)
    else:
        raise ValueError(f"target {targets!r} is neither a class index, a name nor a list of them")
    if not items:
        raise ValueError("no target given")
    if len(class_names) != logits.numel():
        raise ValueError(f"{len(class_names)} class names for {logits.numel()} logits")
    order = torch.sort(logits.detach().flatten().float(), descending=True, stable=True).indices.tolist()
    resolved: list[int] = []
    for item in items:
        for index in _resolve_one(item, order, class_names):
            if index not in resolved:
                resolved.append(index)
    return tuple(resolved)


def _resolve_one(item: int | str, order: list[int], class_names: Sequence[str]) -> list[int]:
    n = len(order)
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise ValueError(f"target {item!r} is neither a class index nor a name")
    if isinstance(item, int):
        if 0 <= item < n:
            return [item]
        raise ValueError(f"class index {item} is out of range 0..{n - 1}")
    key = item.strip()
    low = key.lower()
    if low == "predicted":
        return order[:1]
    if low in ("runner-up", "runner_up", "runnerup", "second"):
        if n < 2:
            raise ValueError("runner-up needs at least two classes")
        return order[1:2]
    if low == "all":
        return list(range(n))
    match = _TOP_K.fullmatch(low)
    if match and key not in class_names:
        k = int(match.group(1))
        if not 1 <= k <= n:
            raise ValueError(f"{item!r}: K must be between 1 and {n}")
        return order[:k]
    if key in class_names:
        return [list(class_names).index(key)]
    if key.isdigit():
        return _resolve_one(int(key), order, class_names)
    folded = [i for i, name in enumerate(class_names) if name.lower() == low]
    if len(folded) == 1:
        return folded
    raise ValueError(
        f"unknown target {item!r}: use a class index 0..{n - 1}, a class name, "
        "'predicted', 'runner-up', 'all' or 'top-K'"
    )


def check_settings(*, rho: float, steps: int, overshoot: float) -> None:
    """Raise ValueError unless ρ > 0, S ≥ 2 and overshoot > 0 (all finite)."""
    if not (isinstance(rho, int | float) and math.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be a positive RMS budget in [0,1] pixel units, got {rho!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    if not (isinstance(overshoot, int | float) and math.isfinite(overshoot) and overshoot > 0):
        raise ValueError(f"overshoot must be positive, got {overshoot!r}")


def check_image(image: Tensor, input_size: Sequence[int] | None = None) -> None:
    """Raise ValueError unless `image` is a finite float (3, H, W) tensor in [0, 1] of the right size."""
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"expected an RGB image tensor of shape (3, H, W), got {shape}")
    if not image.is_floating_point():
        raise ValueError(f"expected a float image in [0, 1], got dtype {image.dtype}")
    if not bool(torch.isfinite(image).all()) or image.min() < 0 or image.max() > 1:
        raise ValueError("image values must be finite and in [0, 1]")
    if input_size is not None and tuple(image.shape[1:]) != tuple(input_size):
        h, w = image.shape[1:]
        raise ValueError(
            f"image is {h}x{w} px but the model takes {input_size[0]}x{input_size[1]}; "
            "resize it first (advexp_core.data.imaging.prepare_image)"
        )


def adversarial_explanation(
    module: nn.Module,
    image: Tensor,
    targets: TargetSpec,
    *,
    class_names: Sequence[str],
    model_id: str = "",
    input_size: Sequence[int] | None = None,
    rho: float = ExplanationSettings.rho,
    steps: int = ExplanationSettings.steps,
    overshoot: float = ExplanationSettings.overshoot,
    on_step: OnStep | None = None,
) -> ExplanationResult:
    """Adversarial explanations of `image` toward each target class (docs/method.md §2).

    Step-schedule attack with S = `steps` linearly decaying steps summing to overshoot·ρ, each
    along the unit-RMS direction that decreases CE(f(x+δ), t) while RMS(δ) < ρ, otherwise
    along −δ; no clamping while optimising; one batch (one forward+backward per step) for all
    targets; deterministic. The module is used as given (eval mode, frozen) and never modified.

    Args:
        module: the network (images in [0, 1] -> logits).
        image: x in [0, 1] at the model's input size.
        targets: see `resolve_targets` (index, name, predicted, runner-up, all, top-K, or a list).
        class_names: one name per logit.
        model_id: the model's id, recorded in the result ("" when unknown).
        input_size: (H, W) the model takes; when given, an image of another size is refused
            with a message that says to resize it.
        rho: RMS budget ρ in [0,1] pixel units (paper: 0.1).
        steps: number of steps S ≥ 2 (paper: 35).
        overshoot: total step length as a multiple of ρ (paper: 5).
        on_step: called as on_step(step, steps) after each step.

    Returns:
        ExplanationResult with one TargetExplanation per resolved target.

    Shapes: image (3, H, W) -> explanations and deltas (T, 3, H, W).
    """
    check_settings(rho=rho, steps=steps, overshoot=overshoot)
    check_image(image, input_size)
    names = tuple(class_names)
    device = device_of(module)
    x = image.detach().to(device=device, dtype=dtype_of(module)).unsqueeze(0)
    with torch.no_grad():
        logits = module(x)[0]
    indices = resolve_targets(targets, logits, names)
    batch = x.repeat(len(indices), 1, 1, 1)
    labels = torch.tensor(indices, dtype=torch.long, device=device)
    sched = step_schedule(
        module, batch, labels, size=overshoot * rho, steps=steps, mode="budget", budget=rho,
        targeted=True, on_step=on_step,
    )  # fmt: skip
    optimised = batch + sched.delta
    shown = optimised.clamp(0.0, 1.0)
    if torch.equal(shown, optimised):
        logits_shown = sched.logits_after
    else:
        with torch.no_grad():
            logits_shown = module(shown)
    per_target = _per_target(names, indices, sched, shown, logits_shown, rho=rho, steps=steps)
    return ExplanationResult(
        image=image.detach().cpu().float(),
        model_id=model_id,
        class_names=names,
        probabilities=torch.softmax(logits.float(), dim=0).cpu(),
        targets=per_target,
        rho=float(rho),
        steps=steps,
        overshoot=float(overshoot),
        rms_history=sched.rms_history.detach().cpu(),
    )


def _per_target(
    class_names: tuple[str, ...],
    indices: tuple[int, ...],
    sched: StepScheduleResult,
    shown: Tensor,
    logits_shown: Tensor,
    *,
    rho: float,
    steps: int,
) -> tuple[TargetExplanation, ...]:
    rows = torch.arange(len(indices), device=shown.device)
    labels = torch.tensor(indices, device=shown.device)

    def target_prob(logits: Tensor) -> list[float]:
        return torch.softmax(logits.detach().float(), dim=1)[rows, labels].tolist()

    before, after, after_shown = (
        target_prob(z) for z in (sched.logits_before, sched.logits_after, logits_shown)
    )
    structure = low_frequency_share(sched.delta.detach()).tolist()
    delta = sched.delta.detach().cpu()
    shown = shown.detach().cpu()
    history = sched.rms_history.detach().cpu()
    out = []
    for i, index in enumerate(indices):
        met = bool(sched.met[i])
        reached = int(sched.reached_step[i])
        out.append(
            TargetExplanation(
                index=index,
                label=class_names[index],
                explanation=shown[i],
                delta=delta[i],
                probability_before=before[i],
                probability_after=after[i],
                probability_after_display=after_shown[i],
                rms=float(sched.rms[i]),
                reached_step=reached,
                budget_reached_by_half=met,
                structure=structure[i],
                message=None if met else _failure_message(history[:, i], reached, rho=rho, steps=steps),
            )
        )
    return tuple(out)


def _failure_message(history: Tensor, reached_step: int, *, rho: float, steps: int) -> str:
    """Plain words for a budget not reached by step S/2 (docs/method.md §2: a failed explanation)."""
    half = steps // 2
    best = float(history[: half + 1].max())
    later = (
        f"it reached ρ only after step {reached_step}"
        if reached_step >= 0
        else f"it never reached ρ (final RMS {float(history[-1]):.4g})"
    )
    return (
        f"failed explanation: RMS(δ) was at most {best:.4g} < ρ = {rho:g} by step {half} of {steps}, "
        f"so {later}. The target's gradient was too weak or too unstable to spend the budget "
        "(typical of a saturated, non-robust network); this image is not an adversarial "
        "explanation (docs/method.md §2). Try more steps or another network."
    )


def low_frequency_share(delta: Tensor, *, cutoff: float = LOW_FREQUENCY_CUTOFF) -> Tensor:
    """Structure of a perturbation: the share of its energy at low spatial frequencies.

    Why this measure: docs/method.md §2's claim is that a robust network's δ "looks like the target
    class" (coherent strokes and blobs) while a standard network's δ looks like noise. Spatially
    coherent patterns keep their energy at low spatial frequencies; white noise spreads it evenly
    over all frequencies. The share is scale-free (it does not depend on how much of the budget
    was spent, so a failed explanation on a standard network is not penalised for being small),
    bounded in [0, 1], comparable across image sizes (cutoff in cycles per pixel), and has an
    exact noise baseline (`noise_low_frequency_share`). Each channel's mean (the DC term, a flat
    colour shift) is removed first, so only spatial structure counts.

    Args:
        delta: perturbations in [0,1] pixel units.
        cutoff: radial frequency in cycles/pixel (0.5 is Nyquist); 0.25 = half the band.

    Returns:
        Share of AC energy at radial frequency ≤ cutoff, per example; NaN where δ is constant.

    Shapes: (N, C, H, W) -> (N,)
    """
    d = delta.detach().double()
    d = d - d.mean(dim=(2, 3), keepdim=True)
    energy = torch.fft.fft2(d).abs().pow(2).sum(dim=1)  # (N, H, W)
    low = energy[:, _low_mask(d.shape[2], d.shape[3], cutoff, d.device)].sum(dim=1)
    total = energy.flatten(1).sum(dim=1)
    share = torch.where(total > 0, low / total.clamp_min(1e-300), torch.full_like(total, math.nan))
    return share.float().cpu()


def _low_mask(height: int, width: int, cutoff: float, device: torch.device) -> Tensor:
    fy = torch.fft.fftfreq(height, device=device).view(-1, 1)
    fx = torch.fft.fftfreq(width, device=device).view(1, -1)
    mask = (fy**2 + fx**2).sqrt() <= cutoff
    mask[0, 0] = False  # DC is removed from δ; keep it out of the count too
    return mask


def noise_low_frequency_share(height: int, width: int, *, cutoff: float = LOW_FREQUENCY_CUTOFF) -> float:
    """Expected `low_frequency_share` of white noise: the fraction of AC frequencies ≤ cutoff."""
    mask = _low_mask(height, width, cutoff, torch.device("cpu"))
    return float(mask.sum()) / (height * width - 1)


@dataclass(frozen=True)
class ContrastResult:
    """The same image explained on several networks (e.g. standard vs robust), one δ scale.

    Attributes:
        results: one ExplanationResult per model, in the order given.
        delta_scale: shared amplification: δ is shown as 0.5 + δ/(2·delta_scale) everywhere.
    """

    results: tuple[ExplanationResult, ...]
    delta_scale: float


def adversarial_map(
    module: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    rho: float,
    steps: int,
    overshoot: float,
) -> SaliencyMap:
    """The adversarial explanation as a map: per pixel, the RMS over channels of δ toward the target.

    docs/method.md §2; one image at a time (each its own step schedule), so a map depends on its
    image alone.

    Args:
        module: the network (images in [0, 1] -> logits); not modified.
        images: images in [0, 1] at the network's input size.
        targets: class index to explain toward, per image or one for all.
        rho, steps, overshoot: as in `adversarial_explanation`.

    Returns:
        SaliencyMap with method "adversarial"; extra "valid" (N,) bool: the budget was reached.

    Shapes: images (N, 3, H, W) -> maps (N, H, W)
    """
    t = as_targets(targets, images.shape[0], images.device)
    maps, valid = [], []
    names: list[str] = []
    for x, target in zip(images, t.tolist(), strict=True):
        if not names:  # the labels only name the targets in the result, which a map does not keep
            with torch.no_grad():
                names = [str(c) for c in range(module(x[None].to(device_of(module))).shape[1])]
        result = adversarial_explanation(
            module, x, [target], class_names=names, rho=rho, steps=steps, overshoot=overshoot
        )
        maps.append(result.deltas.detach().float().cpu().pow(2).mean(1).sqrt())
        valid.append(result.all_valid)
    out = torch.cat(maps) if maps else torch.zeros(0, *images.shape[2:])
    return SaliencyMap(out, "adversarial", t.cpu(), {"valid": torch.tensor(valid, dtype=torch.bool)})


__all__ = [
    "LOW_FREQUENCY_CUTOFF",
    "ContrastResult",
    "ExplanationResult",
    "TargetExplanation",
    "adversarial_explanation",
    "check_image",
    "check_settings",
    "delta_display_scale",
    "ExplanationSettings",
    "adversarial_map",
    "low_frequency_share",
    "noise_low_frequency_share",
    "resolve_targets",
]
