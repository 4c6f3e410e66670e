"""Results as they come: the attack page draws the decision before the maps, each
block once in its place; nothing is recomputed when the rest arrives or on a rerun; the server's
warm-up thread starts once."""

from __future__ import annotations

import gc
import sys
import threading

import advexp_ui.jobs.attack as attack_job
from advexp_ui import gallery, loaders
from advexp_ui.views import attack as attack_view
from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label, downloads, submit

PAGE = "pages/1_Saliency_under_attack.py"


def recorder(monkeypatch, owner, name: str) -> list:
    """Record the first argument of each call of ``owner.name`` (still calling it)."""
    seen: list = []
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        seen.append(args[1] if isinstance(owner, type) else (args[0] if args else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return seen


def test_the_decision_is_drawn_before_the_maps_and_nothing_is_recomputed(open_page, monkeypatch) -> None:
    parts = recorder(monkeypatch, attack_view.AttackSlots, "show_part")
    runs = recorder(monkeypatch, attack_job, "compute_attack")
    panels = recorder(monkeypatch, attack_job.images, "overlay_png")
    at = open_page(PAGE, image="cifar10_test_5")
    by_label(at.number_input, "Steps (PGD)").set_value(2)
    by_label(at.number_input, "Integrated Gradients steps").set_value(5)
    submit(at, "attack-form", "Run the attack")
    assert_clean(at)
    assert [p.block for p in parts] == ["decision", "gradcam", "ig"]
    assert "attacked" in parts[0].panels and isinstance(parts[0], attack_job.DecisionPart)
    assert len(runs) == 1 and len(panels) == 4  # two overlays per method, made once
    verdicts = [m.value for m in [*at.success, *at.warning] if "The decision" in m.value]
    assert len(verdicts) == 1  # drawn early, then drawn again in the same place: once on screen
    assert downloads(at)[0] == "adversarial.png"
    at.run()  # a rerun shows the whole result from the cache, without parts or new work
    assert_clean(at)
    assert len(parts) == 3 and len(runs) == 1 and len(panels) == 4


def test_the_parts_are_the_final_result(woods_dir) -> None:
    """The blocks drawn early hold the same numbers and pictures as the whole result."""
    from advexp_core.experiments import AttackConfig, SaliencyConfig

    image = gallery.entry_bytes("cifar10_test_0")
    model = loaders.cached_model("woods2019-cifar10-standard")
    config, saliency = AttackConfig(steps=2), SaliencyConfig(ig_steps=4)
    got: list[attack_job.AttackPart] = []
    outcome = attack_job.compute_attack(image, config, saliency, model, on_part=got.append)
    readings = outcome.report["readings"]
    for part in got:
        assert all(outcome.panels[k] == v for k, v in part.panels.items())
        if isinstance(part, attack_job.DecisionPart):
            assert part is outcome.decision
            assert part.readings.decision.to_json() == readings["decision"]
            assert part.readings.visibility.to_json() == readings["visibility"]
            assert part.readings.perturbation == readings["perturbation"]
        else:
            verdict = part.readings.verdict
            assert (
                part is outcome.maps[part.block] and part.pair.metrics == outcome.report["maps"][part.block]
            )
            assert readings["maps"][part.block] == {
                **part.readings.sentences,
                "verdict": verdict.text,
                "outcome": verdict.outcome,
            }
    assert [p.block for p in got] == ["decision", *outcome.maps]
    assert outcome.overall.to_json() == readings["overall"]


def test_a_waiting_run_reads_its_place_from_the_networks_lock_and_leaves_when_cancelled() -> None:
    """The line is the lock: whichever experiment holds the network shows as running, the waiting
    runs see their place and an estimate, and a cancelled waiter leaves at once."""
    from advexp_core.base.locks import Abandoned, Claimant, NetworkLock, claimant
    from advexp_ui import progress

    lock = NetworkLock("test-network")
    holder, second, third = Claimant("Ground truth"), Claimant("Saliency under attack"), Claimant("Compare")
    release, errors = threading.Event(), []

    def hold() -> None:
        with claimant(holder), lock:
            release.wait(10)

    def wait(who: Claimant) -> None:
        try:
            with claimant(who), lock:
                pass
        except Abandoned as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    assert lock.watch(lambda line: line.holder == "Ground truth", 10)
    for who in (second, third):
        threads.append(threading.Thread(target=wait, args=(who,)))
        threads[-1].start()
        assert lock.watch(lambda line, who=who: who.label in line.waiting, 10)
    assert progress.waiting_text(holder) is None  # it holds the network: no place
    text = progress.waiting_text(second)
    assert (
        text is not None
        and "(test-network): place 1 in line (1 run(s) ahead; Ground truth is running)" in text
    )
    assert "about" not in text  # no finished run yet to estimate from
    assert "place 2 in line (2 run(s) ahead" in (progress.waiting_text(third) or "")
    third.abandon()  # cancelled while waiting: out of the line at once, its run never starts
    assert lock.watch(lambda line: line.waiting == ("Saliency under attack",), 10)
    assert lock.state().waiting == ("Saliency under attack",)
    release.set()
    for thread in threads:
        thread.join(10)
    assert lock.state().holder is None and len(lock.state().recent_s) == 2


def test_the_warm_up_thread_starts_once_per_server(monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    started: list[str] = []
    monkeypatch.setattr(loaders, "_warm", lambda model_id: started.append(model_id))
    loaders.warm_start.clear()
    try:
        for _ in range(2):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S).run()
            assert_clean(at)
        thread = loaders.warm_start()
        assert isinstance(thread, threading.Thread)
        thread.join(timeout=30)
        assert started == ["efficientnet-lite0-imagenet"]
    finally:
        loaders.warm_start.clear()


def test_the_warm_up_imports_the_pages_and_freezes_the_heap(monkeypatch) -> None:
    """After the warm-up, Streamlit's full collection after each run skips the server's long-lived
    objects: they are frozen (gc.freeze), and objects made later are collected as before."""
    warmed: list[str] = []
    monkeypatch.setattr(loaders, "cached_model", lambda model_id: warmed.append(model_id) or object())
    monkeypatch.setattr(loaders, "classify", lambda data, model_id, model: warmed.append("top-5"))
    held: list[list[int]] = [[]]  # a long-lived object of the server's
    gc.unfreeze()
    assert any(obj is held for obj in gc.get_objects())
    try:
        loaders._warm("efficientnet-lite0-imagenet")
        assert warmed == ["efficientnet-lite0-imagenet", "top-5"]
        assert all(name in sys.modules for name in loaders.PAGE_MODULES)
        assert not any(obj is held for obj in gc.get_objects())  # frozen: out of the collector's view
        later = [[]]
        later.append(later)  # a cycle made after the freeze is still garbage to collect
        del later
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()


def test_the_servers_threads_come_from_the_environment_or_half_the_cpus(monkeypatch) -> None:
    monkeypatch.setenv(loaders.THREADS_ENV, "3")
    assert loaders.intra_op_threads() == 3
    monkeypatch.setenv(loaders.THREADS_ENV, "zero")
    assert loaders.intra_op_threads() >= 1


def test_a_running_bar_moves_at_most_every_refresh_interval(monkeypatch) -> None:
    """Fifty steps 10 ms apart send a few bar updates, not fifty (each is page-thread work and a
    re-render that the job pays for). The steps arrive one at a time on a simulated clock."""
    from types import SimpleNamespace

    from advexp_core.base.locks import Claimant
    from advexp_ui import progress

    clock = [1000.0]
    monkeypatch.setattr(progress, "time", SimpleNamespace(perf_counter=lambda: clock[0]))

    class Steps:
        """The job's events as `_follow` reads them: each get() is the next step, 10 ms later."""

        def __init__(self) -> None:
            self.step = 0

        def get(self, timeout: float | None = None) -> tuple[int, int] | None:
            self.step += 1
            clock[0] += 0.01
            return (self.step, 50) if self.step <= 50 else None

        def empty(self) -> bool:
            return True  # never a backlog to skip: every step is seen

    updates: list[str] = []

    class Bar:
        def progress(self, fraction: float, text: str) -> None:
            updates.append(text)

    reporter = progress._Reporter(Claimant("page"))
    reporter.events = Steps()  # type: ignore[assignment]
    start = clock[0]
    progress._follow(reporter, Bar(), start, None)
    elapsed = clock[0] - start
    assert updates and updates[0].startswith("Step 1 of 50")
    assert 2 <= len(updates) <= 1 + elapsed / progress.BAR_REFRESH_S < 50
