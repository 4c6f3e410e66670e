"""Accuracy-Robustness Area (docs/method.md §3): how much perturbation a network's accuracy survives.

For each test image the minimal-perturbation search (``advexp_core.methods.attacks.minimal_perturbation``:
the step schedule in "L2,min" form, S = 450, size 20, momentum 0.9) finds ρ*, the smallest RMS(δ)
that meets a boundary — misclassified ("Attack ARA") or softmax_y ≤ 1/C ("BTR ARA"). Then
A(ρ) = fraction of images with ρ* > ρ and ARA = ∫₀^∞ max(0, A(ρ) − 1/C) dρ, integrated exactly from
the sorted ρ* (A is a step function), not with the reference's 1000-bin histogram.

The 95 % interval of an area is a BCa bootstrap over the images, the area recomputed from each
resample's ρ* (``ara_interval``); two networks' areas on the same images compare as a ratio with a
paired bootstrap interval (``ara_ratio_interval``; docs/method.md §9).

The images are, by default, the authors' random subset (``select_images``). An image whose
minimal perturbation is first found after step S/2 is flagged (``AraResult.late``); the
reference refuses such a search. The search runs in batches; with a process group
(``advexp_core.base.distributed``), batch b runs on process b mod W and the rows are gathered, so
every process gets the single-process result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn
from torch.utils.data import Dataset

from advexp_core.base.distributed import DistContext, gather_rows, shard
from advexp_core.base.runtime import OnStep, device_of
from advexp_core.base.statistics import paired_bootstrap_ci
from advexp_core.methods.attacks import SearchSettings, StepScheduleResult, minimal_perturbation

Boundary = Literal["attack", "btr"]
Sample = Literal["reference", "first"]
_SEARCH_BOUNDARY: dict[str, Literal["misclassified", "btr"]] = {"attack": "misclassified", "btr": "btr"}
REFERENCE_SEED = 1776  # the authors' seed for their ARA test-image permutation
BOOTSTRAP_SEED = 0  # the default seed of the areas' bootstrap intervals over images (docs/method.md §9)
Interval = tuple[float, float]


class BoundaryNotReachedError(ValueError):
    """Some images never met the boundary: the search had too few steps (or too small a size).

    Attributes: boundary, count, n_images, indices (dataset indices, at most 20).
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
            f"(e.g. {steps * 2}) or a larger size. Images: {shown}"
        )


def accuracy_robustness_area(rho_star: Tensor, *, num_classes: int) -> float:
    """ARA = ∫₀^∞ max(0, A(ρ) − 1/C) dρ with A(ρ) = fraction of ρ* > ρ, exactly (docs/method.md §3).

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


def ara_values(rho_star: np.ndarray, num_classes: int, axis: int = -1) -> np.ndarray:
    """`accuracy_robustness_area` along ``axis``, vectorised for the bootstrap's resamples.

    Shapes: (..., N) -> (...).
    """
    r = np.sort(np.moveaxis(np.asarray(rho_star, dtype=np.float64), axis, -1), axis=-1)
    n = r.shape[-1]
    widths = np.diff(r, axis=-1, prepend=0.0)
    levels = np.clip((n - np.arange(n)) / n - 1.0 / num_classes, 0.0, None)
    return (widths * levels).sum(-1)


def _bootstrap(
    a: np.ndarray, b: np.ndarray, statistic: Callable[..., np.ndarray], seed: int
) -> Interval | None:
    """`paired_bootstrap_ci`, or the statistic itself when it does not move with the images (every
    leave-one-out value equal: BCa is then undefined, and every resample gives that value)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's 0/0 inside BCa on a constant statistic
        low, high = paired_bootstrap_ci(a, b, statistic, seed=seed)
    if np.isfinite(low) and np.isfinite(high):
        return low, high
    value = float(statistic(a, b, axis=-1))
    keep = ~np.eye(a.size, dtype=bool)
    jackknife = statistic(
        np.broadcast_to(a, keep.shape)[keep].reshape(a.size, -1),
        np.broadcast_to(b, keep.shape)[keep].reshape(b.size, -1),
        axis=-1,
    )
    return (value, value) if np.isfinite(value) and np.allclose(jackknife, value, rtol=1e-9, atol=0) else None


