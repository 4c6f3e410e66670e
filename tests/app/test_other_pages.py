"""Pages 2-4: adversarial explanations (with the standard-vs-robust contrast), robustness, compare explainers."""

from __future__ import annotations

import advexp_ui.jobs.explainers as explainers_job
from tests.app.conftest import CIFAR_ROBUST, assert_clean, by_label, downloads, submit
from tests.app.test_attack_page import counting


def test_explanations_grid_contrast_and_downloads(open_page) -> None:
    at = open_page("pages/2_Adversarial_explanations.py", model=CIFAR_ROBUST, image="cifar10_test_2")
    by_label(at.number_input, "Steps S").set_value(4)
    submit(at, "explain-form", "Explain")
    assert_clean(at)
    files = downloads(at)
    assert any(f.startswith("explanation_") and f.endswith(".png") for f in files), files
    assert {"figure.png", "adversarial-explanations.zip", "contrast.png", "standard-vs-robust.zip"} <= set(
        files
    )
    assert len(at.image) >= 1 + 2 * 2 + 2 * 2 * 2  # input, 2 targets x (x+δ, δ), twice more for the contrast


def test_explanations_need_a_target(open_page) -> None:
    at = open_page("pages/2_Adversarial_explanations.py")
    by_label(at.multiselect, "Targets").set_value([])
    submit(at, "explain-form", "Explain")
    assert not at.exception
    assert any("at least one target" in w.value for w in at.warning)


def test_robustness_tables_and_a_live_run(open_page) -> None:
    at = open_page("pages/3_Robustness.py", model=CIFAR_ROBUST)
    assert any("resnet44" in str(df.value) or "woods2019" in str(df.value) for df in at.dataframe)
    assert by_label(at.selectbox, "Images").value == "cifar10-five"
    by_label(at.number_input, "How many").set_value(2)
    by_label(at.number_input, "Search steps").set_value(10)
    submit(at, "ara-form", "Measure ARA")
    assert_clean(at)
    assert [m.label for m in at.metric] == ["Clean accuracy", "Attack ARA", "BTR ARA"]
    assert downloads(at) == ["curve.png", "report.json", "robustness.zip"]


def test_robustness_wrong_images_for_the_network_show_a_message(open_page) -> None:
    at = open_page("pages/3_Robustness.py")
    by_label(at.selectbox, "Images").set_value("gallery")
    submit(at, "ara-form", "Measure ARA")
    assert not at.exception
    assert any("ImageNet labels" in e.value for e in at.error), [e.value for e in at.error]


def test_compare_explainers_agreement_without_recomputing(open_page, monkeypatch) -> None:
    calls = counting(monkeypatch, explainers_job, "compute_explainers")
    at = open_page("pages/4_Compare_explainers.py", image="cifar10_test_5")
    by_label(at.multiselect, "Methods").set_value(["gradcam", "gradient", "smoothgrad"])
    by_label(at.number_input, "SmoothGrad samples").set_value(2)
    submit(at, "explainers-form", "Compare")
    assert_clean(at)
    assert downloads(at) == ["explainers.png", "agreement.csv", "report.json", "compare-explainers.zip"]
    matrix = at.dataframe[0].value
    assert list(matrix.columns)[1:] == ["Grad-CAM", "Gradient", "SmoothGrad"]
    assert any("Deletion" in md.value for md in at.markdown)  # faithfulness curves are shown
    at.radio(key="agreement").set_value("ssim").run()  # a display choice: no new computation
    assert_clean(at)
    assert calls == [1]


def test_robustness_shows_the_shipped_digits_networks_and_measures_one(open_page) -> None:
    from advexp_ui.jobs.robustness import manifest

    if not manifest():
        import pytest

        pytest.skip("checkpoints/manifest.json is not there yet")
    at = open_page("pages/3_Robustness.py", model="digits-robust", image="digit_3")
    shipped = at.dataframe[0].value
    assert list(shipped["network"]) == [e["id"] for e in manifest()]
    assert by_label(at.selectbox, "Images").value == "digits"
    by_label(at.number_input, "How many").set_value(8)
    by_label(at.number_input, "Search steps").set_value(40)
    submit(at, "ara-form", "Measure ARA")
    assert_clean(at)
    assert float(at.metric[0].value) > 0.5  # the digits network is right on most test digits
