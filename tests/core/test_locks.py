"""The network lock is its waiting line: re-entrant, first come first served, readable, abandonable."""

from __future__ import annotations

import threading

import pytest

from advexp_core.base.locks import Abandoned, Claimant, NetworkLock, claimant, current_claimant


def until(lock: NetworkLock, condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    """Wait for another thread to bring the line into a state (on the lock's own condition)."""
    assert lock.watch(condition, timeout), "timed out"


def test_reentrant_in_the_holding_thread_and_released_by_the_last_exit() -> None:
    lock = NetworkLock("net")
    with claimant(Claimant("page")), lock, lock:
        assert lock.state().holder == "page"
    assert lock.state().holder is None and len(lock.state().recent_s) == 1
    with pytest.raises(RuntimeError):
        lock.release()


def test_waiters_run_in_the_order_they_came() -> None:
    lock, order, gate = NetworkLock("net"), [], threading.Event()

    def run(label: str) -> None:
        with claimant(Claimant(label)), lock:
            if label == "first":
                gate.wait(10)
            order.append(label)

    threads = [threading.Thread(target=run, args=("first",))]
    threads[0].start()
    until(lock, lambda line: line.holder == "first")
    for label in ("a", "b", "c"):
        threads.append(threading.Thread(target=run, args=(label,)))
        threads[-1].start()
        until(lock, lambda line, label=label: label in line.waiting)
    assert lock.state().waiting == ("a", "b", "c")
    gate.set()
    for t in threads:
        t.join(10)
    assert order == ["first", "a", "b", "c"]


def test_an_abandoned_waiter_leaves_and_never_runs() -> None:
    lock, ran, errors = NetworkLock("net"), [], []
    waiter = Claimant("waiter")
    gate = threading.Event()

    def hold() -> None:
        with claimant(Claimant("holder")), lock:
            gate.wait(10)

    def wait() -> None:
        try:
            with claimant(waiter), lock:
                ran.append(1)
        except Abandoned as exc:
            errors.append(exc)

    a, b = threading.Thread(target=hold), threading.Thread(target=wait)
    a.start()
    until(lock, lambda line: line.holder == "holder")
    b.start()
    until(lock, lambda line: line.waiting == ("waiter",))
    waiter.abandon()
    b.join(10)
    assert errors and not ran and lock.state().waiting == () and waiter.waiting_on == []
    gate.set()
    a.join(10)


def test_a_thread_without_a_name_is_an_anonymous_claimant() -> None:
    assert current_claimant().label == threading.current_thread().name
    with claimant(Claimant("x")):
        assert current_claimant().label == "x"
