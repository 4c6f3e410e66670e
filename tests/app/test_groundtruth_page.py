"""The Ground truth page: a clear message while a pair of networks is missing; with the shipped
lesion networks, the outlined image, both networks' maps with their shares, the adversarial
explanation with δ's energy in the ruler, and the scorecard behind its button (cached)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import advexp_ui.jobs.groundtruth as job
from advexp_core.networks.registry import load_model
from advexp_core.networks.zoo import ModelError
from advexp_ui.captions import CAPTIONS
from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label, downloads, submit
from tests.app.test_attack_page import counting

SCRIPT = "pages/6_Ground_truth.py"


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / SCRIPT), default_timeout=TIMEOUT_S)
    at.session_state["advexp_model_id"] = (
        "digits-standard"  # a small sidebar model: the page uses its own pair
    )
    return at


def _skip_without(*model_ids: str) -> None:
    for model_id in model_ids:
        try:
            load_model(model_id, device="cpu")
        except ModelError as exc:
            pytest.skip(f"{model_id} is not shipped in checkpoints/ yet ({exc})")


def test_missing_networks_are_announced_not_crashed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(job.PAIRS, "lesions", ("lesions-not-trained", "lesions-robust"))
    at = _page().run()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(i.value for i in at.info)
    assert "lesions-not-trained" in text and "not on this computer yet" in text


def test_lesion_pair_renders_maps_explanations_and_the_scorecard(monkeypatch: pytest.MonkeyPatch) -> None:
    _skip_without(*job.PAIRS["lesions"])
    calls = counting(monkeypatch, job, "compute_scorecard")
    at = _page().run()
    assert_clean(at)
    picker = by_label(at.selectbox, "Test image")
    labels = list(picker.options)  # AppTest gives the formatted labels
    assert any("· ruler" in s for s in labels) and any("no ruler" in s for s in labels)
    captions = " ".join(c.value for c in at.caption)
    for key in ("groundtruth-image", "groundtruth-maps", "groundtruth-explanation"):
        assert CAPTIONS[key] in captions, key
    text = " ".join(m.value for m in at.markdown)
    assert "**lesions-standard** says" in text and "**lesions-robust**: pushed toward" in text
    assert "δ energy in the lesion" in text and "{" not in text
    assert "pushed toward" in text
    # The measured intervention leads: each network's decision with and without the ruler, read.
    verdicts = " ".join(m.value for m in [*at.success, *at.warning])
    for network in job.networks("lesions"):
        assert network in verdicts
    assert CAPTIONS["groundtruth-reliance"] in captions
    assert "of its mass on the ruler" in text or "no ruler" in text  # each map graded against it
    by_label(at.number_input, "Test images").set_value(2)
    submit(at, "scorecard-form", "Compute the scorecard")
    assert_clean(at)
    grades, table = at.dataframe[-2].value, at.dataframe[-1].value  # the grades first
    assert "misleading rate" in grades.columns and set(grades["network"]) == {
        "lesions-standard",
        "lesions-robust",
    }
    assert set(table["network"]) >= {"lesions-standard", "lesions-robust"}
    assert "on the lesion (where a dermatologist would look)" in table.columns
    # Two images: each mean with its bootstrap interval, the grades with theirs.
    gradient = table[table["explainer"] == "Gradient"]
    assert gradient["on the lesion (where a dermatologist would look)"].str.contains(r"\[").all()
    assert grades["misleading rate"].str.contains(r"\[").any()
    assert "report.json" in downloads(at) and "scorecard.png" in downloads(at)
    assert CAPTIONS["groundtruth-scorecard"] in " ".join(c.value for c in at.caption)
    at.run()  # the cached result is shown again, nothing recomputed
    assert_clean(at)
    assert calls == [1, 1]  # once per network


def test_blockdigits_pair_explains_toward_the_runner_up() -> None:
    _skip_without(*job.PAIRS["blockdigits"])
    at = _page().run()
    at.radio(key="gt-pair").set_value("blockdigits").run()
    assert_clean(at)
    picker = by_label(at.selectbox, "Test image")
    assert not any("ruler" in label for label in picker.options)
    assert by_label(at.selectbox, "Adversarial explanation toward").value is None
    text = " ".join(m.value for m in at.markdown)
    assert "**blockdigits-standard** says" in text and "**blockdigits-robust**: pushed toward" in text
    assert "in the ruler" not in text
