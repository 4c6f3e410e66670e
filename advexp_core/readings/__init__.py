"""Readings: the sentences the app, the CLI and the reports print about a result, each computed from
that run's numbers (docs/method.md, "Readings").

A page never states a result in fixed words: it shows the `Reading` a function here returns. Each
module reads one kind of result; the thresholds each reading uses are module constants, named once
and justified in docs/method.md. A number that lies within `NEAR` (relative) of the threshold that
decided its outcome marks the reading ``near_threshold``: float noise (another thread count or seed)
could have tipped it, and the sentence says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NEAR = 0.05
"""Relative distance to a threshold under which an outcome is flagged as near it (docs/method.md)."""

NEAR_NOTE = " (a number lies close to the threshold that decides this reading: another seed or thread count could read it differently)"


@dataclass(frozen=True)
class Reading:
    """One computed verdict.

    Attributes:
        outcome: a short fixed key naming which outcome the numbers gave (tests and scripts use it).
        sentence: the plain-language sentence shown under the result, with the numbers it rests on.
        near_threshold: a number that decided the outcome lies within `NEAR` of its threshold.
    """

    outcome: str
    sentence: str
    near_threshold: bool = False

    def to_json(self) -> dict[str, Any]:
        """The reading as written in JSON reports."""
        return {"outcome": self.outcome, "verdict": self.text, "near_threshold": self.near_threshold}

    @property
    def text(self) -> str:
        """The sentence, with the near-threshold note when it applies."""
        if not self.near_threshold:
            return self.sentence
        return self.sentence.rstrip(".") + NEAR_NOTE + "."


def near(value: float, threshold: float, *, margin: float = NEAR) -> bool:
    """Whether ``value`` lies within ``margin`` (relative to the threshold, absolute when it is 0)."""
    scale = abs(threshold) if threshold else 1.0
    return abs(float(value) - threshold) <= margin * scale
