"""Page 5, your own model: safe loading, then the model is used on the other pages."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label, downloads, submit
from tests.core.test_own_models import TINY_CNN, TINY_VIT, export_onnx, hostile_onnx, tiny_net

PAGE = "pages/5_Your_own_model.py"


def tiny_weights(num_classes: int = 3) -> bytes:
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v3_small(weights=None, num_classes=num_classes)
    return save({k: v.contiguous() for k, v in net.state_dict().items()})


def fill_form(at: AppTest, name: str, data: bytes, classes: str = "normal\nbenign\nmalignant") -> AppTest:
    by_label(at.file_uploader, "Weights").set_value((name, data, "application/octet-stream"))
    by_label(at.selectbox, "Architecture").set_value("mobilenet_v3_small")
    by_label(at.checkbox, "Set the input size and normalisation myself").check()
    by_label(at.number_input, "Input size").set_value(64)
    by_label(at.text_area, "Class names").set_value(classes)
    return submit(at, "own-model-form", "Load my model")


def leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("advexp-weights-*")}


def test_own_weights_load_and_serve_the_other_pages(woods_dir) -> None:
    before = leftovers()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    at.switch_page(PAGE).run()
    fill_form(at, "lesions.safetensors", tiny_weights())
    assert_clean(at)
    assert any("Loaded" in s.value for s in at.success)
    model_id = at.session_state["advexp_model_id"]
    assert model_id.startswith("user:")
    assert at.selectbox(key="_w_model").value == model_id
    assert leftovers() == before  # the uploaded bytes' temporary file is gone
    at.switch_page("pages/4_Compare_explainers.py").run()
    by_label(at.multiselect, "Methods").set_value(["gradcam", "gradient"])
    submit(at, "explainers-form", "Compare")
    assert_clean(at)
    assert "explainers.png" in downloads(at)
    assert at.session_state["advexp_model_id"] == model_id


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("case", ["code", "wrong-architecture", "truncated", "too-few-classes"])
def test_bad_weights_give_a_message_and_run_nothing(woods_dir, tmp_path, case) -> None:
    marker = tmp_path / "payload-ran"
    if case == "code":
        path = tmp_path / "evil.pt"
        torch.save({"state_dict": _Payload(marker)}, path)
        name, data, classes = "evil.pt", path.read_bytes(), "a\nb\nc"
    elif case == "wrong-architecture":
        name, data, classes = "other.safetensors", save({"fc.weight": torch.zeros(3, 4)}), "a\nb\nc"
    elif case == "truncated":
        name, data, classes = "cut.safetensors", tiny_weights()[:500], "a\nb\nc"
    else:
        name, data, classes = "ok.safetensors", tiny_weights(), "only-one"
    before = leftovers()
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    fill_form(at, name, data, classes)
    assert not at.exception
    assert at.error and all(e.value for e in at.error)
    assert not marker.exists()  # the payload never ran
    assert leftovers() == before
    assert "advexp_user_model" not in at.session_state


def test_a_timm_vit_found_by_search_gets_a_model_card_and_top_5(woods_dir) -> None:
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    at.radio(key="own-source").set_value("timm").run()
    by_label(at.text_input, "Search timm").set_value("vit_tiny_patch16_2").run()
    assert at.selectbox(key="own-timm-arch").options == ["vit_tiny_patch16_224"]
    shown = " ".join(c.value for c in at.caption)
    assert "timm's data config: 224 px (resize 249), bicubic, mean (0.5, 0.5, 0.5)" in shown
    by_label(at.text_input, "Search timm").set_value("advexp_test_v").run()
    assert at.selectbox(key="own-timm-arch").options == [TINY_VIT]
    data = save({k: v.contiguous() for k, v in tiny_net(TINY_VIT).state_dict().items()})
    by_label(at.file_uploader, "Weights").set_value(("vit.safetensors", data, "application/octet-stream"))
    by_label(at.text_area, "Class names").set_value("normal\nbenign\nmalignant")
    submit(at, "own-model-form", "Load my model")
    assert_clean(at)
    card = " ".join(m.value for m in at.markdown)
    assert f"{TINY_VIT} (timm)" in card and "32,323" in card
    assert "a 32×32 px centre crop, bicubic" in card and "built for 32 px" in card
    assert "mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5) — from timm's data config" in card
    assert "`net.blocks.1.tap`: the tokens entering the last transformer block" in card
    assert "Top 5 on cat" in card and len(at.dataframe[0].value) == 3
    assert at.session_state["advexp_model_id"].startswith("user:")


def test_an_onnx_file_loads_with_its_check_against_onnx_runtime(woods_dir, tmp_path) -> None:
    path = export_onnx(tiny_net(TINY_CNN), tmp_path / "net.onnx")
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    at.radio(key="own-source").set_value("onnx").run()
    by_label(at.file_uploader, "Model").set_value(("net.onnx", path.read_bytes(), "application/octet-stream"))
    by_label(at.text_area, "Class names").set_value("a\nb\nc")
    submit(at, "own-model-form", "Load my model")
    assert_clean(at)
    card = " ".join(m.value for m in at.markdown)
    assert "Check against ONNX Runtime | largest relative difference" in card
    assert "from the ONNX file's input shape" in card and "from ImageNet's" in card


@pytest.mark.parametrize("case", ["external-data", "custom-domain", "truncated"])
def test_hostile_onnx_uploads_are_refused_with_a_message(woods_dir, tmp_path, case) -> None:
    if case == "truncated":
        data = export_onnx(tiny_net(TINY_CNN), tmp_path / "net.onnx").read_bytes()[:300]
    else:
        data = hostile_onnx(case, tmp_path).read_bytes()
    before = leftovers()
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    at.radio(key="own-source").set_value("onnx").run()
    by_label(at.file_uploader, "Model").set_value((f"{case}.onnx", data, "application/octet-stream"))
    by_label(at.text_area, "Class names").set_value("a\nb\nc")
    submit(at, "own-model-form", "Load my model")
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    expected = {
        "external-data": "/etc/passwd",
        "custom-domain": "outside the standard",
        "truncated": "not a readable",
    }
    assert expected[case] in message, message
    assert "advexp_user_model" not in at.session_state
    assert leftovers() == before
