"""DICOM and 16-bit uploads in the sidebar: what was done is said, the window and the frame can be
changed, nothing of the header stays in the session, hostile files give a message; a grey network
loaded on page 5 shows its one channel and classifies the scan."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from advexp_core.data.imaging import decode_image
from advexp_ui.images import read_upload
from advexp_ui.setup import HEADER_NOTE
from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label, submit
from tests.core.test_dicom import identified, identifier_bytes, make_dicom, png16, shipped
from tests.core.test_grey_networks import grey_timm
from tests.core.test_own_models import TINY_CNN


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    return at.sidebar.file_uploader[0].set_value((name, data, "application/dicom")).run()


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.sidebar.caption]


def blobs(value: Any, seen: set[int] | None = None) -> list[bytes]:
    """Every str and bytes reachable from a session-state value (dataclasses, containers)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, io.BytesIO):  # an uploaded file
        return [value.getvalue()]
    if isinstance(value, str):
        return [value.encode()]
    if isinstance(value, dict):
        return [b for k, v in value.items() for b in blobs(k, seen) + blobs(v, seen)]
    if isinstance(value, list | tuple | set | frozenset):
        return [b for v in value for b in blobs(v, seen)]
    if hasattr(value, "__dict__") or hasattr(value, "__dataclass_fields__"):
        fields = getattr(value, "__dataclass_fields__", None) or vars(value)
        return [b for name in fields for b in blobs(getattr(value, name, None), seen)]
    return []


def test_a_dicom_upload_says_what_was_done_and_keeps_no_header(open_page) -> None:
    at = upload(open_page("app.py"), "scan_0001.dcm", identified())
    assert_clean(at)
    choice = at.session_state["advexp_image"]
    assert (choice.name, choice.source) == ("scan_0001.dcm", "upload")
    said = captions(at)
    assert any(
        c.startswith("CT, window ") and c.endswith("HU from the pixel range, frame 1 of 1") for c in said
    )
    assert HEADER_NOTE in said
    kept = blobs(at.session_state.to_dict())  # the session's own keys and every widget's value
    assert kept and any(b"DICM" in b for b in kept)  # the header-free file is kept, to re-window
    for value in identifier_bytes():
        assert not any(value in b for b in kept), value
    assert at.sidebar.file_uploader[0].value is None  # a fresh uploader: the upload is dropped


def test_window_presets_and_a_custom_window(open_page) -> None:
    at = upload(open_page("app.py"), "ct.dcm", shipped("CT_small.dcm").read_bytes())
    first = at.session_state["advexp_image"].data
    window = at.sidebar.selectbox(key="_w_window")
    assert "CT lung (-600/1500 HU)" in window.options and "Lowest to highest value" in window.options
    window.set_value("CT lung (-600/1500 HU)").run()
    assert_clean(at)
    assert "CT, window -600/1500 HU from the preset CT lung, frame 1 of 1" in captions(at)
    assert at.session_state["advexp_image"].data != first
    at.sidebar.selectbox(key="_w_window").set_value("Custom…").run()
    assert "CT, window -600/1500 HU from your setting, frame 1 of 1" in captions(at)
    by_label(at.sidebar.number_input, "Centre").set_value(50.0).run()
    by_label(at.sidebar.number_input, "Width").set_value(350.0).run()
    assert_clean(at)
    assert "CT, window 50/350 HU from your setting, frame 1 of 1" in captions(at)
    at.switch_page("pages/4_Compare_explainers.py").run()  # the choice holds on every page
    assert_clean(at)
    assert "CT, window 50/350 HU from your setting, frame 1 of 1" in captions(at)


def test_frames_of_a_multi_frame_file(open_page) -> None:
    frames = np.stack([np.full((16, 16), 100 * k) for k in range(3)])
    frames[:, 0, 0] = -10
    at = upload(open_page("app.py"), "cine.dcm", make_dicom(frames, modality="XA"))
    assert any(c.endswith("frame 1 of 3") for c in captions(at))
    by_label(at.sidebar.number_input, "Frame (1 to 3)").set_value(3).run()
    assert_clean(at)
    assert any(c.startswith("XA, window ") and c.endswith("frame 3 of 3") for c in captions(at))
    assert at.session_state["advexp_image"].scan.frame == 3


def test_a_sixteen_bit_png_gets_the_window_control(open_page) -> None:
    at = upload(open_page("app.py"), "xray.png", png16(np.arange(256).reshape(16, 16) * 10))
    assert "16-bit PNG, window 32767.5/65535 from the full 16-bit range" in captions(at)
    assert HEADER_NOTE not in captions(at)
    at.sidebar.selectbox(key="_w_window").set_value("Lowest to highest value").run()
    assert "16-bit PNG, window 1275/2550 from the pixel range" in captions(at)


def test_a_hostile_dicom_gives_a_message_and_keeps_the_image(open_page) -> None:
    ct = shipped("CT_small.dcm").read_bytes()
    at = open_page("app.py")
    for name, data, message in (
        ("cut.dcm", ct[: len(ct) // 2], "incomplete"),
        ("plan.dcm", shipped("rtplan.dcm").read_bytes(), "no pixel data"),
        ("fake.dcm", b"\0" * 128 + b"DICM" + bytes(500), "damaged"),
    ):
        upload(at, name, data)
        assert not at.exception
        assert any(message in e.value and name in e.value for e in at.sidebar.error), [
            e.value for e in at.sidebar.error
        ]
        assert at.session_state["advexp_image"].name == "cifar10_test_0"


def test_a_grey_network_on_page_5_shows_its_channel_and_reads_the_scan(woods_dir) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
    upload(at, "scan.dcm", identified())
    at.switch_page("pages/5_Your_own_model.py").run()
    by_label(at.radio, "Where the model comes from").set_value("timm")
    at.run()
    by_label(at.text_input, "Search timm").set_value("advexp_test_cnn").run()
    by_label(at.selectbox, "timm architecture").set_value(TINY_CNN)
    weights = save({k: v.contiguous() for k, v in grey_timm().state_dict().items()})
    by_label(at.file_uploader, "Weights").set_value(("grey.safetensors", weights, "application/octet-stream"))
    by_label(at.checkbox, "Set the input size and normalisation myself").check()
    by_label(at.number_input, "Input size").set_value(48)
    by_label(at.text_input, "Normalisation mean").set_value("0.5")
    by_label(at.text_input, "Normalisation std").set_value("0.25")
    by_label(at.text_area, "Class names").set_value("normal\nabnormal")
    submit(at, "own-model-form", "Load my model")
    assert_clean(at)
    card = " ".join(m.value for m in at.markdown)
    assert "| Channels | 1 (grey)" in card and "mean (0.5), std (0.25)" in card
    table = at.dataframe[-1].value
    assert {name.split(" (")[0] for name in table["class"]} == {"normal", "abnormal"}


def test_every_upload_check_drops_the_dicom_header() -> None:
    """`read_upload` (the audit page's uploads too) returns a DICOM file without its identifiers."""
    raw = identified()
    data, image = read_upload("scan.dcm", len(raw), lambda: raw)
    assert all(value not in data for value in identifier_bytes())
    assert image.shape == (3, 128, 128) and (image == decode_image(raw)).all()
