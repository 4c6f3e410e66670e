"""The attack engine (advexp_core.methods.attacks): step schedule, minimal perturbation, PGD and FGSM.

Exact values on hand-made linear models, properties on a small CNN, and torchattacks as an
independent oracle for PGD.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from advexp_core.methods.attacks import fgsm, minimal_perturbation, pgd, step_schedule
from advexp_core.methods.geometry import NORMS, get_geometry, rms
from tests.models import TwoClassLinear, hook_count

# --------------------------------------------------------------------------- tiny models


def _direction(shape: tuple[int, int, int] = (3, 4, 4)) -> Tensor:
    """A fixed, non-uniform v (so that unit-RMS normalisation matters)."""
    return torch.linspace(-1.0, 2.0, math.prod(shape)).reshape(shape)


def _linear_model_with_boundary_at(distances: list[float]) -> tuple[TwoClassLinear, Tensor]:
    """A two-class linear model and images (class 0) whose exact RMS distance to the boundary is given.

    Moving by t·u (u = v / RMS(v), so RMS(t·u) = t) changes z by t·‖v‖²/RMS(v).
    """
    v = _direction()
    model = TwoClassLinear(v, bias=0.0)
    x = torch.full((len(distances), *v.shape), 0.5)
    z0 = (x * v).flatten(1).sum(1)
    slope = float(v.pow(2).sum() / rms(v[None])[0])
    # choose the bias per image by shifting the image along u instead (one model for all)
    u = v / rms(v[None])[0]
    shift = torch.tensor([-(float(z) / slope) - d for z, d in zip(z0, distances, strict=True)])
    return model, x + shift.view(-1, 1, 1, 1) * u


def small_cnn(seed: int = 0, num_classes: int = 4) -> nn.Module:
    """A small random CNN in eval mode with frozen parameters (the engine's contract)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(8 * 16, num_classes),
    ).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# --------------------------------------------------------------------------- step schedule


def test_step_schedule_budget_mode_matches_a_hand_computed_path() -> None:
    # S = 3, size = 0.6: step sizes 0.3, 0.2, 0.1. Budget 0.25 along the only direction u:
    # t = 0 (follow) -> 0.3 (>= budget, step back) -> 0.1 (follow) -> 0.2.
    v = _direction()
    model = TwoClassLinear(v, bias=0.0)
    x = torch.full((1, *v.shape), 0.5)
    out = step_schedule(model, x, torch.tensor([0]), size=0.6, steps=3, budget=0.25)
    u = v / rms(v[None])[0]
    assert torch.allclose(out.rms_history[:, 0], torch.tensor([0.0, 0.3, 0.1, 0.2]), atol=1e-6)
    assert torch.allclose(out.delta[0], 0.2 * u, atol=1e-6)
    assert torch.allclose(out.rms, torch.tensor([0.2]), atol=1e-6)
    assert out.reached_step.tolist() == [1] and out.met.tolist() == [True]
    assert torch.allclose(out.logits_after, model(x + out.delta))
    assert torch.allclose(out.logits_before, model(x))


def test_step_schedule_momentum_and_targeted_direction_by_hand() -> None:
    # Targeted toward class 1 follows +u as well. Momentum 0.5: m = 0.5u, 0.75u, -0.125u;
    # t = 0 -> 0.15 -> 0.30 (>= 0.25: back) -> 0.2875. Reached after step 2 > S//2 = 1: not met.
    # (The bias keeps class 1 unsaturated: once softmax_1 rounds to 1 the float32 gradient is 0.)
    v = _direction()
    x = torch.full((1, *v.shape), 0.5)
    model = TwoClassLinear(v, bias=-float((x * v).sum()) - 5.0)
    out = step_schedule(model, x, [1], size=0.6, steps=3, budget=0.25, targeted=True, momentum=0.5)
    assert torch.allclose(out.rms_history[:, 0], torch.tensor([0.0, 0.15, 0.30, 0.2875]), atol=1e-6)
    assert torch.allclose(out.delta[0], 0.2875 * v / rms(v[None])[0], atol=1e-6)
    assert out.reached_step.tolist() == [2] and out.met.tolist() == [False]


