"""Adversarial explanations (docs/method.md §2): the step schedule by hand, targets, the paper's networks.

The paper-network tests use the authors' four published CIFAR-10 ResNet-44s and five test images
(skipped only when the woods2019 copies are absent, see tests/conftest.py). Every explanation there is computed once per
session (one target per image, the paper's S = 35) and shared by the tests that read it.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advexp_core.data.imaging import amplify_delta
from advexp_core.experiments import ExplanationConfig, contrast_explanations
from advexp_core.methods.explanations import (
    ExplanationResult,
    adversarial_explanation,
    low_frequency_share,
    noise_low_frequency_share,
    resolve_targets,
)
from advexp_core.plots.explanations import contrast_figure, explanation_figure
from advexp_core.plots.figures import figure_png
from tests.models import linear_model

NETWORKS = ("standard", "adv-train", "all", "robust")
ROBUST = ("all", "robust")
RHO = 0.1
STEPS = 35


# --------------------------------------------------------------------------- a model solved by hand


def _linear_model(diff: torch.Tensor) -> nn.Module:
    """Two logits: z0 = 0, z1 = diff·x + 0.3. The targeted CE gradient for class 1 points along diff."""
    weight = torch.stack([torch.zeros_like(diff).flatten(), diff.flatten()])
    return linear_model(weight, torch.tensor([0.0, 0.3]))


def _schedule_by_hand(rho: float, overshoot: float, steps: int) -> list[float]:
    """δ stays on the line of u = diff / RMS(diff), δ_k = r_k·u; docs/method.md §2 in scalars.

    Step i has length ss_i = overshoot·ρ·(S − i)/(S(S+1)/2): +ss_i (toward class 1) while
    |r| < ρ, otherwise −ss_i·sign(r) (along −δ). Returns r_0..r_S.
    """
    r = [0.0]
    for i in range(steps):
        ss = overshoot * rho * (steps - i) / (steps * (steps + 1) / 2)
        r.append(r[-1] + ss if abs(r[-1]) < rho else r[-1] - ss * math.copysign(1.0, r[-1]))
    return r


DIFF = torch.tensor([2.0, -1.0, 0.5, 1.5, -2.0, 1.0, 0.25, -0.5, 1.0, 2.5, -1.5, 0.75]).view(3, 2, 2)
IMAGE = torch.tensor([0.95, 0.1, 0.5, 0.9, 0.05, 0.6, 0.4, 0.5, 0.7, 0.98, 0.02, 0.3]).view(3, 2, 2)


@pytest.mark.parametrize(
    ("overshoot", "steps", "reached_step", "valid"),
    [(5.0, 4, 1, True), (1.2, 4, 3, False), (4.0, 9, 2, True), (0.9, 9, -1, False)],
)
def test_step_schedule_matches_the_hand_computation(
    overshoot: float, steps: int, reached_step: int, valid: bool
) -> None:
    model = _linear_model(DIFF)
    result = adversarial_explanation(
        model, IMAGE, 1, rho=RHO, steps=steps, overshoot=overshoot, class_names=("a", "b")
    )
    r = _schedule_by_hand(RHO, overshoot, steps)
    by_hand = next((k for k, v in enumerate(r) if abs(v) >= RHO), -1)
    assert (by_hand, 0 <= by_hand <= steps // 2) == (reached_step, valid)  # the case is what it says
    u = DIFF / DIFF.pow(2).mean().sqrt()
    t = result.targets[0]
    torch.testing.assert_close(t.delta, r[-1] * u, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        result.rms_history[:, 0], torch.tensor([abs(v) for v in r]), atol=1e-6, rtol=1e-5
    )
    assert t.rms == pytest.approx(abs(r[-1]), abs=1e-6)
    assert (t.reached_step, t.budget_reached_by_half, t.valid) == (reached_step, valid, valid)
    assert (t.message is None) == valid
    if not valid:
        assert "failed explanation" in t.message and f"by step {steps // 2}" in t.message
    # No clamping while optimising: x + δ leaves [0, 1]; only the shown image is clamped.
    assert ((IMAGE + t.delta) > 1).any() or ((IMAGE + t.delta) < 0).any()
    torch.testing.assert_close(t.explanation, (IMAGE + t.delta).clamp(0, 1))
    z_before = float((DIFF * IMAGE).sum()) + 0.3
    z_after = z_before + r[-1] * float((DIFF * u).sum())
    assert t.probability_before == pytest.approx(1 / (1 + math.exp(-z_before)), rel=1e-5)
    assert t.probability_after == pytest.approx(1 / (1 + math.exp(-z_after)), rel=1e-5)
    z_shown = float((DIFF * t.explanation).sum()) + 0.3
    assert t.probability_after_display == pytest.approx(1 / (1 + math.exp(-z_shown)), rel=1e-5)


def test_a_flat_model_gives_no_explanation_and_says_so() -> None:
    model = _linear_model(torch.zeros(3, 2, 2))
    t = adversarial_explanation(model, IMAGE, "b", steps=6, class_names=("a", "b")).targets[0]
    assert float(t.delta.abs().max()) == 0.0 and t.reached_step == -1
    assert not t.valid and "never reached" in t.message


def test_the_model_is_left_untouched_and_progress_is_reported() -> None:
    model = _linear_model(DIFF)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls: list[tuple[int, int]] = []
    first = adversarial_explanation(
        model, IMAGE, "all", steps=5, class_names=("a", "b"), on_step=lambda s, n: calls.append((s, n))
    )
    again = adversarial_explanation(model, IMAGE, "all", steps=5, class_names=("a", "b"))
    assert calls == [(k, 5) for k in range(1, 6)]
    assert not model.training and not any(p.requires_grad or p.grad is not None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(first.deltas, again.deltas)  # deterministic


def test_batched_targets_equal_one_target_at_a_time_on_the_hand_model() -> None:
    model = _linear_model(DIFF)
    names = ("a", "b")
    both = adversarial_explanation(model, IMAGE, "all", steps=7, class_names=names)
    for t in both.targets:
        alone = adversarial_explanation(model, IMAGE, t.index, steps=7, class_names=names).targets[0]
        torch.testing.assert_close(alone.delta, t.delta, atol=1e-7, rtol=0)


# --------------------------------------------------------------------------- targets and bad input

NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
LOGITS = torch.tensor([0.1, 2.0, -1.0, 3.0, 0.0, 2.5, -2.0, 1.0, 0.5, -0.5])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("predicted", (3,)),
        ("runner-up", (5,)),
        ("top-3", (3, 5, 1)),
        ("TOP3", (3, 5, 1)),
        ("all", tuple(range(10))),
        (7, (7,)),
        ("7", (7,)),
        ("Ship", (8,)),
        (["predicted", "cat", "runner-up", 5, "top-2"], (3, 5)),
        (["dog", "all"], (5, 0, 1, 2, 3, 4, 6, 7, 8, 9)),
    ],
)
def test_targets_resolve(spec: object, expected: tuple[int, ...]) -> None:
    assert resolve_targets(spec, LOGITS, NAMES) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["zebra", 10, -1, "top-0", "top-11", [], True, "12", 2.0])
def test_unknown_targets_are_refused(spec: object) -> None:
    with pytest.raises(ValueError):
        resolve_targets(spec, LOGITS, NAMES)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        {"rho": 0.0},
        {"rho": -0.1},
        {"rho": math.nan},
        {"rho": math.inf},
        {"steps": 1},
        {"steps": 2.5},
        {"overshoot": 0.0},
    ],
)
def test_bad_settings_are_refused(settings: dict) -> None:
    with pytest.raises(ValueError):
        adversarial_explanation(_linear_model(DIFF), IMAGE, 1, class_names=("a", "b"), **settings)


@pytest.mark.parametrize(
    "image",
    [IMAGE[None], IMAGE[:2], IMAGE * 2, IMAGE - 0.5, IMAGE.double().mul(math.nan), (IMAGE * 255).byte()],
)
def test_images_the_model_cannot_take_are_refused(image: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        adversarial_explanation(_linear_model(DIFF), image, 1, class_names=("a", "b"))


def test_class_names_are_required_and_must_fit_the_logits() -> None:
    with pytest.raises(TypeError, match="class_names"):
        adversarial_explanation(_linear_model(DIFF), IMAGE, 1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="class names"):
        adversarial_explanation(_linear_model(DIFF), IMAGE, 1, class_names=("a", "b", "c"))


def test_an_image_of_the_wrong_size_is_refused_with_advice() -> None:
    with pytest.raises(ValueError, match="resize it first"):
        adversarial_explanation(_linear_model(DIFF), IMAGE, 1, class_names=("a", "b"), input_size=(4, 4))


# --------------------------------------------------------------------------- the structure measure


def test_low_frequency_share_separates_smooth_patterns_from_noise() -> None:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = torch.sin(2 * math.pi * (2 * xx + yy) / 32).expand(3, 32, 32)
    checker = ((xx + yy) % 2 * 2 - 1).expand(3, 32, 32)
    noise = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    shares = low_frequency_share(torch.stack([smooth, 0.01 * smooth, checker, smooth + 5.0]))
    torch.testing.assert_close(shares, torch.tensor([1.0, 1.0, 0.0, 1.0]), atol=1e-6, rtol=0)
    baseline = noise_low_frequency_share(32, 32)
    assert 0.15 < baseline < 0.25
    assert float(low_frequency_share(noise).mean()) == pytest.approx(baseline, abs=0.01)
    assert math.isnan(float(low_frequency_share(torch.full((1, 3, 8, 8), 0.2))[0]))


# --------------------------------------------------------------------------- the paper's networks


@pytest.fixture(scope="module")
def paper_results(woods_dir, cifar_images) -> dict[tuple[str, str], ExplanationResult]:
    """(network, image name) -> the AE of the image's true class, ρ = 0.1, S = 35, overshoot 5."""
    from advexp_core.networks.registry import load_model

    out = {}
    for network in NETWORKS:
        model = load_model(f"woods2019-cifar10-{network}", device="cpu")
        for name, (image, label) in cifar_images.items():
            out[network, name] = adversarial_explanation(
                model.module, image, label, class_names=model.class_names, rho=RHO, steps=STEPS
            )
    return out


