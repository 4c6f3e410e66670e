"""Text from users (class names, file names) made safe for where it goes: a spreadsheet cell, a terminal."""

from __future__ import annotations

from typing import Any

__all__ = ["csv_safe", "terminal_text"]

# C0 and C1 control characters but newline and tab: a class or file name must not drive the terminal.
_CONTROL = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])


def terminal_text(text: str) -> str:
    """``text`` without control characters (names from users' files are data, not escape codes)."""
    return text.translate(_CONTROL)


def csv_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is quoted with
    a leading apostrophe; numbers and other text are kept as they are."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
