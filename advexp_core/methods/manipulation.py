"""Keep the label, move the map: the explanation-manipulation attack of Dombrowski et al. 2019.

docs/method.md §4 step 5. Optimise a small δ (L∞ budget) so that the saliency map of x + δ matches a
target map while the logits stay where they were:

    loss = mean_pixels (h(x+δ) − h_t)² + γ · mean_classes (f(x+δ) − f(x))²

with h the map scaled to mean 1. Gradient maps of a ReLU network are piecewise constant in x,
so their derivative is zero almost everywhere; while optimising, every ReLU / ReLU6 / HHReLU of
a private deep copy of the network is replaced by softplus(β·x)/β (Dombrowski et al. §3). The
shared model is never modified; the maps reported before and after are the real network's.

The optimisation is the shared attack loop (``attacks._run_loop``) with this loss as its hook,
Adam as its update rule, the L∞ geometry's projection and the attacks' best-δ keeping.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.base.runtime import OnStep, device_of
from advexp_core.measures import metrics
from advexp_core.methods.attacks import LossHook, _Best, _project, _run_loop
from advexp_core.methods.geometry import get_geometry
from advexp_core.methods.gradient_maps import grad_cam, gradient
from advexp_core.networks.introspect import find_last_conv_block
from advexp_core.networks.layers import HHReLU

MapMethod = Literal["gradient", "gradcam"]
SurrogateMap = Callable[[Tensor], tuple[Tensor, Tensor]]

MANIPULATION_STEPS = 100  # optimisation steps of the map manipulation, unless a caller says otherwise


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


def _differentiable(x: Tensor) -> Tensor:
    """``x`` itself when it already depends on δ, else a leaf that requires grad (the loop's
    final evaluation runs under ``no_grad``; a map still needs input gradients there)."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


def _gradient_map(net: nn.Module, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(|∇x f_t|.sum(C), logits) kept differentiable w.r.t. x (create_graph)."""
    with torch.enable_grad():
        x = _differentiable(x)
        logits = net(x)
        (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), x, create_graph=True)
    return g.abs().sum(dim=1), logits


def _gradcam_map(net: nn.Module, layer: nn.Module, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Differentiable Grad-CAM (ReLU, bilinear upsampling) and logits, on a private surrogate."""
    store: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: store.append(out))
    try:
        with torch.enable_grad():
            logits = net(_differentiable(x))
    finally:
        handle.remove()
    acts = store[-1]
    with torch.enable_grad():
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


def _real_map(module: nn.Module, x: Tensor, t: Tensor, method: str, layer: nn.Module | None) -> Tensor:
    if method == "gradcam":
        return grad_cam(module, x, t, layer=layer).maps
    return gradient(module, x, t).maps


