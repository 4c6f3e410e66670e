"""Bad uploads in AppTest: each unreadable, oversized, ill-fitting, repeated or unmatched file is named
with its reason in place (images of other sizes are audited, each fitted to the network), and the rest of the page (settings, the Run button, the good images) stays
usable and runs. The same on the sidebar's image uploader, which every page shares."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import advexp_ui.images
from advexp_core.data.imaging import MAX_IMAGE_MB
from advexp_ui.views.audit import unique_names
from tests.app.conftest import ROOT, TIMEOUT_S, by_label, downloads, submit
from tests.app.test_audit_page import finish

SCRIPT = "pages/7_Audit_a_shortcut.py"
SIZE = (32, 32)  # the digits network's input: no resizing, a quick run


def png(size: tuple[int, int] = SIZE, colour: tuple[int, ...] = (200, 30, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def box_mask(size: tuple[int, int] = SIZE) -> bytes:
    """A mask PNG marking an 8×8 corner of an image of ``size``."""
    image = Image.new("L", size, 0)
    image.paste(255, (0, 0, 8, 8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bomb() -> bytes:
    """A small valid PNG whose header claims 30000×30000 pixels (CRC fixed, so only the size is wrong)."""
    data = bytearray(png((4, 4)))
    chunk = b"IHDR" + struct.pack(">II", 30000, 30000) + bytes(data[24:29])
    data[12:29] = chunk
    data[29:33] = struct.pack(">I", zlib.crc32(chunk))
    return bytes(data)


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32"/></svg>'
GOOD = ("good.png", png(), "image/png")


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / SCRIPT), default_timeout=TIMEOUT_S)
    at.session_state["advexp_model_id"] = "digits-standard"
    return at.run()


def _upload(
    files: list[tuple[str, bytes, str]], masks: list[tuple[str, bytes, str]] | None = None
) -> AppTest:
    at = _page()
    at.file_uploader(key="audit-files").set_value(files)
    if masks:
        at.file_uploader(key="audit-mask-files").set_value(masks)
    return at.run()


def _messages(at: AppTest) -> str:
    return " ".join(m.value for m in [*at.warning, *at.info, *at.error])


def _usable_and_runs(at: AppTest, names: tuple[str, ...]) -> None:
    """No exception; the settings and Run button are there; a quick run completes with these images."""
    assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="FormSubmitter:audit-form-Run the audit")
    by_label(at.multiselect, "Explainers").set_value(["gradient"])
    by_label(at.checkbox, "Adversarial explanation").uncheck()
    at = finish(submit(at, "audit-form", "Run the audit"))
    assert not at.exception, [e.value for e in at.exception]
    assert not at.main.error, [e.value for e in at.main.error]  # the sidebar may still name a bad file
    assert "audit-report.html" in downloads(at)
    assert {s.value for s in at.subheader} >= set(names)


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("x.png", b"", "empty"),
        ("drawing.png", SVG, "not an image we can read"),
        ("bomb.png", bomb(), "megapixels"),
        ("cut.png", png()[:60], "damaged or incomplete"),
    ],
)
def test_a_bad_image_is_named_and_left_out(name: str, data: bytes, reason: str) -> None:
    at = _upload([GOOD, (name, data, "image/png")])
    warning = " ".join(w.value for w in at.warning)
    assert f"{name}: " in warning and reason in warning, warning
    _usable_and_runs(at, ("good.png",))


def test_an_image_over_the_limit_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    decode = advexp_ui.images.decode_image

    def counting(data: bytes, **kwargs: int) -> object:
        decoded.append(len(data))
        return decode(data, **kwargs)

    monkeypatch.setattr(advexp_ui.images, "MAX_IMAGE_BYTES", 2_000_000)  # instead of allocating 150 MB
    monkeypatch.setattr(advexp_ui.images, "decode_image", counting)
    at = _upload([GOOD, ("big.png", b"\x89PNG" + bytes(2_000_100), "image/png")])
    assert "big.png: The file is 2.1 MB; the limit is 2 MB." in _messages(at)
    assert max(decoded) < 2_000_000  # refused on its length alone
    _usable_and_runs(at, ("good.png",))


def test_every_image_uploader_states_the_one_limit() -> None:
    at = _upload([GOOD])
    keys = ("audit-files", "audit-mask-files", "audit-art-image", "audit-art-mask", "_w_upload")
    assert {at.file_uploader(key=k).proto.max_upload_size_mb for k in keys} == {MAX_IMAGE_MB}


@pytest.mark.parametrize(
    ("mask", "reason"),
    [
        (("good.png", box_mask((10, 10)), "image/png"), "good.png: the mask is 10×10 but the image is 32×32"),
        (("good.png", b"", "image/png"), "good.png: The file is empty"),
        (("good.png", bomb(), "image/png"), "good.png: The image is too large"),
        (("other.png", box_mask(), "image/png"), "other.png: no image of this name"),
    ],
)
def test_a_mask_not_used_is_named(mask: tuple[str, bytes, str], reason: str) -> None:
    at = _upload([GOOD], [mask])
    assert reason in " ".join(w.value for w in at.warning), [w.value for w in at.warning]
    assert "good.png: nothing marked" in " ".join(c.value for c in at.caption)
    _usable_and_runs(at, ("good.png",))


def test_a_fitting_mask_marks_its_image() -> None:
    at = _upload(
        [GOOD, ("b.png", png(colour=(0, 90, 200)), "image/png")], [("good.png", box_mask(), "image/png")]
    )
    assert not at.warning, [w.value for w in at.warning]
    assert "good.png: artifact marked" in " ".join(c.value for c in at.caption)
    _usable_and_runs(at, ("good.png", "b.png"))


def test_images_of_several_sizes_are_all_audited() -> None:
    at = _upload([GOOD, ("wide.png", png((40, 30)), "image/png")])
    assert not at.warning, [w.value for w in at.warning]
    _usable_and_runs(at, ("good.png", "wide.png"))


def test_files_of_one_name_are_renamed_and_both_audited() -> None:
    at = _upload([("a.png", png(), "image/png"), ("a.png", png(colour=(0, 90, 200)), "image/png")])
    assert "a.png → a (2).png" in " ".join(i.value for i in at.info)
    _usable_and_runs(at, ("a.png", "a (2).png"))


def test_only_bad_files_ask_for_others() -> None:
    at = _upload([("x.png", b"", "image/png")])
    assert not at.exception
    assert "x.png: The file is empty" in _messages(at)
    assert "None of these files can be audited" in _messages(at)


@pytest.mark.parametrize("bad", [("empty.png", b"", "image/png"), ("art.png", bomb(), "image/png")])
def test_a_bad_artifact_upload_is_named_and_the_audit_still_runs(bad: tuple[str, bytes, str]) -> None:
    at = _upload([GOOD], [("good.png", box_mask(), "image/png")])
    at.selectbox(key="audit-paste").set_value("upload")
    at.file_uploader(key="audit-art-image").set_value(bad)
    at.file_uploader(key="audit-art-mask").set_value(("art-mask.png", box_mask(), "image/png"))
    at.run()
    errors = " ".join(e.value for e in at.error)
    assert f"No artifact is pasted: {bad[0]}: " in errors, errors
    at.file_uploader(key="audit-art-image").set_value(None)
    at.selectbox(key="audit-paste").set_value(None)
    _usable_and_runs(at.run(), ("good.png",))


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [("bomb.png", bomb(), "megapixels"), ("drawing.png", SVG, "not an image we can read")],
)
def test_a_bad_sidebar_upload_is_named_and_the_page_stays(name: str, data: bytes, reason: str) -> None:
    at = _page()
    before = at.session_state["advexp_image"].name
    at.sidebar.file_uploader[0].set_value((name, data, "image/png")).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.sidebar.error)
    assert f"{name}: " in errors and reason in errors, errors
    assert at.session_state["advexp_image"].name == before
    at.file_uploader(key="audit-files").set_value([GOOD]).run()
    _usable_and_runs(at, ("good.png",))


@pytest.mark.parametrize(
    ("names", "unique"),
    [
        (["a.png", "a.png", "a.png"], ["a.png", "a (2).png", "a (3).png"]),
        (["a.png", "a (2).png", "a.png"], ["a.png", "a (2).png", "a (3).png"]),
        (["scan", "scan"], ["scan", "scan (2)"]),
        (["a.png", "a.jpg"], ["a.png", "a.jpg"]),
    ],
)
def test_unique_names(names: list[str], unique: list[str]) -> None:
    assert unique_names(names) == unique
