"""No sentence in the product states a result in fixed words: results are stated by readings
(advexp_core/readings), computed from the run's numbers; fixed text only says how to read a figure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from advexp_ui.captions import CAPTIONS

ROOT = Path(__file__).resolve().parents[2]
# Fixed claims the app once printed under results that did not show them, and their kin.
FORBIDDEN = (
    "barely move",
    "did not notice",
    "disagree with each other",
    "10–30",
    "10-30",
    "ship hulls",
    "horses' heads",
    "δ is noise",
    "can be made to say anything",
    "the paper's point",
    "keep pointing where they did",
)


def _product_strings() -> list[tuple[str, str]]:
    """Every string constant in the UI code (pages, app.py, advexp_ui), with its file."""
    files = [
        ROOT / "app.py",
        *sorted((ROOT / "pages").glob("*.py")),
        *sorted((ROOT / "advexp_ui").rglob("*.py")),
    ]
    out = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append((str(path.relative_to(ROOT)), node.value))
            elif isinstance(node, ast.JoinedStr):  # f-strings: their fixed parts
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                out.append((str(path.relative_to(ROOT)), text))
    return out


def test_the_scan_sees_the_product_text() -> None:
    strings = [s for _, s in _product_strings()]
    assert any("What to look at" in s for s in strings)  # the scan reads the UI, so it can fail
    assert len(strings) > 500


@pytest.mark.parametrize("claim", FORBIDDEN)
def test_no_fixed_claim_in_the_product(claim: str) -> None:
    found = [f"{path}: {text[:80]!r}" for path, text in _product_strings() if claim.lower() in text.lower()]
    assert not found, found


def test_captions_only_say_how_to_read() -> None:
    """A caption may describe axes, colours and scales; verdict words belong to readings."""
    verdict_words = ("fooled", "fools", "noticed", "the decision flips", "disagree", "score about")
    for key, text in CAPTIONS.items():
        assert not any(w in text.lower() for w in verdict_words), (key, text)
