"""Regenerate the README's small screenshots of the main pages (docs/screenshots/*.png).

Run: make screenshots   (or, from the repository root, .venv/bin/python -m scripts.screenshots)

Starts `streamlit run app.py` on a free local port, drives Debian's chromium with Playwright (the same
helpers as the browser tests), runs each main page once and saves a downscaled PNG of its result.
Offline: it uses the default ImageNet model and, where present, the paper's CIFAR-10 networks.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from PIL import Image

from tests.e2e import helpers as h
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Server

ROOT = Path(__file__).resolve().parent.parent

OUT = ROOT / "docs" / "screenshots"
WIDTH = 900  # pixels of the committed PNGs
TIMEOUT_MS = 900_000  # the default ImageNet model on a small shared CPU can take minutes
ROBUST = ("ResNet-44 CIFAR-10, robust (Woods et al. 2019)", "resnet44-robust.pt")


def save(page, name: str, anchor: str | None = None) -> None:
    """Scroll ``anchor`` (text) into view, take the viewport, store it downscaled and quantised."""
    if anchor:
        page.get_by_text(anchor).first.scroll_into_view_if_needed()
    shot = Image.open(io.BytesIO(page.screenshot()))
    small = shot.resize((WIDTH, round(shot.height * WIDTH / shot.width)), Image.Resampling.LANCZOS)
    small = small.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(OUT / f"{name}.png", optimize=True)
    print(f"wrote docs/screenshots/{name}.png")


def tour(page, url: str) -> None:
    h.open_page(page, url, "", "When explanations fail, and what to show instead")
    save(page, "home")
    h.open_page(page, url, "Saliency_under_attack", "Saliency under attack")
    h.set_number(page, "Steps (PGD)", 10)
    h.set_number(page, "Integrated Gradients steps", 16)
    h.run_and_wait(page, "Run the attack", r"The decision (changed|did not change)", TIMEOUT_MS)
    save(page, "saliency-under-attack", "The decision")
    save(page, "saliency-under-attack-maps", "Grad-CAM: clean vs attacked")
    h.open_page(page, url, "Compare_explainers", "Compare explainers")
    h.run_and_wait(page, "Compare", r"Do the explainers agree\?", TIMEOUT_MS)
    save(page, "compare-explainers", "Explaining class")
    if "ADVEXP_WEIGHTS_DIR" in os.environ:
        h.open_page(page, url, "Adversarial_explanations", "Adversarial explanations")
        h.choose_model(page, *ROBUST)
        h.pick_gallery(page, "cifar10_test_2")
        h.run_and_wait(page, "Explain", "Standard vs robust", TIMEOUT_MS)
        save(page, "adversarial-explanations", "The network's top classes")
        save(page, "standard-vs-robust", "Standard vs robust")
        h.open_page(page, url, "Robustness", "Robustness: the accuracy–robustness area")
        h.set_number(page, "How many images", 5)
        h.set_number(page, "Search steps S", 60)
        h.run_and_wait(page, "Measure ARA", "Clean accuracy", TIMEOUT_MS)
        save(page, "robustness", "Clean accuracy")


def main() -> int:
    if not CHROMIUM.exists():
        print("needs /usr/bin/chromium (make chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import expect, sync_playwright

    shared = ROOT.parent / "shared" / "woods2019"
    if not os.environ.get("ADVEXP_WEIGHTS_DIR") and shared.is_dir():
        os.environ["ADVEXP_WEIGHTS_DIR"] = str(shared)
    OUT.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    server = Server({**os.environ, "ADVEXP_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    try:
        server.wait_ready()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.set_default_timeout(TIMEOUT_MS)
            tour(page, server.url)
            browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
