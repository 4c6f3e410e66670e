"""Downloads for every result: the lossless PNG(s), the figure, a JSON report and a ZIP of all."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

import streamlit as st

from advexp_core.reports import json_number

MIME = {".png": "image/png", ".json": "application/json", ".zip": "application/zip", ".csv": "text/csv"}


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def report_bytes(report: Mapping[str, Any]) -> bytes:
    """The JSON report as UTF-8 bytes (settings, seed, versions, predictions, metrics)."""
    return (json.dumps(_clean(report), indent=2, ensure_ascii=False) + "\n").encode()


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """A ZIP archive holding ``files`` (name -> bytes); PNGs are stored, text is deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            method = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


def buttons(files: Mapping[str, bytes], *, stem: str, key: str) -> None:
    """One download button per file and one for a ZIP of all of them.

    Args:
        files: file name -> bytes, e.g. {"adversarial.png", "figure.png", "report.json"}.
        stem: the ZIP's file name without extension.
        key: page-unique prefix for the widget keys.
    """
    everything = {**files, f"{stem}.zip": zip_bytes(files)}
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
