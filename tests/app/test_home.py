"""The Home page and the navigation: "Home" first, every page at its old URL; the claims quote the
shipped tables; an odd upload is shown as the network reads it; empty table cells read "—"."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from advexp_core.experiments.headline import read_headlines
from advexp_ui import render, state
from tests.app.conftest import TIMEOUT_S, assert_clean

ROOT = Path(__file__).resolve().parents[2]
MODEL = "digits-standard"  # shipped: no download, 32 px
INTERVAL = re.compile(r"\[[-+]?\d+(\.\d+)?( %|×)?, [-+]?\d+(\.\d+)?( %|×)?\]")


def _home(image: state.ImageChoice | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    at.session_state[state.MODEL_KEY] = MODEL
    if image is not None:
        at.session_state[state.IMAGE_KEY] = image
    return at.run()


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_navigation_starts_with_home_and_keeps_every_page_at_its_url() -> None:
    at = _home()
    assert_clean(at)
    # AppTest keeps what st.navigation registered (no public accessor): name and URL per page.
    pages = list(at._registered_pages.values())
    assert (pages[0]["page_name"], pages[0]["url_pathname"]) == ("Home", "")
    files = sorted((ROOT / "pages").glob("*.py"))
    assert [Path(p["script_path"]).name for p in pages[1:]] == [f.name for f in files]
    # The URL each page had under the pages/ folder convention: the file name without its number.
    assert [p["url_pathname"] for p in pages[1:]] == [re.sub(r"^\d+_", "", f.stem) for f in files]
    for path in files:
        at.switch_page(f"pages/{path.name}").run()
        assert_clean(at)
        assert at.title, path.name


def test_the_claims_quote_the_shipped_tables_and_link_their_pages() -> None:
    at = _home()
    shown = " ".join(m.value for m in at.markdown)
    for headline in read_headlines():
        assert headline.claim in shown and headline.reading.text in shown
        # Every claim's figure is shown with its 95 % interval, "62 % [52 %, 71 %]" or "3.6× [3.5×, 3.7×]".
        claim = next(m.value for m in at.markdown if headline.claim in m.value)
        assert INTERVAL.search(claim), headline.key
    links = {element.proto.page for element in at.get("page_link")}  # each page's URL path
    assert links == {"Saliency_under_attack", "Adversarial_explanations", "Robustness", "Ground_truth"}


@pytest.mark.parametrize(("size", "words"), [((16, 16), "enlarged 2.0×"), ((2000, 3), "cut away")])
def test_an_odd_image_is_shown_as_the_network_reads_it(size: tuple[int, int], words: str) -> None:
    at = _home(state.ImageChoice("odd.png", _png(*size), "upload"))
    assert_clean(at)
    (warning,) = [w.value for w in at.sidebar.warning]
    assert words in warning and f"{size[0]}×{size[1]} px" in warning
    assert any("What the network reads (32×32 px)" in str(element.proto) for element in at.sidebar)
    assert warning in [c.value for c in at.main.caption]  # the home page says it under the image


def test_an_image_of_the_input_size_gets_a_plain_line() -> None:
    at = _home(state.ImageChoice("digit.png", _png(32, 32), "upload"))
    assert not at.sidebar.warning
    assert "The network reads this 32×32 px image as it is." in [c.value for c in at.sidebar.caption]


def test_empty_cells_read_as_a_dash() -> None:
    rows: list[dict[str, Any]] = [
        {"network": "a", "share": 0.25, "pointing": None},
        {"network": "b", "share": None},
    ]
    shown = cast(Any, render.table_data(rows)).to_string()  # a pandas Styler
    assert shown.count(render.EMPTY_CELL) == 3 and "None" not in shown and "nan" not in shown
    assert "0.25" in shown
    full = [{"network": "a", "share": 0.25}]
    assert render.table_data(full) is full  # nothing to replace: the rows go to st.dataframe as they are


def test_every_table_goes_through_the_helper() -> None:
    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "advexp_ui").rglob("*.py")]
    direct = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\bst\.(dataframe|table)\(", line)
    ]
    # render.table itself, and the predictions table (probabilities, never empty)
    assert len(direct) == 2 and all(d.startswith("advexp_ui/render.py:") for d in direct), direct
