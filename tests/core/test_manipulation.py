"""Keep-the-label, move-the-map attack on a small model (Dombrowski et al. 2019)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advexp_core.methods.manipulation import (
    SoftplusReLU,
    manipulate_explanation,
    region_map,
    smooth_surrogate,
)
from advexp_core.networks.layers import HHReLU
from tests.models import hook_count, tiny_conv


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_conv(0, width=8, classes=5)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def result(model: nn.Module, images: torch.Tensor):  # noqa: ANN201
    steps = []
    out = manipulate_explanation(
        model,
        images,
        target_map=region_map((16, 16), (0, 0, 6, 6)),
        eps=32 / 255,
        steps=30,
        lr=0.01,
        on_step=lambda i, n: steps.append((i, n)),
    )
    assert steps == [(i, 30) for i in range(1, 31)]
    return out


def test_label_kept_and_map_moves_toward_target(result) -> None:  # noqa: ANN001
    assert result.label_kept.all()
    rise = result.to_target_after["spearman"] - result.to_target_before["spearman"]
    assert (rise > 0.1).all(), rise
    assert (result.to_target_after["topk_intersection"] > result.to_target_before["topk_intersection"]).all()
    assert (result.to_original_after["spearman"] < 0.9).all()  # the map really changed
    assert result.loss_history[-1] < result.loss_history[0]
    assert result.replaced_activations == 2 and result.method == "gradient"


def test_budget_and_range_hold(result, images: torch.Tensor) -> None:  # noqa: ANN001
    assert result.delta.abs().max() <= 32 / 255 + 1e-6
    assert result.adversarial.min() >= 0 and result.adversarial.max() <= 1
    torch.testing.assert_close(result.adversarial - images, result.delta)
    torch.testing.assert_close(
        result.logit_change, (result.logits_after - result.logits_before).abs().amax(1)
    )
    assert result.original_map.shape == result.manipulated_map.shape == result.target_map.shape == (2, 16, 16)


def test_shared_model_is_untouched(model: nn.Module, images: torch.Tensor) -> None:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    manipulate_explanation(
        model, images, target_map=torch.rand(16, 16), eps=8 / 255, steps=2, method="gradcam"
    )
    assert isinstance(model.features[1], nn.ReLU) and isinstance(model.features[3], nn.ReLU)
    assert not model.training
    for name, p in model.named_parameters():
        assert p.grad is None and not p.requires_grad
        torch.testing.assert_close(p, before[name], rtol=0, atol=0)
    assert hook_count(model) == 0


def test_grad_cam_layer_is_explicit_or_found(model: nn.Module, images: torch.Tensor) -> None:
    kwargs = {"target_map": torch.rand(16, 16, generator=torch.Generator().manual_seed(2)), "eps": 4 / 255}
    found = manipulate_explanation(model, images, steps=2, method="gradcam", **kwargs)
    given = manipulate_explanation(model, images, steps=2, method="gradcam", layer=model.features, **kwargs)
    torch.testing.assert_close(found.delta, given.delta, rtol=0, atol=0)
    early = manipulate_explanation(
        model, images, steps=2, method="gradcam", layer=model.features[0], **kwargs
    )
    assert not torch.equal(early.original_map, found.original_map)
    with pytest.raises(ValueError, match="activation"):
        manipulate_explanation(model, images, steps=1, method="gradcam", layer=model.features[1], **kwargs)


def test_deterministic(model: nn.Module, images: torch.Tensor) -> None:
    def run() -> torch.Tensor:
        return manipulate_explanation(
            model,
            images,
            target_map=torch.rand(16, 16, generator=torch.Generator().manual_seed(0)),
            eps=4 / 255,
            steps=3,
        ).delta

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_smooth_surrogate_replaces_every_relu_and_approximates_it() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU6(), nn.Flatten(), HHReLU())
    net.eval().requires_grad_(False)
    surrogate, memo, replaced = smooth_surrogate(net, beta=200.0)
    assert replaced == 3 and memo[id(net[0])] is surrogate[0]
    assert isinstance(net[1], nn.ReLU) and isinstance(net[5], HHReLU)
    assert all(isinstance(surrogate[i], SoftplusReLU) for i in (1, 3, 5))
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(surrogate[:5](x), net[:5](x), atol=0.01, rtol=0)
    t = torch.linspace(-3, 9, 121)
    torch.testing.assert_close(surrogate[3](t), t.clamp(0, 6), atol=0.01, rtol=0)  # ReLU6
    # HHReLU(0.5) = x - 0.25 beyond 0.5 and 0 below 0: the shifted softplus matches both tails
    hh = surrogate[5](t)
    torch.testing.assert_close(hh[(t < -0.5) | (t > 1)], net[5](t)[(t < -0.5) | (t > 1)], atol=0.01, rtol=0)
    assert (hh - net[5](t)).abs().max() < 0.07


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="outside"):
        region_map((8, 8), (0, 0, 9, 4))
    model = tiny_conv(1, width=8, classes=5)
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="all zeros"):
        manipulate_explanation(model, x, target_map=torch.zeros(8, 8), steps=1)
    with pytest.raises(ValueError, match="supports"):
        manipulate_explanation(model, x, target_map=torch.ones(8, 8), steps=1, method="ig")  # type: ignore[arg-type]
