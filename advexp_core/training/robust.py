"""The paper's robust additions (docs/method.md §1): penalty, adaptive ψ, recipes, adversarial batches.

* ``lipschitz_penalty``: ψ · mean(|∂s/∂x|^z) of one smoothed logit (or, with probability ζ, the
  true-class margin) per example, by double backprop (§1.1).
* ``PsiState`` / ``update_psi``: the integrator that holds training cross-entropy near L_target
  (§1.2); L_target defaults to 1.5 · ln C / ln 10 (``default_l_target``).
* ``RECIPES``: standard, adv-train, robust, all.
* ``adversarial_images``: the "L2" and "L2,min" training attacks (§1.4), with "half-and-half":
  the whole batch goes through the network at every attack step and a per-example mask decides
  who moves, exactly as the reference does, so BatchNorm (in train mode) sees the same batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.methods.attacks import step_schedule

# docs/method.md §1.1–1.2 (the reference's constants).
ZETA = 0.2
Z = 2.0
L_TARGET = 1.5  # chosen for 10 classes; see default_l_target
K_PSI0 = 220.0
K_PSI = 0.02
EPS_BETTER = 1.0
EPS_WORSE = 0.01
# docs/method.md §1.4: (size, steps) of the two training attacks; "L2" follows while RMS < 0.01.
L2_SIZE, L2_BUDGET, L2MIN_SIZE, ADV_STEPS = 0.01, 0.01, 0.1, 7

AdversarialMode = Literal["l2", "l2min"]


class TrainingError(ValueError):
    """Training cannot start or go on: unknown recipe, a checkpoint that does not match, NaN loss."""


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    """What a recipe switches on (docs/method.md §1). ``robust_additions`` implies HHReLU."""

    name: str
    robust_additions: bool
    adversarial: AdversarialMode | None

    @property
    def activation(self) -> str:
        return "hhrelu" if self.robust_additions else "relu"


RECIPES = {
    "standard": Recipe("standard", False, None),
    "adv-train": Recipe("adv-train", False, "l2"),
    "robust": Recipe("robust", True, None),
    "all": Recipe("all", True, "l2min"),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name`` (TrainingError naming the known ones otherwise)."""
    if name not in RECIPES:
        raise TrainingError(f"unknown recipe {name!r}; use one of {', '.join(RECIPES)}")
    return RECIPES[name]


# --------------------------------------------------------------------------- ψ controller


def default_l_target(num_classes: int) -> float:
    """L_target for C classes: 1.5 · ln C / ln 10 (1.5 for 10 classes, ≈ 0.45 for 2).

    The paper's 1.5 sits below chance-level cross-entropy ln 10 ≈ 2.30. For fewer classes a fixed
    1.5 lies above chance level ln C, so the target is never reached from above and ψ grows
    without bound; scaling with ln C keeps the same fraction of chance level (our extension).
    """
    if num_classes < 2:
        raise TrainingError(f"the psi controller needs at least 2 classes, got {num_classes}")
    return L_TARGET * (math.log(num_classes) / math.log(10))  # ratio first: exactly 1.5 for C = 10


@dataclass(frozen=True)
class PsiState:
    """The adaptive-ψ integrator (docs/method.md §1.2): I and its target, saved in every checkpoint."""

    integral: float = 0.0
    l_target: float = L_TARGET

    @property
    def psi(self) -> float:
        return K_PSI0 * math.exp(K_PSI * self.integral)


def update_psi(state: PsiState, ce: float) -> PsiState:
    """One controller step: I ← max(0, I + clip(−ln(CE / L_target), −ε_worse, +ε_better)).

    Args:
        state: the integrator before this batch (with its L_target).
        ce: the detached mean cross-entropy of the batch (nats).

    Returns:
        The new state; its ``psi`` = k_ψ0·exp(k_ψ·I) weights this batch's penalty.
    """
    error = -math.log(max(ce, 1e-30) / state.l_target)
    step = min(EPS_BETTER, max(-EPS_WORSE, error))
    return PsiState(max(0.0, state.integral + step), state.l_target)


# --------------------------------------------------------------------------- penalty


@dataclass(frozen=True)
class PenaltyChoice:
    """Per example: the logit to smooth (``classes``) and whether to smooth the margin instead.

    Shapes: classes (B,) int64; tandem (B,) bool.
    """

    classes: Tensor
    tandem: Tensor

    def __getitem__(self, index: Any) -> PenaltyChoice:
        return PenaltyChoice(self.classes[index], self.tandem[index])


def draw_penalty_choice(
    batch: int, num_classes: int, *, zeta: float = ZETA, generator: torch.Generator
) -> PenaltyChoice:
    """Draw docs/method.md §1.1 step 2: k uniform over all C classes; tandem with probability ζ.

    Shapes: -> classes (batch,), tandem (batch,).
    """
    classes = torch.randint(num_classes, (batch,), generator=generator)
    tandem = torch.rand(batch, generator=generator) < zeta
    return PenaltyChoice(classes, tandem)