def test_step_schedule_min_mode_keeps_the_smallest_crossing_by_hand() -> None:
    # Boundary at t* = 0.15: t = 0 (no) -> 0.3 (met) -> 0.1 (no) -> 0.2 (met): keep 0.2.
    model, x = _linear_model_with_boundary_at([0.15])
    out = step_schedule(model, x, [0], size=0.6, steps=3, mode="min")
    assert torch.allclose(out.rms_history[:, 0], torch.tensor([0.0, 0.3, 0.1, 0.2]), atol=1e-5)
    assert torch.allclose(out.rms, torch.tensor([0.2]), atol=1e-5)
    assert out.met.tolist() == [True] and out.reached_step.tolist() == [1]
    assert out.logits_after.argmax(1).tolist() == [1]
    assert torch.allclose(out.logits_after, model(x + out.delta), atol=1e-5)


def test_minimal_perturbation_finds_the_exact_boundary_of_a_linear_classifier() -> None:
    distances = [0.004, 0.03, 0.1, 0.4, 1.0]  # 1.0: softmax_1 ~ 1e-21, the gradient must survive
    model, x = _linear_model_with_boundary_at(distances)
    exact = torch.tensor(distances)
    out = minimal_perturbation(model, x, torch.zeros(5, dtype=torch.long))  # paper: 450 steps, 20, 0.9
    assert out.met.all()
    assert bool((out.rms >= exact - 1e-5).all()), "no perturbation can cross before the boundary"
    assert torch.allclose(out.rms, exact, rtol=0.02, atol=2e-4)
    assert (out.logits_after.argmax(1) == 1).all()
    # BTR with two classes is the same boundary (softmax_y <= 1/2).
    btr = minimal_perturbation(model, x, torch.zeros(5, dtype=torch.long), boundary="btr")
    assert torch.allclose(btr.rms, exact, rtol=0.02, atol=2e-4)


def test_minimal_perturbation_edge_cases_already_crossed_and_never_met() -> None:
    model, x = _linear_model_with_boundary_at([0.05, 0.05])
    x[1] += 0.2 * _direction() / rms(_direction()[None])[0]  # already past the boundary
    out = minimal_perturbation(model, x, [0, 0], steps=5, size=1e-3, momentum=0.0)
    assert out.met.tolist() == [False, True]
    assert out.reached_step.tolist() == [-1, 0]
    assert out.rms[1] == 0 and torch.equal(out.delta[1], torch.zeros_like(out.delta[1]))
    assert torch.allclose(out.rms[0], torch.tensor(1e-3), atol=1e-6), "never met: the final δ"
    assert out.rms_history.shape == (6, 2)


def test_step_schedule_is_deterministic_and_calls_on_step() -> None:
    model = small_cnn()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    calls: list[tuple[int, int]] = []
    first = step_schedule(
        model, x, [0, 1, 2], size=0.5, steps=6, budget=0.1, targeted=True, on_step=lambda *a: calls.append(a)
    )
    again = step_schedule(model, x, [0, 1, 2], size=0.5, steps=6, budget=0.1, targeted=True)
    assert calls == [(i, 6) for i in range(1, 7)]
    for name in ("delta", "rms", "logits_after", "met", "reached_step", "rms_history"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0.5, "steps": 0, "budget": 0.1},
        {"size": -1.0, "steps": 3, "budget": 0.1},
        {"size": 0.5, "steps": 3},
        {"size": 0.5, "steps": 3, "budget": 0.0},
        {"size": 0.5, "steps": 3, "budget": 0.1, "mode": "max"},
        {"size": 0.5, "steps": 3, "mode": "min", "boundary": "edge"},
        {"size": 0.5, "steps": 3, "budget": 0.1, "momentum": 1.0},
    ],
)
def test_step_schedule_refuses_impossible_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        step_schedule(small_cnn(), torch.rand(1, 3, 8, 8), [0], **kwargs)


# --------------------------------------------------------------------------- PGD / FGSM properties

EPS = {"linf": 8 / 255, "l2": 0.5, "rms": 0.03}


