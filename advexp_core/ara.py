"""Accuracy-Robustness Area (PAPER.md §3): how much perturbation a network's accuracy survives.

For each test image the minimal-perturbation search (``advexp_core.attacks.minimal_perturbation``:
the step schedule in "L2,min" form, S = 450, size 20, momentum 0.9) finds ρ*, the smallest RMS(δ)
that meets a boundary — misclassified ("Attack ARA") or softmax_y ≤ 1/C ("BTR ARA"). Then
A(ρ) = fraction of images with ρ* > ρ and ARA = ∫₀^∞ max(0, A(ρ) − 1/C) dρ, integrated exactly from
the sorted ρ* (A is a step function), not with the reference's 1000-bin histogram.

The search runs in batches; with torch.distributed initialised, batch b runs on process b mod W and
the ρ* are gathered, so every process gets the single-process result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Dataset

Boundary = Literal["attack", "btr"]
_SEARCH_BOUNDARY: dict[str, Literal["misclassified", "btr"]] = {"attack": "misclassified", "btr": "btr"}
OnProgress = Callable[[int, int], None]


class BoundaryNotReachedError(ValueError):
    """Some images never met the boundary: the search had too few steps (or too small a size).

    Attributes: boundary, count, n_images, indices (positions in the evaluated set, at most 20).
    """

    def __init__(self, boundary: str, indices: list[int], n_images: int, steps: int, size: float):
        self.boundary = boundary
        self.count = len(indices)
        self.n_images = n_images
        self.indices = indices[:20]
        shown = ", ".join(str(i) for i in self.indices) + (" …" if self.count > 20 else "")
        super().__init__(
            f"{self.count} of {n_images} images never reached the {boundary} boundary within {steps} steps "
            f"(size {size:g}); this is a failure of the search, not robustness. Run again with more steps "
            f"(e.g. --steps {steps * 2}) or a larger size. Images: {shown}"
        )


def accuracy_robustness_area(rho_star: Tensor, *, num_classes: int) -> float:
    """ARA = ∫₀^∞ max(0, A(ρ) − 1/C) dρ with A(ρ) = fraction of ρ* > ρ, exactly (PAPER.md §3).

    With ρ*₍₁₎ ≤ … ≤ ρ*₍N₎ sorted and ρ*₍₀₎ = 0, A = (N − i + 1)/N on [ρ*₍ᵢ₋₁₎, ρ*₍ᵢ₎), so the integral is
    Σᵢ (ρ*₍ᵢ₎ − ρ*₍ᵢ₋₁₎) · max(0, (N − i + 1)/N − 1/C).

    Args:
        rho_star: per-image minimal perturbation sizes (RMS, pixel units), ≥ 0.
        num_classes: C.

    Returns:
        The area (RMS units).

    Shapes: (N,) -> float.
    """
    r = _check_rho(rho_star).sort().values
    n = r.numel()
    widths = torch.diff(r, prepend=r.new_zeros(1))
    levels = (n - torch.arange(n, dtype=torch.float64)) / n
    return float((widths * (levels - 1.0 / num_classes).clamp(min=0)).sum())


def accuracy_curve(rho_star: Tensor) -> tuple[Tensor, Tensor]:
    """A(ρ) as a right-continuous step function: A(ρ) = accuracy[j] for rho[j] ≤ ρ < rho[j + 1].

    Returns:
        (rho, accuracy): rho starts at 0 followed by the distinct ρ* > 0; accuracy is non-increasing
        and ends at 0 (plot with ``drawstyle="steps-post"``).

    Shapes: (N,) -> (K,), (K,).
    """
    r = _check_rho(rho_star)
    rho = torch.unique(torch.cat([r.new_zeros(1), r]))  # sorted
    above = (r[None, :] > rho[:, None]).sum(dim=1)
    return rho, above.to(torch.float64) / r.numel()


def _check_rho(rho_star: Tensor) -> Tensor:
    r = torch.as_tensor(rho_star, dtype=torch.float64).detach().cpu().flatten()
    if r.numel() == 0:
        raise ValueError("ARA needs at least one image")
    if not bool(torch.isfinite(r).all()) or bool((r < 0).any()):
        raise ValueError("every rho* must be a finite number >= 0")
    return r


@dataclass(frozen=True)
class AraResult:
    """Both ARAs with what produced them (PAPER.md §3).

    Attributes:
        attack_ara, btr_ara: the areas (RMS units).
        accuracy: clean accuracy on the evaluated images.
        n_images, num_classes: N and C.
        rho_star_attack, rho_star_btr: (N,) float64 per-image ρ*, in dataset order.
        steps, size, momentum, batch_size: the search's settings.
    """

    attack_ara: float
    btr_ara: float
    accuracy: float
    n_images: int
    num_classes: int
    rho_star_attack: Tensor
    rho_star_btr: Tensor
    steps: int
    size: float
    momentum: float
    batch_size: int

    def curve(self, boundary: Boundary = "attack") -> tuple[Tensor, Tensor]:
        """A(ρ) of one boundary (see ``accuracy_curve``)."""
        return accuracy_curve(self.rho_star_attack if boundary == "attack" else self.rho_star_btr)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: the areas, accuracy, N, per-image ρ* and the settings."""
        return {
            "attack_ara": self.attack_ara,
            "btr_ara": self.btr_ara,
            "accuracy": self.accuracy,
            "n_images": self.n_images,
            "num_classes": self.num_classes,
            "rho_star_attack": self.rho_star_attack.tolist(),
            "rho_star_btr": self.rho_star_btr.tolist(),
            "settings": {
                "steps": self.steps,
                "size": self.size,
                "momentum": self.momentum,
                "batch_size": self.batch_size,
            },
        }


