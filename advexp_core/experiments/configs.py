"""The settings of every image experiment, as frozen dataclasses: each default is written here once.

Pages build these from widgets, the CLI from its arguments, benchmarks and tests directly; the
experiment functions of this package take them as they are. A config that cannot run (a negative
budget, an unknown method) raises ValueError when it is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from advexp_core.experiments.report import TOP_K
from advexp_core.methods.explanations import ExplanationSettings
from advexp_core.methods.geometry import NORMS
from advexp_core.methods.gradient_maps import IntegratedGradientsSettings, SmoothGradSettings
from advexp_core.methods.manipulation import MANIPULATION_STEPS
from advexp_core.methods.saliency import GRADIENT_METHODS, METHODS, explainer

ATTACK_METHODS = ("pgd", "fgsm")
MAP_METHODS = ("gradient", "gradcam")  # the maps `manipulate_explanation` can move
REGIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")


def norm_scale(norm: str, input_size: tuple[int, int]) -> float:
    """[0,1] units per 1/255 of budget: 1 for L∞ and RMS; for L2 the L2 size of an L∞ pattern.

    An L∞ sign pattern of size e over 3·h·w values has L2 size e·sqrt(3·h·w), so one "ε in 1/255"
    reads alike for the three norms (docs/method.md §4 step 2).
    """
    return math.sqrt(3 * input_size[0] * input_size[1]) if norm == "l2" else 1.0


def check_methods(
    methods: tuple[str, ...], choices: tuple[str, ...], *, what: str, empty: bool = False
) -> None:
    """ValueError naming the unknown ones when ``methods`` are not all among ``choices`` (or, unless
    ``empty``, when there is none)."""
    unknown = [m for m in methods if m not in choices]
    if unknown or not (methods or empty):
        raise ValueError(
            f"unknown or no {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(choices)}."
        )


def _check_number(name: str, value: float, *, minimum: float = 0.0) -> None:
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum:g}, got {value}.")


@dataclass(frozen=True)
class AttackConfig:
    """The decision-flipping attack (docs/method.md §4 step 2).

    Attributes:
        method: "pgd" (iterative) or "fgsm" (one step).
        norm: "linf", "l2" or "rms".
        eps_255: the budget in 1/255 steps: L∞ and RMS directly; for L2 see `norm_scale`.
        steps: PGD steps (FGSM always takes one).
        step_size: PGD step in [0,1] units of the norm; None: 2.5·eps/steps.
        target: the class to reach; None: untargeted, away from the model's top-1 class.
        random_start: PGD starts at a random point of the ball (drawn with `seed`).
        seed: seed of the random start.
    """

    method: str = "pgd"
    norm: str = "linf"
    eps_255: float = 2.0
    steps: int = 20
    step_size: float | None = None
    target: int | None = None
    random_start: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ATTACK_METHODS:
            raise ValueError(f"method must be one of {', '.join(ATTACK_METHODS)}, got {self.method!r}.")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}.")
        _check_number("eps", self.eps_255)
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}.")
        if self.step_size is not None:
            _check_number("step-size", self.step_size)

    def eps(self, input_size: tuple[int, int]) -> float:
        """The budget in [0, 1] pixel units of the chosen norm."""
        return self.eps_255 / 255 * norm_scale(self.norm, input_size)

    @property
    def effective_steps(self) -> int:
        """Steps actually run: one for FGSM."""
        return 1 if self.method == "fgsm" else self.steps

    def effective_step_size(self, input_size: tuple[int, int]) -> float:
        """The step in [0, 1] units: eps for FGSM, else `step_size` or 2.5·eps/steps (Madry et al.)."""
        eps = self.eps(input_size)
        if self.method == "fgsm":
            return eps
        return 2.5 * eps / self.steps if self.step_size is None else self.step_size


@dataclass(frozen=True)
class SaliencyConfig:
    """The saliency maps compared before and after an attack, or side by side.

    Attributes:
        methods: saliency methods from `advexp_core.methods.saliency.METHODS` (may be empty: attack only);
            "lime" and "occlusion" run with their own defaults (`advexp_core.methods.perturbation`).
        ig_steps: Integrated Gradients steps.
        ig_baseline: IG baseline, "black" or "blur".
        smoothgrad_samples: SmoothGrad noisy copies.
        smoothgrad_sigma: SmoothGrad noise, [0,1] pixel units.
        topk: the "important region" as a share of pixels, for the map metrics.
        per_map_scale: one colour scale per map instead of one shared scale.
        seed: seed of the SmoothGrad noise.
    """

    methods: tuple[str, ...] = ("gradcam", "ig")
    ig_steps: int = IntegratedGradientsSettings.n_steps
    ig_baseline: str = IntegratedGradientsSettings.baseline
    smoothgrad_samples: int = SmoothGradSettings.n_samples
    smoothgrad_sigma: float = SmoothGradSettings.sigma
    topk: float = 0.2
    per_map_scale: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_methods(self.methods, METHODS, what="saliency method", empty=True)
        if not 0 < self.topk <= 1:
            raise ValueError(f"topk must be a share of pixels in (0, 1], got {self.topk}.")
        _check_number("smoothgrad_sigma", self.smoothgrad_sigma)
        self.settings("ig"), self.settings("smoothgrad")  # each explainer checks its own settings

    def settings(self, method: str) -> object:
        """The settings `advexp_core.methods.saliency.make_map` takes for ``method``: this config's values
        where it has them, the explainer's defaults otherwise."""
        own = {
            "ig": lambda: IntegratedGradientsSettings(n_steps=self.ig_steps, baseline=self.ig_baseline),
            "smoothgrad": lambda: SmoothGradSettings(
                n_samples=self.smoothgrad_samples, sigma=self.smoothgrad_sigma, seed=self.seed
            ),
        }.get(method)
        return own() if own is not None else explainer(method).settings()


