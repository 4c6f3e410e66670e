"""Small Playwright steps for Streamlit pages (all waits are on conditions, never on time)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_MS = 150_000


def open_page(page: Page, base: str, path: str, heading: str) -> None:
    """Go to a page and wait until its title is drawn and the script has finished."""
    page.goto(f"{base}/{path}")
    expect(page.get_by_role("heading", name=heading).first).to_be_visible()
    settled(page)


def settled(page: Page, timeout: float = RUN_TIMEOUT_MS) -> None:
    """Wait until Streamlit reports that the page's script is not running (call it after waiting
    for something the new run draws, so the run has started)."""
    app = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    expect(app).to_have_count(1, timeout=timeout)


def choose_model(page: Page, title: str, caption: str) -> None:
    """Pick a network in the sidebar's chooser by its visible title; ``caption`` is a piece of the
    description the page then shows under the chooser (e.g. its weights file)."""
    sidebar = page.get_by_test_id("stSidebar")
    chooser = sidebar.get_by_role("combobox", name="Network")
    chooser.click()
    page.get_by_role("option", name=title, exact=True).click()
    expect(chooser).to_have_value(title)
    expect(sidebar.get_by_text(caption, exact=False)).to_be_visible()  # drawn by the new run
    settled(page)


def upload_image(page: Page, path: Path) -> None:
    """Upload an image through the sidebar's uploader and wait until it is the chosen image."""
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.locator('input[type="file"]').set_input_files(str(path))
    expect(sidebar.get_by_text(f"{path.name} (upload)")).to_be_visible()
    settled(page)


def set_number(page: Page, label: str, value: float) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def press(page: Page, name: str) -> None:
    page.get_by_role("button", name=name).click()


def run_and_wait(page: Page, button: str, pattern: str, timeout: float = RUN_TIMEOUT_MS) -> None:
    """Press a run button and wait for the result's text and the end of the page's run."""
    press(page, button)
    expect_text(page, pattern, timeout)
    settled(page, timeout)


def expect_text(page: Page, pattern: str, timeout: float = RUN_TIMEOUT_MS) -> None:
    expect(page.get_by_text(re.compile(pattern)).first).to_be_visible(timeout=timeout)


def expect_download(page: Page, name: str, timeout: float = RUN_TIMEOUT_MS) -> None:
    expect(page.get_by_role("button", name=f"⬇ {name}").first).to_be_visible(timeout=timeout)


def health(base: str) -> bool:
    from tests.e2e.conftest import health as check

    return check(base)


def pick_gallery(page: Page, key: str) -> None:
    """Choose a gallery image in the sidebar by its key (e.g. cifar10_test_2)."""
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_role("combobox", name="From the gallery").click()
    page.get_by_role("option", name=re.compile(rf"^{re.escape(key)} ")).click()
    expect(sidebar.get_by_text(f"{key} (gallery)")).to_be_visible()
    settled(page)
