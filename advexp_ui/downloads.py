"""Downloads for every result: the lossless PNG(s), the figure, a JSON report and a ZIP of all."""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from advexp_core.base.jsonsafe import json_safe

# A file's bytes, or a function that makes them when the download is asked for (Streamlit's deferred download).
FileData = bytes | Callable[[], bytes]
MIME = {".png": "image/png", ".json": "application/json", ".zip": "application/zip", ".csv": "text/csv"}


def report_bytes(report: Mapping[str, Any]) -> bytes:
    """The JSON report as UTF-8 bytes (settings, seed, versions, predictions, metrics)."""
    return (json.dumps(json_safe(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def zip_bytes(files: Mapping[str, FileData]) -> bytes:
    """A ZIP archive holding ``files`` (name -> bytes, or a function making them); PNGs are
    stored, text is deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            method = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            archive.writestr(name, data() if callable(data) else data, compress_type=method)
    return buffer.getvalue()


def buttons(files: Mapping[str, FileData], *, stem: str, key: str) -> None:
    """One download button per file and one for a ZIP of all of them.

    A file given as a function is made only when its button (or the ZIP's) is pressed, in a
    Streamlit worker thread; so is the ZIP then.

    Args:
        files: file name -> bytes or a function making them, e.g. {"adversarial.png",
            "figure.png", "report.json"}.
        stem: the ZIP's file name without extension.
        key: page-unique prefix for the widget keys.
    """
    deferred = any(callable(data) for data in files.values())
    archive = functools.partial(zip_bytes, dict(files)) if deferred else zip_bytes(files)
    everything = {**files, f"{stem}.zip": archive}
    columns = st.columns(len(everything))
    for column, (name, data) in zip(columns, everything.items(), strict=True):
        suffix = name[name.rfind(".") :]
        column.download_button(
            f"⬇ {name}",
            data=data,
            file_name=name,
            mime=MIME.get(suffix, "application/octet-stream"),
            key=f"{key}-{name}",
            on_click="ignore",
            width="stretch",
        )
