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

PAGE = "pages/5_Your_own_model.py"


def tiny_weights(num_classes: int = 3) -> bytes:
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v3_small(weights=None, num_classes=num_classes)
    return save({k: v.contiguous() for k, v in net.state_dict().items()})


def fill_form(at: AppTest, name: str, data: bytes, classes: str = "normal\nbenign\nmalignant") -> AppTest:
    by_label(at.file_uploader, "Weights").set_value((name, data, "application/octet-stream"))
    by_label(at.selectbox, "Architecture").set_value("mobilenet_v3_small")
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
