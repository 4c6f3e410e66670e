"""What a new user sees: failed explanations as badges, the agreement matrix as a heat map, and a
what-to-look-at line under every result block."""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest

import advexp_ui.downloads as downloads_module
from advexp_ui.captions import CAPTIONS, LEAD
from advexp_ui.views.explainers import READING
from advexp_ui.views.explanations import failure_badge
from tests.app.conftest import CIFAR_ROBUST, assert_clean, by_label, downloads, submit
from tests.app.test_own_model_page import fill_form, tiny_weights

EXPLAIN = "pages/2_Adversarial_explanations.py"
COMPARE = "pages/4_Compare_explainers.py"


def document(at: AppTest) -> list[Any]:
    """Every element of the main area in page order (blocks left out)."""
    return [node for node in at.main if not hasattr(node, "children")]


def look_at_keys(at: AppTest) -> list[str]:
    """The what-to-look-at captions on the page, in page order, as their CAPTIONS keys."""
    by_text = {LEAD + text: key for key, text in CAPTIONS.items()}
    return [by_text[c.value] for c in at.caption if c.value.startswith(LEAD)]


def assert_under_results(at: AppTest, keys: list[str]) -> None:
    """The page's captions, in order, each after a result element and before the downloads."""
    assert look_at_keys(at) == keys
    nodes = document(at)
    kinds = [n.type for n in nodes]
    first_result = min(kinds.index(k) for k in ("image", "dataframe") if k in kinds)
    ends = [i for i, n in enumerate(nodes) if n.type == "markdown" and n.value == "**Downloads**"]
    for i, node in enumerate(nodes):
        if node.type == "caption" and node.value.startswith(LEAD):
            assert i > first_result and (not ends or i < ends[-1]), (node.value, i, first_result, ends)


def reports(monkeypatch) -> list[dict[str, Any]]:
    """The JSON reports the page offers for download, as they are written."""
    seen: list[dict[str, Any]] = []
    real = downloads_module.report_bytes

    def spy(report):
        seen.append(dict(report))
        return real(report)

    monkeypatch.setattr(downloads_module, "report_bytes", spy)
    return seen


def test_the_badge_is_derived_from_the_reports_numbers() -> None:
    assert failure_badge(24, 35) == (
        "failed: budget not reached by step 17 of 35",
        "RMS(δ) reached ρ only at step 24.",
    )
    assert failure_badge(-1, 8)[1] == "RMS(δ) never reached ρ."


def test_a_failed_explanation_shows_a_badge_and_one_folded_explanation_per_grid(
    open_page, monkeypatch
) -> None:
    seen = reports(monkeypatch)
    # The saturated standard CIFAR-10 network cannot spend the budget by step 17 of 35.
    at = open_page(EXPLAIN)
    submit(at, "explain-form", "Explain")
    assert_clean(at)  # no red paragraph: the message is no longer an st.error
    badges = [m.value for m in at.markdown if m.value.startswith(":red-badge[")]
    assert len(badges) >= 2 and all("failed: budget not reached by step 17 of 35" in b for b in badges)
    shown = [e.value for e in [*at.markdown, *at.caption, *at.warning, *at.info]]
    assert not any("failed explanation: RMS" in v for v in shown)
    meaning = [e for e in at.expander if e.label.startswith("What “failed” means")]
    # One per grid that has a failure: the chosen network's, and the standard row of the contrast.
    assert len(meaning) == 2 and all(
        "not** an adversarial explanation" in e.markdown[0].value for e in meaning
    )
    failed = [t for r in seen if "targets" in r for t in r["targets"] if not t["budget_reached_by_half"]]
    assert failed and all(t["message"].startswith("failed explanation: RMS(δ) was at most") for t in failed)


def test_a_valid_explanation_has_no_badge(open_page) -> None:
    at = open_page(EXPLAIN, model=CIFAR_ROBUST, image="cifar10_test_2")
    by_label(at.number_input, "Steps S").set_value(4)
    at.checkbox[0].uncheck()
    submit(at, "explain-form", "Explain")
    assert_clean(at)
    assert not [m for m in at.markdown if m.value.startswith(":red-badge[")]
    assert not at.expander
    assert_under_results(at, ["explanations-grid"])


def test_the_agreement_matrix_is_a_heat_map_on_the_measures_scale_with_a_csv(open_page) -> None:
    at = open_page(COMPARE, image="cifar10_test_5")
    by_label(at.multiselect, "Methods").set_value(["gradcam", "gradient"])
    assert not look_at_keys(at)  # nothing to read before the run
    submit(at, "explainers-form", "Compare")
    assert_clean(at)
    heat_maps = [i for i in at.image if READING["spearman"] in i.captions]
    assert len(heat_maps) == 1
    assert "agreement.csv" in downloads(at)
    assert_under_results(at, ["explainers-maps", "explainers-agreement", "explainers-faithfulness"])
    at.radio(key="agreement").set_value("topk_intersection").run()
    assert [i for i in at.image if READING["topk_intersection"] in i.captions]


def test_the_attack_pages_results_carry_their_captions(open_page) -> None:
    at = open_page("pages/1_Saliency_under_attack.py", image="cifar10_test_8")
    assert not look_at_keys(at)
    by_label(at.number_input, "Steps (PGD)").set_value(2)
    by_label(at.multiselect, "Heat maps").set_value(["gradient"])
    submit(at, "attack-form", "Run the attack")
    assert_clean(at)
    assert_under_results(at, ["attack-decision", "attack-visibility", "attack-maps"])
    at.radio(key="attack_mode").set_value("Keep the label, move the map").run()
    by_label(at.number_input, "Steps").set_value(2)
    submit(at, "manipulation-form", "Move the map")
    assert_clean(at)
    assert_under_results(at, ["manipulation"])


def test_the_contrast_carries_its_caption(open_page) -> None:
    at = open_page(EXPLAIN, model=CIFAR_ROBUST, image="cifar10_test_2")
    by_label(at.number_input, "Steps S").set_value(4)
    submit(at, "explain-form", "Explain")
    assert_clean(at)
    assert look_at_keys(at) == ["explanations-grid", "explanations-contrast"]


def test_home_and_own_model_carry_their_captions(open_page) -> None:
    at = open_page("app.py")
    assert_under_results(at, ["home-predictions"])
    at.switch_page("pages/5_Your_own_model.py").run()
    assert not look_at_keys(at)
    fill_form(at, "lesions.safetensors", tiny_weights())
    assert_clean(at)
    assert_under_results(at, ["own-model"])


def test_every_caption_is_one_short_line() -> None:
    assert {"robustness-curves", "robustness-live"} <= set(CAPTIONS)
    assert all(0 < len(text) <= 220 and "\n" not in text for text in CAPTIONS.values())
