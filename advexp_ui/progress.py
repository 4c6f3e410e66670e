"""Long work inside ``st.status`` with a progress bar fed by the core's ``on_step`` callback.

The work runs in a worker thread; the page's own thread waits on a queue and updates the bar. That
keeps Streamlit calls out of cached functions (their elements would be replayed on a cache hit) and
lets the page be interrupted: any click (the Cancel button, another widget, leaving the page) makes
Streamlit stop the page's thread at its next update (a new run of the page starts at once), and the
worker then stops at its next step.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")
OnStep = Callable[[int, int], None]
HEARTBEAT_S = 0.5  # how often the page thread wakes up to show elapsed time (and notice a cancel)


class Cancelled(Exception):
    """The page was left or the user pressed Cancel; raised inside the core's ``on_step``."""


class _Reporter:
    """Thread-safe hand-over of progress from the worker to the page, and of a cancel back."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self.cancel = threading.Event()

    def on_step(self, step: int, total: int) -> None:
        if self.cancel.is_set():
            raise Cancelled("The run was cancelled.")
        self.events.put((int(step), int(total)))


def run_with_progress(
    label: str, job: Callable[[OnStep], T], *, key: str, on_cancel: Callable[[], None] | None = None
) -> T:
    """Run ``job(on_step)`` in a worker thread while showing its progress; return its value.

    Args:
        label: what is running, shown on the status box.
        job: the work; calls ``on_step(step, total)`` as it goes (the core's callback).
        key: a page-unique widget key for the Cancel button.
        on_cancel: called (as the button's callback, before the page's next run) when Cancel is pressed.

    Raises:
        Whatever ``job`` raised (for the page to show), or Streamlit's own stop/rerun signal
        when the user interrupts (the worker is then told to stop).
    """
    reporter = _Reporter()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = job(reporter.on_step)
        except BaseException as exc:  # handed to the page thread, which re-raises it
            outcome["error"] = exc
        finally:
            reporter.events.put(None)

    start = time.perf_counter()
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")
        st.button("Cancel", key=key, help="Stop this run; the page stays usable.", on_click=on_cancel)
        worker = threading.Thread(target=work, name=f"advexp-{key}", daemon=True)
        try:
            worker.start()
            _follow(reporter, bar, start)
        finally:
            reporter.cancel.set()  # no effect after a normal finish; stops the worker otherwise
        seconds = time.perf_counter() - start
        if "error" in outcome:
            status.update(label=f"{label}: stopped after {seconds:.1f} s", state="error", expanded=False)
            raise outcome["error"]
        bar.progress(1.0, text=f"Done in {seconds:.1f} s")
        status.update(label=f"{label}: done in {seconds:.1f} s", state="complete", expanded=False)
    return outcome["value"]


def _follow(reporter: _Reporter, bar: Any, start: float) -> None:
    """Update the bar until the worker says it is done; every update lets Streamlit interrupt us."""
    step, total = 0, 0
    while True:
        try:
            event = reporter.events.get(timeout=HEARTBEAT_S)
            while event is not None and not reporter.events.empty():
                event = reporter.events.get_nowait()  # show only the latest step
        except queue.Empty:
            event = (step, total)  # heartbeat: refresh the elapsed time
        if event is None:
            return
        step, total = event
        elapsed = time.perf_counter() - start
        fraction = min(1.0, step / total) if total else 0.0
        text = f"Step {step} of {total} · {elapsed:.0f} s" if total else f"Working… {elapsed:.0f} s"
        bar.progress(fraction, text=text)
