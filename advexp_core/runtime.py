"""What every algorithm shares: the progress callback type, where a module lives, and the
thread count every entry point runs with (`use_compute_threads`).

Algorithms take a bare ``nn.Module`` (captum style); the device and dtype of their work come
from the module, never from a literal (docs/method.md, "Conventions").
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

OnStep = Callable[[int, int], None]
"""Progress callback: ``on_step(done, total)`` after each unit of work (a step, a batch, an image)."""


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
PyTorch build and CPU kind: kernels also differ by instruction set). Its cost is the parallelism
given up: on a 2-core machine shared with other jobs, a default compare run took 4.2 s with 1
thread and 2.7 s with 2 (medians of 18 runs), but 9-12 s against 30-35 s when the other jobs kept
both cores busy (2 threads then wait for each other).
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
