"""Synthetic images whose evidence is known pixel by pixel: dermoscopy-like lesions with a planted
shortcut, and BlockMNIST-style digits. Everything is drawn from a ``torch.Generator``: no files, no
downloads, the same seed gives the same tensors.

**Lesions** (64×64 RGB). A skin-toned background (per-image tone, low- and high-frequency texture,
a few dark hair strokes, vignetting) holds one lesion near the centre:

- class 0 *benign*: roundish (a mild ellipse), a sharp smooth border, one brown tone (light to dark),
  slightly darker towards the middle;
- class 1 *malignant*: the same lesion with its atypical features scaled by a severity drawn from
  ``MALIGNANT_SEVERITY``: an irregular, lopsided border (harmonics 1 and 3..6 of the radius), a softer
  edge, and two or three colours (black and/or blue-grey blotches over the brown). The severity's range
  sets the separability: a small CNN trained without the shortcut reaches about 0.92 test accuracy.

The *shortcut* is a ruler: a yellow strip with black tick marks along one random edge of the image,
never touching the lesion (the lesion stays inside [11, 53)², the ruler in the outer ``RULER_WIDTH``
px). Its presence depends on the class through ``ruler_rates`` = (P(ruler | benign),
P(ruler | malignant)): (0.15, 0.85) in the biased splits, (0.5, 0.5) in an unbiased one. The ruler is
a far easier cue than the lesion (a large, high-contrast, fixed pattern: a network learns it within an
epoch), so a network trained on the biased data leans on it and loses about 15 accuracy points where
the correlation is broken. Every random draw is made whether or not the ruler is drawn, so
``shortcut=False`` gives the same images with the ruler pixels left as skin: the shortcut-free twin
of a split, and an exact ground truth for "what the shortcut changed"; ``force_ruler=True`` gives
its opposite, every image with the ruler it would have had (``reliance.py`` measures both effects).

Masks: ``lesion`` is the lesion's support (its blending weight > 0.5, before hair is drawn over it);
``ruler`` the ruler's strip (all False where there is none).

**Block digits** (Shah, Jain & Netrapalli, "Do input gradients highlight discriminative features?",
NeurIPS 2021, BlockMNIST): a 64×64 canvas of four 32×32 quadrants; the digit in one random quadrant,
a fixed class-independent "null" patch in the other three. The null patch carries no information about
the class, so any attribution on it is attribution to a non-discriminative feature.

Shapes: images (N, 3, 64, 64) float32 in [0, 1]; labels (N,) int64; masks (N, 64, 64) bool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

LESION_SIZE = 64
LESION_CLASS_NAMES = ("benign", "malignant")
BIASED_RULER_RATES = (0.15, 0.85)
UNBIASED_RULER_RATES = (0.5, 0.5)
RULER_WIDTH = 9  # px from the image edge
MALIGNANT_SEVERITY = (0.05, 0.6)
LESION_MAX_RADIUS = 17.0  # px; with centres within ±4 px of the middle, the lesion stays inside [11, 53)
BLOCK_SIZE = 32
_CHUNK = 500  # images generated at once: bounds the (chunk, K, H, W) temporaries to a few hundred MB


@dataclass(frozen=True)
class LesionImages:
    """Generated lesion images with their ground truth.

    Shapes: images (N, 3, 64, 64) float32 in [0, 1]; labels (N,) int64 (0 benign, 1 malignant);
    lesion_masks, ruler_masks (N, 64, 64) bool; has_ruler (N,) bool (False everywhere when the
    shortcut is switched off).
    """

    images: Tensor
    labels: Tensor
    lesion_masks: Tensor
    ruler_masks: Tensor
    has_ruler: Tensor


def generate_lesions(
    n: int,
    *,
    generator: torch.Generator,
    ruler_rates: tuple[float, float] = BIASED_RULER_RATES,
    shortcut: bool = True,
    force_ruler: bool = False,
) -> LesionImages:
    """Draw ``n`` lesion images, exactly half of each class (see the module docstring).

    Args:
        n: number of images.
        generator: the source of every random choice; same state -> identical tensors.
        ruler_rates: (P(ruler | benign), P(ruler | malignant)).
        shortcut: draw the ruler where chosen; False gives the same images without it.
        force_ruler: draw a ruler on every image, the one each would have had (same edge, length,
            ticks): images that had one are unchanged, the others differ only inside their new
            ruler mask. Needs ``shortcut``.

    Returns:
        A ``LesionImages`` (``has_ruler`` all True when ``force_ruler``).

    Raises:
        ValueError: ``force_ruler`` without ``shortcut``.

    Shapes: images (n, 3, 64, 64); labels (n,); masks (n, 64, 64).
    """
    if force_ruler and not shortcut:
        raise ValueError("force_ruler draws the shortcut on every image; it cannot go with shortcut=False.")
    labels = (torch.randperm(n, generator=generator) % 2).to(torch.int64)
    rates = torch.tensor(ruler_rates, dtype=torch.float32)[labels]
    # The draw is made even when it is overridden, so the later draws (and images) stay the same.
    has_ruler = ((torch.rand(n, generator=generator) < rates) | force_ruler) & shortcut
    parts = [
        _lesion_chunk(labels[i : i + _CHUNK], has_ruler[i : i + _CHUNK], generator)
        for i in range(0, n, _CHUNK)
    ]
    images, lesion, ruler = (torch.cat(p) for p in zip(*parts, strict=True)) if parts else _empty()
    return LesionImages(images, labels, lesion, ruler, has_ruler)


def _empty() -> tuple[Tensor, Tensor, Tensor]:
    s = LESION_SIZE
    return (
        torch.zeros(0, 3, s, s),
        torch.zeros(0, s, s, dtype=torch.bool),
        torch.zeros(0, s, s, dtype=torch.bool),
    )


def _grid() -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates (y, x), each (1, 1, H, W)."""
    axis = torch.arange(LESION_SIZE, dtype=torch.float32)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return y[None, None], x[None, None]


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def _smooth_noise(n: int, cells: int, generator: torch.Generator) -> Tensor:
    """Unit-variance noise that varies over about ``64 / cells`` px. Shapes: -> (n, 1, 64, 64)."""
    coarse = torch.randn(n, 1, cells, cells, generator=generator)
    field = F.interpolate(coarse, size=(LESION_SIZE, LESION_SIZE), mode="bicubic", align_corners=False)
    return field / field.flatten(1).std(dim=1).clamp_min(1e-6).view(-1, 1, 1, 1)