def _batch(n: int = 6, size: int = 8, seed: int = 0) -> Tensor:
    """Random images with some saturated pixels, so that the [0,1] box matters."""
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return torch.where(x < 0.1, 0.0, torch.where(x > 0.9, 1.0, x))


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_respects_the_norm_bound_per_example_and_the_image_box(norm: str, random_start: bool) -> None:
    model, x = small_cnn(), _batch()
    labels = model(x).argmax(1)
    out = pgd(model, x, labels, eps=EPS[norm], steps=5, step_size=EPS[norm] / 2, norm=norm,
              random_start=random_start, generator=torch.Generator().manual_seed(0))  # fmt: skip
    size = get_geometry(norm).size(out.delta)
    assert bool((size <= EPS[norm] * (1 + 1e-5) + 1e-6).all()), size
    assert float(out.adversarial.min()) >= 0.0 and float(out.adversarial.max()) <= 1.0
    assert torch.allclose(out.adversarial, x + out.delta, atol=1e-7)
    assert torch.allclose(out.linf_255, out.delta.flatten(1).abs().amax(1) * 255)
    assert torch.allclose(out.rms, out.delta.flatten(1).pow(2).mean(1).sqrt())
    assert torch.allclose(out.l2, out.delta.flatten(1).norm(dim=1))
    assert torch.equal(out.success, out.logits_after.argmax(1) != labels)
    assert torch.allclose(out.logits_after, model(out.adversarial), atol=1e-5)
    assert torch.allclose(out.logits_before, model(x), atol=1e-6)
    assert out.steps_run == 5 and out.success.dtype == torch.bool


def test_an_attack_with_eps_zero_returns_the_input() -> None:
    model, x = small_cnn(), _batch()
    labels = model(x).argmax(1)
    results = [
        pgd(model, x, labels, eps=0.0, steps=3),
        pgd(model, x, labels, eps=0.0, steps=3, norm="l2", random_start=True, generator=torch.Generator()),
        fgsm(model, x, labels, eps=0.0, norm="rms"),
    ]
    for out in results:
        assert torch.equal(out.adversarial, x)
        assert not out.success.any() and not out.png_success.any()
        assert torch.equal(out.psnr, torch.full((6,), math.inf))


@pytest.mark.parametrize("frozen", [True, False])
def test_attacks_leave_the_model_untouched(frozen: bool) -> None:
    model = small_cnn()
    if not frozen:  # a user's model that still requires grad: .grad must stay empty anyway
        for p in model.parameters():
            p.requires_grad_(True)
    model[2].register_forward_hook(lambda *args: None)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes, hooks = [m.training for m in model.modules()], hook_count(model)
    x = _batch()
    labels = model(x).argmax(1)
    pgd(model, x, labels, eps=0.03, steps=3, random_start=True, generator=torch.Generator().manual_seed(0))
    fgsm(model, x, labels, eps=0.03, norm="l2")
    step_schedule(model, x, labels, size=0.1, steps=3, budget=0.02)
    minimal_perturbation(model, x, labels, steps=3, size=0.1)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad is not frozen for p in model.parameters())
    assert [m.training for m in model.modules()] == modes and hook_count(model) == hooks


def test_the_same_generator_seed_gives_identical_results() -> None:
    model, x = small_cnn(), _batch()
    labels = model(x).argmax(1)

    def run(seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        return pgd(
            model, x, labels, eps=0.05, steps=3, norm="l2", random_start=True, generator=gen
        ).adversarial

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


def test_pgd_runs_under_no_grad_and_reports_progress() -> None:
    model, x = small_cnn(), _batch(2)
    calls: list[tuple[int, int]] = []
    with torch.no_grad():
        out = pgd(model, x, [0, 1], eps=0.03, steps=4, on_step=lambda *a: calls.append(a))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert float(out.linf_255.max()) > 0


def test_targeted_pgd_reaches_the_target_class() -> None:
    model, x = small_cnn(), _batch(4)
    target = (model(x).argmax(1) + 1) % 4
    out = pgd(model, x, target, eps=0.3, steps=20, targeted=True)
    assert out.success.all() and torch.equal(out.logits_after.argmax(1), target)


def test_early_stop_freezes_examples_once_they_succeed() -> None:
    v = _direction()
    x = torch.full((2, *v.shape), 0.5)
    model = TwoClassLinear(v, bias=-float((x[0] * v).sum()) - 0.5)  # class 0, one small step from 1
    calls: list[tuple[int, int]] = []
    out = pgd(
        model,
        x,
        [0, 0],
        eps=0.2,
        steps=10,
        step_size=0.05,
        early_stop=True,
        on_step=lambda *a: calls.append(a),
    )
    assert out.success.all() and out.steps_run == 1 and calls == [(1, 10)]
    assert torch.allclose(out.linf_255, torch.full((2,), 0.05 * 255))
    full = pgd(model, x, [0, 0], eps=0.2, steps=10, step_size=0.05)
    assert full.steps_run == 10 and torch.allclose(full.linf_255, torch.full((2,), 0.2 * 255))


def test_the_png_check_decides_on_the_8_bit_image() -> None:
    from advexp_core.data.imaging import png_roundtrip
    from advexp_core.measures.metrics import psnr, ssim

    model, x = small_cnn(), _batch(3, size=16)
    labels = model(x).argmax(1)
    out = pgd(model, x, labels, eps=2 / 255, steps=3)
    png_logits = model(png_roundtrip(out.adversarial))
    assert torch.allclose(out.png_logits_after, png_logits, atol=1e-6)
    assert torch.equal(out.png_success, png_logits.argmax(1) != labels)
    assert torch.allclose(out.psnr, psnr(x, out.adversarial)) and torch.allclose(
        out.ssim, ssim(x, out.adversarial)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"eps": -0.1, "steps": 3},
        {"eps": math.nan, "steps": 3},
        {"eps": 0.1, "steps": 0},
        {"eps": 0.1, "steps": 2.5},
        {"eps": 0.1, "steps": 3, "step_size": -1.0},
        {"eps": 0.1, "steps": 3, "norm": "l1"},
    ],
)
def test_pgd_refuses_impossible_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        pgd(small_cnn(), _batch(1), [0], **kwargs)


