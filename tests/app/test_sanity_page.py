"""The Compare-explainers page: LIME offered beside the gradient methods, and the sanity-check section."""

from __future__ import annotations

import advexp_ui.jobs.sanity as sanity_job
from tests.app.conftest import assert_clean, by_label, downloads, submit
from tests.app.test_attack_page import counting


def test_lime_and_occlusion_are_offered_but_not_default(open_page) -> None:
    at = open_page("pages/4_Compare_explainers.py", model="digits-standard", image="digit_3")
    methods = by_label(at.multiselect, "Methods")
    assert {"lime", "occlusion"} <= set(methods.options) or {"LIME", "Occlusion"} <= set(methods.options)
    assert "lime" not in methods.value and "occlusion" not in methods.value
    assert any("128 samples" in c.value for c in at.caption), [c.value for c in at.caption]
    methods.set_value(["gradient", "lime"])
    submit(at, "explainers-form", "Compare")
    assert_clean(at)
    assert list(at.dataframe[0].value.columns)[1:] == ["Gradient", "LIME"]


def test_sanity_section_runs_with_progress_figure_reading_and_downloads(open_page, monkeypatch) -> None:
    calls = counting(monkeypatch, sanity_job, "compute_sanity")
    at = open_page("pages/4_Compare_explainers.py", model="digits-standard", image="digit_3")
    assert any("layers to randomise" in c.value for c in at.caption), [c.value for c in at.caption]
    by_label(at.multiselect, "Methods to check").set_value(["gradient", "gradcam"])
    by_label(at.number_input, "Layers to measure at").set_value(3)
    submit(at, "sanity-form", "Run the sanity check")
    assert_clean(at)
    text = " ".join(md.value for md in at.markdown)
    assert "randomised" in text and ("Stayed similar" in text or "Changed as the network" in text)
    assert "sanity.png" in downloads(at) and "report.json" in downloads(at)
    assert len(at.image) >= 1
    at.run()  # a rerun shows the cached result: no second computation
    assert_clean(at)
    assert calls == [1]
