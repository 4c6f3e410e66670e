"""Page 1, saliency under attack: run, results, downloads, cached reruns, the manipulation mode."""

from __future__ import annotations

import advexp_ui.jobs.attack as attack_job
from tests.app.conftest import assert_clean, by_label, downloads, submit

PAGE = "pages/1_Saliency_under_attack.py"


def counting(monkeypatch, module, name: str) -> list[int]:
    """Count the calls of ``module.name`` (the work behind a cached job)."""
    calls: list[int] = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_attack_shows_results_and_downloads_and_reruns_from_the_cache(open_page, monkeypatch) -> None:
    calls = counting(monkeypatch, attack_job, "compute_attack")
    at = open_page(PAGE, image="cifar10_test_8")
    assert not downloads(at)  # nothing runs before the button
    by_label(at.number_input, "Steps (PGD)").set_value(3)
    by_label(at.number_input, "Integrated Gradients steps").set_value(4)
    by_label(at.number_input, "Budget ε").set_value(4.0)
    submit(at, "attack-form", "Run the attack")
    assert_clean(at)
    verdict = [m.value for m in [*at.success, *at.warning]]
    assert any("The decision" in v for v in verdict), verdict
    assert downloads(at) == ["adversarial.png", "figure.png", "report.json", "saliency-under-attack.zip"]
    assert any("Rank correlation" in m.value for m in at.markdown)
    # Each map's verdict quotes the rank correlation measured in this run, shown in the line below it.
    texts = [m.value for m in at.markdown]
    verdicts = [t for t in texts if t.startswith("**Verdict:** The map")]
    measured = [t.split("— Rank correlation ")[1][:4] for t in texts if "— Rank correlation " in t]
    assert verdicts and len(verdicts) == len(measured)
    assert all(f"rank correlation {rho}" in v for v, rho in zip(verdicts, measured, strict=True))
    assert any(t.startswith("**In all:** On this image:") for t in texts)
    assert at.status and calls == [1]
    # A rerun, and a changed but unsubmitted setting, show the same result without recomputing.
    at.run()
    by_label(at.number_input, "Steps (PGD)").set_value(7)
    at.run()
    assert_clean(at)
    assert calls == [1] and "adversarial.png" in downloads(at)


def test_keep_the_label_move_the_map(open_page) -> None:
    at = open_page(PAGE, image="cifar10_test_9")
    at.radio(key="attack_mode").set_value("Keep the label, move the map").run()
    by_label(at.number_input, "Steps").set_value(3)
    submit(at, "manipulation-form", "Move the map")
    assert_clean(at)
    assert "manipulated.png" in downloads(at) and "report.json" in downloads(at)
    assert any("Decision" in m.value for m in [*at.success, *at.warning])