def _blend(base: Tensor, colour: Tensor, alpha: Tensor) -> Tensor:
    """Shapes: base (N, 3, H, W), colour (N, 3, 1, 1) or (N, 3, H, W), alpha (N, 1, H, W)."""
    return base + alpha * (colour - base)


def _lesion_chunk(
    labels: Tensor, has_ruler: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    n = len(labels)
    image = _skin(n, generator)
    alpha, colour = _lesion(labels, generator)
    image = _blend(image, colour, alpha)
    ruler_alpha, ruler_colour, ruler_mask = _ruler(has_ruler, generator)
    image = _blend(image, ruler_colour, ruler_alpha)
    image = _blend(image, _hair_colour(n, generator), _hair(n, generator))
    image = image * _vignette(n, generator)
    image = image + 0.01 * torch.randn(image.shape, generator=generator)
    return image.clamp(0.0, 1.0), alpha[:, 0] > 0.5, ruler_mask


def _skin(n: int, generator: torch.Generator) -> Tensor:
    """Skin tone between light and tan, with blotchy and fine luminance texture. Shapes: -> (n, 3, H, W)."""
    light, tan = torch.tensor([0.93, 0.78, 0.68]), torch.tensor([0.80, 0.58, 0.46])
    t = torch.rand(n, 1, generator=generator)
    tone = light + t * (tan - light) + 0.02 * torch.randn(n, 3, generator=generator)
    texture = 0.03 * _smooth_noise(n, 8, generator) + 0.015 * torch.randn(
        n, 1, LESION_SIZE, LESION_SIZE, generator=generator
    )
    return tone.view(n, 3, 1, 1) * (1.0 + texture)


def _lesion(labels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The lesion's blending weight and per-pixel colour. Shapes: -> (n, 1, H, W), (n, 3, H, W)."""
    n = len(labels)
    y, x = _grid()
    cy, cx = (32.0 + _uniform((n, 1, 1, 1), -4.0, 4.0, generator) for _ in range(2))
    dy, dx = y - cy, x - cx
    dist, theta = torch.sqrt(dy**2 + dx**2), torch.atan2(dy, dx)
    # A malignant lesion is a benign one with its atypical features scaled by a severity in
    # MALIGNANT_SEVERITY; benign lesions have severity 0. The lower bound sets how separable they are.
    low, high = MALIGNANT_SEVERITY
    severity = labels.view(n, 1, 1, 1) * _uniform((n, 1, 1, 1), low, high, generator)
    radius = _radius(severity, theta, generator)
    softness = 0.7 + 0.6 * severity  # benign borders are sharp; malignant ones fade unevenly
    alpha = torch.sigmoid((radius - dist) / softness)
    return alpha, _lesion_colour(severity, dist / radius, generator)


def _radius(severity: Tensor, theta: Tensor, generator: torch.Generator) -> Tensor:
    """Border radius per pixel angle: a mild ellipse, made irregular and lopsided with severity.

    Shapes: severity (n, 1, 1, 1), theta (n, 1, H, W) -> (n, 1, H, W).
    """
    n = len(severity)
    base = _uniform((n, 1, 1, 1), 9.0, 13.0, generator)
    harmonics = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).view(1, -1, 1, 1)
    phase = _uniform((n, 6, 1, 1), 0.0, 2 * math.pi, generator)
    amp = _uniform((n, 6, 1, 1), 0.0, 0.015, generator)
    amp[:, 1] += _uniform((n, 1, 1), 0.0, 0.15, generator)  # the ellipse
    atypical = _uniform((n, 6, 1, 1), 0.04, 0.1, generator)
    atypical[:, 0] = _uniform((n, 1, 1), 0.1, 0.25, generator)  # lopsided: one side bulges
    amp = amp + severity * atypical
    shape = 1.0 + (amp * torch.cos(harmonics * theta + phase)).sum(dim=1, keepdim=True)
    return (base * shape).clamp(4.0, LESION_MAX_RADIUS)


def _lesion_colour(severity: Tensor, rel_dist: Tensor, generator: torch.Generator) -> Tensor:
    """One brown tone (light to medium, a little darker in the middle), darkened and blotched with black
    and/or blue-grey in proportion to severity: one colour when benign, two or three when malignant.

    Shapes: severity (n, 1, 1, 1), rel_dist (n, 1, H, W) -> (n, 3, H, W).
    """
    n = len(severity)
    light, medium = torch.tensor([0.72, 0.52, 0.38]), torch.tensor([0.36, 0.22, 0.14])
    tone = (light + torch.rand(n, 1, generator=generator) * (medium - light)).view(n, 3, 1, 1)
    shade = 0.9 + 0.1 * rel_dist.clamp(0.0, 1.0) + 0.02 * _smooth_noise(n, 8, generator)
    colour = tone * shade
    black = torch.tensor([0.10, 0.07, 0.06]).view(1, 3, 1, 1)
    blue_grey = torch.tensor([0.42, 0.44, 0.50]).view(1, 3, 1, 1)
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=generator)  # 0 black, 1 blue-grey, 2 both
    opacity = 0.6 * severity
    w_black = opacity * torch.sigmoid((_smooth_noise(n, 5, generator) - 0.4) / 0.15) * (kind != 1)
    w_blue = opacity * torch.sigmoid((_smooth_noise(n, 5, generator) - 0.4) / 0.15) * (kind != 0)
    return _blend(_blend(colour, black, w_black), blue_grey, w_blue)


