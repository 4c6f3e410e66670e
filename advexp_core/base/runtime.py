"""What every algorithm shares: the progress callback type, where a module lives, and the
thread count every entry point runs with (`use_compute_threads`).

Algorithms take a bare ``nn.Module`` (captum style); the device and dtype of their work come
from the module, never from a literal (docs/method.md, "Conventions").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from torch import nn

OnStep = Callable[[int, int], None]
"""Progress callback: ``on_step(done, total)`` after each unit of work (a step, a batch, an image)."""
T = TypeVar("T")
R = TypeVar("R")


def device_of(module: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the module's first parameter or buffer (``fallback`` when it has none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device(fallback)


def dtype_of(module: nn.Module) -> torch.dtype:
    """The floating dtype of the module's parameters (float32 when it has none)."""
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


THREADS_ENV = "ADVEXP_THREADS"
"""Environment variable that sets the threads per tensor operation of the app and the CLI alike."""

DEFAULT_THREADS = 1
"""Threads per tensor operation when $ADVEXP_THREADS is not set (docs/method.md, "Conventions").

The numbers of a run depend on it: PyTorch's CPU kernels split a tensor into one chunk per thread
and round the chunk ends differently (EfficientNet-Lite0's logits of the gallery cat differ by
2e-6 between 1 and 2 threads, first at a BatchNorm), and PGD's sign steps amplify that. Over the 6
gallery photos and 3 PGD starts (bench/bench_verdicts.py), the default compare run's Grad-CAM rank
correlation moved by up to 0.099 and its centre shift by up to 3.8 px between 1 and 2 threads (no
verdict changed). One fixed count makes the page, the CLI and the shipped tables agree (on one
PyTorch build and CPU kind: kernels also differ by instruction set). What it costs in time:
`python -m bench.bench_verdicts` and `python -m bench.bench_compare` (figures in bench/README.md).
"""


def compute_threads() -> int:
    """Threads per tensor operation for this process: $ADVEXP_THREADS (a positive integer), else
    `DEFAULT_THREADS`. OMP_NUM_THREADS is deliberately not read: a shell that sets it would make the
    CLI's numbers differ from the app's."""
    value = os.environ.get(THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_THREADS


def thread_policy() -> str:
    """Where this process's thread count comes from, in words (for the report header)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return f"${THREADS_ENV}={int(value)}"
    return f"fixed default {DEFAULT_THREADS} (${THREADS_ENV} not set)"


def use_compute_threads() -> int:
    """Set PyTorch's threads per operation to `compute_threads` and return the count.

    Called once by each entry point (the app's server, the CLI) before any computation: the
    setting is per process, and every later operation, from any thread, uses it.
    """
    threads = compute_threads()
    torch.set_num_threads(threads)
    return threads


def machine_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, so `taskset` and cpusets count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity call on this platform
        return max(1, os.cpu_count() or 1)


def pass_workers() -> int:
    """How many independent passes this process runs at once on the CPU (`in_order`): the cores it
    may use divided by the threads per operation, so the passes of one run fill the machine."""
    return max(1, machine_cores() // compute_threads())


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_in_pool = threading.local()


def _shared_pool() -> ThreadPoolExecutor:
    """The process's one pool of `pass_workers` threads, shared by every run: two runs on two
    networks queue their passes in it instead of taking twice the cores."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(pass_workers(), thread_name_prefix="advexp-pass")
        return _pool


def in_order(work: Callable[[T], R], items: Iterable[T], device: torch.device | str = "cpu") -> Iterator[R]:
    """``work(item)`` for each item, yielded in the items' order, run side by side on the CPU.

    The numbers do not change: each pass runs exactly as it would alone (same batch, same threads
    per operation; docs/method.md, "Thread count"), and the caller combines the results in order.
    What changes is the wall time (`python -m bench.bench_app` times it). Serial where it cannot help: off the CPU (one pass fills a
    GPU), with one worker, one item, or inside a pass (a pass never waits for the pool it runs in).
    The grad mode of the calling thread holds in the workers (it is per thread in PyTorch).

    Shapes: whatever ``work`` returns.
    """
    items = list(items)
    parallel = torch.device(device).type == "cpu" and pass_workers() > 1 and len(items) > 1
    if not parallel or getattr(_in_pool, "active", False):
        yield from (work(item) for item in items)
        return
    grad = torch.is_grad_enabled()

    def task(item: T) -> R:
        _in_pool.active = True
        try:
            with torch.set_grad_enabled(grad):
                return work(item)
        finally:
            _in_pool.active = False

    futures = [_shared_pool().submit(task, item) for item in items]
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:  # a failed or abandoned caller leaves no queued pass behind
            future.cancel()
