"""The Audit a shortcut page in AppTest: with the lesion test images (rulers pre-marked), a run shows
the summary verdict with its numbers, each image's reading and pictures, and the report for download;
without an image it asks for one; a cleared mark leaves the image unmarked."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import advexp_ui.jobs.audit as job
from advexp_core.networks.registry import load_model
from advexp_core.networks.zoo import ModelError
from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label, submit

SCRIPT = "pages/7_Audit_a_shortcut.py"


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / SCRIPT), default_timeout=TIMEOUT_S)
    at.session_state["advexp_model_id"] = "digits-standard"
    return at


def test_asks_for_images_first() -> None:
    at = _page().run()
    assert_clean(at)
    assert any("Upload a few images" in i.value for i in at.info)


def test_lesion_images_audit_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        load_model("lesions-standard", device="cpu")
    except ModelError as exc:
        pytest.skip(f"lesions-standard is not shipped ({exc})")
    monkeypatch.setattr(job, "LESION_IMAGES", 3)
    job.lesion_items.clear()
    at = _page().run()
    at.radio(key="audit-source").set_value("lesions").run()
    assert_clean(at)
    captions = " ".join(c.value for c in at.caption)
    assert "lesion-0.png: artifact marked" in captions
    by_label(at.multiselect, "Explainers").set_value(["gradient", "gradcam"])
    by_label(at.checkbox, "Adversarial explanation").uncheck()
    by_label(at.number_input, "Tolerance").set_value(5.0)
    at = submit(at, "audit-form", "Run the audit")
    assert_clean(at)
    captions = " ".join(c.value for c in at.caption)
    assert "3 marked images" in captions and "needs 73 marked images; 70 more would settle it" in captions
    verdicts = " ".join(m.value for m in [*at.warning, *at.success, *at.info])
    assert "Removing the artifact changed" in verdicts and "of decisions" in verdicts
    assert "95 % interval" in verdicts or "interval" in verdicts
    cells = " ".join(str(v) for df in at.dataframe for v in df.value.astype(str).values.ravel())
    assert "[" in cells and "]" in cells  # rates with their intervals in the tables
    assert "the marked artifact" in verdicts  # each image's measured reading
    text = " ".join(m.value for m in at.markdown)
    assert "of its mass on the artifact" in text  # each map's reading, with its numbers
    labels = [d.label for d in at.get("download_button")]
    assert any("audit-report.html" in str(label) for label in labels), labels
    job.lesion_items.clear()
