"""Renderers shared by the pages: tables, predictions, numbers with their plain-language readings,
picture rows, the what-to-look-at line under a result, and the download row of a result."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from advexp_core.networks.registry import LoadedModel
from advexp_ui import downloads
from advexp_ui.captions import CAPTIONS, LEAD
from advexp_ui.jobs.common import Later, Outcome, file_bytes
from advexp_ui.state import ImageChoice

EMPTY_CELL = "—"  # what a table shows where a number is undefined or does not apply
# What Markdown, GitHub's tables and Streamlit's extensions (:red[…], :emoji:, $math$) read as syntax.
MARKDOWN_SYNTAX = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&])")


def escape_markdown(text: str) -> str:
    """Text from a user (a class name, a file's tensor names) to show as itself in ``st.markdown``,
    ``st.caption``, ``st.error``…: each syntax character is backslash-escaped and line breaks become
    spaces, so ``![t](http://host/p.png)`` is shown, never fetched by the browser."""
    return MARKDOWN_SYNTAX.sub(r"\\\1", " ".join(str(text).splitlines()))


def defuse_markdown(text: str) -> str:
    """Our own sentence, which may quote a user's class or file name, with Markdown's images and
    links made inert (``![…](…)`` would make the browser fetch the address) and its own bold and
    italics kept: for texts where escaping every character would also escape our formatting."""
    return str(text).replace("![", "!\\[").replace("](", "]\\(").replace(":red[", ":red\\[")


def titles(mapping: Mapping[str, str]) -> Callable[[str], str]:
    """A widget's ``format_func`` from a mapping of option -> title (the option itself when absent)."""
    return lambda option: mapping.get(option, option)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(value: Any) -> str:
    """A cell's text when its table has empty cells: "—" for those, numbers in their shortest form."""
    if _empty(value):
        return EMPTY_CELL
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


Table = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]  # rows, or columns by name


def table_data(data: Table) -> Table | Any:
    """A table for ``st.dataframe``: as given when every cell has a value; otherwise a pandas Styler
    that shows empty cells (None, NaN, a key a row lacks) as "—" instead of "None" and keeps the
    numbers underneath."""
    frame = pd.DataFrame(list(data) if not isinstance(data, Mapping) else dict(data))
    if not frame.isna().to_numpy().any():
        return data
    return frame.style.format(_cell)


def table(data: Table, **kwargs: Any) -> None:
    """``st.dataframe`` of dict rows or of columns by name (same keyword arguments), empty cells
    shown as "—"."""
    st.dataframe(table_data(data), **kwargs)


def predictions(title: str, preds: Sequence[Mapping[str, Any]]) -> None:
    """A small table of the top classes with probability bars."""
    st.markdown(f"**{title}**")
    rows = [{"class": f"{p['label']} ({p['index']})", "probability": float(p["probability"])} for p in preds]
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={
            "probability": st.column_config.ProgressColumn(
                "probability", format="%.3f", min_value=0.0, max_value=1.0
            )
        },
    )


def pictures(items: Sequence[tuple[str, bytes]], *, columns: int | None = None) -> None:
    """Images side by side, each with its caption."""
    cols = st.columns(columns or len(items))
    for col, (caption, data) in zip(cols, items, strict=False):
        col.image(data, caption=caption, width="stretch")


def reading(label: str, value: str, sentence: str | None) -> None:
    """A measure's name in bold, then what its value means in one sentence (which quotes the value)."""
    st.markdown(f"**{label}** — {sentence}" if sentence else f"**{label}: {value}**")


def look_at(block: str) -> None:
    """The one-line reading guide of a result block (`advexp_ui.captions`), right under it."""
    st.caption(LEAD + CAPTIONS[block])


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def downloads_row(outcome: Outcome, choice: ImageChoice, *, stem: str, key: str) -> None:
    """Every file of a result plus the JSON report (with the image's name and hash) and a ZIP."""
    report = {
        **outcome.report,
        "image": {"name": choice.name, "source": choice.source, "sha256_16": choice.digest},
    }
    files = {**outcome.files, "report.json": downloads.report_bytes(report)}
    st.markdown("**Downloads**")
    downloads.buttons(files, stem=stem, key=key)


def figure_on_request(outcome: Outcome, name: str, *, label: str, key: str) -> None:
    """A result's figure (``outcome.files[name]``) behind a toggle, drawn when first opened."""
    digest = hashlib.sha256(downloads.report_bytes(outcome.report)).hexdigest()[:16]
    _figure_fragment(outcome.files[name], label=label, key=key, digest=digest)


@st.fragment
def _figure_fragment(data: bytes | Later, *, label: str, key: str, digest: str) -> None:
    """The toggle reruns only this fragment; the drawn PNG is kept per result in the session."""
    if not st.toggle(label, key=key, help="Drawn when opened (about a second); the download has it too."):
        return
    memo = st.session_state.get(f"{key}-png")
    if memo is None or memo[0] != digest:
        with st.spinner("Drawing the figure…"):
            memo = (digest, file_bytes(data))
        st.session_state[f"{key}-png"] = memo
    st.image(memo[1], width="stretch")


def need_model() -> None:
    st.warning("Choose a model that loads (see the message in the sidebar) to run this page.")


def model_or_stop(model: LoadedModel | None) -> LoadedModel:
    """The sidebar's model; without one, say so and end the page's script here."""
    if model is None:
        need_model()
        st.stop()
    return model
