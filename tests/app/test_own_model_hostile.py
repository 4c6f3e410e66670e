"""Page 5 against hostile models and settings: every refusal is a specific in-page message, and
the user's text (class names, file and tensor names) is shown as text, never run as Markdown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label, submit
from tests.app.test_own_model_page import PAGE, fill_form, tiny_weights
from tests.core.test_hostile_models import library_case, nan_onnx
from tests.core.test_own_models import TINY_CNN, export_onnx, tiny_net

IMAGE_LINK = "![t](http://127.0.0.1:9/p.png)"
UNESCAPED = re.compile(r"(?<!\\)(!\[|\]\(|:red\[)")  # an image, a link target, a Streamlit colour


def shown_text(at: AppTest) -> list[str]:
    """Every element whose body Streamlit renders as Markdown."""
    kinds = (at.markdown, at.caption, at.success, at.error, at.warning, at.info, at.sidebar.markdown)
    return [str(element.value) for kind in kinds for element in kind]


def assert_no_markdown_from_the_user(at: AppTest) -> None:
    found = [text for text in shown_text(at) if UNESCAPED.search(text)]
    assert not found, found


def onnx_form(at: AppTest, name: str, data: bytes, classes: str = "a\nb", size: int | None = None) -> AppTest:
    """Choose ONNX, fill the form (ticking "set … myself" with ``size``) and submit it."""
    at.radio(key="own-source").set_value("onnx").run()
    by_label(at.file_uploader, "Model").set_value((name, data, "application/octet-stream"))
    by_label(at.text_area, "Class names").set_value(classes)
    if size is not None:
        by_label(at.checkbox, "Set the input size and normalisation myself").check()
        by_label(at.number_input, "Input size").set_value(size)
    return submit(at, "own-model-form", "Load my model")


def test_markdown_in_class_and_file_names_is_shown_as_text(woods_dir) -> None:
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    classes = f"{IMAGE_LINK}\n[click](http://127.0.0.1:9/x)\n:red[alarm] a|b"
    fill_form(at, "![t](x.png).safetensors", tiny_weights(), classes)
    assert_clean(at)
    card = " ".join(m.value for m in at.markdown)
    assert r"\!\[t\]\(http\://127\.0\.0\.1\:9/p\.png\)" in card and r"\:red\[alarm\] a\|b" in card
    assert_no_markdown_from_the_user(at)


def test_markdown_in_a_files_tensor_names_is_shown_as_text(woods_dir) -> None:
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v3_small(weights=None, num_classes=3)
    data = save({**{k: v.contiguous() for k, v in net.state_dict().items()}, IMAGE_LINK: torch.zeros(3)})
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    fill_form(at, "odd.safetensors", data, "a\nb\nc")
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "does not match the architecture" in message and r"\!\[t\]" in message
    assert_no_markdown_from_the_user(at)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Normalisation mean", "nan, 0.5, 0.5", "Every mean value must be a finite number"),
        ("Normalisation mean", "1e300, 0, 0", "Every mean value must be a finite number"),
        ("Normalisation std", "inf, inf, inf", "Every std value must be a finite number"),
        ("Normalisation std", "1e-50, 1, 1", "Every std value must be a finite number"),
        ("Normalisation std", "1, 2", "The std must be three numbers"),
    ],
)
def test_absurd_normalisation_gives_an_in_page_message(
    woods_dir, field: str, value: str, message: str
) -> None:
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    by_label(at.text_input, field).set_value(value)
    fill_form(at, "w.safetensors", tiny_weights())
    assert not at.exception
    errors = " ".join(e.value for e in at.error).replace("\\", "")
    assert message in errors, errors
    assert "advexp_user_model" not in at.session_state


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("output-type", "could not be loaded: onnxruntime raised Fail"),
        ("zero-height", "has an empty dimension"),
        ("int64", "input is of type int64"),
        ("nan", "gives NaN or infinite outputs"),
    ],
)
def test_onnx_files_the_libraries_refuse_give_the_specific_message(
    woods_dir, tmp_path: Path, case: str, message: str
) -> None:
    path = nan_onnx(tmp_path / "nan.onnx") if case == "nan" else library_case(case, tmp_path)
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    onnx_form(at, path.name, path.read_bytes())
    assert not at.exception
    errors = " ".join(e.value for e in at.error).replace("\\", "")
    assert message in errors and path.name in errors, errors
    assert "Something went wrong" not in errors


def test_setting_the_size_myself_keeps_an_onnx_files_fixed_size(woods_dir, tmp_path: Path) -> None:
    path = export_onnx(tiny_net(TINY_CNN), tmp_path / "net.onnx", dynamic=False)
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S).run()
    onnx_form(at, "net.onnx", path.read_bytes(), "a\nb\nc", size=64)
    assert "A file that fixes its input size keeps it" in " ".join(c.value for c in at.caption)
    assert_clean(at)
    card = " ".join(m.value for m in at.markdown)
    assert "a 32×32 px centre crop" in card and "so your 64 px was not used" in card
    assert "from your setting" in card  # the normalisation the box also sets
