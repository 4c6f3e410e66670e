"""The Audit a shortcut page in Chromium: a box dragged over a lesion image becomes its mark and the
audit runs; a ZIP of 20 lesion images with their rulers' masks runs as a background job that survives
a reload of the page (found again by its link), and ends with the verdict and the downloads."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from advexp_core.data.datasets import load_lesions
from advexp_core.data.imaging import encode_png
from advexp_core.experiments.audit_inputs import mask_png
from tests.e2e import helpers as h

pytestmark = pytest.mark.e2e

LESIONS = "Lesions ResNet (synthetic dermoscopy with a ruler shortcut), recipe 'standard'"
RESULT_TIMEOUT_MS = 300_000


def test_a_drawn_box_marks_the_artifact_and_the_audit_runs(page, server, artifacts) -> None:
    h.open_page(page, server.url, "Audit_a_shortcut", "Audit a shortcut")
    page.get_by_text("Lesion test images (rulers pre-marked)").click()
    # Few enough images to mark by hand: the slider's first stop (8) instead of the default 200.
    slider = page.get_by_role("slider").first
    expect(slider).to_be_visible()
    slider.focus()
    for _ in range(3):
        slider.press("ArrowLeft")
    h.expect_text(page, r"lesion-0\.png: ")
    h.settled(page)
    frame = page.frame_locator('iframe[title*="streamlit_image_coordinates"]').first
    picture = frame.locator("#image")
    expect(picture).to_be_visible()
    box = picture.bounding_box()
    assert box is not None
    # Drag from a quarter to half of the picture: the image's pixels 16..32 of 64 on each side.
    x0, y0 = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25
    x1, y1 = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    h.expect_text(page, r"lesion-0\.png: box 1[5-7],1[5-7] – 3[1-3],3[1-3] \(px\)")
    h.settled(page)
    page.get_by_text("Adversarial explanation of each image").click()
    h.press(page, "Run the audit")
    h.expect_text(page, r"Removing the artifact changed \d+% of decisions", RESULT_TIMEOUT_MS)
    h.expect_download(page, "audit-report.html")
    h.settled(page)
    expect(page.get_by_role("heading", name="lesion-0.png").first).to_be_visible()
    page.screenshot(path=str(artifacts / "e2e-audit.png"), full_page=True)
    h.press(page, "Start a new audit")
    expect(page.get_by_text("Lesion test images (rulers pre-marked)")).to_be_visible()


def lesion_zip(path: Path, n: int = 20) -> Path:
    """The first n lesion test images, and their rulers as masks/NAME.png, in one ZIP."""
    data = load_lesions("test", with_masks=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k in range(n):
            archive.writestr(f"lesions/lesion{k:02d}.png", encode_png(data.images[k]))
            ruler = data.masks["shortcut"][k]
            if bool(ruler.any()):
                archive.writestr(f"lesions/masks/lesion{k:02d}.png", mask_png(ruler))
    path.write_bytes(buffer.getvalue())
    return path


def test_a_zip_audit_runs_as_a_background_job_that_survives_a_reload(
    page, server, artifacts, tmp_path
) -> None:
    archive = lesion_zip(tmp_path / "lesions.zip")
    h.open_page(page, server.url, "Audit_a_shortcut", "Audit a shortcut")
    h.choose_model(page, LESIONS, "lesions-standard")
    page.get_by_text("A ZIP of images with masks or boxes").click()
    h.expect_text(page, r"One ZIP of at most 200 MB")
    h.settled(page)
    page.locator('input[type="file"][accept*="zip"]').set_input_files(str(archive))
    h.expect_text(page, r"20 images: \d+ marked by a mask, 0 by boxes")
    h.settled(page)
    h.press(page, "Run the audit")
    h.expect_text(page, r"The audit runs on the server")  # its progress, while it runs
    assert re.search(r"[?&]job=[\w-]+", page.url), page.url
    link = page.url
    page.reload()  # the page goes while the job runs; the job does not
    expect(page.get_by_role("heading", name="Audit a shortcut").first).to_be_visible()
    assert page.url == link
    h.expect_text(page, r"Removing the artifact changed \d+% of decisions", RESULT_TIMEOUT_MS)
    h.expect_download(page, "audit.zip")
    expect(page.get_by_text(re.compile(r"20 images audited"))).to_be_visible()
    page.screenshot(path=str(artifacts / "e2e-audit-zip.png"), full_page=True)
