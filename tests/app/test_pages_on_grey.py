"""Every page once on a single-channel network (a tiny timm CNN built with ``in_chans=1``), loaded as
the user's own model: the attacks, the maps, the adversarial explanations and the sanity checks run
on its grey input exactly as on a colour network (the page tests of `test_pages_on_vit`, reused)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from advexp_core.networks.registry import LoadedModel, load_user_model
from tests.app import test_pages_on_vit as pages
from tests.core.test_grey_networks import CLASSES, grey_timm, save_weights
from tests.core.test_own_models import TINY_CNN

test_attack_and_move_the_map_on_a_grey_network = pages.test_attack_and_move_the_map_on_the_vit
test_adversarial_explanations_on_a_grey_network = pages.test_adversarial_explanations_on_the_vit
test_every_explainer_and_the_sanity_check_on_a_grey_network = (
    pages.test_every_explainer_and_the_sanity_check_on_the_vit
)
test_the_other_pages_open_with_a_grey_network_chosen = pages.test_the_other_pages_open_with_the_vit_chosen


@pytest.fixture(scope="module")
def woods_dir() -> None:
    """These pages need none of the paper's networks: a grey network is the user's own."""


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The network every reused page test runs on: here a grey CNN, not a ViT."""
    path = save_weights(grey_timm(), Path(tmp_path_factory.mktemp("grey")) / "grey.safetensors")
    model = load_user_model(f"timm:{TINY_CNN}", path, CLASSES, input_size=48, device="cpu")
    assert model.card is not None and model.card.channels == 1
    return replace(model, model_id=pages.MODEL_ID, title="Your model: tiny grey CNN")


def test_the_own_model_page_says_it_reads_one_channel(vit: LoadedModel) -> None:
    at = pages.open_with(vit, "pages/5_Your_own_model.py")
    card = " ".join(m.value for m in at.markdown).lower()
    assert "channel" in card and ("grey" in card or "gray" in card or "one" in card)
