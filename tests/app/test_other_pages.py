"""Pages 2-4: adversarial explanations (with the standard-vs-robust contrast), robustness, compare explainers."""

from __future__ import annotations

import advexp_ui.jobs.explainers as explainers_job
import advexp_ui.loaders as loaders_module
from tests.app.conftest import CIFAR_ROBUST, assert_clean, by_label, downloads, submit
from tests.app.test_attack_page import counting
from tests.app.test_first_look_ui import reports

REAL_INFOS = loaders_module.model_infos


def test_explanations_grid_contrast_and_downloads(open_page, monkeypatch) -> None:
    seen = reports(monkeypatch)
    at = open_page("pages/2_Adversarial_explanations.py", model=CIFAR_ROBUST, image="cifar10_test_2")
    assert any(
        "cifar10_test_2 is a CIFAR-10 test image, so the contrast uses the paper's CIFAR-10" in c.value
        for c in at.caption
    )
    by_label(at.number_input, "Steps S").set_value(4)
    submit(at, "explain-form", "Explain")
    assert_clean(at)
    # Under each result, the readings computed from its numbers: δ's mean low-frequency share and
    # its ratio to white noise, how many of n succeeded, and the contrast between the networks.
    contrast = next(r for r in seen if "models" in r)
    shown = " ".join(m.value for m in [*at.markdown, *at.success, *at.warning])
    assert contrast["reading"]["verdict"] in shown
    for entry in contrast["models"]:
        shares = [t["structure"] for t in entry["targets"]]
        mean = sum(shares) / len(shares)
        assert f"on average {mean:.0%} of δ's energy" in entry["readings"]["structure"]["verdict"]
        assert f"{mean / entry['structure_noise']:.1f}× the" in entry["readings"]["structure"]["verdict"]
        ok = sum(t["budget_reached_by_half"] for t in entry["targets"])
        assert (
            f"{ok} of {len(entry['targets'])} explanations succeeded"
            in entry["readings"]["success"]["verdict"]
        )
        assert all(r["verdict"] in shown for r in entry["readings"].values())
    files = downloads(at)
    assert any(f.startswith("explanation_") and f.endswith(".png") for f in files), files
    assert {"figure.png", "adversarial-explanations.zip", "contrast.png", "standard-vs-robust.zip"} <= set(
        files
    )
    assert len(at.image) >= 1 + 2 * 2 + 2 * 2 * 2  # input, 2 targets x (x+δ, δ), twice more for the contrast


def test_a_photo_offline_without_the_cifar_networks_gets_a_notice_and_a_button(
    open_page, monkeypatch
) -> None:
    at = open_page("pages/2_Adversarial_explanations.py", model="digits-standard", image="cat")
    # With the paper's networks here, the cat photo is read against them, not the digits pair.
    assert any(
        "cat is a natural photo from the gallery, so the contrast uses the paper's CIFAR-10" in c.value
        for c in at.caption
    )
    monkeypatch.setattr(
        loaders_module, "model_infos", lambda: [i for i in REAL_INFOS() if not i.model_id.startswith("woods")]
    )
    at.run()
    (notice,) = [i.value for i in at.info if "natural photo" in i.value]
    assert "offline no robust network trained on natural photos is available" in notice
    assert at.checkbox[0].disabled and not at.checkbox[0].value
    at.button(key="pair-digits").click().run()
    assert_clean(at)
    assert any(
        "digit_0 is a test image of the digits set, so the contrast uses this project's digits networks"
        in c.value
        for c in at.caption
    )
    at.selectbox(key="_w_gallery").set_value("cat").run()  # the photo again: now the lesion button
    at.button(key="pair-lesions").click().run()
    assert_clean(at)
    lesion = "lesions_test_0 is a test image of the lesions set, so the contrast uses this project's lesion"
    assert any(lesion in c.value for c in at.caption)


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
    # The paper's table is read from its own numbers (0.0142 / 0.0013), the live run from this run's.
    shown = " ".join(m.value for m in at.markdown)
    assert "woods2019-cifar10-robust 10.9× (BTR 26.3×)" in shown
    attack = float(at.metric[1].value)
    assert (
        f"has Attack ARA {attack:.4f}" in shown
        and "of woods2019-cifar10-standard (the authors' figures" in shown
    )


