"""The lock on one shared network, which is also its waiting line.

The app shares one ``LoadedModel`` between every visitor's runs, and an experiment holds the model's
lock for its whole run (hook-based explainers hook the shared module). The lock keeps the line
itself: who holds it (since when), who waits for it (first come, first served) and how long recent
runs held it. Whoever waits can be read from outside: a page shows its run's place in the line of
whichever network the run is waiting for, and what the run ahead of it is, from the lock alone.

A run names itself with `claimant` (a label such as the page's title) in the thread that takes the
locks; a claimant can be abandoned while it waits (the visitor left), and then leaves the line at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

RECENT_RUNS = 8  # hold times kept for an estimate


class Abandoned(Exception):
    """The claimant was abandoned while it waited for a network: it never ran."""


@dataclass(eq=False)
class Claimant:
    """One run, as the locks see it: its label, the locks it waits for and those it holds."""

    label: str
    waiting_on: list[NetworkLock] = field(default_factory=list)
    holding: list[NetworkLock] = field(default_factory=list)
    abandoned: bool = False

    def abandon(self) -> None:
        """Leave every line this run waits in (its acquire raises `Abandoned`)."""
        self.abandoned = True
        for lock in list(self.waiting_on):
            lock.wake()


_local = threading.local()


def current_claimant() -> Claimant:
    """The claimant of this thread (an anonymous one when none was named)."""
    found = getattr(_local, "claimant", None)
    return found if found is not None else Claimant(threading.current_thread().name)


@contextlib.contextmanager
def claimant(who: Claimant) -> Iterator[Claimant]:
    """Take the locks of this thread as ``who`` while the block runs."""
    previous = getattr(_local, "claimant", None)
    _local.claimant = who
    try:
        yield who
    finally:
        _local.claimant = previous


@dataclass(frozen=True)
class LineState:
    """A snapshot of one network's line.

    Attributes:
        name: the network.
        holder: the label of the run holding it (None when free).
        held_s: how long it has held it.
        waiting: the labels of the runs waiting, first in line first.
        recent_s: how long recent runs held it (at most `RECENT_RUNS`).
    """

    name: str
    holder: str | None
    held_s: float
    waiting: tuple[str, ...]
    recent_s: tuple[float, ...]


class NetworkLock:
    """A re-entrant, first-come-first-served lock on one shared network that is its waiting line."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._holder: Claimant | None = None
        self._since = 0.0
        self._waiting: list[Claimant] = []
        self._recent: deque[float] = deque(maxlen=RECENT_RUNS)

    def acquire(self) -> None:
        """Wait for the network in line, then hold it (again, in the thread that holds it).

        Raises:
            Abandoned: the claimant was abandoned while it waited.
        """
        me, who = threading.get_ident(), current_claimant()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            self._waiting.append(who)
            who.waiting_on.append(self)
            self._cond.notify_all()  # watchers of the line see the newcomer
            try:
                self._cond.wait_for(
                    lambda: who.abandoned or (self._owner is None and self._waiting[0] is who)
                )
            finally:
                self._waiting.remove(who)
                who.waiting_on.remove(self)
                self._cond.notify_all()  # the next in line may go now
            if who.abandoned:
                raise Abandoned(f"The run left the line for {self.name or 'this network'} before it started.")
            self._owner, self._depth, self._holder, self._since = me, 1, who, time.perf_counter()
            who.holding.append(self)

    def release(self) -> None:
        """Release one hold; the last one frees the network for the next in line."""
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release of a network lock this thread does not hold")
            self._depth -= 1
            if self._depth:
                return
            self._recent.append(time.perf_counter() - self._since)
            if self._holder is not None:
                self._holder.holding.remove(self)
            self._owner, self._holder = None, None
            self._cond.notify_all()

    def __enter__(self) -> NetworkLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def wake(self) -> None:
        """Let waiting runs look again at whether they may go (or were abandoned)."""
        with self._cond:
            self._cond.notify_all()

    def watch(self, condition: Callable[[LineState], bool], timeout: float) -> bool:
        """Wait until ``condition`` holds for the line's state (checked at every change of holder or
        waiters); False when ``timeout`` seconds pass first."""
        with self._cond:
            return self._cond.wait_for(lambda: condition(self._state()), timeout)

    def state(self) -> LineState:
        """Who holds the network, who waits, and recent hold times."""
        with self._cond:
            return self._state()

    def _state(self) -> LineState:
        """`state` with the condition's lock held."""
        holder = self._holder
        return LineState(
            self.name,
            None if holder is None else holder.label,
            time.perf_counter() - self._since if holder is not None else 0.0,
            tuple(w.label for w in self._waiting),
            tuple(self._recent),
        )

    def place(self, who: Claimant) -> int | None:
        """``who``'s place in the line (1 = next), or None when it does not wait here."""
        with self._cond:
            return self._waiting.index(who) + 1 if who in self._waiting else None