def test_bad_labels_and_images_are_refused() -> None:
    model = small_cnn()
    with pytest.raises(ValueError, match="labels"):
        pgd(model, _batch(2), [0, 4], eps=0.1, steps=1)
    with pytest.raises(ValueError, match="labels"):
        pgd(model, _batch(2), [0], eps=0.1, steps=1)
    with pytest.raises(ValueError, match="images"):
        pgd(model, _batch(1)[0], [0], eps=0.1, steps=1)


# --------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_matches_torchattacks_step_for_step(norm: str) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model, x = small_cnn(seed=3), _batch(8, seed=1)
    labels = model(x).argmax(1)
    eps, alpha = (4 / 255, 1 / 255) if norm == "linf" else (0.3, 0.1)
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    theirs = cls(model, eps=eps, alpha=alpha, steps=5, random_start=False)(x, labels)
    ours = pgd(model, x, labels, eps=eps, steps=5, step_size=alpha, norm=norm)
    differ = (ours.adversarial - theirs).abs() > 1e-5
    assert float(differ.float().mean()) < 0.01  # the same algorithm; only float rounding may differ
    assert int(ours.success.sum()) >= int((model(theirs).argmax(1) != labels).sum())


def test_fgsm_matches_torchattacks() -> None:
    torchattacks = pytest.importorskip("torchattacks")
    model, x = small_cnn(seed=4), _batch(8, seed=2)
    labels = model(x).argmax(1)
    theirs = torchattacks.FGSM(model, eps=3 / 255)(x, labels)
    ours = fgsm(model, x, labels, eps=3 / 255)
    assert float(((ours.adversarial - theirs).abs() > 1e-5).float().mean()) < 0.01


def test_pgd_success_at_least_matches_torchattacks_on_the_papers_standard_network(
    woods_dir, cifar_images
) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    from advexp_core.networks.registry import load_model

    model = load_model("woods2019-cifar10-standard").module
    x = torch.stack([img for img, _ in cifar_images.values()])
    labels = torch.tensor([label for _, label in cifar_images.values()])
    for eps in (0.25 / 255, 0.5 / 255):  # some, not all, flip at these budgets
        theirs = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 5, steps=5, random_start=False)(x, labels)
        ours = pgd(model, x, labels, eps=eps, steps=5)
        assert int(ours.success.sum()) >= int((model(theirs).argmax(1) != labels).sum())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_attack_runs_on_the_models_device_and_returns_on_the_images_device() -> None:
    model = small_cnn().cuda()
    x = _batch(2)
    out = pgd(model, x, [0, 1], eps=0.03, steps=2)
    assert out.adversarial.device == x.device and out.success.device == x.device
    sched = minimal_perturbation(model, x, [0, 1], steps=4, size=0.5)
    assert sched.delta.device == x.device