def ara_interval(rho_star: Tensor, *, num_classes: int, seed: int = BOOTSTRAP_SEED) -> Interval | None:
    """The BCa bootstrap interval of the ARA over images: resample the images, recompute the area
    from their ρ* (docs/method.md §9). None under two images.

    Shapes: rho_star (N,).
    """
    r = rho_star.detach().double().cpu().numpy()
    if r.size < 2:
        return None

    def area(a: np.ndarray, _zero: np.ndarray, axis: int = -1) -> np.ndarray:
        return ara_values(a, num_classes, axis)

    return _bootstrap(r, np.zeros_like(r), area, seed)


def ara_ratio_interval(
    rho_star: Tensor, reference: Tensor, *, num_classes: int, seed: int = BOOTSTRAP_SEED
) -> Interval | None:
    """The paired BCa bootstrap interval of ARA(ρ*) / ARA(reference) on the same images (each image's
    two ρ* resampled together). None under two images, or when a resample leaves the reference's
    area at 0 and the ratio undefined.

    Shapes: rho_star, reference (N,), the same images in the same order.
    """
    a, b = (x.detach().double().cpu().numpy() for x in (rho_star, reference))
    if a.size < 2 or not ara_values(b, num_classes) > 0:
        return None

    def ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return ara_values(x, num_classes, axis) / ara_values(y, num_classes, axis)

    return _bootstrap(a, b, ratio, seed)


# --------------------------------------------------------------------------- which images


