"""Model zoo: offline entries load and predict; weights are found, converted and refused safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.networks.checkpoints import CheckpointError, download_to_cache, load_checkpoint, sha256_file
from advexp_core.networks.registry import list_models, load_model, load_user_model
from advexp_core.networks.zoo import ModelError, convert_robustness_state_dict

ROOT = Path(__file__).resolve().parents[2]


def top1(model, image: torch.Tensor) -> str:
    with torch.no_grad():
        logits = model.module(prepare_image(image, model)[None].to(model.device))
    return model.class_names[int(logits.argmax())]


def assert_frozen(model) -> None:
    assert not model.module.training
    assert all(not p.requires_grad for p in model.module.parameters())


def test_default_model_recognises_the_gallery(default_model, gallery_dir: Path) -> None:
    assert_frozen(default_model)
    assert default_model.input_size == (224, 224) and len(default_model.class_names) == 1000
    cat = top1(default_model, decode_image((gallery_dir / "cat.jpg").read_bytes()))
    assert cat in {"tiger cat", "tabby", "Egyptian cat", "Persian cat", "Siamese cat"}
    coffee = top1(default_model, decode_image((gallery_dir / "coffee.jpg").read_bytes()))
    assert coffee in {"espresso", "cup", "coffee mug"}


def test_gallery_labels_match_its_index(default_model, gallery_dir: Path) -> None:
    import json

    index = json.loads((gallery_dir / "gallery.json").read_text())
    for entry in index.values():
        image = decode_image((gallery_dir / entry["file"]).read_bytes())
        assert top1(default_model, image) == entry["imagenet_label"]


@pytest.mark.parametrize("variant", ["standard", "adv-train", "all", "robust"])
def test_paper_networks_load_and_classify(woods_dir: Path, cifar_images: dict, variant: str) -> None:
    model = load_model(f"woods2019-cifar10-{variant}", device="cpu")
    assert_frozen(model)
    assert model.input_size == (32, 32) and model.robust == (variant in ("all", "robust"))
    batch = torch.stack([img for img, _ in cifar_images.values()])
    with torch.no_grad():
        pred = model.module(batch).argmax(1).tolist()
    labels = [label for _, label in cifar_images.values()]
    assert sum(p == y for p, y in zip(pred, labels, strict=True)) >= 3
    car = cifar_images["cifar10_test_9.png"][0]
    if variant == "standard":
        assert top1(model, car) == "automobile"


def test_paper_checkpoints_do_not_load_without_the_placeholder(woods_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(woods_dir / "resnet44-standard.pt")


def test_list_models_reports_offline_availability(woods_dir: Path) -> None:
    infos = {info.model_id: info for info in list_models()}
    assert infos["efficientnet-lite0-imagenet"].available_offline
    assert infos["woods2019-cifar10-standard"].available_offline
    assert not infos["torchvision-resnet18"].available_offline


def test_every_offline_entry_loads_and_predicts(woods_dir: Path) -> None:
    for info in list_models():
        if info.available_offline and info.model_id != "efficientnet-lite0-imagenet":
            model = load_model(info.model_id, device="cpu")
            with torch.no_grad():
                out = model.module(torch.rand(2, 3, *model.input_size))
            assert out.shape == (2, len(model.class_names))


def test_torchvision_offline_error_names_the_file(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ADVEXP_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("ADVEXP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ModelError) as info:
        load_model("torchvision-resnet18")
    assert "resnet18-f37072fd.pth" in str(info.value) and str(tmp_path) in str(info.value)


def test_torchvision_weights_are_used_from_the_weights_dir(monkeypatch, tmp_path: Path) -> None:
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    monkeypatch.setenv("ADVEXP_WEIGHTS_DIR", str(tmp_path))
    model = load_model("torchvision-resnet18", device="cpu")
    x = torch.rand(1, 3, 224, 224)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(model.module(x), net((x - mean) / std), atol=1e-5)
    assert model.gradcam_layer is model.module.net.layer4


def test_robustness_layout_converts_to_a_plain_resnet50(tmp_path: Path) -> None:
    import torchvision

    net = torchvision.models.resnet50(weights=None).eval()
    state = net.state_dict()
    layout = {f"module.model.{k}": v for k, v in state.items()}
    layout.update({f"module.attacker.model.{k}": v for k, v in state.items()})
    layout["module.normalizer.new_mean"] = torch.zeros(3, 1, 1)
    layout["module.normalizer.new_std"] = torch.ones(3, 1, 1)
    torch.save({"model": layout, "epoch": 90}, tmp_path / "imagenet_l2_3_0.pt")
    converted = convert_robustness_state_dict(load_checkpoint(tmp_path / "imagenet_l2_3_0.pt"))
    assert set(converted) == set(state)
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_user_model_safetensors_and_pt(tmp_path: Path) -> None:
    import torchvision
    from safetensors.torch import save_file

    net = torchvision.models.resnet18(weights=None, num_classes=3)
    save_file(net.state_dict(), tmp_path / "w.safetensors")
    torch.save(net.state_dict(), tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        model = load_user_model("resnet18", tmp_path / name, ["a", "b", "c"], input_size=64, device="cpu")
        assert model.class_names == ("a", "b", "c") and model.input_size == (64, 64)
        with torch.no_grad():
            assert model.module(torch.rand(2, 3, 64, 64)).shape == (2, 3)


def test_single_logit_model_becomes_two_logits(tmp_path: Path) -> None:
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=1).eval()
    torch.save(net.state_dict(), tmp_path / "binary.pt")
    model = load_user_model(
        "resnet18", tmp_path / "binary.pt", ["healthy", "disease"], single_logit=True, device="cpu"
    )
    with torch.no_grad():
        out = model.module(torch.rand(2, 3, 224, 224))
    assert out.shape == (2, 2) and torch.equal(out[:, 0], torch.zeros(2))


def test_wrong_architecture_names_the_mismatch(tmp_path: Path) -> None:
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None, num_classes=5).state_dict(), tmp_path / "five.pt")
    with pytest.raises(ModelError, match="fc.weight"):
        load_user_model("resnet18", tmp_path / "five.pt", ["a", "b", "c"])
    with pytest.raises(ModelError, match="does not match"):
        load_user_model("resnet34", tmp_path / "five.pt", [str(i) for i in range(5)])


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    import torchvision

    state = torchvision.models.resnet18(weights=None, num_classes=2).state_dict()
    state["fc.bias"] = torch.tensor([float("nan"), 0.0])
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(ModelError, match="NaN"):
        load_user_model("resnet18", tmp_path / "nan.pt", ["a", "b"])


class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    torch.save({"fc.weight": torch.zeros(2, 2), "evil": Payload(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="could run code"):
        load_user_model("resnet18", tmp_path / "evil.pt", ["a", "b"])
    assert not marker.exists()


def test_download_checks_sha256_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    source = tmp_path / "remote.bin"
    source.write_bytes(b"weights" * 1000)
    dest = tmp_path / "cache" / "w.bin"
    with pytest.raises(CheckpointError, match="corrupt"):
        download_to_cache(source.as_uri(), "0" * 64, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    got = download_to_cache(source.as_uri(), sha256_file(source), dest)
    assert got == dest and dest.read_bytes() == source.read_bytes()


def test_paper_network_downloads_into_the_cache(monkeypatch, tmp_path: Path, woods_dir: Path) -> None:
    """The real download path, served from a local file:// mirror of the authors' repository."""
    import advexp_core.networks.zoo as zoo

    monkeypatch.delenv("ADVEXP_WEIGHTS_DIR")
    monkeypatch.delenv("ADVEXP_OFFLINE")
    monkeypatch.setenv("ADVEXP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(zoo, "WOODS_URL", woods_dir.as_uri() + "/{}")
    model = load_model("woods2019-cifar10-standard", device="cpu")
    assert (tmp_path / "cache" / "resnet44-standard.pt").is_file()
    assert model.class_names[1] == "automobile"


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match="efficientnet-lite0-imagenet"):
        load_model("no-such-model")


def test_models_share_no_hooks_or_grads(default_model) -> None:
    assert isinstance(default_model.module, nn.Module)
    assert not any(m._forward_hooks for m in default_model.module.modules())
