"""One attack loop with pluggable norm geometry, and the attacks built on it.

PGD (Madry et al. 2018), FGSM (Goodfellow et al. 2015), the paper's step-schedule
attack (docs/method.md §1.4, used by adversarial explanations §2) and its
minimal-perturbation search (docs/method.md §3, used by ARA) all run ``_run_loop``:
per step one forward and one backward pass for the whole batch, with
``torch.autograd.grad`` on the perturbation only. A loss hook says what to ascend
(cross-entropy by default; the explanation-manipulation attack passes its own, as
MadryLab robustness's ``custom_loss``), an update rule decides what to do with the
gradient, and a geometry (``advexp_core.methods.geometry``) supplies the norm.

The model is never changed: no ``.backward()`` into parameters, no train/eval
toggles, no hooks. Work happens on the device of the model's parameters; the
results come back on the device of the input images.

Shapes: images (N, C, H, W) float in [0,1]; labels (N,) int64; logits (N, K).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.base.runtime import OnStep, device_of
from advexp_core.data.imaging import png_roundtrip
from advexp_core.measures.metrics import psnr, ssim
from advexp_core.methods.geometry import Geometry, get_geometry, l2, linf, rms

__all__ = [
    "AttackResult",
    "StepScheduleResult",
    "fgsm",
    "minimal_perturbation",
    "pgd",
    "step_schedule",
]

LossHook = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""``loss(inputs, labels) -> (logits (N, K), per-example loss (N,))`` at inputs = images + δ.

The loop ascends the loss. It calls the hook under ``enable_grad`` while stepping and under
``no_grad`` for the final evaluation; a hook that needs input gradients itself (a saliency
map) re-enables them there.
"""
_Result = TypeVar("_Result", "AttackResult", "StepScheduleResult")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AttackResult:
    """Outcome of ``pgd``/``fgsm`` for a batch.

    Attributes:
        adversarial: x + δ, (N, C, H, W) in [0,1].
        delta: adversarial - images, (N, C, H, W), pixel units.
        success: (N,) bool; untargeted: argmax != label, targeted: argmax == target.
        logits_before, logits_after: (N, K) on the clean and the adversarial images.
        linf_255: (N,) max|δ| in 1/255 steps. l2: (N,) ‖δ‖₂. rms: (N,) RMS(δ).
        psnr: (N,) dB against the clean image. ssim: (N,) against the clean image.
        png_logits_after: (N, K) on the adversarial image written as an 8-bit PNG
            and read back (what a user actually shares).
        png_success: (N,) bool, ``success`` decided on those logits.
        steps_run: optimisation steps taken (fewer than asked with early stop).
    """

    adversarial: Tensor
    delta: Tensor
    success: Tensor
    logits_before: Tensor
    logits_after: Tensor
    linf_255: Tensor
    l2: Tensor
    rms: Tensor
    psnr: Tensor
    ssim: Tensor
    png_logits_after: Tensor
    png_success: Tensor
    steps_run: int


@dataclass(frozen=True)
class StepScheduleResult:
    """Outcome of ``step_schedule``/``minimal_perturbation`` (docs/method.md §1.4, §2, §3).

    Attributes:
        delta: (N, C, H, W) perturbation, NOT clamped (x + δ may leave [0,1]).
        rms: (N,) RMS of the returned δ.
        logits_before: (N, K) at δ = 0. logits_after: (N, K) at images + delta (unclamped).
        met: (N,) bool. Mode "min": the boundary was met at some evaluation.
            Mode "budget": RMS(δ) >= budget was reached by step S//2 (the reference's check).
        reached_step: (N,) int64, number of steps taken when the condition first held
            (0 = at δ = 0, k = after step k); -1 if never.
        rms_history: (S + 1, N) RMS(δ) at δ = 0 and after each step.
    """

    delta: Tensor
    rms: Tensor
    logits_before: Tensor
    logits_after: Tensor
    met: Tensor
    reached_step: Tensor
    rms_history: Tensor


# --------------------------------------------------------------------------- the loop