def manipulate_explanation(
    module: nn.Module,
    image: Tensor,
    *,
    target_map: Tensor,
    layer: nn.Module | None = None,
    eps: float = 8 / 255,
    steps: int = MANIPULATION_STEPS,
    beta: float = 10.0,
    gamma: float = 1.0,
    lr: float | None = None,
    method: MapMethod = "gradient",
    on_step: OnStep | None = None,
) -> ManipulationResult:
    """Move the saliency map of `image` toward `target_map` while keeping the logits.

    Dombrowski et al. 2019 (docs/method.md §4 step 5): Adam on δ through a softplus-β copy of
    the network, projected after each step onto |δ|∞ <= eps and x + δ in [0, 1]. The δ kept is
    the one with the lowest loss among the steps whose real prediction kept the label.

    Args:
        module: the network (images in [0, 1] -> logits); never modified.
        image: images in [0, 1].
        target_map: non-negative goal map, one for all images or one per image.
        layer: Grad-CAM's layer in `module` (method "gradcam"); default `find_last_conv_block`.
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
    x = image.detach().to(device_of(module, fallback=image.device)).float()
    goal = target_map.detach().to(x.device).float().clamp_min(0).expand(x.shape[0], *x.shape[-2:])
    if (goal.flatten(1).sum(dim=1) == 0).any():
        raise ValueError("target_map is all zeros; it must mark some region")
    if method == "gradcam" and layer is None:
        layer = find_last_conv_block(module, input_size=(x.shape[-2], x.shape[-1]))
    elif method == "gradient":
        layer = None
    surrogate, memo, replaced = smooth_surrogate(module, beta=beta)
    hooked = _surrogate_layer(surrogate, memo, layer)
    with torch.no_grad():
        logits_before = module(x)
    label = logits_before.argmax(dim=1)
    goal = _unit_mean(goal)

    def surrogate_map(xa: Tensor) -> tuple[Tensor, Tensor]:
        if hooked is not None:
            return _gradcam_map(surrogate, hooked, xa, label)
        return _gradient_map(surrogate, xa, label)

    rule = _AdamStep(module, x, label, eps=eps, lr=lr if lr is not None else eps / 10)
    loss = _manipulation_loss(surrogate_map, goal, logits_before, gamma=gamma)
    _run_loop(loss, x, label, torch.zeros_like(x), steps=steps, rule=rule, on_step=on_step)
    assert rule.best is not None
    adv = (x + rule.best.delta).clamp(0, 1)
    return _result(module, x, adv, goal, logits_before, label, method, layer, rule.history, replaced)


def _surrogate_layer(surrogate: nn.Module, memo: dict[int, Any], layer: nn.Module | None) -> nn.Module | None:
    """The surrogate's copy of Grad-CAM's layer (None for gradient maps)."""
    if layer is None:
        return None
    copied = memo.get(id(layer))
    if copied is None or not any(m is copied for m in surrogate.modules()):
        raise ValueError(
            "the Grad-CAM layer must be a submodule of the network other than an activation "
            "(activations are smoothed away in the surrogate); pick the block that contains it"
        )
    return copied


def _result(
    module: nn.Module,
    x: Tensor,
    adv: Tensor,
    goal: Tensor,
    logits_before: Tensor,
    label: Tensor,
    method: str,
    layer: nn.Module | None,
    history: list[float],
    replaced: int,
) -> ManipulationResult:
    """Maps and logits of the real network at x and x + δ, with their similarities."""
    before = _real_map(module, x, label, method, layer)
    after = _real_map(module, adv, label, method, layer)
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


def _manipulation_loss(
    surrogate_map: SurrogateMap, goal: Tensor, logits_before: Tensor, *, gamma: float
) -> LossHook:
    """The loop's loss hook: minus (map distance to the goal + γ · logit drift), per example.

    The loop ascends its loss; descending the manipulation loss is ascending its negative.
    """

    def loss(inputs: Tensor, _labels: Tensor) -> tuple[Tensor, Tensor]:
        saliency, logits = surrogate_map(inputs)  # inputs = x + δ: the map stays differentiable in δ
        map_loss = (_unit_mean(saliency) - goal).pow(2).flatten(1).mean(dim=1)
        logit_loss = (logits - logits_before).pow(2).mean(dim=1)
        return logits, -(map_loss + gamma * logit_loss)

    return loss


_LINF = get_geometry("linf")


@dataclass
class _AdamStep:
    """Adam on δ descending the manipulation loss, projected like PGD (L∞ ball, x + δ in [0, 1]).

    Each evaluation scores δ before it moves: it qualifies when the real network still predicts
    the label at the clamped image, and the best qualifying δ (lowest loss) is kept per image.
    """

    module: nn.Module
    images: Tensor
    label: Tensor
    eps: float
    lr: float
    best: _Best | None = None
    history: list[float] = field(default_factory=list)
    param: Tensor = field(init=False)
    opt: torch.optim.Adam = field(init=False)

    def __post_init__(self) -> None:
        self.param = torch.zeros_like(self.images, requires_grad=True)
        self.opt = torch.optim.Adam([self.param], lr=self.lr)  # δ only; the network is frozen

    def observe(self, taken: int, delta: Tensor, logits: Tensor, loss: Tensor) -> None:
        value = -loss  # the hook's loss is the negated manipulation loss
        with torch.no_grad():
            kept = self.module((self.images + delta).clamp(0, 1)).argmax(dim=1) == self.label
        self.best = _Best.start(torch.zeros_like(delta), logits) if self.best is None else self.best
        self.best.update(kept, value, delta, logits)
        self.history.append(float(value.sum()))

    def done(self) -> bool:
        return False

    def step(self, index: int, delta: Tensor, ascent: Tensor) -> Tensor:
        with torch.no_grad():
            self.param.copy_(delta)
        self.param.grad = -ascent  # Adam minimises; the loop's ascent is up the negated loss
        self.opt.step()
        with torch.no_grad():
            return _project(_LINF, self.param.detach().clone(), self.eps, self.images)
