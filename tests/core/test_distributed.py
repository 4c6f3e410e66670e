"""The one process-group context (advexp_core.base.distributed): identities on one process.

The two-process behaviour (gloo) is exercised end to end by the DDP test in test_training.py:
training with all_sum/average_buffers and the ARA search sharded with shard/gather_rows.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from advexp_core.base.distributed import (
    DistContext,
    all_sum,
    average_buffers,
    gather_rows,
    init_distributed,
    process_group,
    shard,
    wrap_ddp,
)


def test_without_torchrun_everything_is_one_process(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with process_group("cpu") as ctx:
        assert ctx == DistContext(0, 1, torch.device("cpu"), False)
        assert not dist.is_initialized()
    assert init_distributed("cpu").device == torch.device("cpu")


def test_reductions_and_sharding_are_identities_on_one_process() -> None:
    ctx = DistContext()
    values = torch.tensor([1.0, 2.0])
    summed = all_sum(values, ctx)
    assert torch.equal(summed, values) and summed is not values
    assert shard(list(range(7)), ctx) == list(range(7))
    assert shard(list(range(7)), DistContext(rank=1, world=3)) == [1, 4]  # DistributedSampler's order
    rows = torch.arange(6.0).view(3, 2)
    assert torch.equal(gather_rows(rows, [0, 1, 2], ctx), rows.double())
    assert torch.equal(gather_rows(rows, [1], ctx)[0], torch.zeros(2, dtype=torch.float64))
    net = nn.BatchNorm1d(2)
    before = net.running_mean.clone()
    average_buffers(net, ctx)
    assert torch.equal(net.running_mean, before) and wrap_ddp(net, ctx) is net
