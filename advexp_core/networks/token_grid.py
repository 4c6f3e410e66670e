"""Grad-CAM for vision transformers: a 4-D layer inside token and channels-last networks.

Grad-CAM needs a layer whose output is a (N, C, h, w) map. A vision transformer carries a sequence
of tokens instead, and timm's Swin a channels-last (N, H, W, C) map. `install_token_tap` wraps the
last stage of such a network, at load time, in `TokenGrid` or `ChannelsLastGrid`, whose ``tap``
(an ``nn.Identity``) sees the stage's tokens as a grid of patches (class and register tokens
dropped) or its map as NCHW. The network's outputs are bit-identical; captum's ``LayerGradCam``
runs on the tap unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class TokenGrid(nn.Module):
    """A transformer block whose input tokens pass through a 4-D ``tap`` (the Grad-CAM layer).

    The block's input (B, P + h·w, C) is split into P prefix tokens (class, distillation, register)
    and h·w patch tokens; the patches are read as a (B, C, h, w) map, passed through ``tap``
    (an ``nn.Identity``) and put back. The block sees the very same values, so the network's
    outputs are bit-identical. The input, not the output, of the last block is tapped: a
    class-token network reads its patches only through that block's attention, so the gradient
    at the last block's output patches is zero.

    Shapes: (B, P + h·w, C) -> the block's output
    """

    def __init__(self, block: nn.Module, *, prefix_tokens: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.block = block
        self.prefix_tokens = prefix_tokens
        self.grid = grid
        self.tap = nn.Identity()

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        h, w = self.grid
        if x.ndim == 3 and x.shape[1] == self.prefix_tokens + h * w:
            prefix, patches = x[:, : self.prefix_tokens], x[:, self.prefix_tokens :]
            grid = self.tap(patches.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w))
            x = torch.cat([prefix, grid.flatten(2).transpose(1, 2)], dim=1)
        return self.block(x, *args, **kwargs)


class ChannelsLastGrid(nn.Module):
    """A stage with a channels-last output (B, H, W, C) (timm's Swin) read through an NCHW ``tap``.

    Shapes: -> (B, H, W, C), the stage's own output, values unchanged
    """

    def __init__(self, stage: nn.Module) -> None:
        super().__init__()
        self.stage = stage
        self.tap = nn.Identity()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.stage(*args, **kwargs)
        if isinstance(out, Tensor) and out.ndim == 4:
            out = self.tap(out.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return out


def install_token_tap(
    net: nn.Module, *, input_size: int, channels: int = 3
) -> tuple[nn.Module, str, str] | None:
    """Give a token or channels-last timm network a 4-D Grad-CAM layer (None for other networks).

    Replaces the last feature stage of ``net`` (timm's ``feature_info``) in place, at load time, by a
    `TokenGrid` or `ChannelsLastGrid` around it; load the weights first, since the names change.

    Args:
        net: the timm network; input_size: its square input in pixels; channels: its input channels.

    Returns:
        (the tap module, its stage's name, a sentence saying how the map is read) or None.
    """
    info = getattr(net, "feature_info", None)
    name = info[-1].get("module") if isinstance(info, list) and info else None
    if not isinstance(name, str) or not name:
        return None
    stage = net.get_submodule(name)
    shapes = _probe_shapes(net, stage, input_size, channels)
    if shapes is None:
        return None
    inp, out = shapes
    prefix = int(getattr(net, "num_prefix_tokens", 0))
    grid = getattr(getattr(net, "patch_embed", None), "grid_size", None)
    wrapper: TokenGrid | ChannelsLastGrid
    if len(inp) == 3 and grid is not None and inp[1] == prefix + grid[0] * grid[1]:
        wrapper = TokenGrid(stage, prefix_tokens=prefix, grid=(int(grid[0]), int(grid[1])))
        dropped = f"; {prefix} class/register token(s) dropped" if prefix else ""
        how = (
            f"the tokens entering the last transformer block ({name}), read as a "
            f"{grid[0]}×{grid[1]} grid of patches{dropped}"
        )
    elif getattr(net, "output_fmt", "NCHW") == "NHWC" and len(out) == 4:
        wrapper = ChannelsLastGrid(stage)
        how = f"the output of the last stage ({name}), a {out[1]}×{out[2]} channels-last map read as NCHW"
    else:
        return None
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, wrapper)
    return wrapper.tap, name, how


def _probe_shapes(
    net: nn.Module, stage: nn.Module, input_size: int, channels: int
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(input shape, output shape) of ``stage`` on one black image; None when not plain tensors."""
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def hook(_m: nn.Module, inp: tuple[Any, ...], out: Any) -> None:
        if inp and isinstance(inp[0], Tensor) and isinstance(out, Tensor):
            seen.append((tuple(inp[0].shape), tuple(out.shape)))

    handle = stage.register_forward_hook(hook)
    try:
        with torch.no_grad():
            net(torch.zeros(1, channels, input_size, input_size))
    finally:
        handle.remove()
    return seen[-1] if len(seen) == 1 else None
