"""The demo in a real browser: upload a gallery image, run the attack and the explanations pages,
see the results and the download buttons. Screenshots land in test-artifacts/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e import helpers as h

pytestmark = pytest.mark.e2e
CIFAR_STANDARD = "ResNet-44 CIFAR-10, standard (Woods et al. 2019)"


def test_attack_page_with_an_uploaded_image(page, server, artifacts, woods_dir) -> None:
    h.open_page(page, server.url, "Saliency_under_attack", "Saliency under attack")
    h.choose_model(page, CIFAR_STANDARD, "resnet44-standard.pt")
    h.upload_image(page, h.ROOT / "gallery" / "cat.jpg")
    h.set_number(page, "Steps (PGD)", 5)
    h.set_number(page, "Integrated Gradients steps", 8)
    h.press(page, "Run the attack")
    h.expect_text(page, r"The decision (changed|did not change)")
    h.expect_download(page, "adversarial.png")
    h.expect_download(page, "saliency-under-attack.zip")
    h.expect_text(page, r"Rank correlation \(Spearman\)")
    h.settled(page)
    # The figure is drawn only when asked for: by its download (Streamlit's deferred download) ...
    with page.expect_download() as download:
        page.get_by_role("button", name="⬇ figure.png").click()
    assert download.value.suggested_filename == "figure.png"
    assert open(download.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # ... or by opening its preview (only that part of the page reruns).
    pictures = page.get_by_test_id("stMain").get_by_role("img")
    shown = pictures.count()
    page.get_by_text("Show the whole figure (as downloaded)").click()
    expect(pictures).to_have_count(shown + 1)
    page.screenshot(path=str(artifacts / "e2e-saliency-under-attack.png"), full_page=True)


def test_explanations_page(page, server, artifacts, woods_dir) -> None:
    h.open_page(page, server.url, "Adversarial_explanations", "Adversarial explanations")
    h.choose_model(page, CIFAR_STANDARD, "resnet44-standard.pt")
    h.upload_image(page, h.ROOT / "gallery" / "daisy.jpg")
    h.set_number(page, "Steps S", 8)
    h.press(page, "Explain")
    h.expect_download(page, "figure.png")
    h.expect_text(page, r"Standard vs robust")
    h.expect_download(page, "contrast.png")
    page.screenshot(path=str(artifacts / "e2e-adversarial-explanations.png"), full_page=True)
    # The sidebar's choices survive moving to another page through the navigation.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare explainers").click()
    h.expect_text(page, "Choose the methods and press")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("combobox", name="Network")).to_have_value(CIFAR_STANDARD)
    expect(sidebar.get_by_text("daisy.jpg (upload)")).to_be_visible()


def test_a_long_run_can_be_cancelled_and_the_page_stays_usable(page, server, artifacts, woods_dir) -> None:
    h.open_page(page, server.url, "Robustness", "Robustness: the accuracy–robustness area")
    h.choose_model(page, "ResNet-44 CIFAR-10, robust (Woods et al. 2019)", "resnet44-robust.pt")
    h.set_number(page, "How many images", 5)
    h.set_number(page, "Search steps S", 2000)
    h.press(page, "Measure ARA")
    h.expect_text(page, r"Step \d+ of \d+")
    h.press(page, "Cancel")
    h.expect_text(page, "The run was cancelled before it finished")
    h.settled(page)
    assert h.health(server.url)
    h.set_number(page, "How many images", 2)
    h.set_number(page, "Search steps S", 10)
    h.press(page, "Measure ARA")
    h.expect_download(page, "curve.png")
    page.screenshot(path=str(artifacts / "e2e-robustness-after-cancel.png"), full_page=True)
