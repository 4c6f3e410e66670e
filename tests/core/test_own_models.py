"""The user's own network as it really comes: timm CNNs and ViTs, checkpoint layouts, ONNX files,
and hostile files refused with messages. Tiny networks built here; nothing is downloaded."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import timm
import torch
from captum.attr import LayerGradCam
from onnx import TensorProto, helper
from safetensors.torch import save_file
from timm.models import register_model
from torch import nn

from advexp_core.methods.attacks import pgd
from advexp_core.networks import onnx_models, own_models
from advexp_core.networks.own_models import unwrap_state_dict
from advexp_core.networks.registry import load_user_model
from advexp_core.networks.zoo import ModelError

TINY_VIT = "advexp_test_vit"
TINY_CNN = "advexp_test_cnn"
TINY_SWIN = "advexp_test_swin"
CLASSES = ("normal", "benign", "malignant")

# Tiny architectures registered in timm's own registry, so they are names of timm.list_models()
# like any other: a ViT of 2 blocks on 32 px (4x4 patches of 8 px, one class token) and a ResNet.
if not timm.is_model(TINY_VIT):

    @register_model
    def advexp_test_vit(pretrained: bool = False, **kwargs):  # noqa: ANN201 - timm's factory form
        tiny = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}
        return timm.create_model("vit_tiny_patch16_224", pretrained=False, **{**tiny, **kwargs})

    @register_model
    def advexp_test_swin(pretrained: bool = False, **kwargs):  # noqa: ANN201 - timm's factory form
        tiny = {
            "img_size": 64,
            "window_size": 2,
            "embed_dim": 8,
            "depths": (1, 1, 1, 1),
            "num_heads": (1, 1, 1, 1),
        }
        return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **{**tiny, **kwargs})

    @register_model
    def advexp_test_cnn(pretrained: bool = False, **kwargs):  # noqa: ANN201 - timm's factory form
        tiny = {"channels": (8, 8, 16, 16), "stem_width": 8}
        return timm.create_model("resnet10t", pretrained=False, **{**tiny, **kwargs})


def tiny_net(arch: str, num_classes: int = 3, seed: int = 0) -> nn.Module:
    """An untrained timm network with plain (twice differentiable) attention, as the loader builds it."""
    torch.manual_seed(seed)
    net = timm.create_model(arch, pretrained=False, num_classes=num_classes).eval()
    for module in net.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return net


def reference(net: nn.Module, x: torch.Tensor, mean, std) -> torch.Tensor:
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return net((x - m) / s)


def save_tiny_vit(folder: Path) -> Path:
    path = folder / "vit.safetensors"
    save_file(tiny_net(TINY_VIT).state_dict(), path)
    return path


def export_onnx(net: nn.Module, path: Path, size: int = 32, dynamic: bool = True, opset: int = 17) -> Path:
    axes = {"x": {0: "n"}, "logits": {0: "n"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, size, size),),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


@pytest.mark.parametrize("layout", ["safetensors", "lightning", "dataparallel"])
def test_timm_cnn_loads_from_each_layout_with_equal_outputs(tmp_path: Path, layout: str) -> None:
    net = tiny_net(TINY_CNN)
    state = net.state_dict()
    if layout == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(state, path)
    elif layout == "lightning":  # a LightningModule with the network as `self.model` and a loss weight
        path = tmp_path / "w.ckpt.pt"
        inner = {f"model.{k}": v for k, v in state.items()} | {"loss_fn.pos_weight": torch.ones(1)}
        torch.save({"state_dict": inner, "epoch": 7, "global_step": 70}, path)
    else:
        path = tmp_path / "w.pth"
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    model = load_user_model(f"timm:{TINY_CNN}", path, CLASSES, input_size=48, device="cpu")
    card = model.card
    assert (
        card is not None
        and card.framework == "timm"
        and card.parameters == sum(p.numel() for p in net.parameters())
    )
    assert model.input_size == (48, 48) and card.input_from.startswith("your setting")
    assert (
        card.mean == (0.485, 0.456, 0.406) and card.normalisation_from == f"timm's data config for {TINY_CNN}"
    )
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(model.module(x), reference(net, x, card.mean, card.std))
    notes = " ".join(card.notes)
    expected = {
        "safetensors": [],
        "lightning": ["'state_dict' entry", "prefix 'model.'", "ignored 1 entries", "loss_fn.pos_weight"],
        "dataparallel": ["'model' entry", "prefix 'module.'"],
    }[layout]
    assert all(part in notes for part in expected), notes
    assert not card.notes if layout == "safetensors" else card.notes
    assert card.gradcam_how.startswith("the last convolutional block")


def test_timm_preprocessing_comes_from_its_data_config(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(tiny_net(TINY_CNN).state_dict(), path)
    model = load_user_model(f"timm:{TINY_CNN}", path, CLASSES, device="cpu")
    cfg = timm.data.resolve_model_data_config(timm.create_model(TINY_CNN, num_classes=3))
    assert model.input_size == tuple(cfg["input_size"][1:])
    assert model.preprocess.interpolation == cfg["interpolation"]
    assert model.preprocess.resize == round(cfg["input_size"][-1] / cfg["crop_pct"])
    assert model.card is not None and model.card.std == tuple(cfg["std"])


def test_tiny_vit_is_bit_identical_and_gets_a_token_grid_gradcam_layer(tmp_path: Path) -> None:
    net = tiny_net(TINY_VIT)
    path = tmp_path / "vit.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}}, path)
    model = load_user_model(f"timm:{TINY_VIT}", path, CLASSES, device="cpu")
    card = model.card
    assert card is not None and model.input_size == (32, 32)  # the architecture's, not the 224 of its config
    assert card.gradcam_layer.endswith("blocks.1.tap") and "4×4 grid" in card.gradcam_how
    assert "1 class/register token(s) dropped" in card.gradcam_how
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.module(x), reference(net, x, card.mean, card.std))
    seen = []
    handle = model.gradcam_layer.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    try:
        cam = LayerGradCam(model.module, model.gradcam_layer).attribute(x.requires_grad_(), target=1)
    finally:
        handle.remove()
    assert seen == [(3, 32, 4, 4)] and cam.shape == (3, 1, 4, 4) and cam.abs().sum() > 0
    result = pgd(model.module, x.detach(), torch.tensor([0, 1, 2]), eps=4 / 255, step_size=1 / 255, steps=3)
    assert (result.delta.abs() <= 4 / 255 + 1e-6).all()
    assert all(not p.requires_grad for p in model.module.parameters()) and not model.module.training


def test_swin_channels_last_stage_is_read_as_nchw(tmp_path: Path) -> None:
    net = tiny_net(TINY_SWIN)
    save_file(net.state_dict(), tmp_path / "swin.safetensors")
    model = load_user_model(f"timm:{TINY_SWIN}", tmp_path / "swin.safetensors", CLASSES, device="cpu")
    assert model.card is not None and model.card.gradcam_layer.endswith("layers.3.tap")
    assert "2×2 channels-last map read as NCHW" in model.card.gradcam_how
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.module(x), reference(net, x, model.card.mean, model.card.std))
    cam = LayerGradCam(model.module, model.gradcam_layer).attribute(x.requires_grad_(), target=0)
    assert cam.shape == (2, 1, 2, 2)


def test_a_real_timm_vit_name_built_for_a_smaller_input(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2, img_size=32).eval()
    save_file(net.state_dict(), tmp_path / "vit.safetensors")
    model = load_user_model(
        "timm:vit_tiny_patch16_224", tmp_path / "vit.safetensors", ["no", "yes"], input_size=32, device="cpu"
    )
    assert model.input_size == (32, 32) and model.card is not None
    assert "2×2 grid" in model.card.gradcam_how and model.card.mean == (0.5, 0.5, 0.5)


def test_mismatched_weights_name_the_first_keys_and_shapes(tmp_path: Path) -> None:
    save_file(tiny_net(TINY_CNN, num_classes=5).state_dict(), tmp_path / "five.safetensors")
    with pytest.raises(ModelError, match=r"fc.weight is \(5, 16\) in the file but \(3, 16\)"):
        load_user_model(f"timm:{TINY_CNN}", tmp_path / "five.safetensors", CLASSES)
    with pytest.raises(ModelError, match=r"missing, first .*unexpected, first "):
        load_user_model(f"timm:{TINY_VIT}", tmp_path / "five.safetensors", [str(i) for i in range(5)])
    with pytest.raises(ModelError, match="timm has no architecture 'resnet_nope'"):
        load_user_model("timm:resnet_nope", tmp_path / "five.safetensors", CLASSES)


def test_unwrapping_is_said_and_only_done_when_it_helps() -> None:
    t = torch.zeros(1)
    state, notes = unwrap_state_dict({"model": {"module.model.a": t, "module.model.b": t}}, {"a", "b"})
    assert set(state) == {"a", "b"}
    assert notes == (
        "took the weights from the file's 'model' entry",
        "removed the prefix 'module.model.' from 2 names",
    )
    state, notes = unwrap_state_dict({"model.a": t}, {"model.a"})  # a network with a `model` submodule
    assert set(state) == {"model.a"} and notes == ()


def test_safetensors_whose_header_lies_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(tiny_net(TINY_CNN).state_dict(), path)
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"] = [0, 10**12]  # claims a terabyte the file does not have
    new = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(new)) + new + data[8 + n :])
    with pytest.raises(ModelError, match="not a valid .safetensors file"):
        load_user_model(f"timm:{TINY_CNN}", path, CLASSES)


@pytest.mark.parametrize("dynamic", [True, False])
def test_onnx_export_loads_and_agrees_with_onnxruntime(tmp_path: Path, dynamic: bool) -> None:
    import onnxruntime as ort

    net = tiny_net(TINY_CNN)
    path = export_onnx(net, tmp_path / "net.onnx", dynamic=dynamic)
    model = load_user_model(None, path, CLASSES, device="cpu")
    card = model.card
    assert card is not None and card.framework == "onnx" and model.input_size == (32, 32)
    assert card.onnx_max_difference is not None and card.onnx_max_difference < 1e-5
    assert card.input_from == "the ONNX file's input shape"
    assert card.gradcam_layer.endswith("Relu")  # the end of the last block, not a shortcut's conv
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor(card.mean).view(1, 3, 1, 1), torch.tensor(card.std).view(1, 3, 1, 1)
    normalised = ((x - mean) / std).numpy()
    expected = np.concatenate([session.run(None, {"x": normalised[i : i + 1]})[0] for i in range(2)])
    with torch.no_grad():
        got = model.module(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    x.requires_grad_()
    (grad,) = torch.autograd.grad(model.module(x)[:, 0].sum(), x)
    assert grad.abs().sum() > 0


def onnx_graph(node: onnx.NodeProto, *, initializers=(), opsets=(("", 17),)) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 1, 1])],
        initializer=list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def hostile_onnx(case: str, folder: Path) -> Path:
    path = folder / f"{case}.onnx"
    if case == "external-data":
        weight = helper.make_tensor("w", TensorProto.FLOAT, [3], [0.0, 0.0, 0.0])
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "/etc/passwd"), ("offset", "0"), ("length", "12")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        model = onnx_graph(helper.make_node("Add", ["x", "w"], ["y"]), initializers=[weight])
    elif case == "custom-domain":
        model = onnx_graph(
            helper.make_node("Payload", ["x"], ["y"], domain="com.example.evil"),
            opsets=(("", 17), ("com.example.evil", 1)),
        )
    elif case == "not-convertible":
        model = onnx_graph(helper.make_node("GlobalMaxPool", ["x"], ["y"]))
    elif case == "checker":
        model = onnx_graph(helper.make_node("Add", ["x", "undefined"], ["y"]))
    else:
        raise AssertionError(case)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("external-data", "outside the file \\(in '/etc/passwd'\\)"),
        ("custom-domain", "outside the standard ONNX set, e.g. Payload \\(com.example.evil\\)"),
        ("not-convertible", "do not convert to PyTorch: GlobalMaxPool \\(opset 17\\)"),
        ("checker", "fails the ONNX checker"),
    ],
)
def test_hostile_onnx_files_are_refused_with_a_message(tmp_path: Path, case: str, message: str) -> None:
    path = hostile_onnx(case, tmp_path)
    with pytest.raises(ModelError, match=message):
        load_user_model(None, path, CLASSES)


def test_truncated_oversized_and_disagreeing_onnx_are_refused(tmp_path: Path, monkeypatch) -> None:
    path = export_onnx(tiny_net(TINY_CNN), tmp_path / "net.onnx")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match="cut.onnx is not a readable ONNX file"):
        load_user_model(None, cut, CLASSES)
    with pytest.raises(ModelError, match="ONNX file carries its own architecture"):
        load_user_model("resnet18", path, CLASSES)
    monkeypatch.setattr(onnx_models, "MAX_ONNX_NODES", 10)
    with pytest.raises(ModelError, match="operators; the limit is 10"):
        load_user_model(None, path, CLASSES)
    monkeypatch.undo()
    monkeypatch.setattr(own_models, "onnxruntime_difference", lambda *a, **k: 0.02)
    with pytest.raises(ModelError, match="largest difference of 2.0e-02 .* above 1e-03"):
        load_user_model(None, path, CLASSES)


def test_a_newer_opset_is_rewritten_when_it_can_be_and_named_when_not(tmp_path: Path) -> None:
    cnn = export_onnx(tiny_net(TINY_CNN), tmp_path / "cnn20.onnx", opset=20)
    model = load_user_model(None, cnn, CLASSES, device="cpu")
    assert model.card is not None and model.card.onnx_max_difference < 1e-5
    assert "rewritten from opset 20 to 17" in " ".join(model.card.notes)
    vit = export_onnx(tiny_net(TINY_VIT), tmp_path / "vit20.onnx", opset=20)
    with pytest.raises(ModelError, match=r"do not convert to PyTorch: .*\(opset 20\).* opset_version=17"):
        load_user_model(None, vit, CLASSES)