def robustness_radii(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    boundary: Boundary = "attack",
    steps: int = 450,
    size: float = 20.0,
    momentum: float = 0.9,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """ρ* of one batch: the RMS of the smallest perturbation meeting ``boundary`` (PAPER.md §3).

    Returns:
        (rho_star float64, met bool, clean logits); ρ* = 0 where the boundary holds at δ = 0.

    Shapes: images (N, 3, H, W), labels (N,) -> (N,), (N,), (N, C).
    """
    from advexp_core.attacks import minimal_perturbation

    found = minimal_perturbation(
        model, images, labels, boundary=_SEARCH_BOUNDARY[boundary], steps=steps, size=size,
        momentum=momentum, on_step=on_step,
    )  # fmt: skip
    return found.rms.double().cpu(), found.met.cpu(), found.logits_before.cpu()


def _batches(n: int, batch_size: int) -> list[range]:
    return [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def _gather(local: dict[int, list[float]]) -> dict[int, list[float]]:
    """Merge per-batch results from every process (a no-op without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local)
    return {k: v for part in parts for k, v in part.items()}


def _search_all(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    boundary: Boundary,
    steps: int,
    size: float,
    momentum: float,
    batch_size: int,
    progress: Callable[[], None],
) -> tuple[Tensor, Tensor, Tensor]:
    """ρ*, met and clean correctness for every image; this process runs batches b ≡ rank (mod W)."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    local: dict[int, list[float]] = {}
    for b, span in enumerate(_batches(len(labels), batch_size)):
        if b % world != rank:
            continue
        x, y = images[span.start : span.stop], labels[span.start : span.stop]
        rho, met, logits = robustness_radii(
            model, x, y, boundary=boundary, steps=steps, size=size, momentum=momentum,
            on_step=lambda _s, _t: progress(),
        )  # fmt: skip
        correct = (logits.argmax(1) == y.cpu()).double()
        local[b] = torch.stack([rho, met.double(), correct], dim=1).flatten().tolist()
    merged = _gather(local)
    table = torch.tensor([v for b in sorted(merged) for v in merged[b]], dtype=torch.float64).view(-1, 3)
    return table[:, 0], table[:, 1].bool(), table[:, 2].bool()


def evaluate_ara(
    model: nn.Module,
    dataset: Dataset,
    *,
    n_images: int | None = None,
    num_classes: int | None = None,
    steps: int = 450,
    size: float = 20.0,
    momentum: float = 0.9,
    batch_size: int = 128,
    on_progress: OnProgress | None = None,
) -> AraResult:
    """Attack and BTR ARA of ``model`` on the first ``n_images`` of ``dataset``, in order (PAPER.md §3).

    Args:
        model: (N, 3, H, W) images in [0, 1] -> (N, C) logits; eval mode, not modified.
        dataset: (image, label) pairs.
        n_images: how many, from the start (default all).
        num_classes: C (default: the model's number of logits).
        steps, size, momentum: the search (paper: 450, 20, 0.9).
        batch_size: images per search batch.
        on_progress: called as on_progress(done, total) after every search step of this process.

    Returns:
        ``AraResult``.

    Raises:
        ValueError: n_images out of range. BoundaryNotReachedError: some image never met a boundary.
    """
    images, labels = _first_images(dataset, n_images)
    n = len(labels)
    progress = _progress_counter(n, batch_size, steps, on_progress)
    rho: dict[str, Tensor] = {}
    correct = torch.zeros(0, dtype=torch.bool)
    for boundary in ("attack", "btr"):
        rho[boundary], met, correct = _search_all(
            model, images, labels, boundary=boundary, steps=steps, size=size, momentum=momentum,
            batch_size=batch_size, progress=progress,
        )  # fmt: skip
        if not bool(met.all()):
            missing = torch.nonzero(~met).flatten().tolist()
            raise BoundaryNotReachedError(boundary, missing, n, steps, size)
    c = int(num_classes) if num_classes is not None else _num_logits(model, images[:1])
    return AraResult(
        attack_ara=accuracy_robustness_area(rho["attack"], num_classes=c),
        btr_ara=accuracy_robustness_area(rho["btr"], num_classes=c),
        accuracy=float(correct.double().mean()),
        n_images=n,
        num_classes=c,
        rho_star_attack=rho["attack"],
        rho_star_btr=rho["btr"],
        steps=steps,
        size=float(size),
        momentum=float(momentum),
        batch_size=batch_size,
    )


def _first_images(dataset: Dataset, n_images: int | None) -> tuple[Tensor, Tensor]:
    """The first ``n_images`` (default all) of ``dataset`` stacked, with their labels."""
    total = len(dataset)  # type: ignore[arg-type]
    n = total if n_images is None else int(n_images)
    if not 1 <= n <= total:
        raise ValueError(f"n_images must be between 1 and {total} (the size of the set), got {n}")
    items = [dataset[i] for i in range(n)]
    return torch.stack([im for im, _ in items]), torch.tensor([int(lb) for _, lb in items])


def _progress_counter(
    n: int, batch_size: int, steps: int, on_progress: OnProgress | None
) -> Callable[[], None]:
    """A callback counting this process's search steps over both boundaries."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    total = 2 * len(range(rank, len(_batches(n, batch_size)), world)) * steps
    done = [0]

    def tick() -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], total)

    return tick


@torch.no_grad()
def _num_logits(model: nn.Module, probe: Tensor) -> int:
    device = next(model.parameters(), probe).device
    return int(model(probe.to(device)).shape[1])


def ara_figure(result: AraResult, *, title: str | None = None) -> Any:
    """A(ρ) for both boundaries with the 1/C line and the ARA shaded (a matplotlib Figure, Agg canvas).

    Built without pyplot (no global figure state to leak or close); save with ``fig.savefig(path)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    chance = 1.0 / result.num_classes
    x_max = 0.0
    for boundary, colour, ara in (("attack", "C0", result.attack_ara), ("btr", "C1", result.btr_ara)):
        rho, acc = result.curve(boundary)  # type: ignore[arg-type]
        x_max = max(x_max, float(rho[-1]))
        label = f"{'Attack' if boundary == 'attack' else 'BTR'} ARA = {ara:.4g}"
        ax.step(rho.numpy(), acc.numpy(), where="post", color=colour, label=label)
        ax.fill_between(
            rho.numpy(),
            acc.numpy(),
            chance,
            where=(acc > chance).numpy(),
            step="post",
            color=colour,
            alpha=0.15,
        )
    ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label=f"1/C = {chance:.3g}")
    ax.set_xlim(0, x_max * 1.05 if x_max > 0 else 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("ρ: RMS perturbation (pixel units in [0, 1])")
    ax.set_ylabel("A(ρ): fraction with ρ* > ρ")
    ax.set_title(title or f"Accuracy under perturbation (N = {result.n_images}, S = {result.steps})")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


__all__ = [
    "AraResult",
    "BoundaryNotReachedError",
    "accuracy_curve",
    "accuracy_robustness_area",
    "ara_figure",
    "evaluate_ara",
    "robustness_radii",
]