def _ruler(has_ruler: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """A yellow strip with black ticks (long every other one) along one random edge.

    Returns:
        (alpha (n, 1, H, W), colour (n, 3, H, W), mask (n, H, W) bool); zero where ``has_ruler`` is False.
    """
    n = len(has_ruler)
    y, x = _grid()
    edge = torch.randint(0, 4, (n, 1, 1, 1), generator=generator)  # top, bottom, left, right
    last = LESION_SIZE - 1
    depth = torch.where(edge == 0, y, torch.where(edge == 1, last - y, torch.where(edge == 2, x, last - x)))
    along = torch.where(edge < 2, x, y)
    length = torch.randint(48, LESION_SIZE + 1, (n, 1, 1, 1), generator=generator).float()
    start = torch.floor(torch.rand(n, 1, 1, 1, generator=generator) * (LESION_SIZE - length + 1))
    period = torch.randint(2, 4, (n, 1, 1, 1), generator=generator).float()
    offset = along - start
    strip = (depth < RULER_WIDTH) & (offset >= 0) & (offset < length) & has_ruler.view(n, 1, 1, 1)
    tick_index = torch.floor(offset / period)
    tick_len = torch.where(tick_index % 2 == 0, 6.0, 4.0)
    tick = ((offset - tick_index * period < 1) & (depth < tick_len)) | (depth == RULER_WIDTH - 1)
    band = torch.tensor([0.98, 0.85, 0.20]).view(1, 3, 1, 1) + 0.02 * torch.randn(
        n, 3, 1, 1, generator=generator
    )
    ink = torch.full((1, 3, 1, 1), 0.12)
    colour = torch.where(tick, ink, band)
    return strip.float(), colour, strip[:, 0]


def _hair(n: int, generator: torch.Generator, strokes: int = 4) -> Tensor:
    """Zero to four thin dark straight strokes. Shapes: -> alpha (n, 1, H, W)."""
    y, x = _grid()
    p0 = _uniform((n, strokes, 2, 1, 1), 0.0, LESION_SIZE, generator)
    angle = _uniform((n, strokes, 1, 1), 0.0, math.pi, generator)
    length = _uniform((n, strokes, 1, 1), 20.0, 60.0, generator)
    direction = torch.stack([torch.sin(angle), torch.cos(angle)], dim=2)
    rel_y, rel_x = y - p0[:, :, 0], x - p0[:, :, 1]
    t = (rel_y * direction[:, :, 0] + rel_x * direction[:, :, 1]).clamp(min=0.0)
    t = torch.minimum(t, length)
    dist = torch.sqrt((rel_y - t * direction[:, :, 0]) ** 2 + (rel_x - t * direction[:, :, 1]) ** 2)
    width = _uniform((n, strokes, 1, 1), 0.4, 0.9, generator)
    present = torch.rand(n, strokes, 1, 1, generator=generator) < 0.4
    alpha = (1.0 - dist / (2 * width)).clamp(0.0, 0.85) * present
    return alpha.amax(dim=1, keepdim=True)


def _hair_colour(n: int, generator: torch.Generator) -> Tensor:
    return (torch.tensor([0.20, 0.13, 0.10]) + 0.03 * torch.randn(n, 1, generator=generator)).view(n, 3, 1, 1)


def _vignette(n: int, generator: torch.Generator) -> Tensor:
    """Darker corners, like a dermatoscope's field. Shapes: -> (n, 1, H, W)."""
    y, x = _grid()
    cy, cx = (31.5 + _uniform((n, 1, 1, 1), -6.0, 6.0, generator) for _ in range(2))
    strength = _uniform((n, 1, 1, 1), 0.15, 0.4, generator)
    r2 = ((y - cy) ** 2 + (x - cx) ** 2) / (2 * 32.0**2)
    return 1.0 - strength * r2.clamp(max=1.0)


# --------------------------------------------------------------------------- block digits


def null_patch() -> Tensor:
    """The fixed class-independent patch of the empty quadrants: a hollow square drawn at 8×8 like a
    digit (same stroke value, same bilinear ×4 upsampling), so its texture matches a digit's.

    Shapes: -> (32, 32) float32 in [0, 1].
    """
    small = torch.zeros(8, 8)
    small[1:7, 1] = small[1:7, 6] = small[1, 1:7] = small[6, 1:7] = 1.0
    up = F.interpolate(small[None, None], size=(BLOCK_SIZE, BLOCK_SIZE), mode="bilinear", align_corners=False)
    return up[0, 0].clamp(0.0, 1.0)


def block_digits(digits: Tensor, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Place each 32×32 digit in a random quadrant of a 64×64 canvas, the null patch in the other three.

    Args:
        digits: grey digits in [0, 1].
        generator: draws the quadrants (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right).

    Returns:
        (images (N, 3, 64, 64), quadrants (N,) int64).

    Shapes: digits (N, 32, 32) -> (N, 3, 64, 64), (N,).
    """
    n = len(digits)
    quadrant = torch.randint(0, 4, (n,), generator=generator)
    blocks = null_patch().expand(n, 4, BLOCK_SIZE, BLOCK_SIZE).clone()
    blocks[torch.arange(n), quadrant] = digits
    rows = torch.cat([blocks[:, 0], blocks[:, 1]], dim=2), torch.cat([blocks[:, 2], blocks[:, 3]], dim=2)
    canvas = torch.cat(rows, dim=1)
    return canvas[:, None].expand(n, 3, 2 * BLOCK_SIZE, 2 * BLOCK_SIZE).contiguous(), quadrant


def quadrant_masks(quadrant: Tensor) -> Tensor:
    """The digit's quadrant as a mask. Shapes: (N,) -> (N, 64, 64) bool."""
    mask = torch.zeros(len(quadrant), 2, 2, dtype=torch.bool)
    mask.view(-1, 4)[torch.arange(len(quadrant)), quadrant] = True
    return mask.repeat_interleave(BLOCK_SIZE, dim=1).repeat_interleave(BLOCK_SIZE, dim=2)