@dataclass(frozen=True)
class ExplainersConfig:
    """Several saliency methods on one image: which class, the methods and their settings.

    Attributes:
        saliency: the methods (the four gradient methods by default; LIME and occlusion are
            opt-in, each costs its forward passes) and their settings.
        target: the class to explain; None: the predicted class.
        faithfulness_steps: shares of pixels on the deletion/insertion curves.
    """

    saliency: SaliencyConfig = field(default_factory=lambda: SaliencyConfig(methods=GRADIENT_METHODS))
    target: int | None = None
    faithfulness_steps: int = 20

    def __post_init__(self) -> None:
        if self.faithfulness_steps < 1:
            raise ValueError("faithfulness_steps must be at least 1.")


@dataclass(frozen=True)
class ExplanationConfig:
    """Adversarial explanations (docs/method.md §2).

    Attributes:
        targets: class indices or names, or "predicted", "runner-up", "all", "top-K".
        rho: RMS budget ρ in [0,1] pixel units.
        steps: steps S >= 2.
        overshoot: total step length as a multiple of ρ.
        top_k: predictions reported.
        max_targets: refuse more resolved targets than this (None: no limit; the app sets one
            so a batch of explanations fits in memory).
    """

    targets: tuple[int | str, ...] = ("predicted", "runner-up")
    rho: float = ExplanationSettings.rho
    steps: int = ExplanationSettings.steps
    overshoot: float = ExplanationSettings.overshoot
    top_k: int = TOP_K
    max_targets: int | None = None

    def __post_init__(self) -> None:
        self.settings  # noqa: B018 - checks ρ, S and the overshoot

    @property
    def settings(self) -> ExplanationSettings:
        """ρ, S and the overshoot, as the algorithm and the explainer registry take them."""
        return ExplanationSettings(rho=self.rho, steps=self.steps, overshoot=self.overshoot)


@dataclass(frozen=True)
class ManipulationConfig:
    """Keep the label, move the map (docs/method.md §4 step 5).

    Attributes:
        method: the map to move, "gradient" or "gradcam".
        goal: one of `REGIONS`, or "image:<name>" (another image's map, given to `move_the_map`).
        eps_255: L∞ budget in 1/255 steps.
        steps: optimisation steps.
        beta: softplus sharpness of the smooth stand-in for ReLU while optimising.
        gamma: weight of keeping the logits.
    """

    method: Literal["gradient", "gradcam"] = "gradient"
    goal: str = "top-left"
    eps_255: float = 8.0
    steps: int = MANIPULATION_STEPS
    beta: float = 10.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in MAP_METHODS:
            raise ValueError(f"the map to move must be one of {', '.join(MAP_METHODS)}, got {self.method!r}.")
        if self.goal not in REGIONS and not self.goal.startswith("image:"):
            raise ValueError(f"Unknown goal {self.goal!r}; choose one of {', '.join(REGIONS)} or an image.")
        _check_number("eps", self.eps_255)
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}.")

    @property
    def eps(self) -> float:
        """The L∞ budget in [0, 1] pixel units."""
        return self.eps_255 / 255


# The data-randomisation pairs of the sanity checks: a network -> the same recipe on permuted labels.
RANDOM_LABEL_PARTNERS = {"digits-standard": "digits-random-labels"}


@dataclass(frozen=True)
class SanityConfig:
    """The randomisation sanity checks (docs/method.md §5; Adebayo et al. 2018).

    Attributes:
        methods: saliency methods from `advexp_core.methods.saliency.METHODS`, run with their defaults
            (IG: `SaliencyConfig.ig_steps` steps; LIME: `perturbation.LIME_SAMPLES` samples).
        seed: seed of the re-initialisation (and of SmoothGrad's noise).
        max_layers: measure the maps after at most this many randomisation steps, spread evenly
            down the network (randomisation stays cumulative); None: after every layer (21 on
            EfficientNet-Lite0). Cost: (1 + measured points) maps per method.
        target: the class to explain; None: the trained network's prediction.
        data: also run the data-randomisation check when the model has a partner trained on
            permuted labels (`RANDOM_LABEL_PARTNERS`).
        data_images: digits test images compared map by map in the data check.
    """

    methods: tuple[str, ...] = ("gradcam", "gradient")
    seed: int = 0
    max_layers: int | None = 8
    target: int | None = None
    data: bool = True
    data_images: int = 8

    def __post_init__(self) -> None:
        check_methods(self.methods, METHODS, what="saliency method")
        if self.max_layers is not None and self.max_layers < 1:
            raise ValueError(f"max_layers must be at least 1 (or None: every layer), got {self.max_layers}.")
        if self.data_images < 1:
            raise ValueError(f"data_images must be at least 1, got {self.data_images}.")

    @property
    def saliency(self) -> SaliencyConfig:
        """The methods' settings as the other experiments read them (defaults, this seed)."""
        return SaliencyConfig(methods=self.methods, seed=self.seed)