@pytest.mark.parametrize("network", ROBUST)
def test_robust_networks_spend_the_budget_and_make_the_true_class_more_likely(
    paper_results: dict, cifar_images: dict, network: str
) -> None:
    for name, (_, label) in cifar_images.items():
        t = paper_results[network, name].targets[0]
        assert t.index == label
        assert t.probability_after > t.probability_before + 0.05, (name, t)
        assert abs(t.rms - RHO) <= 0.02 * RHO, (name, t.rms)
        assert t.valid and t.message is None, (name, t.message)


@pytest.mark.parametrize("network", ["standard", "adv-train"])
def test_other_networks_never_lose_the_target_and_flag_unspent_budgets(
    paper_results: dict, cifar_images: dict, network: str
) -> None:
    for name in cifar_images:
        result = paper_results[network, name]
        t = result.targets[0]
        assert t.probability_after >= t.probability_before - 1e-6, (name, t)
        by_half = bool((result.rms_history[: STEPS // 2 + 1, 0] >= RHO).any())
        assert t.budget_reached_by_half == by_half
        assert (t.message is None) == by_half
        if not by_half:
            assert "failed explanation" in t.message
    # The finding to show, not hide: the saturated standard network cannot spend the budget.
    assert network != "standard" or not any(paper_results[network, n].targets[0].valid for n in cifar_images)


def test_robust_perturbations_are_more_structured_than_standard_ones(
    paper_results: dict, cifar_images: dict
) -> None:
    share = {
        net: torch.tensor([paper_results[net, n].targets[0].structure for n in cifar_images])
        for net in NETWORKS
    }
    for net in ROBUST:
        assert bool((share[net] > share["standard"] + 0.2).all()), (net, share[net], share["standard"])
    # Standard δ is close to white noise (baseline ≈ 0.2); robust δ keeps most energy at low frequency.
    assert float(share["standard"].mean()) < 0.4 < 0.7 < float(share["robust"].mean())


def test_batched_all_classes_equal_one_target_at_a_time(woods_dir, cifar_images) -> None:
    from advexp_core.networks.registry import load_model

    model = load_model("woods2019-cifar10-robust", device="cpu")
    image, _ = cifar_images["cifar10_test_2.png"]
    kwargs = {"class_names": model.class_names, "steps": STEPS}
    batched = adversarial_explanation(model.module, image, "all", **kwargs)
    for t in batched.targets[::3]:
        alone = adversarial_explanation(model.module, image, t.index, **kwargs).targets[0]
        torch.testing.assert_close(alone.delta, t.delta, atol=1e-5, rtol=0)
        assert torch.equal((alone.explanation * 255).round(), (t.explanation * 255).round())


def test_batching_is_exact_on_the_standard_network_in_float64(woods_dir, cifar_images) -> None:
    """The standard network's iteration is chaotic: float32 rounding differences between batch
    sizes (conv kernels) grow into different noise patterns. In float64 they stay at zero, which
    shows that batching itself changes nothing."""
    import copy

    from advexp_core.networks.registry import load_model

    loaded = load_model("woods2019-cifar10-standard", device="cpu")
    module = copy.deepcopy(loaded.module).double()
    image, _ = cifar_images["cifar10_test_2.png"]
    kwargs = {"steps": 20, "class_names": loaded.class_names}
    batched = adversarial_explanation(module, image, [0, 8], **kwargs)
    for t in batched.targets:
        alone = adversarial_explanation(module, image, t.index, **kwargs).targets[0]
        torch.testing.assert_close(alone.delta, t.delta, atol=1e-9, rtol=0)


def test_contrast_uses_one_delta_scale_and_draws(woods_dir, cifar_images) -> None:
    from advexp_core.networks.registry import load_model

    models = [load_model(f"woods2019-cifar10-{n}", device="cpu") for n in ("standard", "robust")]
    image, label = cifar_images["cifar10_test_9.png"]
    config = ExplanationConfig(targets=(label, 9), steps=6)
    result = contrast_explanations(models, image, config).contrast
    assert [r.model_id for r in result.results] == [m.model_id for m in models]
    peak = max(float(r.deltas.abs().max()) for r in result.results)
    assert result.delta_scale == pytest.approx(peak)
    shown = amplify_delta(result.results[0].targets[0].delta, result.delta_scale)
    assert 0.0 <= float(shown.min()) and float(shown.max()) <= 1.0
    fig = contrast_figure(result)
    assert len(fig.axes) == 2 * 2 * 2 + 2  # two networks x (two targets x two panels) + inputs
    assert figure_png(fig).startswith(b"\x89PNG")
    single = explanation_figure(result.results[1])
    assert len(single.axes) == 1 + 2 * 2
    big = contrast_explanations(
        models, torch.ones(3, 40, 48) * 0.5, ExplanationConfig(targets=(0,), steps=2)
    ).contrast
    assert all(r.image.shape == (3, 32, 32) for r in big.results)  # resized per model
