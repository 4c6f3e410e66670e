"""Saliency maps: exact values on hand-weighted models, captum as the reference, no side effects."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from torch import nn

from advexp_core.base import runtime
from advexp_core.methods import saliency as S
from advexp_core.networks.introspect import find_last_conv_block
from tests.models import TinyConv, frozen, hook_count, linear_model


class ConvHead(nn.Module):
    """Like the paper's ResNet: global pool, then a 1x1 conv as classifier (must not be chosen)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(x))).flatten(1)


@pytest.fixture
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return frozen(TinyConv())


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))


def test_gradient_is_abs_weight_sum_on_linear_model() -> None:
    w = torch.randn(3, 2 * 4 * 4, generator=torch.Generator().manual_seed(0))
    model = linear_model(w)
    x = torch.rand(2, 2, 4, 4)
    result = S.gradient(model, x, torch.tensor([2, 0]))
    expected = w.view(3, 2, 4, 4).abs().sum(dim=1)[[2, 0]]
    torch.testing.assert_close(result.maps, expected)
    assert result.method == "gradient" and result.target.tolist() == [2, 0]


def test_smoothgrad_equals_gradient_on_linear_model_and_is_deterministic() -> None:
    w = torch.randn(2, 3 * 5 * 5, generator=torch.Generator().manual_seed(0))
    model = linear_model(w)
    x = torch.rand(2, 3, 5, 5)
    sg = S.smoothgrad(model, x, 1, n_samples=4, sigma=0.3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(sg.maps, S.gradient(model, x, 1).maps)


def test_smoothgrad_same_seed_same_maps(tiny: nn.Module, images: torch.Tensor) -> None:
    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return S.smoothgrad(tiny, images, 0, n_samples=3, generator=gen).maps

    torch.testing.assert_close(run(3), run(3), rtol=0, atol=0)
    assert not torch.equal(run(3), run(4))


def test_integrated_gradients_completeness_on_smooth_model(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = frozen(TinyConv(act=nn.Softplus))
    result = S.integrated_gradients(model, images, 1, n_steps=64)
    delta = result.extra["convergence_delta"]
    with torch.no_grad():
        change = model(images)[:, 1] - model(torch.zeros_like(images))[:, 1]
    assert (delta.abs() <= 1e-3 * change.abs().clamp_min(1e-3)).all()
    assert (result.maps >= 0).all()


def test_integrated_gradients_matches_captum_for_any_internal_batch(
    tiny: nn.Module, images: torch.Tensor
) -> None:
    targets = torch.tensor([0, 3, 2])
    ref = IntegratedGradients(tiny).attribute(images, torch.zeros_like(images), target=targets, n_steps=16)
    for ibs in (None, 3, 7):
        ours = S.integrated_gradients(tiny, images, targets, n_steps=16, internal_batch_size=ibs)
        torch.testing.assert_close(ours.maps, ref.abs().sum(dim=1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("ibs", [3, 6, 7])
def test_integrated_gradients_side_by_side_is_bit_for_bit_captums_batching(
    tiny: nn.Module, images: torch.Tensor, ibs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passes run side by side (`runtime.in_order`) add up exactly as captum's own internal batching."""
    targets = torch.tensor([0, 3, 2])
    zeros = torch.zeros_like(images)
    ref, ref_delta = IntegratedGradients(tiny).attribute(
        images, zeros, target=targets, n_steps=16, internal_batch_size=ibs, return_convergence_delta=True
    )
    monkeypatch.setattr(runtime, "pass_workers", lambda: 2)
    side = S.integrated_gradients(tiny, images, targets, n_steps=16, internal_batch_size=ibs)
    monkeypatch.setattr(runtime, "pass_workers", lambda: 1)
    alone = S.integrated_gradients(tiny, images, targets, n_steps=16, internal_batch_size=ibs)
    for ours in (side, alone):
        assert torch.equal(ours.maps, ref.abs().sum(dim=1))
        assert torch.equal(ours.extra["convergence_delta"], ref_delta)


def test_smoothgrad_side_by_side_equals_one_pass_after_another(
    tiny: nn.Module, images: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(workers: int) -> torch.Tensor:
        monkeypatch.setattr(runtime, "pass_workers", lambda: workers)
        gen = torch.Generator().manual_seed(3)
        return S.smoothgrad(tiny, images, 0, n_samples=7, generator=gen, internal_batch_size=6).maps

    assert torch.equal(run(2), run(1))


def test_in_order_keeps_the_order_the_grad_mode_and_the_first_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "pass_workers", lambda: 2)
    with torch.no_grad():
        modes = list(runtime.in_order(lambda k: (k, torch.is_grad_enabled()), range(6)))
    assert modes == [(k, False) for k in range(6)]
    assert list(runtime.in_order(lambda k: sum(runtime.in_order(abs, [-k, k])), range(4))) == [0, 2, 4, 6]

    def fails(k: int) -> int:
        if k == 2:
            raise ValueError("pass 2")
        return k

    seen = []
    with pytest.raises(ValueError, match="pass 2"):
        seen.extend(runtime.in_order(fails, range(5)))
    assert seen == [0, 1]


def test_blur_baseline_is_smooth_and_keeps_the_mean(tiny: nn.Module, images: torch.Tensor) -> None:
    blurred = S.blurred_baseline(images, sigma=2.0)
    assert blurred.shape == images.shape
    assert blurred.std() < images.std()
    torch.testing.assert_close(blurred.mean(), images.mean(), atol=0.02, rtol=0)
    flat = torch.full((1, 3, 12, 12), 0.3)
    torch.testing.assert_close(S.blurred_baseline(flat), flat)
    result = S.integrated_gradients(tiny, images, 0, baseline="blur", n_steps=4)
    assert result.extra["baseline"] == "blur"


def test_grad_cam_equals_direct_captum(tiny: nn.Module, images: torch.Tensor) -> None:
    targets = torch.tensor([1, 0, 3])
    ours = S.grad_cam(tiny, images, targets)
    attr = LayerGradCam(tiny, tiny.features).attribute(images, target=targets, relu_attributions=True)
    ref = LayerAttribution.interpolate(attr, (12, 12), interpolate_mode="bilinear")[:, 0]
    torch.testing.assert_close(ours.maps, ref)
    assert (ours.maps >= 0).all()


def test_grad_cam_on_the_paper_network_equals_captum(woods_dir, cifar_images) -> None:  # noqa: ANN001
    from advexp_core.networks.registry import load_model

    loaded = load_model("woods2019-cifar10-standard")
    x = torch.stack([img for img, _ in cifar_images.values()])
    labels = torch.tensor([label for _, label in cifar_images.values()])
    ours = S.grad_cam(loaded.module, x, labels, layer=loaded.gradcam_layer)
    attr = LayerGradCam(loaded.module, loaded.gradcam_layer).attribute(
        x, target=labels, relu_attributions=True
    )
    ref = LayerAttribution.interpolate(attr, (32, 32), interpolate_mode="bilinear")[:, 0]
    torch.testing.assert_close(ours.maps, ref)
    assert ours.maps.flatten(1).amax(dim=1).gt(0).all()  # the true class has evidence somewhere
    assert hook_count(loaded.module) == 0


def test_find_last_conv_block() -> None:
    import torchvision

    resnet = frozen(torchvision.models.resnet18(weights=None))
    assert find_last_conv_block(resnet, input_size=(64, 64)) is resnet.layer4
    conv_head = frozen(ConvHead())
    assert find_last_conv_block(conv_head, input_size=(8, 8)) is conv_head.body
    mlp = frozen(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)))
    with pytest.raises(ValueError, match="Grad-CAM"):
        find_last_conv_block(mlp, input_size=(2, 2))
    assert hook_count(resnet) == hook_count(conv_head) == hook_count(mlp) == 0


@pytest.mark.parametrize("method", S.METHODS)
def test_no_side_effects_on_the_model(tiny: nn.Module, images: torch.Tensor, method: str) -> None:
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    kwargs = {"n_steps": 4} if method == "ig" else {"n_samples": 2} if method == "smoothgrad" else {}
    result = S.explain(tiny, images, 0, method=method, **kwargs)
    assert result.maps.shape == (3, 12, 12) and result.method == method
    assert not tiny.training and hook_count(tiny) == 0
    for name, p in tiny.named_parameters():
        assert p.grad is None and not p.requires_grad
        torch.testing.assert_close(p, before[name], rtol=0, atol=0)
    assert not images.requires_grad


@pytest.mark.parametrize("method", S.METHODS)
def test_explain_passes_the_layer_to_grad_cam_only(
    tiny: nn.Module, images: torch.Tensor, method: str
) -> None:
    kwargs = {"n_steps": 4} if method == "ig" else {"n_samples": 2} if method == "smoothgrad" else {}
    layer = tiny.features[0]
    ours = S.explain(tiny, images, 2, method=method, layer=layer, **kwargs)
    ref = (
        S.grad_cam(tiny, images, 2, layer=layer)
        if method == "gradcam"
        else S.explain(tiny, images, 2, method=method, **kwargs)
    )
    torch.testing.assert_close(ours.maps, ref.maps, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["gradcam", "ig", "gradient", "occlusion"])
def test_batched_call_equals_separate_calls(tiny: nn.Module, images: torch.Tensor, method: str) -> None:
    kwargs = {"n_steps": 8} if method == "ig" else {}
    both = S.explain(tiny, images, torch.tensor([0, 1, 2]), method=method, **kwargs)
    first, rest = both.split(1)
    alone = S.explain(tiny, images[1:], torch.tensor([1, 2]), method=method, **kwargs)
    torch.testing.assert_close(rest.maps, alone.maps, rtol=1e-4, atol=1e-7)
    assert first.maps.shape == (1, 12, 12) and rest.target.tolist() == [1, 2]
    if method == "ig":
        assert rest.extra["convergence_delta"].shape == (2,)


def test_explain_rejects_unknown_method_and_bad_targets(tiny: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown saliency method.*lime, occlusion"):
        S.explain(tiny, images, 0, method="guided-backprop")
    with pytest.raises(ValueError, match="targets"):
        S.gradient(tiny, images, torch.tensor([0, 1]))


def test_colour_scales() -> None:
    a = torch.arange(100.0).view(10, 10)
    b = 2 * a
    shared = S.colour_scales(a, b, outlier_share=0.0)
    assert shared == [(0.0, 198.0), (0.0, 198.0)]
    assert S.colour_scales(a, b, per_map=True, outlier_share=0.0) == [(0.0, 99.0), (0.0, 198.0)]
    (vmin, vmax), _ = S.colour_scales(a, b)  # default clips the top 1 % of values
    assert vmin == 0.0 and 150.0 < vmax < 198.0
    assert S.colour_scales(torch.zeros(4, 4))[0][1] > 0  # an empty map still gives a usable scale


@pytest.mark.parametrize("method", S.PERTURBATION_METHODS)
def test_lime_and_occlusion_are_registered_explainers(
    tiny: nn.Module, images: torch.Tensor, method: str
) -> None:
    from advexp_core.methods import perturbation

    assert method in S.METHODS and S.METHODS[: len(S.GRADIENT_METHODS)] == S.GRADIENT_METHODS
    via_registry = S.explain(tiny, images, 1, method=method, layer=tiny.features[0])
    direct = getattr(perturbation, method)(tiny, images, 1)
    assert isinstance(via_registry, S.SaliencyMap) and via_registry.method == method
    torch.testing.assert_close(via_registry.maps, direct.maps, rtol=0, atol=0)
    assert via_registry.maps.shape == (3, 12, 12) and (via_registry.maps >= 0).all()
    assert via_registry.extra["forward_images"] > 0  # forward-only: counted forward passes


def test_one_target_helper_for_every_explainer() -> None:
    from advexp_core.methods.maps import as_targets

    cpu = torch.device("cpu")
    assert as_targets(2, 3, cpu).tolist() == [2, 2, 2]
    assert as_targets([0, 1], 2, cpu).dtype == torch.long
    with pytest.raises(ValueError, match="targets"):
        as_targets([0, 1], 3, cpu)


def test_smoothgrad_in_smaller_passes_gives_the_same_map(tiny: nn.Module, images: torch.Tensor) -> None:
    def run(batch: int | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(3)
        return S.smoothgrad(tiny, images, 0, n_samples=5, generator=gen, internal_batch_size=batch).maps

    whole = run(None)
    for batch in (1, 2, 3, 64):
        assert torch.allclose(run(batch), whole, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="internal_batch_size"):
        run(0)


def test_the_registry_lists_every_explainer_once_with_its_defaults() -> None:
    assert S.METHODS == tuple(n for n, e in S.EXPLAINERS.items() if e.saliency)
    assert [n for n, e in S.EXPLAINERS.items() if not e.saliency] == ["adversarial"]
    assert all(e.name == n and e.title for n, e in S.EXPLAINERS.items())
    assert set(S.PERTURBATION_METHODS) == {n for n, e in S.EXPLAINERS.items() if not e.needs_gradients}
    assert S.explainer("ig").settings() == S.IntegratedGradientsSettings(n_steps=32, baseline="black")
    with pytest.raises(ValueError, match="unknown saliency method 'lrp'"):
        S.explainer("lrp")


@pytest.mark.parametrize("method", ["ig", "smoothgrad"])
def test_make_map_batches_on_a_cpu_and_equals_explain(
    tiny: nn.Module, images: torch.Tensor, method: str
) -> None:
    settings = (
        S.IntegratedGradientsSettings(n_steps=4) if method == "ig" else S.SmoothGradSettings(n_samples=2)
    )
    size = images.shape[-2:]
    entry, options = S.map_options(method, settings, tiny, size)
    assert options["internal_batch_size"] == S.CPU_IG_IMAGES == entry.cpu_images  # the tiny net is on the CPU
    made = S.make_map(tiny, images, 1, method=method, settings=settings)
    direct = S.explain(tiny, images, 1, method=method, **S.map_options(method, settings, tiny, size)[1])
    torch.testing.assert_close(made.maps, direct.maps, rtol=0, atol=0)
    with pytest.raises(TypeError, match="takes"):
        S.make_map(tiny, images, 1, method=method, settings=S.NoSettings())


def test_the_adversarial_explanation_is_a_map_of_the_registry(tiny: nn.Module, images: torch.Tensor) -> None:
    settings = S.ExplanationSettings(steps=3)
    made = S.make_map(tiny, images[:2], torch.tensor([0, 2]), method="adversarial", settings=settings)
    assert made.maps.shape == (2, 12, 12) and (made.maps >= 0).all() and made.method == "adversarial"
    assert made.target.tolist() == [0, 2] and made.extra["valid"].shape == (2,)
