"""The app as a visitor meets it: time to first result and to the whole result on three pages,
against the forward+backward floor the page's defaults need, measured in the same run.

Starts `streamlit run app.py` on a free port of 127.0.0.1 (offline), drives Debian's Chromium
(/usr/bin/chromium, never a Playwright download) through the home page, the attack, the
explanations and the compare page with their defaults on the gallery cat, and prints per page:
seconds to the first result, seconds to the whole result, two floors (the model's bare passes that
the defaults need, timed in a separate process right after the page, once the server has gone
quiet): as the server runs them, and the fastest way on this machine (torch's default thread count
with the passes one after another, or one thread per operation with independent passes side by side
on the cores, each batch size for the batched methods: every way timed and printed, the least kept),
with the ratios to each. The explanations page's floor includes the standard-vs-robust pair when the
page runs it. The home page's top-5 is set against a bare Streamlit page of the same shape served
and drawn on the same machine (the frontend's own floor). ``--sessions N`` instead runs N
browser sessions on one server that each upload their own image (a crop of a gallery photo, so no
result comes from another's cache) and press Run on the attack page at once, plus one more session
that presses Cancel while it waits in line; it prints p50/p95 waiting and running times (against
one session's run alone on the server before the room opens), health-endpoint latency and the
server's peak RSS.

On a machine with a GPU the same command measures the GPU: the server and the floor both put the
networks on CUDA when it is present (`advexp_core.networks.registry.default_device`).

Streamlit runs no project code before a first session connects, so the first visitor of a fresh
server pays the imports and the warm-up. ``--prime`` shows what a launcher that asks the server's
script health check once at start would give (the check runs app.py, which starts the warm-up).

With ``--sessions`` the browsers run in Linux's idle scheduling class (``--idle-browsers``): they
stand for the visitors' own laptops, and on one box at the server's priority N + 2 of them take
most of its cores. (A niceness does not hold: Chromium run as root sets its threads back to 0 and -8.)
At the end each session counts as completed, failed (the page shows an error), or still running
or waiting at the deadline.

Run: .venv/bin/python -m bench.bench_app [--repeats 3] [--sessions N [--deadline-s S]] [--warm-s 30] [--prime]
Every wait is bounded; the server and the browser are always stopped.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Server, health
from tests.e2e.helpers import expect_text, open_page, set_number, settled, upload_image

print = functools.partial(print, flush=True)  # noqa: A001  # lines as they come, also into a pipe
ROOT = Path(__file__).resolve().parent.parent

RUN_TIMEOUT_MS = 600_000
# Records, in the page, when each pattern first appears in its text (polled; ms resolution ~poll).
WATCH_JS = """([patterns, poll]) => {
  window.__seen = {};
  window.__t0 = performance.now();
  const res = Object.fromEntries(Object.entries(patterns).map(([k, v]) => [k, new RegExp(v)]));
  const check = () => {
    const text = document.body.innerText;
    for (const [k, re] of Object.entries(res)) {
      if (!(k in window.__seen) && re.test(text)) window.__seen[k] = performance.now() - window.__t0;
    }
  };
  window.__watch = setInterval(check, poll);
}"""
PAGES = {
    "attack": (
        "Saliency_under_attack", "Saliency under attack", "Run the attack",
        r"The decision (changed|did not change)", r"Attacking and explaining: done in",
    ),
    "explain": (
        "Adversarial_explanations", "Adversarial explanations", "Explain",
        r"the image as the network sees it", r"Explaining on both networks: done in",
    ),
    "compare": (
        "Compare_explainers", "Compare explainers", "Compare",
        r"Explaining class", r"Explaining with every method: done in",
    ),
}  # fmt: skip


class Sampler(threading.Thread):
    """Every half second: the server's resident memory and the health endpoint's latency."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server, self.stop = server, threading.Event()
        self.peak_rss_mb, self.health_s, self.health_failures = 0.0, [], 0

    def run(self) -> None:
        while not self.stop.wait(0.5):
            status = Path(f"/proc/{self.server.process.pid}/status")
            for line in status.read_text().splitlines() if status.exists() else []:
                if line.startswith("VmRSS:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
            start = time.perf_counter()
            ok = health(self.server.url, timeout=10)
            self.health_s.append(time.perf_counter() - start)
            self.health_failures += not ok


def watch(page, patterns: dict[str, str], poll_ms: int = 50) -> None:
    page.evaluate(WATCH_JS, [patterns, poll_ms])


def seen(page) -> dict[str, float]:
    """Seconds from the watch's start to each pattern seen so far."""
    return {k: v / 1000 for k, v in page.evaluate("window.__seen").items()}


# Per page, a setting that changes the result's cache key but not the work (repeat k uses k).
VARIED = {
    "attack": ("Seed (random start)", lambda k: k),  # random start is off: the same attack
    "explain": ("Budget ρ (RMS, [0,1] units)", lambda k: 0.1 + 0.005 * k),
    "compare": ("Seed (SmoothGrad noise)", lambda k: k),
}


SIDE_BY_SIDE = "Also: the same image on a standard and a robust network, side by side"
ONE_NETWORK_DONE = r"Explaining on (?!both networks).*: done in"


def side_by_side(page) -> bool:
    """The explanations page will also run the standard-vs-robust pair (its box is ticked: it is by
    default when a pair for the image's kind loads, e.g. the paper's networks for a photo)."""
    box = page.get_by_label(SIDE_BY_SIDE)
    return box.count() > 0 and box.is_checked()


def run_page(
    page, base: str, name: str, repeat: int = 0, before_click: Callable[[], None] | None = None
) -> tuple[float, float, bool]:
    """Open a page, press its run button, return seconds to the first and to the whole result, and
    whether the explanations page ran its standard-vs-robust pair too (its floor then includes it).
    Repeat k > 0 changes one setting that keeps the work (so no result comes from the cache).
    ``before_click`` runs just before the button is pressed (a profiler starts there)."""
    path, heading, button, first, done = PAGES[name]
    open_page(page, base, path, heading)
    pair = name == "explain" and side_by_side(page)
    if name == "explain" and not pair:
        done = ONE_NETWORK_DONE
    if repeat:
        label, value = VARIED[name]
        set_number(page, label, value(repeat))
        settled(page)
    watch(page, {"first": first, "done": done})
    if before_click is not None:
        before_click()
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_function("window.__seen.done !== undefined", timeout=RUN_TIMEOUT_MS)
    settled(page, RUN_TIMEOUT_MS)
    times = seen(page)
    return times["first"], times["done"], pair


def home_seconds(browser, base: str) -> float:
    """Seconds from opening the home page to its top-5 table on screen (a fresh session)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        start = time.perf_counter()
        page.goto(base)
        page.wait_for_function(
            'document.querySelectorAll(\'[data-testid="stMain"] [data-testid="stDataFrame"]\').length >= 2',
            timeout=RUN_TIMEOUT_MS,
        )
        return time.perf_counter() - start
    finally:
        context.close()


# Streamlit's own floor for the home page: a page of the same shape (a title, text and two small
# tables, the second a 5-row table with probability bars) and no project code.
BARE_HOME = """import streamlit as st
st.set_page_config(page_title="bare", layout="wide")
st.title("A bare Streamlit page")
st.markdown("Text. " * 200)
st.dataframe([{"network": f"n{k}", "group": "g", "weights": "w"} for k in range(12)], hide_index=True)
st.dataframe(
    [{"class": f"c{k}", "probability": 0.1 * k} for k in range(5)], hide_index=True,
    column_config={"probability": st.column_config.ProgressColumn("probability", min_value=0, max_value=1)},
)
"""


def bare_home_seconds(browser, env: dict[str, str]) -> float:
    """Seconds from opening a bare Streamlit page like the home page to its two tables on screen
    (the frontend's own load and drawing in this browser, on this machine)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bare_home.py"
        script.write_text(BARE_HOME)
        bare = Server(env, script)
        try:
            bare.wait_ready()
            home_seconds(browser, bare.url)  # its first run, like the primed app's
            return statistics.median(home_seconds(browser, bare.url) for _ in range(3))
        finally:
            bare.stop()


def pages_bench(
    browser, server: Server, warm_s: float, names: list[str], repeats: int, env: dict[str, str]
) -> None:
    """Home (first visitor after ``warm_s`` s of uptime, then a second one, against a bare
    Streamlit page of the same shape) and the three pages, each ``repeats`` times, its floor timed
    right after each run once the server is quiet; then the median ratios."""
    time.sleep(max(0.0, warm_s - (time.perf_counter() - server.started)))
    first, second = home_seconds(browser, server.url), home_seconds(browser, server.url)
    bare = bare_home_seconds(browser, env)
    print(
        f"home top-5: first visitor {first:.1f} s, next visitor {second:.1f} s (server up {warm_s:.0f} s); "
        f"a bare Streamlit page of the same shape {bare:.1f} s: first/bare {first / bare:.2f}"
    )
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(RUN_TIMEOUT_MS)
    page = context.new_page()
    print(
        f"{'page':8} {'first s':>8} {'whole s':>8} {'floor s':>8} {'first/PGD':>10} {'whole/floor':>12}"
        f" {'fastest floor s':>16} {'first/PGD':>10} {'whole/floor':>12}   (floor: as the server runs; "
        "fastest: the fastest way measured)"
    )
    ratios: dict[str, dict[str, list[tuple[float, float]]]] = {
        p: {name: [] for name in names} for p in POLICIES
    }
    try:
        for repeat in range(repeats):
            for name in names:
                t_first, t_done, pair = run_page(page, server.url, name, repeat)
                quiet(server)
                row = f"{name:8} {t_first:8.1f} {t_done:8.1f}"
                parts = []
                for policy in POLICIES:
                    floor = floors_apart(name, policy, pair)
                    first_ratio = t_first / floor["first"] if "first" in floor else math.nan
                    ratios[policy][name].append((first_ratio, t_done / floor["total"]))
                    width = 8 if policy == "server" else 16
                    row += f" {floor['total']:{width}.1f} {_ratio(first_ratio):>10} {t_done / floor['total']:12.2f}"
                    parts.append(
                        f"{policy}: "
                        + ", ".join(
                            f"{k} {v:.2f}" for k, v in floor.items() if isinstance(v, float) and k != "total"
                        )
                    )
                    if floor.get("batches"):
                        parts.append(
                            "ways timed: "
                            + "; ".join(
                                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                for k, v in floor["batches"].items()
                            )
                        )
                print(row + "\n    " + "\n    ".join(parts))
    finally:
        context.close()
    for policy in POLICIES:
        for name, values in ratios[policy].items():
            firsts, wholes = zip(*values, strict=True)
            print(
                f"{name:8} {policy} floor, median of {len(values)}: first/PGD {_ratio(statistics.median(firsts))}, "
                f"whole/floor {statistics.median(wholes):.2f} (range {min(wholes):.2f}-{max(wholes):.2f})"
            )


def _ratio(value: float) -> str:
    """A ratio for the table; "—" where the page has no such reference (compare runs no PGD)."""
    return "—" if math.isnan(value) else f"{value:.2f}"


_MODELS: dict[str, object] = {}


def _model(model_id: str):
    from advexp_core.networks.registry import load_model

    if model_id not in _MODELS:
        _MODELS[model_id] = load_model(model_id)
    return _MODELS[model_id]


FLOOR_ROUNDS = 2  # the floor is the faster of this many timings (other load only ever adds time)


def _pass_s(model_id: str, sizes: list[int], *, backward: bool = True, side_by_side: bool = False) -> float:
    """Seconds for bare passes of ``sizes`` images each, after one warm-up pass: the fastest of
    `FLOOR_ROUNDS` rounds (all passes timed: on a shared machine the load moves too much to time a
    few and scale; in one process the same parts varied by up to 25 % from page to page).
    ``side_by_side``: the passes go through `advexp_core.base.runtime.in_order`, as the server sends
    independent passes (one per core at one thread per operation)."""
    import torch

    from advexp_core.base.runtime import in_order

    model = _model(model_id)
    inputs = {b: torch.rand(b, 3, *model.input_size, device=model.device) for b in set(sizes)}

    def one(batch: int) -> None:
        x = inputs[batch]
        if backward:
            xx = x.clone().requires_grad_(True)
            torch.autograd.grad(model.module(xx)[:, 0].sum(), xx)
        else:
            with torch.no_grad():
                model.module(x)

    def sync() -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize(model.device)

    def timed() -> float:
        start = time.perf_counter()
        if side_by_side:
            for _ in in_order(one, sizes, model.device):
                pass
        else:
            for batch in sizes:
                one(batch)
        sync()
        return time.perf_counter() - start

    one(max(sizes))
    sync()
    return min(timed() for _ in range(FLOOR_ROUNDS))


def _split(images: int, batch: int) -> list[int]:
    """``images`` as passes of ``batch`` (the last one smaller)."""
    return [min(batch, images - start) for start in range(0, images, batch)]


POLICIES = ("server", "fastest")
"""How a floor is timed. "server": as the server runs the passes (its thread count per operation,
`advexp_ui.loaders.intra_op_threads`, the saliency methods' CPU batch, and independent passes side
by side on the cores, `advexp_core.base.runtime.in_order`). "fastest": the fastest way to do the same
passes on this machine, whichever it is: every way below is timed and the least kept (the timings
are printed): torch's default thread count with the passes one after another, and one thread per
operation with the passes side by side on the cores; for the batched methods, each batch size of
`BATCH_CANDIDATES` in both."""
BATCH_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)


def floors(name: str, policy: str = "server", *, pair: bool = True) -> dict[str, Any]:
    """The bare passes a page's defaults need, timed now: parts, ``first`` and ``total`` seconds.

    attack: PGD steps on 1 image, Grad-CAM on 2, IG 2 x steps images (in `cpu_pass_images` batches
    on a CPU, one batch on a GPU).
    explain: S steps on the T targets of each network (the chosen one, then the contrast pair):
    on a CPU each target alone, the targets side by side; elsewhere one batch of T.
    compare: Grad-CAM, gradient (1 image), IG (steps images) and SmoothGrad (samples), both in
    `cpu_pass_images` batches on a CPU and one batch on a GPU, and the deletion/insertion curves
    (forward only, 2 x (faithfulness_steps + 1) images per method in the passes of
    `faithfulness.deletion_insertion`).
    """
    import torch

    from advexp_core import experiments as ex
    from advexp_core.evaluation.faithfulness import CPU_PASS_IMAGES, DEVICE_PASS_IMAGES
    from advexp_core.methods.saliency import cpu_pass_images, explainer
    from advexp_core.networks.registry import DEFAULT_MODEL_ID
    from advexp_ui.loaders import contrast_pair, intra_op_threads

    default_threads = torch.get_num_threads()  # this fresh process: torch's own default
    m = DEFAULT_MODEL_ID
    if name == "device":  # what the server and the floor run on
        device = _model(m).device
        return {
            "name": f"{device} ({torch.cuda.get_device_name(device)})"
            if device.type == "cuda"
            else str(device)
        }
    cpu = _model(m).device.type == "cpu"
    measured: dict[str, float] = {}
    ways = [(default_threads, False)] + ([(1, True)] if cpu and default_threads > 1 else [])

    def timed(
        label: str,
        model_id: str,
        server: list[int],
        *,
        backward: bool = True,
        options: dict[str, list[int]] | None = None,
        side: bool = True,
        chain: bool = False,
        chained: frozenset[str] = frozenset(),
    ) -> float:
        """``server``: the pass sizes as the server sends them (side by side when ``side`` and on a
        CPU). "fastest": every way of `ways` for each of ``options`` (name -> pass sizes; default
        the server's), the least kept. ``chain``: the passes depend on each other (PGD's steps),
        so they never run side by side; ``chained``: the options of which that holds (a batch of
        every target takes the explanation's steps one after another)."""
        if policy == "server":
            torch.set_num_threads(intra_op_threads())
            return _pass_s(model_id, server, backward=backward, side_by_side=side and cpu and not chain)
        times: dict[str, float] = {}
        for threads, side_by_side in ways:
            torch.set_num_threads(threads)
            for option, sizes in (options or {"as the server": server}).items():
                # a chain runs one pass after another: at one thread instead of side by side
                apart = side_by_side and not (chain or option in chained)
                key = f"{label}: {option}, {threads} thread(s){', side by side' if apart else ''}"
                times[key] = _pass_s(model_id, sizes, backward=backward, side_by_side=apart)
        measured.update(times)
        best = min(times, key=times.__getitem__)
        measured[f"{label}: fastest"] = best  # type: ignore[assignment]
        return times[best]

    def batches(images: int) -> dict[str, list[int]]:
        return {f"batches of {b}": _split(images, b) for b in BATCH_CANDIDATES if b <= images}

    def saliency_passes(images: int, method: str = "ig") -> list[int]:
        size = _model(m).input_size
        return _split(images, cpu_pass_images(explainer(method), *size) or images if cpu else images)

    if name == "attack":
        attack, sal = ex.AttackConfig(), ex.SaliencyConfig()
        parts = {
            "PGD": timed("PGD", m, [1] * attack.steps, chain=True),
            "Grad-CAM": timed("Grad-CAM", m, [2], side=False),
            "IG": timed("IG", m, saliency_passes(2 * sal.ig_steps), options=batches(2 * sal.ig_steps)),
        }
        return {**parts, "first": parts["PGD"], "total": sum(parts.values()), "batches": measured}
    if name == "explain":
        config = ex.ExplanationConfig()
        targets = len(config.targets)
        alone = [1] * (targets * config.steps)  # each target alone, the targets side by side
        batch = f"one batch of {targets}"  # every target in one pass per step: the steps are a chain
        options = {"each target alone": alone, batch: [targets] * config.steps}
        parts = {}
        for model_id in [m, *(contrast_pair(m) if pair else ())]:
            server = alone if cpu else [targets] * config.steps
            parts[model_id] = timed(model_id, model_id, server, options=options, chained=frozenset({batch}))
        return {**parts, "first": parts[m], "total": sum(parts.values()), "batches": measured}
    cmp = ex.ExplainersConfig()
    sal, methods = cmp.saliency, len(cmp.saliency.methods)
    curve = 2 * (cmp.faithfulness_steps + 1)  # deleted and inserted images of one map
    parts = {
        "Grad-CAM+gradient": timed("Grad-CAM+gradient", m, [1, 1], side=False),
        "IG": timed("IG", m, saliency_passes(sal.ig_steps), options=batches(sal.ig_steps)),
        "SmoothGrad": timed(
            "SmoothGrad",
            m,
            saliency_passes(sal.smoothgrad_samples, "smoothgrad"),
            options=batches(sal.smoothgrad_samples),
        ),
        "curves": methods
        * timed(
            "curves of one map",
            m,
            _split(curve, CPU_PASS_IMAGES if cpu else DEVICE_PASS_IMAGES),
            backward=False,
            options=batches(curve),
        ),
    }
    return {**parts, "total": sum(parts.values()), "batches": measured}


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quiet(server: Server, idle_s: float = 1.0, limit_s: float = 20.0) -> None:
    """Wait (up to ``limit_s``) until the server has used under 5 % of a CPU for ``idle_s``: after a
    page is done the server may still be busy (its collection, the last messages), and the floor
    timed meanwhile would be slowed by it."""
    if not Path(f"/proc/{server.process.pid}/stat").exists():
        return
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        before = _cpu_s(server.process.pid)
        time.sleep(idle_s)
        if _cpu_s(server.process.pid) - before < 0.05 * idle_s:
            return


def floors_apart(name: str, policy: str = "server", pair: bool = True) -> dict[str, Any]:
    """`floors` in a fresh process: torch never runs in this one, whose Playwright drives the
    browser while the server works (with torch imported here, the attack page took 1.5-1.7x its
    floor in 3 runs instead of 1.1-1.3x)."""
    command = [sys.executable, "-m", "bench.bench_app", "--floor", name, "--floor-policy", policy]
    command += [] if pair else ["--floor-no-pair"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def quantiles(values: list[float], digits: int = 1) -> str:
    if not values:
        return "none"
    q = statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1 else values * 19
    return (
        f"p50 {statistics.median(values):.{digits}f} s, p95 {q[18]:.{digits}f} s, "
        f"max {max(values):.{digits}f} s"
    )


def session_images(n: int, folder: Path) -> list[Path]:
    """N different uploads: crops of the gallery photos (each one's own result, never a cache hit)."""
    from PIL import Image

    photos = sorted((ROOT / "gallery").glob("*.jpg"))
    paths = []
    for k in range(n):
        with Image.open(photos[k % len(photos)]) as photo:
            w, h = photo.size
            side = min(w, h) * (100 - k // len(photos)) // 100
            crop = (
                photo.convert("RGB").crop((w - side, h - side, w, h))
                if k % 2
                else photo.convert("RGB").crop((0, 0, side, side))
            )
            path = folder / f"visitor-{k:02d}.png"
            crop.save(path)
        paths.append(path)
    return paths


def sessions_bench(browser, server: Server, n: int, deadline_s: float) -> None:
    """N sessions upload their own image and press Run on the attack page at once; one more
    presses Cancel while it waits. Their waiting and running times, and whether the cancel worked."""
    import tempfile

    patterns = {
        "queued": r"Waiting for this network \([^)]*\): place \d+",
        "started": r"Step [1-9]\d* of",
        "done": r"Attacking and explaining: done in",
        "failed": FAILED,
    }
    contexts, pages = [], []
    with tempfile.TemporaryDirectory() as tmp:
        *paths, own = session_images(n + 2, Path(tmp))
        for path in [own, *paths]:
            context = browser.new_context(viewport={"width": 1300, "height": 900})
            context.set_default_timeout(RUN_TIMEOUT_MS)
            page = context.new_page()
            contexts.append(context)
            pages.append(page)
            open_page(page, server.url, "Saliency_under_attack", "Saliency under attack")
            upload_image(page, path)
            if path == own:  # the reference: one session alone on the server, the others not open yet
                alone = session_alone(page, patterns)
    _, *runners, canceller = pages  # the first page was the reference
    cancelled = False
    try:
        for page in [*runners, canceller]:
            watch(page, patterns, 200)
            page.get_by_role("button", name="Run the attack", exact=True).click()
        expect_text(canceller, patterns["queued"])  # the last one in line: still waiting
        canceller.get_by_role("button", name="Cancel", exact=True).click()
        expect_text(canceller, r"The run was cancelled")
        cancelled = "started" not in seen(canceller)
        deadline = time.monotonic() + deadline_s
        results = [seen(p) for p in runners]
        next_line = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_ended(r) for r in results):
            time.sleep(1.0)
            results = [seen(p) for p in runners]
            if time.monotonic() >= next_line:  # a line a minute, so a long run shows where it is
                next_line += 60
                ended, started = sum(map(_ended, results)), sum("started" in r for r in results)
                print(
                    f"  {deadline_s - (deadline - time.monotonic()):.0f} s: ended {ended}, running "
                    f"{started - ended}, waiting {len(results) - started}"
                )
    finally:
        for context in contexts:
            context.close()
    done = [r for r in results if "done" in r and "started" in r]
    waiting = [r["started"] for r in done]
    running = [r["done"] - r["started"] for r in done]
    queued = sum("queued" in r for r in results)
    failed = sum("failed" in r and "done" not in r for r in results)
    late_running = sum(not _ended(r) and "started" in r for r in results)
    late_waiting = sum(not _ended(r) and "started" not in r for r in results)
    print(
        f"sessions: {n}; within {deadline_s:.0f} s: completed {len(done)}, failed {failed} "
        f"(an error on the page), still running {late_running}, still waiting {late_waiting}"
    )
    print(f"sessions that saw their place in the line while waiting: {queued}")
    print(
        f"one more session pressed Cancel while queued: {'left the line, never ran' if cancelled else 'FAILED'}"
    )
    print(f"waiting (Run -> first PGD step shown): {quantiles(waiting)}")
    print(f"running (first step -> done):          {quantiles(running)}")
    if running:
        print(
            f"one session alone before the room (its second run) ran in {alone:.1f} s: running p50 / alone "
            f"{statistics.median(running) / alone:.2f}"
        )


def session_alone(page, patterns: dict[str, str]) -> float:
    """Seconds from the first step to done of one run on the attack page with nothing else running:
    the second of two (a fresh server's first run pays one-off costs), the seed changed between
    them so it is not a cache hit."""
    label, value = VARIED["attack"]
    for repeat in range(2):
        if repeat:
            set_number(page, label, value(repeat))
            settled(page)
        page.get_by_role("button", name="Run the attack", exact=True).click()
        # the first run's "done" stays on the page until the new run replaces it
        page.wait_for_function(
            f"!new RegExp({json.dumps(patterns['done'])}).test(document.body.innerText)",
            timeout=RUN_TIMEOUT_MS,
        )
        watch(page, patterns, 50)
        page.wait_for_function("window.__seen.done !== undefined", timeout=RUN_TIMEOUT_MS)
        settled(page, RUN_TIMEOUT_MS)
    times = seen(page)
    return times["done"] - times["started"]


# What a page shows when its run ends in an error (`progress.run_with_progress`, `flow.guard`).
FAILED = r"stopped after \d|Something went wrong|Not enough memory"


def _ended(seen_at: dict[str, float]) -> bool:
    return "done" in seen_at or "failed" in seen_at


@contextmanager
def browser_binary(idle: bool) -> Iterator[Path]:
    """Chromium, or a wrapper that starts it (and so every process and thread it makes) in the
    SCHED_IDLE class, which runs only on CPU time nothing else wants.

    The browsers stand for visitors' own laptops; on one box they share the server's cores. A
    scheduling class, unlike a niceness, stays put: Chromium run as root resets its threads'
    niceness (to 0, and -8 for its display threads) but not their class.
    """
    if not idle:
        yield CHROMIUM
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "chromium"
        wrapper.write_text(f'#!/bin/sh\nexec chrt --idle 0 {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        yield wrapper


def main() -> None:
    """Parse the options, start the server and the browser, run one benchmark, stop both."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=0, help="N concurrent sessions on the attack page")
    parser.add_argument(
        "--deadline-s", type=float, default=1800.0, help="with --sessions: how long to wait for all runs"
    )
    parser.add_argument(
        "--idle-browsers",
        action=argparse.BooleanOptionalAction,
        help="run the browsers in the idle scheduling class (default: yes with --sessions, where "
        "N + 2 of them share this machine with the server, else no)",
    )
    parser.add_argument("--warm-s", type=float, default=30.0, help="server uptime before the home page opens")
    parser.add_argument(
        "--pages", default=",".join(PAGES), help="pages to run, comma-separated ('' = home only)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each page (median ratios)")
    parser.add_argument("--prime", action="store_true", help="run app.py once at start (script health check)")
    parser.add_argument("--floor", choices=[*PAGES, "device"], help=argparse.SUPPRESS)  # floors_apart's child
    parser.add_argument("--floor-policy", choices=POLICIES, default="server", help=argparse.SUPPRESS)
    parser.add_argument("--floor-no-pair", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # A SIGTERM (`kill`, `timeout`) unwinds like Ctrl-C, so the server and the browser are stopped
    # too: a server left running keeps working through its sessions' queued runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.floor:
        print(json.dumps(floors(args.floor, args.floor_policy, pair=not args.floor_no_pair)))
        return
    names = [n for n in args.pages.split(",") if n]
    if unknown := set(names) - set(PAGES):
        parser.error(f"unknown pages {sorted(unknown)}; choose from {', '.join(PAGES)}")
    if not CHROMIUM.exists():
        sys.exit("/usr/bin/chromium is missing: run `bash scripts/install_chromium.sh` as root.")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=RUN_TIMEOUT_MS)  # the helpers' waits (a loaded CPU is slow)

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; cpus {os.cpu_count()}")
    env = {**os.environ, "ADVEXP_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if args.prime:
        env["STREAMLIT_SERVER_SCRIPT_HEALTH_CHECK_ENABLED"] = "true"
    server = Server(env)
    server.started = time.perf_counter()  # type: ignore[attr-defined]
    sampler = Sampler(server)
    try:
        server.wait_ready()
        if args.prime:
            with urllib.request.urlopen(f"{server.url}/_stcore/script-health-check", timeout=120) as r:
                print(f"primed: script health check says {r.read().decode().strip()!r}")
        sampler.start()
        idle = args.idle_browsers if args.idle_browsers is not None else bool(args.sessions)
        print(
            f"browsers in the {'idle' if idle else 'normal'} scheduling class, the server in the normal one"
        )
        with sync_playwright() as playwright, browser_binary(idle) as binary:
            browser = playwright.chromium.launch(executable_path=str(binary), args=CHROMIUM_ARGS)
            try:
                run: Callable[[], None] = (
                    (lambda: sessions_bench(browser, server, args.sessions, args.deadline_s))
                    if args.sessions
                    else (lambda: pages_bench(browser, server, args.warm_s, names, args.repeats, env))
                )
                run()
            finally:
                browser.close()
    finally:
        sampler.stop.set()
        server.stop()
    slow = sum(t > 1.0 for t in sampler.health_s)
    print(
        f"server peak RSS {sampler.peak_rss_mb:.0f} MB; health {len(sampler.health_s)} probes, "
        f"{sampler.health_failures} failed, {slow} over 1 s, {quantiles(sampler.health_s, 2)}; "
        f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(f"device: {floors_apart('device')['name']}")


if __name__ == "__main__":
    main()
