"""Norm geometries: sizes, unit directions, projections and random starts (advexp_core.methods.geometry)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advexp_core.methods.geometry import NORMS, get_geometry, l2, linf, rms


def test_sizes_on_a_hand_made_perturbation() -> None:
    delta = torch.zeros(2, 1, 2, 2)
    delta[0, 0, 0, 0], delta[0, 0, 1, 1] = 3.0, -4.0  # ‖·‖₂ = 5, max = 4, RMS = 5/2
    assert torch.allclose(linf(delta), torch.tensor([4.0, 0.0]))
    assert torch.allclose(l2(delta), torch.tensor([5.0, 0.0]))
    assert torch.allclose(rms(delta), torch.tensor([2.5, 0.0]))
    assert torch.allclose(get_geometry("rms").size(delta), rms(delta))


@pytest.mark.parametrize("norm", NORMS)
def test_normalize_gives_unit_directions_and_keeps_zero(norm: str) -> None:
    geometry = get_geometry(norm)
    grad = torch.randn(3, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    grad[2] = 0.0
    unit = geometry.normalize(grad)
    assert torch.allclose(geometry.size(unit[:2]), torch.ones(2), atol=1e-6)
    assert torch.equal(unit[2], torch.zeros_like(unit[2]))
    # The direction is the steepest ascent: positively aligned with the gradient.
    assert bool(((unit[:2] * grad[:2]).flatten(1).sum(1) > 0).all())


def test_linf_direction_is_the_sign() -> None:
    grad = torch.tensor([[[[0.5, -2.0], [0.0, 1e-9]]]])
    assert torch.equal(get_geometry("linf").normalize(grad), torch.tensor([[[[1.0, -1.0], [0.0, 1.0]]]]))


@pytest.mark.parametrize("norm", NORMS)
def test_project_keeps_points_inside_and_pulls_outside_ones_to_the_sphere(norm: str) -> None:
    geometry = get_geometry(norm)
    delta = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    eps = 0.3 * float(geometry.size(delta).min())
    projected = geometry.project(delta, eps)
    assert torch.allclose(geometry.size(projected), torch.full((4,), eps), rtol=1e-5)
    inside = delta * 1e-3
    assert torch.allclose(geometry.project(inside, eps), inside)
    assert torch.equal(geometry.project(delta, 0.0), torch.zeros_like(delta))


def test_l2_projection_is_the_closest_point_and_rms_scales_by_sqrt_dim() -> None:
    delta = torch.tensor([[[[3.0, 4.0]]]])
    assert torch.allclose(get_geometry("l2").project(delta, 1.0), torch.tensor([[[[0.6, 0.8]]]]))
    # RMS radius r is the L2 radius r·sqrt(2) for two elements.
    expected = get_geometry("l2").project(delta, math.sqrt(2.0))
    assert torch.allclose(get_geometry("rms").project(delta, 1.0), expected)


@pytest.mark.parametrize("norm", NORMS)
def test_random_init_lies_in_the_ball_and_follows_the_generator(norm: str) -> None:
    geometry = get_geometry(norm)
    shape = (8, 3, 6, 6)
    first = geometry.random_init(shape, 0.1, torch.Generator().manual_seed(3))
    again = geometry.random_init(shape, 0.1, torch.Generator().manual_seed(3))
    other = geometry.random_init(shape, 0.1, torch.Generator().manual_seed(4))
    assert first.shape == shape and first.dtype == torch.float32
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert bool((geometry.size(first) <= 0.1 + 1e-6).all())
    assert bool((geometry.size(first) > 0).all())


def test_unknown_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown norm"):
        get_geometry("l1")


@settings(max_examples=30, deadline=None)
@given(
    norm=st.sampled_from(NORMS),
    eps=st.floats(min_value=0.0, max_value=2.0),
    scale=st.floats(min_value=1e-4, max_value=1e3),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_projection_never_exceeds_eps(norm: str, eps: float, scale: float, seed: int) -> None:
    geometry = get_geometry(norm)
    delta = scale * torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(seed))
    assert bool((geometry.size(geometry.project(delta, eps)) <= eps * (1 + 1e-5) + 1e-7).all())
