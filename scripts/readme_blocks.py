"""The README's generated blocks: text between an HTML-comment start and end marker, replaced whole."""

from __future__ import annotations

import re
import sys
from pathlib import Path


def replace_block(text: str, start: str, end: str, body: str) -> str | None:
    """``text`` with the first block from ``start`` to ``end`` replaced by the markers around
    ``body``; None when the markers are missing."""
    pattern = re.escape(start) + r".*?" + re.escape(end)
    if not re.search(pattern, text, flags=re.S):
        return None
    return re.sub(pattern, lambda _: f"{start}\n{body}\n{end}", text, count=1, flags=re.S)


def write_or_check(readme: Path, text: str, new: str, *, check: bool, stale: str) -> int:
    """With ``check``: 0 when ``new`` is ``text``, else 1 with ``stale`` on stderr; otherwise write
    ``new`` to ``readme`` and return 0."""
    if not check:
        readme.write_text(new)
        return 0
    if new != text:
        print(stale, file=sys.stderr)
        return 1
    return 0
