"""Runs that go on without their page: a heavy run (an audit of hundreds of images) started by a page
keeps running on the server when the page is closed or reloaded, and is found again by its link
(``?job=ID``, a random token that only its starter sees); it can be cancelled, shows its progress and
partial results, and keeps its result for `KEEP_S` seconds after it ends.

A browser session runs at most one such job at a time (the page asks for it again by its link after
a reload, and adopts it), and the server at most `MAX_RUNNING`. Nothing survives a restart of the
app. The work itself is the core's, called with the job's ``on_step`` (progress, and where a cancel
stops it); its partial results live in the job's ``context``, which the page reads. No Streamlit call
is made outside the page's thread.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from advexp_core.base.locks import Abandoned, Claimant, claimant

LOG = logging.getLogger("advexp_ui")
KEEP_S = 6 * 3600  # a finished job's result is kept this long
MAX_RUNNING = 4  # heavy jobs at once on this server (each also waits for its network's lock)
MAX_KEPT = 64  # finished jobs kept at most (the oldest go first)
STATES = ("running", "done", "failed", "cancelled")


class JobRefused(ValueError):
    """A job that may not start now (one already runs for this browser session, or the server is full)."""


class Cancelled(Exception):
    """Raised inside the work's ``on_step`` once the job was cancelled."""


@dataclass(eq=False)
class Job:
    """One background run: its progress, partial results and outcome, read by any page run.

    Attributes:
        id: the token in its link; label: what it does.
        state: "running", "done", "failed" or "cancelled".
        done, total: its progress (units of the work's ``on_step``); started_done: ``done`` when it
            first reported (a resumed run), for the rate.
        started, ended: times (``time.time``).
        result: the work's return value once done; error: the message when it failed.
        context: what the work shares with the pages while it runs (its partial results).
        cleanup: called when the job is forgotten (its files deleted).
    """

    id: str
    owner: str
    label: str
    state: str = "running"
    done: int = 0
    total: int = 0
    started_done: int | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    result: Any = None
    error: str | None = None
    context: Any = None
    cleanup: Callable[[], None] | None = None
    who: Claimant = field(default_factory=lambda: Claimant("background job"))
    _cancel: threading.Event = field(default_factory=threading.Event)
    _ended: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (or ``timeout`` seconds); True when it has."""
        return self._ended.wait(timeout)

    def on_step(self, done: int, total: int) -> None:
        """The work's progress; raises `Cancelled` once the job was cancelled."""
        if self._cancel.is_set():
            raise Cancelled("The run was cancelled.")
        if self.started_done is None:
            self.started_done = done
        self.done, self.total = int(done), int(total)

    def cancel(self) -> None:
        """Stop at the next step (or leave the network's line at once)."""
        self._cancel.set()
        self.who.abandon()

    @property
    def running(self) -> bool:
        return self.state == "running"

    def progress_text(self, unit: str = "image") -> str:
        """ "12 of 200 images · 1.3 images/s · about 2 min left", from what is done so far."""
        return progress_text(self.done, self.total, self.started_done or 0, time.time() - self.started, unit)


def progress_text(done: int, total: int, first: int, seconds: float, unit: str = "image") -> str:
    """Progress in words with its rate and the time left (the rate over the units done by this run)."""
    if not total:
        return f"Starting… {seconds:.0f} s"
    text = f"{done} of {total} {unit}s"
    made = done - first
    if made > 0 and seconds > 0:
        rate = made / seconds
        left = (total - done) / rate
        text += (
            f" · {rate:.2f} {unit}s/s · {duration(left)} left" if rate < 10 else f" · {rate:.0f} {unit}s/s"
        )
    return text + f" · {duration(seconds)} so far"


def duration(seconds: float) -> str:
    """ "40 s", "about 3 min", "about 2 h 5 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"about {round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min"


class Jobs:
    """The server's background jobs (one registry per process, `registry`)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(
        self,
        owner: str,
        label: str,
        work: Callable[[Job], Any],
        *,
        context: Any = None,
        cleanup: Callable[[], None] | None = None,
    ) -> Job:
        """Start ``work(job)`` in a thread of its own and return the job at once (``context``: what
        the pages read while it runs; ``cleanup``: called when the job is forgotten).

        Raises:
            JobRefused: the owner already runs a job, or `MAX_RUNNING` jobs run on this server.
        """
        with self._lock:
            self._purge()
            mine = [j for j in self._jobs.values() if j.owner == owner and j.running]
            if mine:
                raise JobRefused(
                    f"This browser session is running “{mine[0].label}” already; wait for it or cancel it "
                    "before you start another."
                )
            if sum(j.running for j in self._jobs.values()) >= MAX_RUNNING:
                raise JobRefused(
                    f"The server is running {MAX_RUNNING} long runs already; try again when one has finished."
                )
            job = Job(
                secrets.token_urlsafe(16), owner, label, context=context, cleanup=cleanup, who=Claimant(label)
            )
            self._jobs[job.id] = job
        threading.Thread(
            target=self._run, args=(job, work), name=f"advexp-job-{job.id[:6]}", daemon=True
        ).start()
        return job

    def _run(self, job: Job, work: Callable[[Job], Any]) -> None:
        try:
            with claimant(job.who):
                job.result = work(job)
            job.state = "done"
        except (Cancelled, Abandoned):
            job.state = "cancelled"
        except ValueError as exc:  # bad input or settings: the message is for the user
            job.error, job.state = str(exc) or type(exc).__name__, "failed"
        except MemoryError:
            job.error, job.state = "Not enough memory for this run: try fewer images.", "failed"
        except Exception as exc:
            LOG.exception("a background job failed")
            job.error, job.state = f"Something went wrong ({type(exc).__name__}: {str(exc)[:300]}).", "failed"
        finally:
            job.ended = time.time()
            job._ended.set()

    def get(self, job_id: str | None) -> Job | None:
        """The job of this link (None: unknown, or forgotten)."""
        if not job_id:
            return None
        with self._lock:
            self._purge()
            return self._jobs.get(job_id)

    def adopt(self, job: Job, owner: str) -> None:
        """The job now belongs to this browser session (a reloaded page found it by its link)."""
        job.owner = owner

    def running_for(self, owner: str) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.owner == owner and j.running), None)

    def _purge(self) -> None:
        """Forget the jobs ended more than `KEEP_S` ago, and the oldest beyond `MAX_KEPT` (lock held)."""
        now = time.time()
        ended = sorted((j for j in self._jobs.values() if j.ended is not None), key=lambda j: j.ended or 0.0)
        old = [j for j in ended if now - (j.ended or now) > KEEP_S]
        old += ended[len(old) : max(len(old), len(ended) - MAX_KEPT)]
        for job in old:
            self._jobs.pop(job.id, None)
            if job.cleanup is not None:
                try:
                    job.cleanup()
                except OSError:
                    LOG.exception("could not remove a finished job's files")


@st.cache_resource(show_spinner=False)
def registry() -> Jobs:
    """The server's one registry of background jobs (shared by every session)."""
    return Jobs()


SESSION_KEY = "advexp_session_owner"


def session_owner() -> str:
    """A token for this browser session (the owner of its jobs)."""
    return str(st.session_state.setdefault(SESSION_KEY, secrets.token_urlsafe(12)))


__all__ = [
    "KEEP_S",
    "MAX_RUNNING",
    "Cancelled",
    "Job",
    "JobRefused",
    "Jobs",
    "duration",
    "progress_text",
    "registry",
    "session_owner",
]
