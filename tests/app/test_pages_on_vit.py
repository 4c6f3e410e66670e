"""Every page once on a vision transformer: a tiny timm ViT loaded as the user's own model.

Grad-CAM runs at its token-grid tap; every other method, the attacks, adversarial explanations and
the sanity checks run unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from advexp_core.networks.registry import LoadedModel, load_user_model
from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label, downloads, submit
from tests.core.test_own_models import CLASSES, TINY_VIT, tiny_net

MODEL_ID = "user:tiny-vit"


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = Path(tmp_path_factory.mktemp("vit")) / "vit.safetensors"
    save_file(tiny_net(TINY_VIT).state_dict(), path)
    model = load_user_model(f"timm:{TINY_VIT}", path, CLASSES, device="cpu")
    return replace(model, model_id=MODEL_ID, title="Your model: tiny ViT")


def open_with(vit: LoadedModel, script: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / script), default_timeout=TIMEOUT_S)
    at.session_state["advexp_user_model"] = vit
    at.session_state["advexp_model_id"] = MODEL_ID
    at.run()
    assert_clean(at)
    assert at.session_state["advexp_model_id"] == MODEL_ID
    return at


def test_home_and_own_model_page_show_the_vit(woods_dir, vit) -> None:
    at = open_with(vit, "app.py")
    assert at.selectbox(key="_w_model").value == MODEL_ID
    at = open_with(vit, "pages/5_Your_own_model.py")
    card = " ".join(m.value for m in at.markdown)
    assert "4×4 grid of patches" in card and "blocks.1.tap" in card
    assert any("Top 5" in m.value for m in at.markdown)


def test_attack_and_move_the_map_on_the_vit(woods_dir, vit) -> None:
    at = open_with(vit, "pages/1_Saliency_under_attack.py")
    by_label(at.number_input, "Steps (PGD)").set_value(2)
    by_label(at.number_input, "Integrated Gradients steps").set_value(4)
    submit(at, "attack-form", "Run the attack")
    assert_clean(at)
    assert "adversarial.png" in downloads(at)
    at.radio(key="attack_mode").set_value("Keep the label, move the map").run()
    by_label(at.number_input, "Steps").set_value(2)
    submit(at, "manipulation-form", "Move the map")
    assert_clean(at)
    assert "manipulated.png" in downloads(at)


def test_adversarial_explanations_on_the_vit(woods_dir, vit) -> None:
    at = open_with(vit, "pages/2_Adversarial_explanations.py")
    by_label(at.number_input, "Steps S").set_value(2)
    compare = by_label(at.checkbox, "Also: the same image")
    if not compare.disabled:
        compare.set_value(False)
    submit(at, "explain-form", "Explain")
    assert_clean(at)
    assert any(f.startswith("explanation_") for f in downloads(at)), downloads(at)


def test_every_explainer_and_the_sanity_check_on_the_vit(woods_dir, vit) -> None:
    at = open_with(vit, "pages/4_Compare_explainers.py")
    methods = by_label(at.multiselect, "Methods")
    methods.set_value(list(methods.options))
    by_label(at.number_input, "IG steps").set_value(4)
    by_label(at.number_input, "SmoothGrad samples").set_value(2)
    submit(at, "explainers-form", "Compare")
    assert_clean(at)
    assert "explainers.png" in downloads(at)
    by_label(at.multiselect, "Methods to check").set_value(["gradcam", "gradient"])
    by_label(at.number_input, "Layers to measure at").set_value(2)
    submit(at, "sanity-form", "Run the sanity check")
    assert_clean(at)
    assert "sanity.png" in downloads(at)


@pytest.mark.parametrize(
    "script", ["pages/3_Robustness.py", "pages/6_Ground_truth.py", "pages/7_Audit_a_shortcut.py"]
)
def test_the_other_pages_open_with_the_vit_chosen(woods_dir, vit, script: str) -> None:
    open_with(vit, script)
