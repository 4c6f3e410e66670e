"""Keep the label, move the map: the explanation-manipulation attack of Dombrowski et al. 2019.

PAPER.md §4 step 5. Optimise a small δ (L∞ budget) so that the saliency map of x + δ matches a
target map while the logits stay where they were:

    loss = mean_pixels (h(x+δ) − h_t)² + γ · mean_classes (f(x+δ) − f(x))²

with h the map scaled to mean 1. Gradient maps of a ReLU network are piecewise constant in x,
so their derivative is zero almost everywhere; while optimising, every ReLU / ReLU6 / HHReLU of
a private deep copy of the network is replaced by softplus(β·x)/β (Dombrowski et al. §3). The
shared model is never modified; the maps reported before and after are the real network's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core import metrics
from advexp_core.layers import HHReLU
from advexp_core.saliency import _unwrap, find_last_conv_block, grad_cam, gradient

MapMethod = Literal["gradient", "gradcam"]
OnStep = Callable[[int, int], None]


class SoftplusReLU(nn.Module):
    """softplus(β·(x − shift))/β, a smooth max(0, x − shift); with `cap`, a smooth ReLU6.

    shift = δ/2 matches both tails of HHReLU(δ), whose large-x branch is x − δ/2.

    Shapes: (*) -> (*)
    """

    def __init__(self, beta: float, cap: float | None = None, shift: float = 0.0) -> None:
        super().__init__()
        self.beta = beta
        self.cap = cap
        self.shift = shift

    def forward(self, x: Tensor) -> Tensor:
        y = F.softplus(x - self.shift, beta=self.beta)
        if self.cap is not None:
            y = y - F.softplus(x - self.cap, beta=self.beta)
        return y


def smooth_surrogate(module: nn.Module, *, beta: float) -> tuple[nn.Module, dict[int, Any], int]:
    """A deep copy of `module` with every ReLU, ReLU6 and HHReLU replaced by `SoftplusReLU`.

    Args:
        module: the network; it is not modified.
        beta: softplus sharpness (larger = closer to ReLU, rougher second derivatives).

    Returns:
        (surrogate, memo of the deep copy: id(original submodule) -> copy, number replaced).
    """
    memo: dict[int, Any] = {}
    surrogate = copy.deepcopy(module, memo)
    replaced = 0
    for parent in list(surrogate.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, SoftplusReLU(beta, cap=6.0))
            elif isinstance(child, HHReLU):
                setattr(parent, name, SoftplusReLU(beta, shift=float(child.d) / 2))
            elif isinstance(child, nn.ReLU):
                setattr(parent, name, SoftplusReLU(beta))
            else:
                continue
            replaced += 1
    return surrogate, memo, replaced


def region_map(size: tuple[int, int], box: tuple[int, int, int, int]) -> Tensor:
    """A target map that is 1 inside a box and 0 elsewhere.

    Args:
        size: (H, W) of the map, pixels.
        box: (top, left, bottom, right) in pixels, bottom/right exclusive.

    Shapes: -> (H, W)
    """
    top, left, bottom, right = box
    if not (0 <= top < bottom <= size[0] and 0 <= left < right <= size[1]):
        raise ValueError(f"box {box} is empty or outside an image of size {size}")
    m = torch.zeros(size)
    m[top:bottom, left:right] = 1.0
    return m


def _unit_mean(m: Tensor) -> Tensor:
    """Maps scaled to mean 1 per example (so the loss does not depend on image size). (N,H,W)."""
    return m / m.flatten(1).mean(dim=1).clamp_min(1e-12)[:, None, None]


def _gradient_map(net: nn.Module, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(|∇x f_t|.sum(C), logits) kept differentiable w.r.t. x (create_graph)."""
    logits = net(x)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), x, create_graph=True)
    return g.abs().sum(dim=1), logits


