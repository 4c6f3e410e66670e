"""The Audit a shortcut page in Chromium: a box dragged over a lesion image becomes its mark, the audit
runs with its progress, and the verdict and the HTML report appear."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e import helpers as h

pytestmark = pytest.mark.e2e


def test_a_drawn_box_marks_the_artifact_and_the_audit_runs(page, server, artifacts) -> None:
    h.open_page(page, server.url, "Audit_a_shortcut", "Audit a shortcut")
    page.get_by_text("Lesion test images (rulers pre-marked)").click()
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
    h.expect_text(page, r"Removing the artifact changed \d+% of decisions")
    h.expect_download(page, "audit-report.html")
    h.settled(page)
    expect(page.get_by_text(re.compile(r"box 1[5-7],1[5-7]")).first).to_be_visible()
    page.screenshot(path=str(artifacts / "e2e-audit.png"), full_page=True)
