"""Numbers for JSON and one-line summaries: JSON has no NaN or infinity, so they become null."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import Tensor

__all__ = ["JsonObject", "format_number", "json_number", "json_safe"]

JsonObject = dict[str, Any]
"""A JSON object, made once at the edge by a result record's ``to_json`` (the CLI's files, the
pages' downloads); never the contract between layers, which is the typed record itself."""


def json_number(value: float | Tensor) -> float | None:
    """A number for JSON: NaN and ±inf become None (JSON has no such values)."""
    number = float(value)
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that `json.dumps(..., allow_nan=False)` accepts: every NaN or infinite
    float inside mappings, lists and tuples becomes None; keys become strings."""
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def format_number(value: float | None, *, missing: str = "n/a") -> str:
    """A number for a one-line summary (two decimals); ``missing`` where there is none."""
    return missing if value is None else f"{value:.2f}"