def _gradcam_map(net: nn.Module, layer: nn.Module, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Differentiable Grad-CAM (ReLU, bilinear upsampling) and logits, on a private surrogate."""
    store: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: store.append(out))
    try:
        logits = net(x)
    finally:
        handle.remove()
    acts = store[-1]
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), acts, create_graph=True)
    cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1, keepdim=True))
    up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return up[:, 0], logits


@dataclass(frozen=True)
class ManipulationResult:
    """Outcome of `manipulate_explanation` for a batch (maps from the real, unsmoothed network).

    Attributes:
        adversarial: x + δ in [0, 1]. delta: δ, |δ| <= eps.
        original_map, manipulated_map: the map of x and of x + δ. target_map: the goal.
        method: "gradient" or "gradcam". label: the kept class per image.
        to_target_before, to_target_after, to_original_after: similarity of the maps, each
            {"spearman", "topk_intersection", "ssim"} -> (N,) (top-k share 0.2).
        logits_before, logits_after: real network logits at x and x + δ.
        logit_change: max over classes of |Δlogit|. label_kept: argmax unchanged.
        loss_history: total surrogate loss per step. replaced_activations: smoothed layers.

    Shapes: images (N, C, H, W); maps (N, H, W); per-image numbers (N,)
    """

    adversarial: Tensor
    delta: Tensor
    original_map: Tensor
    manipulated_map: Tensor
    target_map: Tensor
    method: str
    label: Tensor
    to_target_before: dict[str, Tensor]
    to_target_after: dict[str, Tensor]
    to_original_after: dict[str, Tensor]
    logits_before: Tensor
    logits_after: Tensor
    logit_change: Tensor
    label_kept: Tensor
    loss_history: tuple[float, ...]
    replaced_activations: int


def _similarity(maps: Tensor, refs: Tensor) -> dict[str, Tensor]:
    """{"spearman", "topk_intersection", "ssim"} -> (N,) between maps[i] and refs[i]."""
    rows = [
        (metrics.spearman(a, b), metrics.topk_intersection(a, b), metrics.map_ssim(a, b))
        for a, b in zip(maps, refs, strict=True)
    ]
    values = torch.tensor(rows, dtype=torch.float64).reshape(-1, 3)
    return {"spearman": values[:, 0], "topk_intersection": values[:, 1], "ssim": values[:, 2]}


def _real_map(model: Any, x: Tensor, t: Tensor, method: str, layer: nn.Module | None) -> Tensor:
    if method == "gradcam":
        return grad_cam(model, x, t, layer=layer).maps
    return gradient(model, x, t).maps


def manipulate_explanation(
    model: Any,
    image: Tensor,
    *,
    target_map: Tensor,
    eps: float = 8 / 255,
    steps: int = 200,
    beta: float = 10.0,
    gamma: float = 1.0,
    lr: float | None = None,
    method: MapMethod = "gradient",
    on_step: OnStep | None = None,
) -> ManipulationResult:
    """Move the saliency map of `image` toward `target_map` while keeping the logits.

    Dombrowski et al. 2019 (PAPER.md §4 step 5): Adam on δ through a softplus-β copy of the
    network, projected after each step onto |δ|∞ <= eps and x + δ in [0, 1]. The δ kept is the
    one with the lowest loss among the steps whose surrogate prediction kept the label.

    Args:
        model: an nn.Module or a LoadedModel (never modified).
        image: images in [0, 1].
        target_map: non-negative goal map, one for all images or one per image.
        eps: L∞ budget in [0, 1] pixel units (8/255 by default).
        steps: optimisation steps (each one forward and a double backward pass).
        beta: softplus sharpness of the surrogate.
        gamma: weight of the logit-keeping term.
        lr: Adam step size in pixel units; default eps / 10.
        method: the map to move, "gradient" or "gradcam".
        on_step: called as on_step(step, steps) after each step.

    Returns:
        ManipulationResult.

    Shapes: image (N, C, H, W), target_map (H, W) or (N, H, W)
    """
    if method not in ("gradient", "gradcam"):
        raise ValueError(f"manipulation supports 'gradient' and 'gradcam' maps, not {method!r}")
    if eps < 0 or steps < 1:
        raise ValueError("eps must be >= 0 and steps >= 1")
    module, registered, lock = _unwrap(model)
    device = next(module.parameters()).device
    x = image.detach().to(device).float()
    goal = target_map.detach().to(device).float().clamp_min(0).expand(x.shape[0], *x.shape[-2:])
    if (goal.flatten(1).sum(dim=1) == 0).any():
        raise ValueError("target_map is all zeros; it must mark some region")
    layer = registered if method == "gradcam" else None
    with lock:  # the layer search hooks the shared module; deepcopy reads it
        if method == "gradcam" and layer is None:
            layer = find_last_conv_block(module, input_size=(x.shape[-2], x.shape[-1]))
        surrogate, memo, replaced = smooth_surrogate(module, beta=beta)
    with torch.no_grad():
        logits_before = module(x)
    label = logits_before.argmax(dim=1)
    goal = _unit_mean(goal)

    def surrogate_map(xa: Tensor) -> tuple[Tensor, Tensor]:
        if layer is not None:
            return _gradcam_map(surrogate, memo[id(layer)], xa, label)
        return _gradient_map(surrogate, xa, label)

    delta, history = _optimise(
        surrogate_map, module, x, goal, logits_before, label,
        eps=eps, steps=steps, gamma=gamma, lr=lr if lr is not None else eps / 10, on_step=on_step,
    )  # fmt: skip
    adv = (x + delta).clamp(0, 1)
    before = _real_map(model, x, label, method, layer)
    after = _real_map(model, adv, label, method, layer)
    with torch.no_grad():
        logits_after = module(adv)
    return ManipulationResult(
        adversarial=adv,
        delta=adv - x,
        original_map=before,
        manipulated_map=after,
        target_map=goal,
        method=method,
        label=label,
        to_target_before=_similarity(before, goal),
        to_target_after=_similarity(after, goal),
        to_original_after=_similarity(after, before),
        logits_before=logits_before,
        logits_after=logits_after,
        logit_change=(logits_after - logits_before).abs().amax(dim=1),
        label_kept=logits_after.argmax(dim=1) == label,
        loss_history=tuple(history),
        replaced_activations=replaced,
    )


def _optimise(
    surrogate_map: Callable[[Tensor], tuple[Tensor, Tensor]],
    module: nn.Module,
    x: Tensor,
    goal: Tensor,
    logits_before: Tensor,
    label: Tensor,
    *,
    eps: float,
    steps: int,
    gamma: float,
    lr: float,
    on_step: OnStep | None,
) -> tuple[Tensor, list[float]]:
    """The optimisation loop: Adam on δ, projection, per-image best δ whose real label is kept."""
    delta = torch.zeros_like(x, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)  # optimises δ only; the network has no trainable part here
    best = torch.zeros_like(x)
    best_loss = torch.full((x.shape[0],), float("inf"), device=x.device)
    history: list[float] = []
    for step in range(steps + 1):
        saliency, logits = surrogate_map(x + delta)  # non-leaf input: maps stay differentiable in δ
        map_loss = (_unit_mean(saliency) - goal).pow(2).flatten(1).mean(dim=1)
        logit_loss = (logits - logits_before).pow(2).mean(dim=1)
        loss = map_loss + gamma * logit_loss
        with torch.no_grad():  # score this δ before it moves; the label is the real network's
            kept = module((x + delta).clamp(0, 1)).argmax(dim=1) == label
            better = (loss < best_loss) & kept
            best[better] = delta.detach()[better]
            best_loss = torch.where(better, loss, best_loss)
        history.append(float(loss.detach().sum()))
        if step == steps:
            break
        (g,) = torch.autograd.grad(loss.sum(), delta)
        delta.grad = g
        opt.step()
        with torch.no_grad():
            delta.copy_(delta.clamp(-eps, eps))
            delta.copy_((x + delta).clamp(0, 1) - x)
        if on_step is not None:
            on_step(step + 1, steps)
    return best, history
