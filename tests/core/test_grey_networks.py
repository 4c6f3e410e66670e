"""Networks of one input channel (timm ``in_chans=1``, a torchvision network with a 1-channel first
convolution, an ONNX file with an N×1×H×W input): recognised from the file, wrapped so that they
take RGB images like every network, and attacks and maps on a grey image stay grey."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from advexp_core.methods.attacks import fgsm, pgd
from advexp_core.methods.explanations import adversarial_explanation
from advexp_core.methods.gradient_maps import gradient
from advexp_core.networks.registry import load_user_model
from advexp_core.networks.zoo import ModelError
from tests.core.test_own_models import TINY_CNN, TINY_VIT

CLASSES = ("normal", "abnormal")


def grey_timm(arch: str = TINY_CNN, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = timm.create_model(arch, pretrained=False, num_classes=len(CLASSES), in_chans=1)
    for module in net.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return net.eval()


def save_weights(net: nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
    return path


def grey_image(size: int = 48, seed: int = 1) -> torch.Tensor:
    grey = torch.rand(1, size, size, generator=torch.Generator().manual_seed(seed))
    return grey.expand(3, size, size).clone()


@pytest.fixture()
def grey_cnn(tmp_path: Path):
    net = grey_timm()
    model = load_user_model(
        f"timm:{TINY_CNN}",
        save_weights(net, tmp_path / "grey.safetensors"),
        CLASSES,
        input_size=48,
        device="cpu",
    )
    return net, model


def test_a_grey_timm_network_is_recognised_and_reads_the_grey(grey_cnn) -> None:
    net, model = grey_cnn
    card = model.card
    assert card is not None and card.channels == 1
    assert len(card.mean) == 1 and len(card.std) == 1
    assert card.mean[0] == pytest.approx(sum((0.485, 0.456, 0.406)) / 3)  # resnet10t's, averaged
    assert "grey" in card.normalisation_from and any("one channel" in n for n in card.notes)
    image = grey_image()
    with torch.no_grad():
        expected = net((image[None, :1] - card.mean[0]) / card.std[0])
        assert torch.allclose(model.module(image[None]), expected, atol=1e-5)
        colour = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
        as_grey = colour.mean(dim=1, keepdim=True).expand(1, 3, 48, 48)
        assert torch.allclose(model.module(colour), model.module(as_grey), atol=1e-6)


def test_an_rgb_network_reads_a_grey_image_as_three_equal_channels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = timm.create_model(TINY_CNN, pretrained=False, num_classes=2).eval()
    model = load_user_model(
        f"timm:{TINY_CNN}",
        save_weights(net, tmp_path / "rgb.safetensors"),
        CLASSES,
        input_size=48,
        device="cpu",
    )
    assert model.card is not None and model.card.channels == 3 and len(model.card.mean) == 3
    one = load_user_model(
        f"timm:{TINY_CNN}", tmp_path / "rgb.safetensors", CLASSES, input_size=48, mean=(0.5,), std=(0.25,)
    )
    assert one.card is not None and one.card.mean == (0.5, 0.5, 0.5) and one.card.std == (0.25,) * 3


def test_your_mean_for_a_grey_network_is_averaged(tmp_path: Path) -> None:
    path = save_weights(grey_timm(), tmp_path / "grey.safetensors")
    model = load_user_model(
        f"timm:{TINY_CNN}", path, CLASSES, input_size=48, mean=(0.2, 0.4, 0.6), std=(0.5,), device="cpu"
    )
    assert model.card is not None and model.card.mean == pytest.approx((0.4,)) and model.card.std == (0.5,)
    assert model.card.normalisation_from.startswith("your setting")


def test_a_grey_vision_transformer_gets_its_token_grid(tmp_path: Path) -> None:
    path = save_weights(grey_timm(TINY_VIT), tmp_path / "vit.safetensors")
    model = load_user_model(f"timm:{TINY_VIT}", path, CLASSES, device="cpu")
    assert model.card is not None and model.card.channels == 1
    assert model.card.gradcam_layer.endswith("tap")


def test_a_grey_torchvision_network_is_recognised(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torchvision.models.squeezenet1_1(weights=None, num_classes=2)
    net.features[0] = nn.Conv2d(1, 64, kernel_size=3, stride=2)
    torch.save(net.state_dict(), tmp_path / "squeeze.pt")
    model = load_user_model("squeezenet1_1", tmp_path / "squeeze.pt", CLASSES, input_size=64, device="cpu")
    assert model.card is not None and model.card.channels == 1
    image = grey_image(64)
    with torch.no_grad():
        expected = net.eval()((image[None, :1] - model.card.mean[0]) / model.card.std[0])
        assert torch.allclose(model.module(image[None]), expected, atol=1e-5)


def test_a_grey_onnx_file_is_recognised(tmp_path: Path) -> None:
    model = load_user_model(None, export_grey_onnx(grey_timm(), tmp_path / "grey.onnx", 1), CLASSES)
    assert model.card is not None and model.card.channels == 1
    assert model.card.onnx_max_difference is not None and model.card.onnx_max_difference < 1e-4
    assert model.module(grey_image(32)[None].to(model.device)).shape == (1, 2)
    two = export_grey_onnx(nn.Conv2d(2, 2, 1), tmp_path / "two.onnx", 2)
    with pytest.raises(ModelError, match="2 channels; expected 3"):
        load_user_model(None, two, CLASSES, device="cpu")


def export_grey_onnx(net: nn.Module, path: Path, channels: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(
            net.eval(),
            (torch.zeros(1, channels, 32, 32),),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    return path


@pytest.mark.parametrize("norm", ["linf", "l2", "rms"])
def test_attacks_on_a_grey_network_keep_delta_grey(grey_cnn, norm: str) -> None:
    _, model = grey_cnn
    images = torch.stack([grey_image(seed=1), grey_image(seed=2)])
    eps = {"linf": 8 / 255, "l2": 1.0, "rms": 0.03}[norm]
    for result in (
        pgd(model.module, images, [0, 1], eps=eps, steps=5, norm=norm),
        fgsm(model.module, images, [0, 1], eps=eps, norm=norm),
    ):
        delta = result.delta
        assert float(delta.abs().max()) > 0
        assert torch.equal(delta[:, 0], delta[:, 1]) and torch.equal(delta[:, 1], delta[:, 2])
        adversarial = result.adversarial
        assert torch.equal(adversarial[:, 0], adversarial[:, 2])


def test_maps_and_adversarial_explanations_on_a_grey_network_stay_grey(grey_cnn) -> None:
    _, model = grey_cnn
    image = grey_image()
    x = image[None].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.module(x)[0, 1], x)
    assert torch.equal(g[0, 0], g[0, 1]) and torch.equal(g[0, 1], g[0, 2])
    assert gradient(model.module, image[None], [1]).maps.shape[-2:] == (48, 48)
    explained = adversarial_explanation(model.module, image, [0, 1], class_names=CLASSES, rho=0.05, steps=4)
    for target in explained.targets:
        delta = target.delta
        assert torch.equal(delta[0], delta[1]) and torch.equal(delta[1], delta[2])
