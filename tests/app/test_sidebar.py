"""The entry page and the shared sidebar: model choice, gallery, uploads, persistence across pages."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from advexp_core.data.imaging import MAX_IMAGE_BYTES
from advexp_core.networks.registry import DEFAULT_MODEL_ID
from tests.app.conftest import CIFAR_ROBUST, ROOT, TIMEOUT_S, assert_clean


def png_bytes(size: tuple[int, int] = (40, 30), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_entry_page_classifies_with_the_offline_default_model(woods_dir) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    assert_clean(at)
    chooser = at.selectbox(key="_w_model")
    assert chooser.value == DEFAULT_MODEL_ID
    options = chooser.options
    # Grouped: the offline default first, the paper's networks before the digits networks.
    assert options[0].startswith("EfficientNet-Lite0")
    paper = [i for i, o in enumerate(options) if "Woods et al. 2019" in o]
    digits = [i for i, o in enumerate(options) if o.startswith("Digits")]
    assert paper and digits and max(paper) < min(digits)
    table = at.dataframe[-1].value  # the chosen network's predictions on the default gallery image
    assert "tiger cat" in " ".join(table["class"]) or len(table) == 5


def test_gallery_pick_and_upload_change_the_image(open_page) -> None:
    at = open_page("app.py", image="cifar10_test_5")
    assert at.session_state["advexp_image"].name == "cifar10_test_5"
    at.sidebar.file_uploader[0].set_value(("red.png", png_bytes(), "image/png")).run()
    assert_clean(at)
    choice = at.session_state["advexp_image"]
    assert (choice.name, choice.source) == ("red.png", "upload")


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.png", b"this is text, not an image", "not an image"),
        ("cut.png", png_bytes()[:60], "damaged or incomplete"),
        ("empty.png", b"", "empty"),
    ],
)
def test_a_bad_upload_shows_a_message_and_keeps_the_image(open_page, name, data, message) -> None:
    at = open_page("app.py")
    at.sidebar.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not at.exception
    assert any(message in e.value for e in at.sidebar.error), [e.value for e in at.sidebar.error]
    assert at.session_state["advexp_image"].name == "cifar10_test_0"


def test_an_upload_over_the_limit_is_refused_before_decoding(open_page, monkeypatch) -> None:
    import advexp_ui.setup

    decoded: list[int] = []
    monkeypatch.setattr(advexp_ui.setup, "decode_image", lambda data: decoded.append(len(data)))
    at = open_page("app.py")
    at.sidebar.file_uploader[0].set_value(
        ("huge.png", b"\x89PNG" + bytes(MAX_IMAGE_BYTES), "image/png")
    ).run()
    assert not at.exception
    assert any("the limit is" in e.value for e in at.sidebar.error)
    assert decoded == []  # refused on its size alone
    assert at.session_state["advexp_image"].name == "cifar10_test_0"


def test_model_and_image_persist_across_pages(open_page) -> None:
    at = open_page("app.py", model=None, image="cifar10_test_2")
    at.selectbox(key="_w_model").set_value(CIFAR_ROBUST).run()
    assert_clean(at)
    for page in ("pages/3_Robustness.py", "pages/4_Compare_explainers.py", "app.py"):
        at.switch_page(page).run()
        assert_clean(at)
        assert at.selectbox(key="_w_model").value == CIFAR_ROBUST
        assert at.session_state["advexp_image"].name == "cifar10_test_2"
        assert at.selectbox(key="_w_gallery").value == "cifar10_test_2"
