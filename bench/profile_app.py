"""Where one run's seconds go: the server sampled by py-spy, the browser by its own performance
counters, for one run of each page with its defaults on the gallery cat.

Starts `streamlit run app.py` (primed, offline), drives Debian's Chromium through each page once
unmeasured (imports, the network, the caches: what a visitor after the first pays no more), then
once more with a setting changed that keeps the work (so nothing comes from the cache), and for that
run: py-spy samples every thread of the server from just before the click to the result on screen
(``--rate`` per second, active samples only), and the Chrome DevTools Protocol's Performance counters
give the browser page's main-thread seconds (its scripts, style, layout and the rest of its tasks).
Prints per page the seconds from the click to the first and to the whole result, the server's CPU
seconds by what they were spent on (the attack, each map, the curves, metrics, image decode and
resize, PNG encoding and decoding, figures, Streamlit's messages and reruns, the web server, imports)
and by thread, the browser's main-thread seconds and its processes' CPU seconds, and the messages
the page received over its websocket.

CPU seconds are summed over threads: passes that run side by side on the two cores count twice
their wall time. Each stack goes to the first category in `CATEGORIES` that any of its frames
matches (so a network's forward pass counts for the method that called it, and an adversarial
explanation's steps count for it, not for the attack code it calls).

Needs py-spy (in requirements.txt; it reads another process's memory, so run as root or with
ptrace allowed). Run: .venv/bin/python -m bench.profile_app [--pages attack,explain,compare] [--rate 100]
[--keep DIR] (the raw py-spy output, one stack and count per line, for a flame graph).
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench import bench_app
from bench.bench_app import CHROMIUM, CHROMIUM_ARGS, PAGES, RUN_TIMEOUT_MS, Server, quiet, run_page

print = functools.partial(print, flush=True)  # noqa: A001

Rule = Callable[[str], bool]
CATEGORIES: list[tuple[str, Rule]] = [
    ("imports", lambda f: "importlib._bootstrap" in f),
    ("adversarial explanation", lambda f: "advexp_core/methods/explanations.py" in f),
    ("PGD attack", lambda f: "advexp_core/methods/attacks.py" in f),
    ("deletion/insertion curves", lambda f: "advexp_core/evaluation/faithfulness.py" in f),
    ("Grad-CAM", lambda f: f.startswith("grad_cam ") and "advexp_core/" in f),
    ("Integrated Gradients", lambda f: f.startswith(("integrated_gradients ", "_ig_in_passes")) and "advexp_core/" in f),
    ("SmoothGrad", lambda f: f.startswith("smoothgrad") and "advexp_core/" in f),
    ("SSIM, Spearman, other metrics", lambda f: "advexp_core/measures/metrics.py" in f or "advexp_core/methods/geometry.py" in f),
    ("PNG encode", lambda f: "PIL/" in f and ("save" in f.lower() or "encode" in f.lower())),
    ("PNG decode", lambda f: "PIL/ImageFile.py" in f or "PIL/PngImagePlugin.py" in f),
    ("image decode and resize", lambda f: "advexp_core/data/imaging.py" in f),
    ("figures (matplotlib)", lambda f: "matplotlib/" in f),
    ("other network and map code", lambda f: "advexp_core/" in f),
    ("Streamlit messages and reruns", lambda f: "streamlit/" in f),
    ("our page code", lambda f: "advexp_ui/" in f or "/pages/" in f or "/app.py" in f),
    ("web server (tornado, starlette, asyncio)", lambda f: any(k in f for k in ("tornado/", "starlette/", "uvicorn/", "asyncio/"))),
]  # fmt: skip
THREAD_GROUPS = [
    ("passes side by side", r"advexp-pass"),
    ("the run's job", r"advexp-(?!warm|pass)"),
    ("page script", r"ScriptRunner"),
    ("event loop", r"MainThread"),
]
BROWSER_COUNTERS = ("ScriptDuration", "RecalcStyleDuration", "LayoutDuration", "TaskDuration")


def category(frames: list[str]) -> str:
    for name, rule in CATEGORIES:
        if any(rule(frame) for frame in frames):
            return name
    return "other"


def thread_group(name: str) -> str:
    return next((group for group, pattern in THREAD_GROUPS if re.search(pattern, name)), "other threads")


def read_raw(path: Path, rate: int) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """CPU seconds by category and by thread group, from py-spy's raw output (``thread (TID): NAME;
    frame (file:line);...;frame COUNT`` per line, outermost frame first)."""
    by_category: collections.Counter[str] = collections.Counter()
    by_thread: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        thread, *frames = stack.split(";")
        by_category[category(frames)] += int(count)
        by_thread[thread_group(thread.split(":", 1)[-1])] += int(count)

    def seconds(samples: collections.Counter[str]) -> collections.Counter[str]:
        return collections.Counter({key: n / rate for key, n in samples.items()})

    return seconds(by_category), seconds(by_thread)


def timeline(seconds: list[float], bin_s: float = 0.5) -> str:
    """Counts per ``bin_s`` of time, e.g. "0.0: 41, 0.5: 2, 1.0: 2": when the page's messages came
    (the rerun after the click, the progress ticks of the run, its results)."""
    counts = collections.Counter(max(0, int(t // bin_s)) for t in seconds)
    return ", ".join(f"{k * bin_s:.1f}: {counts[k]}" for k in range(max(counts, default=-1) + 1))


def browser_counters(cdp) -> dict[str, float]:
    """The page's main-thread seconds so far (DevTools Performance counters), and the CPU seconds of
    every Chromium process on the machine (its renderer, GPU and browser processes: the bench's is
    the only Chromium running)."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    counters = {m["name"]: m["value"] for m in metrics if m["name"] in BROWSER_COUNTERS}
    chromium = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/comm") if _comm(p) == "chromium"]
    return {**counters, "all Chromium processes, CPU": sum(_cpu_s(p) for p in chromium)}


