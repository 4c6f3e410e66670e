"""Streamlit AppTest helpers: run a page script in-process with a chosen model and image.

Most tests use the paper's CIFAR-10 networks (32 px, fast); the default ImageNet model runs once.
Model and result caches are process-wide, as on a real server, so each test uses its own settings
when it counts recomputations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300
CIFAR_STANDARD = "woods2019-cifar10-standard"
CIFAR_ROBUST = "woods2019-cifar10-robust"


def by_label(widgets: Iterable[Any], label: str) -> Any:
    """The widget whose label starts with ``label``."""
    found = [w for w in widgets if str(w.label).startswith(label)]
    assert found, f"no widget labelled {label!r}; have {[w.label for w in widgets]}"
    return found[0]


def assert_clean(at: AppTest) -> None:
    """No exception and no error message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def downloads(at: AppTest) -> list[str]:
    return [d.label.removeprefix("⬇ ") for d in at.download_button]


def submit(at: AppTest, form: str, label: str) -> AppTest:
    """Press a form's submit button and rerun."""
    return at.button(key=f"FormSubmitter:{form}-{label}").click().run()


@pytest.fixture()
def open_page(woods_dir: Path) -> Callable[..., AppTest]:
    """open_page(script, model=CIFAR_STANDARD, image="cifar10_test_0") -> an AppTest after its first run."""

    def make(
        script: str, model: str | None = CIFAR_STANDARD, image: str | None = "cifar10_test_0"
    ) -> AppTest:
        at = AppTest.from_file(str(ROOT / script), default_timeout=TIMEOUT_S)
        if model is not None:
            at.session_state["advexp_model_id"] = model
        at.run()
        if image is not None:
            at.selectbox(key="_w_gallery").set_value(image).run()
        assert_clean(at)
        return at

    return make