def test_robustness_wrong_images_for_the_network_show_a_message(open_page) -> None:
    at = open_page("pages/3_Robustness.py")
    by_label(at.selectbox, "Images").set_value("gallery")
    submit(at, "ara-form", "Measure ARA")
    assert not at.exception
    assert any("ImageNet labels" in e.value for e in at.error), [e.value for e in at.error]


def test_compare_explainers_agreement_without_recomputing(open_page, monkeypatch) -> None:
    calls = counting(monkeypatch, explainers_job, "compute_explainers")
    seen = reports(monkeypatch)
    at = open_page("pages/4_Compare_explainers.py", image="cifar10_test_5")
    by_label(at.multiselect, "Methods").set_value(["gradcam", "gradient", "smoothgrad"])
    by_label(at.number_input, "SmoothGrad samples").set_value(2)
    submit(at, "explainers-form", "Compare")
    assert_clean(at)
    assert downloads(at) == ["explainers.png", "agreement.csv", "report.json", "compare-explainers.zip"]
    matrix = at.dataframe[0].value
    assert list(matrix.columns)[1:] == ["Grad-CAM", "Gradient", "SmoothGrad"]
    # The reading under the matrix quotes its off-diagonal values: mean, least and most alike pair.
    spearman = seen[-1]["agreement"]["spearman"]
    values = [spearman[i][j] for i in range(3) for j in range(i + 1, 3)]
    (reading,) = [
        m.value for m in [*at.success, *at.warning] if "rank correlation off the diagonal" in m.value
    ]
    assert f"averages {sum(values) / 3:.2f} over 3 pairs" in reading
    assert f"from {min(values):.2f} (" in reading and f"to {max(values):.2f} (" in reading
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
    shown = " ".join(m.value for m in at.markdown)
    stored = {e["id"]: e for e in manifest()}
    ratio = stored["digits-robust"]["attack_ara"] / stored["digits-standard"]["attack_ara"]
    assert f"digits-robust {ratio:.1f}×" in shown  # the shipped table's reading, from its numbers
    live = float(at.metric[1].value) / stored["digits-standard"]["attack_ara"]
    assert (
        f"{live:.1f}× the Attack ARA {stored['digits-standard']['attack_ara']:.4f} of digits-standard"
        in shown
    )


def test_the_pair_follows_where_the_image_came_from_then_the_network() -> None:
    from advexp_ui.jobs.explanations import PAIRS, pair_choice
    from advexp_ui.state import ImageChoice

    ready = {i for pair in PAIRS.values() for i in pair}
    cases = {
        ("digit_3", "gallery", "efficientnet-lite0-imagenet"): "digits",
        ("cat", "gallery", "digits-robust"): "cifar10",  # a photo is a photo whatever the network
        ("lesions_test_0", "dataset", "efficientnet-lite0-imagenet"): "lesions",
        ("mine.png", "upload", "lesions-standard"): "lesions",
        ("mine.png", "upload", "efficientnet-lite0-imagenet"): "cifar10",
    }
    for (name, source, model), family in cases.items():
        choice = pair_choice(ImageChoice(name, b"", source), model, ready, can_download=False)
        assert choice.pair == PAIRS[family], (name, source, model)
        assert choice.reason.startswith(name) and choice.reason.count(".") >= 1
    upload = pair_choice(ImageChoice("mine.png", b"", "upload"), "digits-all", ready, can_download=False)
    assert "the chosen network (digits-all) reads digits images" in upload.reason
    photo = ImageChoice("cat", b"", "gallery")
    without = ready - set(PAIRS["cifar10"])
    assert pair_choice(photo, "x", without, can_download=False).pair is None
    online = pair_choice(photo, "x", without, can_download=True)
    assert online.pair == PAIRS["cifar10"] and "download once" in online.reason
