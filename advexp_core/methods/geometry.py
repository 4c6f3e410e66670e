"""Norm geometries for perturbations: L∞, L2 and RMS balls in [0,1] pixel units.

Each geometry gives the four operations an attack loop needs: the size of a
perturbation, the unit steepest-ascent direction for a gradient, the projection
onto the ball of radius ``eps`` and a random start inside it. RMS is the paper's
unit (docs/method.md: RMS(δ) = sqrt(mean δ² over C·H·W), the ρ of §2-3); it is L2
divided by sqrt(C·H·W), so the two share one implementation.

Shapes: every ``delta``/``grad`` is (N, ...) with the batch first; sizes are (N,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "NORMS",
    "Geometry",
    "L2Geometry",
    "LinfGeometry",
    "RMSGeometry",
    "get_geometry",
    "l2",
    "linf",
    "rms",
]


def linf(delta: Tensor) -> Tensor:
    """Per-example L∞ size max|δ| in pixel units. Shapes: (N, ...) -> (N,)."""
    return delta.detach().flatten(1).abs().amax(dim=1)


def l2(delta: Tensor) -> Tensor:
    """Per-example Euclidean size ‖δ‖₂ in pixel units. Shapes: (N, ...) -> (N,)."""
    return torch.linalg.vector_norm(delta.detach().flatten(1), dim=1)


def rms(delta: Tensor) -> Tensor:
    """Per-example RMS(δ) = sqrt(mean δ²) over C·H·W (docs/method.md §1.4, the paper's ρ).

    Shapes: (N, ...) -> (N,).
    """
    return delta.detach().flatten(1).pow(2).mean(dim=1).sqrt()


def _nonzero(sizes: Tensor) -> Tensor:
    """Sizes floored at the smallest normal float, so that 0/size is 0 rather than NaN."""
    return sizes.clamp_min(torch.finfo(sizes.dtype).tiny)


def _per_example(values: Tensor, like: Tensor) -> Tensor:
    """Reshape (N,) to (N, 1, 1, ...) so that it broadcasts against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


@dataclass(frozen=True)
class Geometry:
    """A Euclidean-type norm ball; subclasses fix the norm. Radii in pixel units."""

    name: str = "l2"

    def size(self, delta: Tensor) -> Tensor:
        """Per-example size of ``delta`` in this norm. Shapes: (N, ...) -> (N,)."""
        return l2(delta)

    def normalize(self, grad: Tensor) -> Tensor:
        """Unit steepest-ascent direction g / size(g); a zero gradient stays zero.

        Dividing by max|g| first keeps tiny gradients (a saturated softmax gives ~1e-20)
        from underflowing when squared. Shapes: (N, ...) -> (N, ...).
        """
        scaled = grad / _per_example(_nonzero(linf(grad)), grad)
        return scaled / _per_example(_nonzero(self.size(scaled)), scaled)

    def project(self, delta: Tensor, eps: float) -> Tensor:
        """Closest point of the ball of radius ``eps`` (rescale when outside).

        Args:
            delta: perturbations, (N, ...).
            eps: radius, pixel units, >= 0.
        Returns: the projected perturbations, same shape.
        """
        scale = (eps / _nonzero(self.size(delta))).clamp(max=1.0)
        return delta * _per_example(scale, delta)

    def random_init(
        self,
        shape: tuple[int, ...] | torch.Size,
        eps: float,
        generator: torch.Generator | None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """A random start inside the ball (L2/RMS: a Gaussian direction scaled to a radius
        drawn uniformly in [0, eps], as torchattacks' PGDL2; L∞: uniform noise in [-eps, eps]).

        Args:
            shape: (N, ...) shape of the perturbation.
            eps: radius, pixel units, >= 0.
            generator: the source of randomness (values are drawn on its device);
                None uses torch's global generator.
            device: where the result lives (default: the generator's device, else CPU).
            dtype: floating dtype of the result.
        Returns: the random perturbation, (N, ...).
        """
        gen_device = generator.device if generator is not None else torch.device("cpu")
        delta = self._sample(tuple(shape), eps, generator, device=gen_device, dtype=dtype)
        return delta.to(device if device is not None else gen_device)

    def _sample(
        self, shape: tuple[int, ...], eps: float, gen: torch.Generator | None, **where: Any
    ) -> Tensor:
        direction = self.normalize(torch.randn(shape, generator=gen, **where))
        radius = torch.rand(shape[0], generator=gen, **where) * eps
        return direction * _per_example(radius, direction)


@dataclass(frozen=True)
class L2Geometry(Geometry):
    """The L2 ball ‖δ‖₂ <= eps."""

    name: str = "l2"


@dataclass(frozen=True)
class RMSGeometry(Geometry):
    """The RMS ball RMS(δ) <= eps, i.e. ‖δ‖₂ <= eps·sqrt(C·H·W) (docs/method.md §1.4)."""

    name: str = "rms"

    def size(self, delta: Tensor) -> Tensor:
        """Per-example RMS(δ). Shapes: (N, ...) -> (N,)."""
        return rms(delta)


@dataclass(frozen=True)
class LinfGeometry(Geometry):
    """The L∞ ball max|δ| <= eps: sign steps, clipping projection."""

    name: str = "linf"

    def size(self, delta: Tensor) -> Tensor:
        """Per-example max|δ|. Shapes: (N, ...) -> (N,)."""
        return linf(delta)

    def normalize(self, grad: Tensor) -> Tensor:
        """sign(g), the L∞ steepest-ascent direction. Shapes: (N, ...) -> (N, ...)."""
        return grad.sign()

    def project(self, delta: Tensor, eps: float) -> Tensor:
        """Clip every element to [-eps, eps]. Shapes: (N, ...) -> (N, ...)."""
        return delta.clamp(-eps, eps)

    def _sample(
        self, shape: tuple[int, ...], eps: float, gen: torch.Generator | None, **where: Any
    ) -> Tensor:
        unit = torch.rand(shape, generator=gen, **where)
        return (2.0 * unit - 1.0) * eps


_GEOMETRIES: dict[str, Geometry] = {"linf": LinfGeometry(), "l2": L2Geometry(), "rms": RMSGeometry()}
NORMS: tuple[str, ...] = tuple(_GEOMETRIES)


def get_geometry(name: str) -> Geometry:
    """The geometry called ``name``: "linf" | "l2" | "rms" (ValueError otherwise)."""
    try:
        return _GEOMETRIES[name]
    except KeyError:
        raise ValueError(f"unknown norm {name!r}; expected one of: {', '.join(NORMS)}") from None
