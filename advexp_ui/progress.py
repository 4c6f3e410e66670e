"""Long work inside ``st.status`` with a progress bar fed by the core's ``on_step`` callback.

The work runs in a worker thread; the page's own thread waits on a queue and updates the bar. That
keeps Streamlit calls out of cached functions (their elements would be replayed on a cache hit) and
lets the page show partial results as the job hands them out (``show_partial``, drawn by the
page's thread, in order, before the bar moves on). It also lets the page be interrupted: any click
(the Cancel button, another widget, leaving the page) makes Streamlit stop the page's thread at its
next update (a new run of the page starts at once), and the worker then stops at its next step.

A network runs one experiment at a time: its lock (`advexp_core.base.locks.NetworkLock`), which is also
its waiting line. The worker takes the locks under the run's name (a `Claimant`), so while it waits
for a network, whichever experiment it runs, the bar shows its place in that network's line, who is
running there and an estimate from the recent runs' times. A run cancelled while it waits leaves the
line at once.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from advexp_core.base.locks import Abandoned, Claimant, claimant

T = TypeVar("T")
OnStep = Callable[[int, int], None]
HEARTBEAT_S = 0.5  # how often the page thread wakes up to show elapsed time (and notice a cancel)
# While a run waits in line its text changes only when its place or the estimate (in steps of
# ESTIMATE_STEP_S) does, and is sent again at most every WAITING_REFRESH_S: a room of 30 waiting
# browsers then is not re-rendering twice a second, and a Cancel is still noticed within that time.
WAITING_REFRESH_S = 2.0
# A running job's bar moves at most this often: each update is Python work on the page's thread
# and a re-render in the browser, taken from the job (which needs the GIL between torch calls).
BAR_REFRESH_S = 0.25
ESTIMATE_STEP_S = 5


class Cancelled(Exception):
    """The page was left or the user pressed Cancel; raised inside the core's ``on_step``."""


def waiting_text(who: Claimant) -> str | None:
    """'Waiting for <network>: place k in line …' while the run waits for a network (None once it
    holds every network it has asked for), read from the network's lock: who runs there, with an
    estimate from the recent runs' times."""
    for lock in list(who.waiting_on):
        place = lock.place(who)
        if place is None:
            continue
        line = lock.state()
        running = f"{line.holder} is running" if line.holder is not None else "starting"
        ahead = (line.holder is not None) + place - 1
        head = (
            f"Waiting for this network ({line.name}): place {place} in line ({ahead} run(s) ahead; {running})"
        )
        if not line.recent_s or not ahead:
            return head
        per_run = sum(line.recent_s) / len(line.recent_s)
        left = max(0.0, ahead * per_run - min(line.held_s, per_run))
        return f"{head}, about {ESTIMATE_STEP_S * math.ceil(left / ESTIMATE_STEP_S):.0f} s"
    return None


class _Partial:
    """A partial result on its way from the worker to the page's thread."""

    def __init__(self, value: Any) -> None:
        self.value = value


Event = tuple[int, int] | _Partial | None


class _Reporter:
    """Thread-safe hand-over of progress and partial results from the worker to the page, and of
    a cancel back."""

    def __init__(self, who: Claimant) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.cancel = threading.Event()
        self.who = who

    def on_step(self, step: int, total: int) -> None:
        if self.cancel.is_set():
            raise Cancelled("The run was cancelled.")
        self.events.put((int(step), int(total)))

    def stop(self) -> None:
        """Tell the worker to stop at its next step, or to leave the line it waits in."""
        self.cancel.set()
        self.who.abandon()

    def emit(self, value: Any) -> None:
        """Hand a partial result to the page (never dropped, unlike intermediate steps)."""
        self.events.put(_Partial(value))


def run_with_progress(
    label: str,
    job: Callable[..., T],
    *,
    key: str,
    on_cancel: Callable[[], None] | None = None,
    show_partial: Callable[[Any], None] | None = None,
    where: Any = None,
) -> T:
    """Run ``job(on_step)`` in a worker thread while showing its progress; return its value.

    Args:
        label: what is running, shown on the status box.
        job: the work; calls ``on_step(step, total)`` as it goes (the core's callback). With
            ``show_partial`` it is called as ``job(on_step, emit)`` and may ``emit(value)``
            partial results.
        key: a page-unique widget key for the Cancel button.
        on_cancel: called (as the button's callback, before the page's next run) when Cancel is pressed.
        show_partial: draws one emitted value, on the page's thread, as soon as it arrives.
        where: the container to put the status box in (default: the page at this point), so a
            page can lay out the places of partial results below it beforehand.

    While the job waits for a network another run holds, the bar shows its place in that
    network's line (`waiting_text`, read from the network's lock).

    Raises:
        Whatever ``job`` raised (for the page to show), or Streamlit's own stop/rerun signal
        when the user interrupts (the worker is then told to stop).
    """
    reporter = _Reporter(Claimant(label))
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            args = (reporter.on_step,) if show_partial is None else (reporter.on_step, reporter.emit)
            with claimant(reporter.who):
                outcome["value"] = job(*args)
        except Abandoned:
            outcome["error"] = Cancelled("The run was cancelled before it started.")
        except BaseException as exc:  # handed to the page thread, which re-raises it
            outcome["error"] = exc
        finally:
            reporter.events.put(None)

    start = time.perf_counter()
    with (where or st).status(label, expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")
        st.button("Cancel", key=key, help="Stop this run; the page stays usable.", on_click=on_cancel)
        worker = threading.Thread(target=work, name=f"advexp-{key}", daemon=True)
        try:
            worker.start()
            _follow(reporter, bar, start, show_partial)
        finally:
            reporter.stop()  # no effect after a normal finish; stops the worker otherwise
        seconds = time.perf_counter() - start
        if "error" in outcome:
            status.update(label=f"{label}: stopped after {seconds:.1f} s", state="error", expanded=False)
            raise outcome["error"]
        bar.progress(1.0, text=f"Done in {seconds:.1f} s")
        status.update(label=f"{label}: done in {seconds:.1f} s", state="complete", expanded=False)
    return outcome["value"]


def _follow(reporter: _Reporter, bar: Any, start: float, show_partial: Callable[[Any], None] | None) -> None:
    """Update the bar until the worker says it is done; every update lets Streamlit interrupt us.

    Partial results are drawn as they come, outside the status box (each renderer writes into
    its own placeholder); of a run of steps only the latest is shown.
    """
    step, total = 0, 0
    shown, shown_at = "", 0.0
    while True:
        try:
            event = reporter.events.get(timeout=HEARTBEAT_S)
        except queue.Empty:
            event = (step, total)  # heartbeat: refresh the elapsed time
        while isinstance(event, tuple) and not reporter.events.empty():
            event = reporter.events.get_nowait()  # skip to the latest step, stop at anything else
        if event is None:
            return
        if isinstance(event, _Partial):
            if show_partial is not None:
                show_partial(event.value)
            continue
        step, total = event
        now = time.perf_counter()
        fraction = min(1.0, step / total) if total else 0.0
        waiting = waiting_text(reporter.who)
        if waiting:
            if waiting == shown and now - shown_at < WAITING_REFRESH_S:
                continue  # nothing new to say while waiting
            text = waiting
        elif total and now - shown_at < BAR_REFRESH_S:
            continue  # the latest step shows with the next event or heartbeat
        else:
            text = (
                f"Step {step} of {total} · {now - start:.0f} s" if total else f"Working… {now - start:.0f} s"
            )
        bar.progress(fraction, text=text)
        shown, shown_at = text, now