def select_images(total: int, n_images: int | None, *, sample: Sample = "reference") -> list[int]:
    """The dataset indices ARA evaluates, in order (docs/method.md §3).

    "reference": the first N of a random permutation seeded with 1776 — the authors' choice
    (``torch.manual_seed(1776); torch.randperm(len(test_set))[:N]``), drawn here from a private
    generator with the same seed, which gives the same permutation and leaves the global RNG alone.
    "first": the first N images.

    Args:
        total: the size of the set.
        n_images: N (default all).
        sample: "reference" or "first".

    Returns:
        N distinct indices in [0, total).
    """
    n = total if n_images is None else int(n_images)
    if not 1 <= n <= total:
        raise ValueError(f"n_images must be between 1 and {total} (the size of the set), got {n}")
    if sample == "first":
        return list(range(n))
    if sample != "reference":
        raise ValueError(f"sample must be 'reference' or 'first', got {sample!r}")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(REFERENCE_SEED))
    return [int(i) for i in order[:n]]


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class AraResult:
    """Both ARAs with what produced them (docs/method.md §3).

    Attributes:
        attack_ara, btr_ara: the areas (RMS units).
        accuracy: clean accuracy on the evaluated images.
        n_images, num_classes: N and C.
        image_indices: the dataset index of each evaluated image, in evaluation order.
        labels: (N,) int64 true classes. clean_logits: (N, C) float64 at δ = 0.
        rho_star_attack, rho_star_btr: (N,) float64 per-image ρ*, in ``image_indices`` order.
        reached_attack, reached_btr: (N,) int64, the step at which the boundary was first met
            (0 = at δ = 0).
        steps, size, momentum, batch_size: the search's settings.
    """

    attack_ara: float
    btr_ara: float
    accuracy: float
    n_images: int
    num_classes: int
    image_indices: tuple[int, ...]
    labels: Tensor
    clean_logits: Tensor
    rho_star_attack: Tensor
    rho_star_btr: Tensor
    reached_attack: Tensor
    reached_btr: Tensor
    steps: int
    size: float
    momentum: float
    batch_size: int

    def curve(self, boundary: Boundary = "attack") -> tuple[Tensor, Tensor]:
        """A(ρ) of one boundary (see ``accuracy_curve``)."""
        return accuracy_curve(self.rho_star_attack if boundary == "attack" else self.rho_star_btr)

    def late(self, boundary: Boundary = "attack") -> list[int]:
        """Dataset indices whose minimal perturbation was first found after step S/2.

        The reference refuses such a search (its "ensure proper minimization" check): too few of
        the decaying steps were left to shrink δ, so ρ* may be over-estimated. We keep the result
        and flag these images instead.
        """
        reached = self.reached_attack if boundary == "attack" else self.reached_btr
        late = torch.nonzero(reached > self.steps // 2).flatten().tolist()
        return [self.image_indices[i] for i in late]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: the areas, accuracy, N, indices, per-image ρ*, late counts, settings."""
        return {
            "attack_ara": self.attack_ara,
            "btr_ara": self.btr_ara,
            "accuracy": self.accuracy,
            "n_images": self.n_images,
            "num_classes": self.num_classes,
            "image_indices": list(self.image_indices),
            "rho_star_attack": self.rho_star_attack.tolist(),
            "rho_star_btr": self.rho_star_btr.tolist(),
            "reached_step_attack": self.reached_attack.tolist(),
            "reached_step_btr": self.reached_btr.tolist(),
            "late_minimum": {
                b: {"count": len(self.late(b)), "indices": self.late(b)} for b in ("attack", "btr")
            },
            "settings": {
                "steps": self.steps,
                "size": self.size,
                "momentum": self.momentum,
                "batch_size": self.batch_size,
            },
        }


# --------------------------------------------------------------------------- the search


def robustness_radii(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    boundary: Boundary = "attack",
    steps: int = SearchSettings.steps,
    size: float = SearchSettings.size,
    momentum: float = SearchSettings.momentum,
    on_step: OnStep | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """ρ* of one batch: the RMS of the smallest perturbation meeting ``boundary`` (docs/method.md §3).

    Returns:
        (rho_star float64, met bool, clean logits); ρ* = 0 where the boundary holds at δ = 0.

    Shapes: images (N, 3, H, W), labels (N,) -> (N,), (N,), (N, C).
    """
    found = _search(model, images, labels, boundary=boundary, steps=steps, size=size, momentum=momentum,
                    on_step=on_step)  # fmt: skip
    return found.rms.double().cpu(), found.met.cpu(), found.logits_before.cpu()


def _search(
    model: nn.Module, images: Tensor, labels: Tensor, *, boundary: Boundary, steps: int, size: float,
    momentum: float, on_step: OnStep | None,
) -> StepScheduleResult:  # fmt: skip
    return minimal_perturbation(
        model, images, labels, boundary=_SEARCH_BOUNDARY[boundary], steps=steps, size=size,
        momentum=momentum, on_step=on_step,
    )  # fmt: skip


def _batches(n: int, batch_size: int) -> list[range]:
    return [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def _search_all(
    model: nn.Module, images: Tensor, labels: Tensor, *, boundary: Boundary, steps: int, size: float,
    momentum: float, batch_size: int, ctx: DistContext, progress: Callable[[], None],
) -> Tensor:  # fmt: skip
    """Per image [ρ*, met, reached step, clean logits…]; this process runs batches b ≡ rank (mod W).

    Shapes: images (N, 3, H, W) -> (N, 3 + C) float64, identical on every process.
    """
    mine: list[int] = []
    rows: Tensor | None = None
    for span in shard(_batches(len(labels), batch_size), ctx):
        x, y = images[span.start : span.stop], labels[span.start : span.stop]
        found = _search(model, x, y, boundary=boundary, steps=steps, size=size, momentum=momentum,
                        on_step=lambda _s, _t: progress())  # fmt: skip
        columns = (found.rms, found.met, found.reached_step, *found.logits_before.T)
        part = torch.stack([c.double() for c in columns], 1).cpu()
        rows = torch.zeros(len(labels), part.shape[1], dtype=torch.float64) if rows is None else rows
        rows[span.start : span.stop] = part
        mine += list(span)
    if rows is None:  # more processes than batches: this one only contributes zeros
        rows = torch.zeros(len(labels), 3 + _num_logits(model, images[:1]), dtype=torch.float64)
    return gather_rows(rows, mine, ctx)


def evaluate_ara(
    model: nn.Module,
    dataset: Dataset,
    *,
    indices: Sequence[int] | None = None,
    n_images: int | None = None,
    num_classes: int | None = None,
    steps: int = SearchSettings.steps,
    size: float = SearchSettings.size,
    momentum: float = SearchSettings.momentum,
    batch_size: int = 128,
    ctx: DistContext | None = None,
    on_progress: OnStep | None = None,
) -> AraResult:
    """Attack and BTR ARA of ``model`` on some images of ``dataset`` (docs/method.md §3).

    Args:
        model: (N, 3, H, W) images in [0, 1] -> (N, C) logits; eval mode, not modified.
        dataset: (image, label) pairs.
        indices: the dataset indices to evaluate, in order (``select_images``); default the
            first ``n_images`` (default all).
        n_images: used only without ``indices``.
        num_classes: C (default: the model's number of logits).
        steps, size, momentum: the search (`attacks.SearchSettings`: the paper's).
        batch_size: images per search batch.
        ctx: the process group (``advexp_core.base.distributed``): batches are sharded over its
            processes and gathered, so every process gets the one-process result.
        on_progress: called as on_progress(done, total) after every search step of this process.

    Returns:
        ``AraResult``.

    Raises:
        ValueError: n_images or indices out of range. BoundaryNotReachedError: some image never met
        a boundary (too few steps).
    """
    total = len(dataset)  # type: ignore[arg-type]
    chosen = list(indices) if indices is not None else select_images(total, n_images, sample="first")
    images, labels = _stack(dataset, chosen)
    ctx = ctx or DistContext(device=device_of(model))
    progress = _progress_counter(len(chosen), batch_size, steps, ctx, on_progress)
    tables: dict[str, Tensor] = {}
    for boundary in ("attack", "btr"):
        tables[boundary] = _search_all(
            model, images, labels, boundary=boundary, steps=steps, size=size, momentum=momentum,
            batch_size=batch_size, ctx=ctx, progress=progress,
        )  # fmt: skip
        met = tables[boundary][:, 1].bool()
        if not bool(met.all()):
            missing = [chosen[i] for i in torch.nonzero(~met).flatten().tolist()]
            raise BoundaryNotReachedError(boundary, missing, len(chosen), steps, size)
    return _result(tables, chosen, labels, num_classes, steps, size, momentum, batch_size)


def _result(
    tables: dict[str, Tensor], chosen: list[int], labels: Tensor, num_classes: int | None, steps: int,
    size: float, momentum: float, batch_size: int,
) -> AraResult:  # fmt: skip
    logits = tables["attack"][:, 3:]
    c = int(num_classes) if num_classes is not None else logits.shape[1]
    rho = {b: t[:, 0].contiguous() for b, t in tables.items()}
    return AraResult(
        attack_ara=accuracy_robustness_area(rho["attack"], num_classes=c),
        btr_ara=accuracy_robustness_area(rho["btr"], num_classes=c),
        accuracy=float((logits.argmax(1) == labels).double().mean()),
        n_images=len(chosen),
        num_classes=c,
        image_indices=tuple(chosen),
        labels=labels,
        clean_logits=logits,
        rho_star_attack=rho["attack"],
        rho_star_btr=rho["btr"],
        reached_attack=tables["attack"][:, 2].long(),
        reached_btr=tables["btr"][:, 2].long(),
        steps=steps,
        size=float(size),
        momentum=float(momentum),
        batch_size=batch_size,
    )


def _stack(dataset: Dataset, indices: list[int]) -> tuple[Tensor, Tensor]:
    """The images at ``indices`` stacked, with their labels. Shapes: -> (N, 3, H, W), (N,)."""
    total = len(dataset)  # type: ignore[arg-type]
    if not indices or min(indices) < 0 or max(indices) >= total:
        raise ValueError(f"image indices must lie in [0, {total}) and not be empty")
    items = [dataset[i] for i in indices]
    return torch.stack([im for im, _ in items]), torch.tensor([int(lb) for _, lb in items])


def _progress_counter(
    n: int, batch_size: int, steps: int, ctx: DistContext, on_progress: OnStep | None
) -> Callable[[], None]:
    """A callback counting this process's search steps over both boundaries."""
    total = 2 * len(shard(_batches(n, batch_size), ctx)) * steps
    done = [0]

    def tick() -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], total)

    return tick


@torch.no_grad()
def _num_logits(model: nn.Module, probe: Tensor) -> int:
    return int(model(probe.to(device_of(model))).shape[1])


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
    _finish_axes(
        ax, x_max, title or f"Accuracy under perturbation (N = {result.n_images}, S = {result.steps})"
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _finish_axes(ax: Any, x_max: float, title: str) -> None:
    """The A(ρ) axes' limits, labels and title, shared by both figures."""
    ax.set_xlim(0, x_max * 1.05 if x_max > 0 else 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("ρ: RMS perturbation (pixel units in [0, 1])")
    ax.set_ylabel("A(ρ): fraction with ρ* > ρ")
    ax.set_title(title)


@dataclass(frozen=True)
class RobustnessCurve:
    """One network's ρ* for a plot of several (``robustness_curves_figure``).

    Attributes:
        name: the legend's name (a model id).
        rho_star: (N,) per-image ρ* of one boundary (RMS, pixel units).
        num_classes: C; the chance level is 1/C.
        robust: drawn in the robust colour family (the paper's robust additions, §1).
    """

    name: str
    rho_star: Tensor
    num_classes: int
    robust: bool = False


def _curve_colours(curves: Sequence[RobustnessCurve]) -> list[Any]:
    """Blues for networks without the robust additions, reds for those with them, light to dark."""
    from matplotlib import colormaps

    total = {flag: sum(c.robust == flag for c in curves) for flag in (False, True)}
    seen = {False: 0, True: 0}
    out = []
    for curve in curves:
        shade = 0.55 + 0.4 * seen[curve.robust] / max(1, total[curve.robust] - 1)
        seen[curve.robust] += 1
        out.append(colormaps["Reds" if curve.robust else "Blues"](shade))
    return out


def robustness_curves_figure(
    curves: Sequence[RobustnessCurve], *, highlight: str | None = None, title: str | None = None
) -> Any:
    """A(ρ) of several networks on one plot, 1/C marked, the ARA of ``highlight`` shaded (docs/method.md §3).

    Networks with the robust additions are solid lines in reds, the others dashed in blues. Each
    network's line carries the gid ``"curve:<name>"``, so the curves drawn can be counted. Built
    without pyplot, like ``ara_figure``.

    Args:
        curves: one ``RobustnessCurve`` per network (at least one), in legend order.
        highlight: the name whose area max(0, A(ρ) − 1/C) is shaded (None: none).
        title: the axes title.

    Returns:
        A matplotlib Figure (Agg canvas).

    Raises:
        ValueError: no curves, or ``highlight`` is not one of their names.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("robustness_curves_figure needs at least one curve")
    if highlight is not None and highlight not in {c.name for c in curves}:
        raise ValueError(
            f"highlight {highlight!r} is not one of the curves ({', '.join(c.name for c in curves)})"
        )
    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x_max = 0.0
    for curve, colour in zip(curves, _curve_colours(curves), strict=True):
        rho, acc = accuracy_curve(curve.rho_star)
        x_max = max(x_max, float(rho[-1]))
        ara = accuracy_robustness_area(curve.rho_star, num_classes=curve.num_classes)
        ax.step(rho.numpy(), acc.numpy(), where="post", color=colour, linestyle="-" if curve.robust else "--",
                linewidth=2.0 if curve.name == highlight else 1.4, label=f"{curve.name} (ARA {ara:.4f})",
                gid=f"curve:{curve.name}")  # fmt: skip
        if curve.name == highlight:
            chance = 1.0 / curve.num_classes
            ax.fill_between(rho.numpy(), acc.numpy(), chance, where=(acc > chance).numpy(), step="post",
                            color=colour, alpha=0.25, label=f"area of {curve.name}")  # fmt: skip
    for c in sorted({curve.num_classes for curve in curves}):
        ax.axhline(1.0 / c, color="grey", linestyle=":", linewidth=1.2, label=f"chance 1/C = {1.0 / c:.3g}")
    _finish_axes(ax, x_max, title or "Accuracy under perturbation")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return fig


__all__ = [
    "BOOTSTRAP_SEED",
    "REFERENCE_SEED",
    "AraResult",
    "BoundaryNotReachedError",
    "Interval",
    "RobustnessCurve",
    "accuracy_curve",
    "accuracy_robustness_area",
    "ara_figure",
    "ara_interval",
    "ara_ratio_interval",
    "ara_values",
    "evaluate_ara",
    "robustness_curves_figure",
    "robustness_radii",
    "select_images",
]