class _Rule(Protocol):
    """What a particular attack does with each evaluation and gradient."""

    def observe(self, taken: int, delta: Tensor, logits: Tensor, loss: Tensor) -> None:
        """See the logits (N, K) and the per-example loss (N,) at images + delta after ``taken`` steps."""

    def done(self) -> bool:
        """True when no example needs another step (early stop)."""

    def step(self, index: int, delta: Tensor, ascent: Tensor) -> Tensor:
        """Return the next δ given the ascent direction of the attack loss at step ``index``."""


def _cross_entropy_loss(model: nn.Module, *, targeted: bool) -> LossHook:
    """The attacks' loss hook: CE(f(x+δ), y), or -CE when targeted (ascent makes y more likely)."""

    def loss(inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(inputs)
        _check_logits(logits, labels)  # a clear message instead of an IndexError inside CE
        ce = F.cross_entropy(logits, labels, reduction="none")
        return logits, -ce if targeted else ce

    return loss


def _ascent(loss: LossHook, images: Tensor, delta: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One forward + backward: logits, per-example loss and ∂(Σ loss)/∂δ at images + δ.

    Returns: (logits (N, K), loss (N,), gradient (N, C, H, W)), all detached.
    """
    with torch.enable_grad():
        delta = delta.detach().requires_grad_(True)
        logits, values = loss(images + delta, labels)
        (grad,) = torch.autograd.grad(values.sum(), delta)
    return logits.detach(), values.detach(), grad


def _run_loop(
    loss: LossHook,
    images: Tensor,
    labels: Tensor,
    delta: Tensor,
    *,
    steps: int,
    rule: _Rule,
    on_step: OnStep | None,
) -> tuple[Tensor, Tensor, Tensor, int]:
    """The attack loop shared by every attack in this module and by ``manipulation``.

    Each step evaluates images + δ once (forward + backward of ``loss``), lets ``rule``
    observe the logits and loss, then asks it for the next δ. After the last step the
    final δ is evaluated (no gradient) unless an early stop already did so.

    Returns: (final δ, logits at the starting δ, logits at the final δ, steps taken).
    """
    first_logits: Tensor | None = None
    for index in range(steps):
        logits, values, grad = _ascent(loss, images, delta, labels)
        first_logits = logits if first_logits is None else first_logits
        rule.observe(index, delta, logits, values)
        if rule.done():
            return delta, first_logits, logits, index
        delta = rule.step(index, delta, grad).detach()
        if on_step is not None:
            on_step(index + 1, steps)
    with torch.no_grad():
        logits, values = loss(images + delta, labels)
    rule.observe(steps, delta, logits.detach(), values.detach())
    return delta, (logits if first_logits is None else first_logits), logits.detach(), steps


@dataclass
class _Best:
    """Per example, the δ with the lowest score among the evaluations that qualified.

    Starts from the first δ seen with an infinite score, so an example that never
    qualifies keeps that starting δ.
    """

    delta: Tensor
    score: Tensor
    logits: Tensor

    @classmethod
    def start(cls, delta: Tensor, logits: Tensor) -> _Best:
        inf = torch.full((delta.shape[0],), math.inf, dtype=delta.dtype, device=delta.device)
        return cls(delta, inf, logits)

    def update(self, qualified: Tensor, score: Tensor, delta: Tensor, logits: Tensor) -> None:
        """Keep ``delta`` where it qualifies and beats the best score so far. Shapes: (N,) masks."""
        better = qualified & (score < self.score)
        self.delta = torch.where(_per_example(better), delta, self.delta)
        self.score = torch.where(better, score, self.score)
        self.logits = torch.where(better[:, None], logits, self.logits)


def _project(geometry: Geometry, delta: Tensor, eps: float, images: Tensor) -> Tensor:
    """δ projected onto the ``eps`` ball, then clipped so that images + δ stays in [0,1].

    Clipping only shrinks |δ| element-wise, so the norm bound still holds afterwards.
    """
    return torch.clamp(geometry.project(delta, eps), -images, 1.0 - images)


# --------------------------------------------------------------------------- helpers


def _as_labels(labels: Tensor | Sequence[int], n: int, device: torch.device) -> Tensor:
    """Labels as an (N,) int64 tensor on ``device`` (ValueError on a wrong shape)."""
    out = torch.as_tensor(labels, dtype=torch.long).to(device).reshape(-1)
    if out.numel() != n:
        raise ValueError(f"expected {n} labels, got {out.numel()}")
    return out


def _check_images(images: Tensor) -> None:
    """ValueError unless images is a float (N, C, H, W) tensor with N >= 1."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError("images must be a float tensor of shape (N, C, H, W) with N >= 1")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point, got {images.dtype}")


def _check_positive(name: str, value: float, *, allow_zero: bool) -> float:
    """A finite float that is > 0 (or >= 0 with ``allow_zero``), else ValueError."""
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


def _check_steps(steps: int) -> int:
    """Steps as an int >= 1, else ValueError."""
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    return int(steps)


def _check_logits(logits: Tensor, labels: Tensor) -> None:
    """ValueError unless logits are (N, K) and every label lies in [0, K)."""
    if logits.dim() != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"the model must return (N, K) logits, got shape {tuple(logits.shape)}")
    if bool((labels < 0).any()) or bool((labels >= logits.shape[1]).any()):
        raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got {labels.tolist()}")


