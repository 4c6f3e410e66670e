"""Load on a live server: 8 browser sessions press Run on the attack page at once.

Every session must get its own correct result (its report equals the same run computed alone in
this process), and the health endpoint must keep answering during the load. The figures (runs,
completions, failures, p50/p95 seconds per run as the page reports them, health latency) are
printed; run alone with `pytest -m "e2e and slow" -s tests/e2e/test_load.py`.
"""

from __future__ import annotations

import json
import re
import statistics
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e import helpers as h

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SESSIONS = 8
MODELS = [
    (
        "woods2019-cifar10-standard",
        "ResNet-44 CIFAR-10, standard (Woods et al. 2019)",
        "resnet44-standard.pt",
    ),
    ("woods2019-cifar10-robust", "ResNet-44 CIFAR-10, robust (Woods et al. 2019)", "resnet44-robust.pt"),
]
LOAD_BUDGET_S = 240  # the whole burst must finish within this


class HealthProbe(threading.Thread):
    """Asks /_stcore/health every half second until stopped; records latency and failures."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.latencies: list[float] = []
        self.failures = 0

    def run(self) -> None:
        while not self.stop.wait(0.5):
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=10) as response:
                    ok = response.read().strip() == b"ok"
            except OSError:
                ok = False
            self.latencies.append(time.perf_counter() - start)
            self.failures += not ok


def _report(page, tmp_path: Path, k: int) -> dict:
    with page.expect_download() as info:
        page.get_by_role("button", name="⬇ report.json").click()
    target = tmp_path / f"report-{k}.json"
    info.value.save_as(target)
    return json.loads(target.read_text())


def test_eight_sessions_at_once_on_the_attack_page(browser, server, artifacts, woods_dir, tmp_path) -> None:
    contexts, pages = [], []
    for k in range(SESSIONS):
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        context.set_default_timeout(LOAD_BUDGET_S * 1000)
        page = context.new_page()
        contexts.append(context)
        pages.append(page)
        _, title, weights = MODELS[k % 2]
        h.open_page(page, server.url, "Saliency_under_attack", "Saliency under attack")
        h.choose_model(page, title, weights)
        h.set_number(page, "Budget ε in 1/255 steps", k + 1)  # a distinct run per session
        h.set_number(page, "Steps (PGD)", 3)
        h.set_number(page, "Integrated Gradients steps", 4)
    probe = HealthProbe(server.url)
    probe.start()
    try:
        start = time.perf_counter()
        for page in pages:
            h.press(page, "Run the attack")
        seconds, failures = [], 0
        for page in pages:
            try:
                h.expect_text(page, r"Attacking and explaining: done in", timeout=LOAD_BUDGET_S * 1000)
                label = page.get_by_text(re.compile(r"done in [\d.]+ s")).first.inner_text()
                seconds.append(float(re.search(r"done in ([\d.]+) s", label).group(1)))
            except AssertionError:
                failures += 1
        burst = time.perf_counter() - start
    finally:
        probe.stop.set()
        probe.join()
    reports = [_report(page, tmp_path, k) for k, page in enumerate(pages)]
    pages[0].screenshot(path=str(artifacts / "e2e-load-session-0.png"))
    for context in contexts:
        context.close()

    q = statistics.quantiles(seconds, n=20, method="inclusive") if len(seconds) > 1 else seconds * 19
    print(
        f"\nload: {SESSIONS} sessions, {len(seconds)} completed, {failures} failed; seconds per run "
        f"p50 {statistics.median(seconds):.1f}, p95 {q[18]:.1f}, max {max(seconds):.1f}; burst {burst:.1f} s; "
        f"health {len(probe.latencies)} probes, {probe.failures} failed, max {max(probe.latencies):.2f} s"
    )
    assert failures == 0 and len(seconds) == SESSIONS
    assert probe.latencies and probe.failures == 0
    _assert_each_session_got_its_own_result(reports)


def _assert_each_session_got_its_own_result(reports: list[dict]) -> None:
    """Each report equals the same run done alone, here (the pages all used the gallery cat)."""
    from advexp_core.experiments import AttackConfig, SaliencyConfig
    from advexp_ui.jobs.attack import compute_attack
    from advexp_ui.loaders import cached_model

    image = (h.ROOT / "gallery" / "cat.jpg").read_bytes()
    for k, report in enumerate(reports):
        model_id = MODELS[k % 2][0]
        assert report["model"]["id"] == model_id and report["settings"]["eps_255"] == k + 1
        assert report["image"]["name"] == "cat"
        config = AttackConfig(eps_255=float(k + 1), steps=3)
        alone = compute_attack(image, config, SaliencyConfig(ig_steps=4), cached_model(model_id)).report
        for key in (
            "predictions_before",
            "predictions_after",
            "png_predictions_after",
            "perturbation",
            "maps",
        ):
            assert json.loads(json.dumps(alone[key])) == report[key], (k, key)