def smoothed_outputs(logits: Tensor, labels: Tensor, choice: PenaltyChoice) -> Tensor:
    """s_b: the chosen logit f_k(x_b), or the margin f_y(x_b) − max_{j≠y} f_j(x_b) when tandem.

    Shapes: logits (B, C), labels (B,) -> (B,).
    """
    chosen = logits.gather(1, choice.classes.to(logits.device)[:, None])[:, 0]
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), -math.inf)
    margin = true - others.max(dim=1).values
    return torch.where(choice.tandem.to(logits.device), margin, chosen)


def lipschitz_penalty(
    logits: Tensor, images: Tensor, labels: Tensor, choice: PenaltyChoice, *, psi: float, z: float = Z
) -> Tensor:
    """ψ · mean(|∂(Σ_b s_b)/∂x|^z) with ``create_graph=True`` (double backprop), docs/method.md §1.1.

    Args:
        logits: f(images), computed from ``images`` which requires grad.
        images: the batch the logits came from, pixel units.
        labels: true classes.
        choice: what each example smooths (``draw_penalty_choice``).
        psi: the penalty weight (``PsiState.psi``).
        z: the exponent (2 in the paper).

    Returns:
        A scalar whose gradient reaches the parameters.

    Shapes: logits (B, C), images (B, 3, H, W), labels (B,) -> ().
    """
    s = smoothed_outputs(logits, labels, choice)
    (grad,) = torch.autograd.grad(s.sum(), images, create_graph=True)
    return psi * grad.abs().pow(z).mean()


# --------------------------------------------------------------------------- adversarial training


class _MaskedBatch(nn.Module):
    """The network as the training attack sees it: the whole batch, moved only where ``perturb``.

    Rows outside the mask are evaluated at δ = 0 (their gradient is 0, so the step schedule leaves
    their δ at 0), just as the reference multiplies each step by its "affected" mask. Forwards
    after the first ``forwards`` run on copies of the buffers: the attack loop's closing
    evaluation of the "L2" mode is one the reference never makes, and it must not move
    BatchNorm's running statistics.
    """

    def __init__(self, model: nn.Module, images: Tensor, perturb: Tensor, forwards: int) -> None:
        super().__init__()
        self.model = model
        self.images = images
        self.perturb = perturb.to(images.device).view(-1, 1, 1, 1)
        self.left = forwards

    def forward(self, moved: Tensor) -> Tensor:
        x = torch.where(self.perturb, moved, self.images)
        if self.left > 0:
            self.left -= 1
            return self.model(x)
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        return torch.func.functional_call(self.model, buffers, (x,))


def adversarial_images(
    model: nn.Module, images: Tensor, labels: Tensor, *, mode: AdversarialMode, perturb: Tensor | None = None
) -> Tensor:
    """x + δ from the step-schedule attack (docs/method.md §1.4) for the examples ``perturb`` selects.

    "l2": size 0.01, 7 steps, follow while RMS(δ) < 0.01, final δ. "l2min": size 0.1, 7 steps,
    follow while still correct, the smallest-RMS δ that crossed (0 when none did). Unclamped, no
    random start. The model is used as it is: in training it is in train mode, and every attack
    step forwards the whole batch (7 forwards for "l2", 8 for "l2min", as in the reference), so
    BatchNorm normalises with, and its running statistics follow, full-batch statistics.

    Args:
        model: the network being trained.
        images, labels: the batch (pixel units in [0, 1]).
        mode: "l2" or "l2min".
        perturb: (B,) bool, the half of "half-and-half"; all examples when None.

    Returns:
        The batch with perturbed examples replaced by x + δ (the others unchanged).

    Shapes: (B, 3, H, W) -> (B, 3, H, W).
    """
    mask = torch.ones(len(images), dtype=torch.bool) if perturb is None else perturb.bool()
    x = images.detach()
    if mode == "l2":
        view = _MaskedBatch(model, x, mask, forwards=ADV_STEPS)
        found = step_schedule(view, x, labels, size=L2_SIZE, steps=ADV_STEPS, mode="budget", budget=L2_BUDGET)
        delta = found.delta
    else:
        view = _MaskedBatch(model, x, mask, forwards=ADV_STEPS + 1)
        found = step_schedule(view, x, labels, size=L2MIN_SIZE, steps=ADV_STEPS, mode="min")
        delta = found.delta * found.met.view(-1, 1, 1, 1)
    return x + delta * view.perturb


__all__ = [
    "ADV_STEPS",
    "EPS_BETTER",
    "EPS_WORSE",
    "K_PSI",
    "K_PSI0",
    "L2MIN_SIZE",
    "L2_BUDGET",
    "L2_SIZE",
    "L_TARGET",
    "RECIPES",
    "Z",
    "ZETA",
    "AdversarialMode",
    "PenaltyChoice",
    "PsiState",
    "Recipe",
    "TrainingError",
    "adversarial_images",
    "default_l_target",
    "draw_penalty_choice",
    "get_recipe",
    "lipschitz_penalty",
    "smoothed_outputs",
    "update_psi",
]
