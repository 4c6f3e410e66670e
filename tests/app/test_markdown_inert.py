"""Text from users is data, never markup: a class name or an error message quoting a file's contents
cannot make the browser fetch an address, on the page that renders it."""

from __future__ import annotations

import pytest
import streamlit as st

from advexp_ui import flow
from advexp_ui.render import defuse_markdown, escape_markdown

HOSTILE = "![t](http://127.0.0.1:9/p.png) and :red[alarm]"


def test_defuse_keeps_our_formatting_and_breaks_images_and_links() -> None:
    text = defuse_markdown(f"**Decision:** {HOSTILE}")
    assert text.startswith("**Decision:** ") and "![" not in text and "](" not in text and ":red[" not in text


def test_escape_leaves_no_syntax() -> None:
    assert "![" not in escape_markdown(HOSTILE) and "](" not in escape_markdown(HOSTILE)


def test_an_error_quoting_a_hostile_name_is_shown_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(st, "error", shown.append)
    with flow.guard():
        raise ValueError(f"the tensor {HOSTILE} does not fit")
    with flow.guard():
        raise RuntimeError(HOSTILE)
    assert len(shown) == 2 and not any("![" in s or "](" in s for s in shown)
