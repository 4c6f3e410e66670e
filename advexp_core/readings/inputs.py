"""Reading of the input: how much of what the network sees was taken from the file, how much was
invented by enlarging it, and how much of the file was cut away (docs/method.md, "Readings").

Every image is fitted to the network's input by `advexp_core.data.imaging.prepare_image`: the short
side is scaled, the centre is cropped, and a box never extends past the image, so a tiny image is
stretched and an elongated one loses its ends. Both happen without a word unless this reading
says so. The thresholds are constants here, justified in docs/method.md ("Readings"). The numbers
are exact geometry, not float results, so no reading is flagged as near its threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from advexp_core.data.imaging import Preprocess, crop_box
from advexp_core.readings import Reading

UPSCALE_LIMIT = 2.0
"""Enlargement per side from which the image is said to be mostly invented: at 2×, three of every
four pixels the network reads are interpolated between the file's pixels."""
CROP_LIMIT = 0.5
"""Share of the file's pixels cut away from which the reading says that most of the image never
reaches the network (a 4:3 photo under the ImageNet 256/224 crop loses 43 %, a 16:9 one 57 %)."""


@dataclass(frozen=True)
class InputFit:
    """How an image of ``size`` becomes the network's input.

    Attributes:
        size: the file's (H, W) after EXIF orientation.
        crop: the network's input (h, w).
        box: the part of the file that is resampled to ``crop``, (height, width).
        upscale: enlargement per side (the larger of the two; < 1 when the image is shrunk).
        invented: share of the input's pixels that are interpolated rather than taken from the
            file (0 when the image is shrunk or kept).
        cut: share of the file's pixels outside ``box``.
    """

    size: tuple[int, int]
    crop: tuple[int, int]
    box: tuple[int, int]
    upscale: float
    invented: float
    cut: float


def input_fit(size: tuple[int, int], policy: Preprocess) -> InputFit:
    """The numbers of `prepare_image` on an image of ``size`` (H, W) for a network's ``policy``."""
    _, _, box_h, box_w = crop_box(size, policy)
    crop_h, crop_w = policy.crop
    upscale = max(crop_h / box_h, crop_w / box_w)
    invented = max(0.0, 1.0 - (box_h * box_w) / (crop_h * crop_w))
    cut = 1.0 - (box_h * box_w) / (size[0] * size[1])
    return InputFit(size, (crop_h, crop_w), (box_h, box_w), upscale, invented, cut)


def _px(size: tuple[int, int]) -> str:
    return f"{size[1]}×{size[0]}"  # width × height, as image sizes are usually written


def _percent(share: float) -> str:
    """A share as a percentage with enough decimals not to read as 0 % or 100 % when it is not."""
    for digits in (0, 1, 2, 3):
        text = f"{100 * share:.{digits}f}"
        if (0 < share < 1) and float(text) in (0.0, 100.0):
            continue
        return f"{text} %"
    return f"{100 * share:.4f} %"


def input_reading(size: tuple[int, int], policy: Preprocess) -> Reading:
    """What the network sees of an image of ``size`` (H, W), in one sentence.

    Outcomes: "as-is" (already the input size), "fitted" (scaled and cropped within the limits),
    "upscaled" (enlarged `UPSCALE_LIMIT`× or more per side), "cropped" (`CROP_LIMIT` or more of
    the pixels cut away), "upscaled-cropped" (both).
    """
    fit = input_fit(size, policy)
    crop, box, shape = _px(fit.crop), _px(fit.box), _px(fit.size)
    if fit.size == fit.crop:
        return Reading("as-is", f"The network reads this {crop} px image as it is.")
    big, cut = fit.upscale >= UPSCALE_LIMIT, fit.cut >= CROP_LIMIT
    invented = (
        f"enlarged {fit.upscale:.1f}× per side to {crop} px, so {_percent(fit.invented)} of the pixels "
        "the network reads are interpolated, not taken from the file"
    )
    cut_away = f"{_percent(fit.cut)} of its pixels cut away"
    if big and cut:
        return Reading(
            "upscaled-cropped",
            f"Only the middle {box} px of this {shape} px image reach the network ({cut_away}), {invented}.",
        )
    if big:
        return Reading("upscaled", f"This {shape} px image was {invented}.")
    if cut:
        return Reading(
            "cropped",
            f"Only the middle {box} px of this {shape} px image reach the network ({cut_away}), "
            f"scaled by {fit.upscale:.2g} per side to {crop} px.",
        )
    scale = f"enlarged {fit.upscale:.2f}×" if fit.upscale > 1 else f"scaled by {fit.upscale:.2g}"
    part = (
        f"the middle {box} px of this {shape} px image ({cut_away})"
        if fit.cut > 0
        else f"this {shape} px image whole"
    )
    return Reading("fitted", f"The network reads {part}, {scale} per side to {crop} px.")
