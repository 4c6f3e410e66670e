"""The input reading: how much of what the network reads was invented by enlarging, how much of the
file was cut away, with values derived by hand from the resize-then-centre-crop policy."""

from __future__ import annotations

import pytest
import torch

from advexp_core.data.imaging import Preprocess, crop_box, prepare_image
from advexp_core.readings.inputs import CROP_LIMIT, UPSCALE_LIMIT, input_fit, input_reading

IMAGENET = Preprocess((224, 224), 256, "bicubic")  # EfficientNet-Lite0's policy
SQUARE32 = Preprocess((32, 32))  # CIFAR-10 / digits: short side straight to 32


def test_a_single_pixel_is_all_invented() -> None:
    fit = input_fit((1, 1), IMAGENET)
    assert fit.box == (1, 1) and fit.upscale == 224 and fit.cut == 0
    assert fit.invented == pytest.approx(1 - 1 / 224**2)
    reading = input_reading((1, 1), IMAGENET)
    assert reading.outcome == "upscaled" and "224.0×" in reading.text and "99.998 %" in reading.text


def test_a_16_px_image_is_enlarged_16_times() -> None:
    # short side 16 -> 256: scale 16, box round(224 / 16) = 14 px, enlarged 224 / 14 = 16x
    fit = input_fit((16, 16), IMAGENET)
    assert fit.box == (14, 14) and fit.upscale == 16
    assert fit.cut == pytest.approx(1 - 196 / 256) and fit.invented == pytest.approx(1 - 196 / 224**2)
    assert "16.0×" in input_reading((16, 16), IMAGENET).text


def test_a_strip_loses_its_ends_and_is_enlarged() -> None:
    fit = input_fit((3, 20000), IMAGENET)
    assert fit.box == (3, 3) and fit.cut == pytest.approx(1 - 9 / 60000)
    reading = input_reading((3, 20000), IMAGENET)
    assert reading.outcome == "upscaled-cropped"
    assert "20000×3" in reading.text and "3×3" in reading.text and "99.98 %" in reading.text


def test_an_ordinary_photo_is_fitted_and_says_what_was_cut() -> None:
    # 640x480: short side 480 -> 256, box round(224 * 480 / 256) = 420 px square
    fit = input_fit((480, 640), IMAGENET)
    assert fit.box == (420, 420) and fit.invented == 0
    assert fit.cut == pytest.approx(1 - 420**2 / (480 * 640))
    reading = input_reading((480, 640), IMAGENET)
    assert reading.outcome == "fitted" and "43 %" in reading.text and not reading.near_threshold


def test_a_widescreen_photo_is_mostly_cut() -> None:
    fit = input_fit((1080, 1920), IMAGENET)
    assert fit.box == (945, 945)
    assert input_reading((1080, 1920), IMAGENET).outcome == "cropped"


def test_an_image_of_the_input_size_is_read_as_it_is() -> None:
    assert input_reading((32, 32), SQUARE32).outcome == "as-is"
    assert input_reading((224, 224), IMAGENET).outcome == "as-is"


@pytest.mark.parametrize(
    ("size", "outcome"),
    [((16, 16), "upscaled"), ((17, 17), "fitted"), ((32, 64), "cropped"), ((32, 63), "fitted")],
)
def test_the_limits_decide(size: tuple[int, int], outcome: str) -> None:
    fit = input_fit(size, SQUARE32)
    assert (fit.upscale >= UPSCALE_LIMIT or fit.cut >= CROP_LIMIT) == (outcome != "fitted")
    assert input_reading(size, SQUARE32).outcome == outcome


def test_the_box_is_the_part_prepare_image_uses() -> None:
    """Only the pixels inside `crop_box` reach the network: a strip that is 1 there and 0 elsewhere
    becomes an all-ones input."""
    height, width = 3, 2000
    top, left, box_h, box_w = crop_box((height, width), IMAGENET)
    image = torch.zeros(3, height, width)
    image[:, top : top + box_h, left : left + box_w] = 1.0
    fitted = prepare_image(image, IMAGENET)
    assert fitted.shape == (3, 224, 224) and fitted.min() > 0.999
