"""One overall progress count for an experiment made of stages (attack steps, maps, curves)."""

from __future__ import annotations

from advexp_core.base.runtime import OnStep


def stage(on_step: OnStep | None, start: int, width: int, total: int) -> OnStep | None:
    """A callback for one stage that reports ``start..start+width`` of ``total`` overall.

    The stage's own ``(done, n)`` is scaled to ``width`` units, so stages counted in steps, batches
    or images add up to one monotone count that the caller ends at ``total``.
    """
    if on_step is None:
        return None

    def report(done: int, n: int) -> None:
        on_step(start + min(width, done * width // max(n, 1)), total)

    return report


def tick(on_step: OnStep | None, done: int, total: int) -> None:
    """Report ``done`` of ``total`` when there is a callback (the end of a stage)."""
    if on_step is not None:
        on_step(done, total)