def _comm(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:  # the process ended meanwhile
        return ""


def _cpu_s(pid: int) -> float:
    """`bench_app._cpu_s`, 0 once the process has ended."""
    try:
        return bench_app._cpu_s(pid)
    except OSError:
        return 0.0


class Profiler:
    """py-spy recording a process from `start` to `stop` (SIGINT makes it write its file)."""

    def __init__(self, binary: str, pid: int, out: Path, rate: int) -> None:
        self.command = [
            binary, "record", "--pid", str(pid), "--threads", "--nonblocking", "--rate", str(rate),
            "--format", "raw", "--output", str(out),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # attached and sampling before the click
        if self.process.poll() is not None:
            message = self.process.stderr.read().decode() if self.process.stderr else ""
            sys.exit(f"py-spy could not sample the server (run as root, or allow ptrace): {message.strip()}")

    def stop(self) -> float:
        """Stop sampling; the profiler's own CPU seconds (what it took from the server's cores)."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        own = _cpu_s(self.process.pid)
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        return own


def report(
    name: str, first: float, whole: float, out: Path, rate: int, browser: dict[str, float], own: float
) -> None:
    by_category, by_thread = read_raw(out, rate)
    total = sum(by_category.values())
    print(f"{name}: first result {first:.1f} s, whole page {whole:.1f} s after the click")
    print(f"  server CPU {total:.2f} s (sampled from 0.5 s before the click to the result on screen):")
    for label, seconds in by_category.most_common():
        print(f"    {label:42} {seconds:6.2f} s  {100 * seconds / total:5.1f} %")
    print(
        "  by thread: " + ", ".join(f"{group} {seconds:.2f} s" for group, seconds in by_thread.most_common())
    )
    print(
        "  browser: "
        + ", ".join(f"{key.removesuffix('Duration').lower()} {value:.2f} s" for key, value in browser.items())
        + f" (the first four: the page's main thread); py-spy itself {own:.2f} s CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", default=",".join(PAGES), help="pages to profile, comma-separated")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--keep", type=Path, help="a folder for the raw py-spy output of each page")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    names = [n for n in args.pages.split(",") if n]
    if unknown := set(names) - set(PAGES):
        parser.error(f"unknown pages {sorted(unknown)}; choose from {', '.join(PAGES)}")
    if args.rate < 1:
        parser.error("--rate must be at least 1")
    binary = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if binary is None:
        sys.exit("py-spy is missing: `make .venv/.installed-stamp` installs it (requirements.txt).")
    if not CHROMIUM.exists():
        sys.exit("/usr/bin/chromium is missing: run `bash scripts/install_chromium.sh` as root.")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=RUN_TIMEOUT_MS)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="advexp-profile-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ADVEXP_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env["STREAMLIT_SERVER_SCRIPT_HEALTH_CHECK_ENABLED"] = "true"
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; cpus {os.cpu_count()}")
    server = Server(env)
    try:
        server.wait_ready()
        with urllib.request.urlopen(f"{server.url}/_stcore/script-health-check", timeout=120) as answer:
            answer.read()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.set_default_timeout(RUN_TIMEOUT_MS)
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable")
                frames: list[tuple[float, int]] = []  # when each websocket message came, its bytes
                page.on(
                    "websocket",
                    lambda ws: ws.on(
                        "framereceived", lambda data: frames.append((time.perf_counter(), len(data)))
                    ),
                )
                for name in names:
                    run_page(page, server.url, name, 0)  # unmeasured: what later visitors no longer pay
                    quiet(server)
                    out = folder / f"{name}.txt"
                    profiler = Profiler(binary, server.process.pid, out, args.rate)
                    before: dict[str, float] = {}

                    def start(profiler: Profiler = profiler, before: dict[str, float] = before) -> None:
                        profiler.start()
                        before.update(browser_counters(cdp))
                        before["frames"], before["clicked"] = len(frames), time.perf_counter()

                    try:
                        first, whole, _ = run_page(page, server.url, name, 1, before_click=start)
                        after = browser_counters(cdp)
                    finally:
                        own = profiler.stop()
                    report(name, first, whole, out, args.rate, {k: after[k] - before[k] for k in after}, own)
                    received = frames[int(before["frames"]) :]
                    print(
                        f"  messages to the page: {len(received)}, {sum(n for _, n in received) / 1e3:.0f} kB "
                        "(pictures go as files); per half second after the click: "
                        + timeline([t - before["clicked"] for t, _ in received])
                    )
                    quiet(server)
            finally:
                browser.close()
    finally:
        server.stop()
    print(f"raw py-spy output: {folder}; load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
