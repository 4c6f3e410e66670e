"""Image intake: odd but valid files decode correctly; broken or hostile ones get an ImageError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from advexp_core.data.imaging import (
    ImageError,
    Preprocess,
    decode_image,
    encode_png,
    png_roundtrip,
    prepare_image,
)
from tests.corpus import raw_png, save

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)


def rgb_image() -> Image.Image:
    return Image.fromarray(RGB, "RGB")


LOSSLESS = {
    "png": lambda: save(rgb_image(), "PNG"),
    "bmp": lambda: save(rgb_image(), "BMP"),
    "tiff": lambda: save(rgb_image(), "TIFF"),
    "tiff-lzw": lambda: save(rgb_image(), "TIFF", compression="tiff_lzw"),
    "webp-lossless": lambda: save(rgb_image(), "WEBP", lossless=True),
}


@pytest.mark.parametrize("fmt", sorted(LOSSLESS))
def test_lossless_formats_decode_exactly(fmt: str) -> None:
    out = decode_image(LOSSLESS[fmt]())
    assert out.shape == (3, 24, 40) and out.dtype == torch.float32
    assert torch.equal((out * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(RGB))


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_lossy_formats_decode_close(fmt: str) -> None:
    smooth = Image.fromarray(np.full((32, 32, 3), (200, 100, 50), np.uint8))
    out = decode_image(save(smooth, fmt, quality=95))
    assert torch.allclose(out[:, 16, 16], torch.tensor([200, 100, 50]) / 255, atol=0.03)


def test_grayscale_becomes_three_equal_channels() -> None:
    gray = Image.fromarray(RGB[:, :, 0], "L")
    out = decode_image(save(gray, "PNG"))
    assert out.shape == (3, 24, 40)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert torch.allclose(out[0] * 255, torch.from_numpy(RGB[:, :, 0]).float())


def test_one_bit_image() -> None:
    img = Image.fromarray(RGB[:, :, 0] > 127).convert("1")
    out = decode_image(save(img, "PNG"))
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_rgba_is_composited_on_white() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[0, 0, 3] = 0  # fully transparent -> white
    rgba[1, 1, 3] = 255  # opaque red
    out = decode_image(save(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert torch.allclose(out[:, 0, 0], torch.ones(3))
    assert torch.allclose(out[:, 1, 1], torch.tensor([1.0, 0.0, 0.0]))


def test_la_is_composited_on_white() -> None:
    la = Image.new("LA", (3, 3), (0, 0))
    out = decode_image(save(la, "PNG"))
    assert torch.allclose(out, torch.ones(3, 3, 3))


def test_palette_and_palette_with_transparency() -> None:
    pal = rgb_image().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    plain = decode_image(save(pal, "PNG"))
    assert plain.shape == (3, 24, 40)
    pal.info["transparency"] = 0
    transparent = decode_image(save(pal, "PNG", transparency=0))
    index0 = np.asarray(pal) == 0
    assert torch.allclose(transparent[:, torch.from_numpy(index0)], torch.tensor(1.0))


def test_cmyk_jpeg_and_tiff() -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    for fmt in ("JPEG", "TIFF"):
        out = decode_image(save(cmyk, fmt))
        assert torch.allclose(out[:, 4, 4], torch.tensor([1.0, 0.0, 0.0]), atol=0.06), fmt


def test_sixteen_bit_png_keeps_precision() -> None:
    values = np.array([[0, 1000, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)  # mode I;16
    out = decode_image(save(img, "PNG"))
    assert torch.allclose(out[0, 0], torch.tensor([0, 1000 / 65535, 1.0]), atol=1e-6)


def test_float_tiff() -> None:
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    out = decode_image(save(img, "TIFF"))
    assert torch.allclose(out[0, 0], torch.tensor([0.0, 0.5, 1.0]))


def test_gif_takes_first_frame_of_animation() -> None:
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = decode_image(data)
    assert torch.allclose(out[:, 3, 3], torch.tensor([1.0, 0.0, 0.0]), atol=0.02)


def test_exif_orientation_is_applied() -> None:
    img = rgb_image()  # 40 wide, 24 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = decode_image(save(img, "JPEG", exif=exif.tobytes()))
    assert out.shape == (3, 40, 24)


def test_tiny_and_extreme_aspect_images_fit_the_model() -> None:
    for size in ((1, 1), (20000, 20)):
        out = decode_image(save(Image.new("RGB", size, (10, 20, 30)), "PNG"))
        fitted = prepare_image(out, Preprocess((224, 224), 256))
        assert fitted.shape == (3, 224, 224)
        assert torch.allclose(fitted[:, 100, 100], torch.tensor([10, 20, 30]) / 255, atol=1e-3)


PNG = LOSSLESS["png"]()
JPEG = save(rgb_image(), "JPEG")


def corrupt_png_crc() -> bytes:
    data = bytearray(PNG)
    idat = data.find(b"IDAT")
    data[idat + 6] ^= 0xFF
    return bytes(data)


def png_bomb() -> bytes:
    """A valid PNG header declaring 50 000 × 50 000 pixels with a tiny body."""
    return raw_png(50_000, 50_000, 8, 0, b"\0" * 100)


BROKEN = {
    "empty": b"",
    "text-named-png": b"this is not an image, just text\n" * 10,
    "html": b"<html><body>hello</body></html>",
    "wrong-magic": b"\x00" + PNG[1:],
    "png-crc": corrupt_png_crc(),
    "bomb": png_bomb(),
    "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    "ppm-unsupported": b"P6\n2 2\n255\n" + bytes(12),
    "zip": b"PK\x03\x04" + bytes(40),
}
for cut in (8, 16, 33, 50, len(PNG) // 2, len(PNG) - 12):
    BROKEN[f"png-cut-{cut}"] = PNG[:cut]
for cut in (2, 20, 200, len(JPEG) // 2, len(JPEG) - 2):
    BROKEN[f"jpeg-cut-{cut}"] = JPEG[:cut]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_are_refused_with_a_plain_message(name: str) -> None:
    with pytest.raises(ImageError) as info:
        decode_image(BROKEN[name])
    message = str(info.value)
    assert message.endswith(".") and "Traceback" not in message
    assert len(message) > 20


def test_byte_limit_is_checked_before_decoding() -> None:
    with pytest.raises(ImageError, match="MB"):
        decode_image(PNG, max_bytes=100)


def test_pixel_limit() -> None:
    data = save(Image.new("L", (300, 300)), "PNG")
    with pytest.raises(ImageError, match="too large"):
        decode_image(data, max_pixels=300 * 299)
    assert decode_image(data, max_pixels=300 * 300).shape == (3, 300, 300)


def test_png_roundtrip_is_lossless_on_8bit_values() -> None:
    x = torch.from_numpy(RGB).permute(2, 0, 1).float() / 255
    assert torch.equal(decode_image(encode_png(x)), x)
    batch = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    back = png_roundtrip(batch)
    assert torch.equal(back, (batch * 255).round() / 255)


def test_encode_png_clamps_out_of_range() -> None:
    x = torch.tensor([-1.0, 0.5, 2.0]).view(3, 1, 1)
    assert torch.allclose(decode_image(encode_png(x)).flatten(), torch.tensor([0.0, 128 / 255, 1.0]))


def test_prepare_image_keeps_fitting_images_and_crops_others() -> None:
    x = torch.rand(3, 32, 32)
    assert prepare_image(x, Preprocess((32, 32))) is x
    wide = torch.rand(3, 60, 120)
    assert prepare_image(wide, Preprocess((32, 32))).shape == (3, 32, 32)
    with pytest.raises(ImageError):
        prepare_image(torch.rand(1, 32, 32), Preprocess((32, 32)))