def _succeeded(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """(N,) bool: targeted: argmax == target; untargeted: argmax != label."""
    hit = logits.argmax(dim=1) == labels
    return hit if targeted else ~hit


def _per_example(values: Tensor) -> Tensor:
    """(N,) -> (N, 1, 1, 1) for broadcasting against images."""
    return values.view(-1, 1, 1, 1)


def _prepare(
    model: nn.Module, images: Tensor, labels: Tensor | Sequence[int]
) -> tuple[Tensor, Tensor, torch.device]:
    """Validate and move the batch to the model's device. Returns (images, labels, device)."""
    _check_images(images)
    device = device_of(model, fallback=images.device)
    x = images.detach().to(device)
    return x, _as_labels(labels, x.shape[0], device), device


# --------------------------------------------------------------------------- PGD / FGSM


@dataclass
class _ProjectedStep:
    """PGD's update: δ ← Π_eps(δ + α·normalize(∇)), then keep x + δ inside [0,1].

    With early stop, an example that already succeeds keeps its δ.
    """

    geometry: Geometry
    eps: float
    step_size: float
    images: Tensor
    labels: Tensor
    targeted: bool
    early_stop: bool
    active: Tensor | None = None

    def observe(self, taken: int, delta: Tensor, logits: Tensor, loss: Tensor) -> None:
        if self.early_stop:
            self.active = ~_succeeded(logits, self.labels, self.targeted)

    def done(self) -> bool:
        return self.active is not None and not bool(self.active.any())

    def step(self, index: int, delta: Tensor, ascent: Tensor) -> Tensor:
        moved = torch.add(delta, self.geometry.normalize(ascent), alpha=self.step_size)
        moved = _project(self.geometry, moved, self.eps, self.images)
        if self.active is None:
            return moved
        return torch.where(_per_example(self.active), moved, delta)


def _projected_attack(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    *,
    eps: float,
    steps: int,
    step_size: float,
    norm: str,
    targeted: bool,
    random_start: bool,
    early_stop: bool,
    generator: torch.Generator | None,
    on_step: OnStep | None,
) -> AttackResult:
    """PGD and FGSM: the projected loop plus the result bookkeeping."""
    geometry = get_geometry(norm)
    x, y, device = _prepare(model, images, labels)
    delta = torch.zeros_like(x)
    if random_start:
        delta = geometry.random_init(x.shape, eps, generator, device=device, dtype=x.dtype)
        delta = (x + delta).clamp(0.0, 1.0) - x
    rule = _ProjectedStep(geometry, eps, step_size, x, y, targeted, early_stop)
    loss = _cross_entropy_loss(model, targeted=targeted)
    delta, first_logits, logits_after, taken = _run_loop(
        loss, x, y, delta, steps=steps, rule=rule, on_step=on_step
    )
    if random_start:
        with torch.no_grad():
            logits_before = model(x).detach()
    else:
        logits_before = first_logits  # the first step already evaluated the clean images
    result = _attack_result(
        model, x, y, delta, logits_before, logits_after, targeted=targeted, steps_run=taken
    )
    return _to_device(result, images.device)


def _attack_result(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    delta: Tensor,
    logits_before: Tensor,
    logits_after: Tensor,
    *,
    targeted: bool,
    steps_run: int,
) -> AttackResult:
    """Sizes, perceptibility and the 8-bit PNG check for a finished attack."""
    adversarial = (images + delta).clamp(0.0, 1.0)
    delta = adversarial - images
    with torch.no_grad():
        png_logits = model(png_roundtrip(adversarial)).detach()
    return AttackResult(
        adversarial=adversarial,
        delta=delta,
        success=_succeeded(logits_after, labels, targeted),
        logits_before=logits_before,
        logits_after=logits_after,
        linf_255=linf(delta) * 255.0,
        l2=l2(delta),
        rms=rms(delta),
        psnr=psnr(images, adversarial),
        ssim=ssim(images, adversarial),
        png_logits_after=png_logits,
        png_success=_succeeded(png_logits, labels, targeted),
        steps_run=steps_run,
    )


def pgd(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    *,
    eps: float,
    steps: int,
    step_size: float | None = None,
    norm: str = "linf",
    targeted: bool = False,
    random_start: bool = False,
    early_stop: bool = False,
    generator: torch.Generator | None = None,
    on_step: OnStep | None = None,
) -> AttackResult:
    """Projected gradient descent (Madry et al. 2018) in the L∞, L2 or RMS ball.

    Each step moves δ by ``step_size`` along the geometry's steepest-ascent direction
    of the cross-entropy (sign for L∞), projects onto the ``eps`` ball and keeps x + δ
    in [0,1]. Used for docs/method.md §4 step 2 (an imperceptible decision flip).

    Args:
        model: maps (N, C, H, W) images in [0,1] to (N, K) logits; not modified.
        images: clean images in [0,1].
        labels: untargeted: true labels to move away from; targeted: classes to reach.
        eps: radius in pixel units (L∞ 2/255 ≈ 0.0078; L2 and RMS as their norms), >= 0.
        steps: number of steps, >= 1.
        step_size: per-step move in the same units; default 2.5·eps/steps.
        norm: "linf" | "l2" | "rms".
        targeted: reach ``labels`` instead of leaving them.
        random_start: start from a random point of the ball (uses ``generator``).
        early_stop: freeze each example once it succeeds; stop when all have.
        generator: randomness for the random start.
        on_step: called as on_step(step, steps) after each step.
    Returns: an ``AttackResult`` on the device of ``images``.
    Shapes: images (N, C, H, W), labels (N,).
    """
    eps = _check_positive("eps", eps, allow_zero=True)
    steps = _check_steps(steps)
    alpha = (
        2.5 * eps / steps if step_size is None else _check_positive("step_size", step_size, allow_zero=True)
    )
    return _projected_attack(
        model, images, labels, eps=eps, steps=steps, step_size=alpha, norm=norm, targeted=targeted,
        random_start=random_start, early_stop=early_stop, generator=generator, on_step=on_step,
    )  # fmt: skip


def fgsm(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    *,
    eps: float,
    norm: str = "linf",
    targeted: bool = False,
    on_step: OnStep | None = None,
) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al. 2015): one full-size step.

    δ = eps·normalize(∇) (sign for L∞), kept inside [0,1]; the same loop as ``pgd``
    with steps=1 and step_size=eps. Args as ``pgd``.
    Returns: an ``AttackResult``. Shapes: images (N, C, H, W), labels (N,).
    """
    eps = _check_positive("eps", eps, allow_zero=True)
    return _projected_attack(
        model, images, labels, eps=eps, steps=1, step_size=eps, norm=norm, targeted=targeted,
        random_start=False, early_stop=False, generator=None, on_step=on_step,
    )  # fmt: skip


# --------------------------------------------------------------------------- step schedule

_RMS = get_geometry("rms")


def _boundary_met(logits: Tensor, labels: Tensor, boundary: str, targeted: bool) -> Tensor:
    """(N,) bool: has the example crossed the decision boundary (docs/method.md §3)?

    "misclassified": argmax != label (targeted: argmax == label);
    "btr": softmax_label <= 1/K ("better than random" lost).
    """
    if boundary == "btr":
        return logits.softmax(dim=1).gather(1, labels[:, None])[:, 0] <= 1.0 / logits.shape[1]
    return _succeeded(logits, labels, targeted)


@dataclass
class _ScheduleStep:
    """The paper's step schedule (docs/method.md §1.4): decaying step sizes along unit-RMS
    directions, the loss gradient while ``follow`` holds and -δ otherwise, with momentum.
    Also tracks the smallest-RMS δ that met the boundary (mode "min", §3)."""

    size: float
    steps: int
    mode: str
    budget: float
    boundary: str
    targeted: bool
    momentum: float
    labels: Tensor
    follow: Tensor | None = None
    velocity: Tensor | float = 0.0
    history: list[Tensor] = field(default_factory=list)
    reached: Tensor | None = None
    best: _Best | None = None  # the smallest-RMS δ that met the boundary

    def observe(self, taken: int, delta: Tensor, logits: Tensor, loss: Tensor) -> None:
        size = rms(delta)
        self.history.append(size)
        if self.mode == "budget":
            met = size >= self.budget
        else:
            met = _boundary_met(logits, self.labels, self.boundary, self.targeted)
        self.follow = ~met
        reached = torch.full_like(self.labels, -1) if self.reached is None else self.reached
        self.reached = torch.where(met & (reached < 0), torch.full_like(reached, taken), reached)
        if self.mode == "min":
            self.best = _Best.start(delta, logits) if self.best is None else self.best
            self.best.update(met, size, delta, logits)

    def done(self) -> bool:
        return False

    def step(self, index: int, delta: Tensor, ascent: Tensor) -> Tensor:
        assert self.follow is not None, "observe() runs before step()"
        direction = _RMS.normalize(torch.where(_per_example(self.follow), ascent, -delta))
        self.velocity = self.momentum * self.velocity + (1.0 - self.momentum) * direction
        step_size = self.size * (self.steps - index) / (self.steps * (self.steps + 1) / 2)
        return delta + step_size * self.velocity


def _check_schedule(
    size: float, mode: str, budget: float | None, boundary: str, targeted: bool, momentum: float
) -> float:
    """Validate step_schedule's settings; returns the budget (inf in mode "min")."""
    _check_positive("size", size, allow_zero=True)
    if mode not in ("budget", "min"):
        raise ValueError(f"mode must be 'budget' or 'min', got {mode!r}")
    if boundary not in ("misclassified", "btr"):
        raise ValueError(f"boundary must be 'misclassified' or 'btr', got {boundary!r}")
    if mode == "min" and targeted and boundary == "btr":
        raise ValueError("the 'btr' boundary is defined for untargeted searches only")
    if not (0.0 <= float(momentum) < 1.0):
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    if mode == "min":
        return math.inf
    if budget is None:
        raise ValueError("mode 'budget' needs a budget (an RMS size > 0)")
    return _check_positive("budget", budget, allow_zero=False)


