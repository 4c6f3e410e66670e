"""Numbers with their 95 % intervals, as the pages, the CLI and the README print them, and the
three-way reading of a comparison from its interval (docs/method.md §9).

A rate is never printed alone: "62 % [52 %, 71 %]", "0.86 [0.83, 0.89]", "3.6× [3.1×, 4.2×]". A
difference between two networks on the same images reads "favours robust" only when its whole
interval lies above zero, "favours standard" only when it lies below, and "cannot tell at this sample
size" otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Comparison = Literal["favours-robust", "favours-standard", "cannot-tell"]
COMPARISON_WORDS: dict[Comparison, str] = {
    "favours-robust": "favours robust",
    "favours-standard": "favours standard",
    "cannot-tell": "cannot tell at this sample size",
}

IntervalLike = Sequence[float | None] | None


def _ends(interval: IntervalLike) -> tuple[float, float] | None:
    if interval is None or len(interval) != 2 or interval[0] is None or interval[1] is None:
        return None
    return float(interval[0]), float(interval[1])


def with_interval(
    value: float | None, interval: IntervalLike, *, digits: int = 2, signed: bool = False, missing: str = "—"
) -> str:
    """ "0.86 [0.83, 0.89]" (``signed``: "-0.14 [-0.19, -0.09]", for a difference); the number alone
    where no interval is defined; ``missing`` without a number."""
    if value is None:
        return missing
    form = f"{'+' if signed else ''}.{digits}f"
    ends = _ends(interval)
    if ends is None:
        return format(value, form)
    return f"{format(value, form)} [{format(ends[0], form)}, {format(ends[1], form)}]"


def percent(value: float) -> str:
    """A share as a percentage: whole percents, one decimal between 0 and 10 % ("62 %", "1.0 %", "0 %")."""
    return f"{100 * value:.1f} %" if 0 < value < 0.1 else f"{100 * value:.0f} %"


def percent_with_interval(value: float | None, interval: IntervalLike, *, missing: str = "—") -> str:
    """ "62 % [52 %, 71 %]" (`percent`: one decimal below 10 %, so 1 of 103 reads "1.0 % [0.2 %, 5.3 %]")."""
    if value is None:
        return missing
    ends = _ends(interval)
    if ends is None:
        return percent(value)
    return f"{percent(value)} [{percent(ends[0])}, {percent(ends[1])}]"


def ratio_with_interval(value: float, interval: IntervalLike, *, digits: int = 1) -> str:
    """ "3.6× [3.1×, 4.2×]"."""
    ends = _ends(interval)
    if ends is None:
        return f"{value:.{digits}f}×"
    return f"{value:.{digits}f}× [{ends[0]:.{digits}f}×, {ends[1]:.{digits}f}×]"


def count_with_interval(k: int, n: int, interval: IntervalLike) -> str:
    """ "64/103 (62 % [52 %, 71 %])"."""
    return f"{k}/{n} ({percent_with_interval(k / n if n else None, interval)})"


def compare(low: float, high: float, *, zero: float = 0.0) -> Comparison:
    """The reading of the interval of (robust − standard): above ``zero`` favours the robust
    network, below favours the standard one, straddling it cannot tell (1 for a ratio)."""
    if low > zero:
        return "favours-robust"
    if high < zero:
        return "favours-standard"
    return "cannot-tell"


__all__ = [
    "COMPARISON_WORDS",
    "Comparison",
    "compare",
    "count_with_interval",
    "percent",
    "percent_with_interval",
    "ratio_with_interval",
    "with_interval",
]
