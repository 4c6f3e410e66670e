"""The robust additions (docs/method.md §1): half-and-half on a BatchNorm network and L_target."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from advexp_core.data.datasets import TensorImageDataset
from advexp_core.methods.attacks import step_schedule
from advexp_core.training.loop import TrainConfig, train
from advexp_core.training.robust import (
    K_PSI0,
    L_TARGET,
    PsiState,
    adversarial_images,
    default_l_target,
    update_psi,
)


def _bn_net() -> nn.Sequential:
    torch.manual_seed(0)  # the weights only; the attack itself is deterministic
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 3))


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(8, 3, 4, 4, generator=gen)
    y = torch.randint(3, (8,), generator=gen)
    return x, y, torch.tensor([True, False, True, True, False, False, True, False])


def test_half_and_half_forwards_the_whole_batch_in_train_mode() -> None:
    net, (x, y, half) = _bn_net().train(), _batch()
    fresh = copy.deepcopy(net)  # before the hook: the copy must not record
    seen: list[torch.Tensor] = []
    handle = net.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        adv = adversarial_images(net, x, y, mode="l2min", perturb=half)
    finally:
        handle.remove()
    assert len(seen) == 8 and all(s.shape == x.shape for s in seen)  # S + 1 full batches
    assert all(torch.equal(s[~half], x[~half]) for s in seen)  # the other half at δ = 0
    assert torch.equal(adv[~half], x[~half])
    # BN running statistics = those of the same full-batch train-mode forwards, replayed.
    with torch.no_grad():
        for s in seen:
            fresh(s)
    bn, want = net[2], fresh[2]
    torch.testing.assert_close(bn.running_mean, want.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, want.running_var, rtol=0, atol=0)
    assert int(bn.num_batches_tracked) == 8


def test_half_and_half_differs_from_attacking_the_half_alone() -> None:
    # The old way (attack only the selected rows) normalises BN with other batch statistics:
    # other running statistics, and other adversarial examples.
    x, y, half = _batch()
    masked, alone = _bn_net().train(), _bn_net().train()
    adv = adversarial_images(masked, x, y, mode="l2", perturb=half)
    sub = step_schedule(alone, x[half], y[half], size=0.01, steps=7, budget=0.01)
    assert not torch.allclose(masked[2].running_mean, alone[2].running_mean, atol=1e-4)
    assert not torch.allclose(adv[half], x[half] + sub.delta, atol=1e-7)


def test_l2_mode_makes_the_references_seven_forwards_only() -> None:
    # Our loop's closing evaluation must not move BN statistics (the reference stops after S).
    net, (x, y, _) = _bn_net().train(), _batch()
    adversarial_images(net, x, y, mode="l2")
    assert int(net[2].num_batches_tracked) == 7


def test_default_l_target_scales_with_ln_c() -> None:
    assert default_l_target(10) == L_TARGET == 1.5  # exactly the paper's value
    assert default_l_target(2) == pytest.approx(0.4515, abs=1e-4)
    assert default_l_target(1000) == pytest.approx(4.5)
    assert TrainConfig(recipe="robust").l_target_for(2) == default_l_target(2)
    assert TrainConfig(recipe="robust", l_target=0.3).l_target_for(10) == 0.3


def test_psi_stays_bounded_at_chance_level_cross_entropy_with_two_classes() -> None:
    # A network the penalty has flattened sits at chance-level CE, ln 2 for two classes.
    scaled, fixed = PsiState(l_target=default_l_target(2)), PsiState(l_target=1.5)
    for _ in range(1000):
        scaled, fixed = update_psi(scaled, math.log(2)), update_psi(fixed, math.log(2))
    assert scaled.psi == K_PSI0  # above target: the integral only decreases, floored at 0
    assert fixed.psi > 1e8  # 1.5 > ln 2 is never reached: ψ grows without bound


def _coin_flips(n: int) -> TensorImageDataset:
    """Two classes that the images cannot tell apart: the best CE is chance level, ln 2."""
    gen = torch.Generator().manual_seed(5)
    images = torch.rand(n, 3, 32, 32, generator=gen)
    labels = torch.randint(2, (n,), generator=gen)
    return TensorImageDataset("coin", "train", ["heads", "tails"], images, labels)


def test_training_two_classes_records_the_scaled_target_and_keeps_psi_bounded() -> None:
    data = _coin_flips(256)
    results = {}
    for target in (None, 1.5):
        model = nn.Sequential(nn.AvgPool2d(8), nn.Flatten(), nn.Linear(48, 2))
        config = TrainConfig(recipe="robust", epochs=2, batch_size=32, seed=1, l_target=target)
        results[target] = train(config, data, data, model=model).payload["psi_state"]
    assert results[None]["l_target"] == pytest.approx(default_l_target(2))
    assert results[1.5]["l_target"] == 1.5
    batches = 2 * 256 // 32
    # With L_target = 1.5 > ln 2 the integral climbs on every batch (by ≈ ln(1.5 / ln 2)); with the
    # scaled target the cross-entropy stays above it and ψ stays at its floor k_ψ0.
    assert results[1.5]["integral"] > 0.5 * batches
    assert results[None]["integral"] < 0.1 and results[None]["psi"] < 1.01 * K_PSI0