def step_schedule(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    *,
    size: float,
    steps: int,
    mode: Literal["budget", "min"] = "budget",
    budget: float | None = None,
    boundary: Literal["misclassified", "btr"] = "misclassified",
    targeted: bool = False,
    momentum: float = 0.0,
    on_step: OnStep | None = None,
) -> StepScheduleResult:
    """The paper's step-schedule attack (docs/method.md §1.4; §2 adversarial explanations; §3 ARA).

    Start at δ = 0; step i (0-based) moves by size·(S - i)/(S(S+1)/2) along a
    unit-RMS direction: the loss gradient while the follow condition holds, else -δ.
    With momentum, m ← momentum·m + (1 - momentum)·d and the step follows m (not
    renormalised). No random start, no projection, no clamping; deterministic.

    Args:
        model: maps images in [0,1] to (N, K) logits; not modified.
        images: clean images in [0,1].
        labels: the class whose cross-entropy is followed.
        size: total path length (sum of the step sizes), RMS units; AE uses 5·ρ.
        steps: S >= 1.
        mode: "budget": follow while RMS(δ) < budget, return the final δ (AE, L2 training);
            "min": follow while the boundary is not met, return the smallest-RMS δ
            that met it over the S + 1 evaluations (ARA, L2,min training).
        budget: ρ in RMS units (mode "budget").
        boundary: mode "min": "misclassified" (argmax != label; targeted: argmax == label)
            or "btr" (softmax_label <= 1/K).
        targeted: follow the gradient that decreases CE(f(x+δ), labels) (AE) instead
            of increasing it.
        momentum: in [0, 1); the paper's ARA uses 0.9.
        on_step: called as on_step(step, steps) after each step.
    Returns: a ``StepScheduleResult`` on the device of ``images``.
    Shapes: images (N, C, H, W), labels (N,).
    """
    budget_value = _check_schedule(size, mode, budget, boundary, targeted, momentum)
    steps = _check_steps(steps)
    x, y, _ = _prepare(model, images, labels)
    rule = _ScheduleStep(float(size), steps, mode, budget_value, boundary, targeted, float(momentum), y)
    loss = _cross_entropy_loss(model, targeted=targeted)
    delta, logits_before, logits_final, _ = _run_loop(
        loss, x, y, torch.zeros_like(x), steps=steps, rule=rule, on_step=on_step
    )
    assert rule.reached is not None
    if mode == "budget":
        met = (rule.reached >= 0) & (rule.reached <= steps // 2)
        logits_after = logits_final
    else:
        assert rule.best is not None
        met = rule.reached >= 0
        delta = torch.where(_per_example(met), rule.best.delta, delta)
        logits_after = torch.where(met[:, None], rule.best.logits, logits_final)
    result = StepScheduleResult(
        delta=delta,
        rms=rms(delta),
        logits_before=logits_before,
        logits_after=logits_after,
        met=met,
        reached_step=rule.reached,
        rms_history=torch.stack(rule.history),
    )
    return _to_device(result, images.device)


@dataclass(frozen=True)
class SearchSettings:
    """The minimal-perturbation search of the ARA (docs/method.md §3): the paper's S = 450 steps of
    total size 20 with momentum 0.9, each default written here once."""

    steps: int = 450
    size: float = 20.0
    momentum: float = 0.9

    def check(self) -> None:
        """ValueError naming the first setting out of range."""
        checks = (
            (self.steps >= 1, "steps must be at least 1."),
            (self.size > 0, "size must be > 0."),
            (0 <= self.momentum < 1, "momentum must lie in [0, 1)."),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def minimal_perturbation(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    *,
    boundary: Literal["misclassified", "btr"] = "misclassified",
    steps: int = SearchSettings.steps,
    size: float = SearchSettings.size,
    momentum: float = SearchSettings.momentum,
    targeted: bool = False,
    on_step: OnStep | None = None,
) -> StepScheduleResult:
    """The smallest-RMS perturbation that meets ``boundary`` (docs/method.md §3, the ARA search).

    ``step_schedule(mode="min")`` with the paper's settings by default (`SearchSettings`).
    ``met`` False marks an example the search never pushed across
    (too few steps), not a robust one. Args as ``step_schedule``.
    Returns: a ``StepScheduleResult``; ``rms`` is ρ* (0 for images already past the boundary).
    Shapes: images (N, C, H, W), labels (N,).
    """
    return step_schedule(
        model, images, labels, size=size, steps=steps, mode="min", boundary=boundary,
        targeted=targeted, momentum=momentum, on_step=on_step,
    )  # fmt: skip


def _to_device(result: _Result, device: torch.device) -> _Result:
    """The same result with every tensor on ``device``."""
    values = {f.name: getattr(result, f.name) for f in fields(result)}
    moved: dict[str, Any] = {k: v.to(device) for k, v in values.items() if isinstance(v, Tensor)}
    return replace(result, **moved)
