"""One process-group context for training and ARA: join torchrun, reduce, shard, gather.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1, no group started) everything here is the identity
on one process, so callers never branch on whether they run distributed. Only tensors cross
processes (sums, never pickled objects), so the same code runs on gloo (CPU) and nccl (CUDA).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: rank, world size, device, and whether we started the group."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owned: bool = False


def init_distributed(device: str | torch.device | None = None) -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on CUDA).

    Args:
        device: "cpu", "cuda" or a device; default CUDA when available, else the CPU. Under
            torchrun on CUDA each process takes ``cuda:LOCAL_RANK``.

    Returns:
        The context; ``owned`` is True when this call started the group (see ``release_group``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    owned = False
    if world > 1 and not dist.is_initialized():
        if cuda:  # nccl needs the process's device chosen before the group starts
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        owned = True
    if not dist.is_initialized():
        chosen = torch.device(device) if device is not None else torch.device("cuda" if cuda else "cpu")
        return DistContext(device=chosen)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    return DistContext(dist.get_rank(), dist.get_world_size(), chosen, owned)


def release_group(ctx: DistContext) -> None:
    """Destroy the process group if ``init_distributed`` started it (a caller's group stays)."""
    if ctx.owned and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(device: str | torch.device | None = None) -> Iterator[DistContext]:
    """``init_distributed`` for the duration of a ``with`` block, released on the way out."""
    ctx = init_distributed(device)
    try:
        yield ctx
    finally:
        release_group(ctx)


def all_sum(values: Tensor, ctx: DistContext) -> Tensor:
    """The element-wise sum of ``values`` over processes, returned on the CPU (a copy on one process).

    Shapes: any -> the same.
    """
    if ctx.world == 1:
        return values.detach().cpu().clone()
    values = values.detach().to(ctx.device).clone()
    dist.all_reduce(values)
    return values.cpu()


def average_buffers(module: nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over processes, in place."""
    if ctx.world == 1:
        return
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf.div_(ctx.world)


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This process's share: positions rank, rank + W, … (DistributedSampler's order)."""
    return list(items[ctx.rank :: ctx.world])


def gather_rows(rows: Tensor, mine: Sequence[int], ctx: DistContext) -> Tensor:
    """Assemble a table whose rows are computed by different processes.

    Each process fills the rows ``mine`` of its (N, F) ``rows`` (the others are ignored); the
    result holds every process's rows, identical everywhere. Implemented as a sum of zero-padded
    tables, so it needs nothing but ``all_reduce``.

    Shapes: rows (N, F) -> (N, F) float64 on the CPU.
    """
    local = torch.zeros(rows.shape, dtype=torch.float64)
    index = torch.as_tensor(list(mine), dtype=torch.long)
    local[index] = rows.detach().double().cpu()[index]
    return all_sum(local, ctx)


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    """``module`` in DistributedDataParallel when there are several processes, else itself.

    Buffers are not broadcast on each forward: BatchNorm keeps per-process batch statistics (the
    reference's DataParallel did the same) and ``average_buffers`` merges running statistics.
    """
    if ctx.world == 1:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)


__all__ = [
    "DistContext",
    "all_sum",
    "average_buffers",
    "gather_rows",
    "init_distributed",
    "process_group",
    "release_group",
    "shard",
    "wrap_ddp",
]
