"""Image intake and output: bytes -> validated RGB tensor in [0, 1]; tensor -> lossless 8-bit PNG.

Also the two image operations several modules share: the Gaussian window (SSIM, the blurred IG
baseline) and δ amplified around mid-grey for display (figures, the UI).

Every refusal is an ``ImageError`` whose message a clinician can act on. Images are bounded in bytes
before decoding and in pixels before their pixel data is read (decompression bombs).

Radiology files come in as they are: DICOM (recognised by its ``DICM`` preamble, read by
`advexp_core.data.dicom`, nothing of its header kept) and 16-bit greyscale PNG and TIFF, read at
full depth. Both take a window (`advexp_core.data.windowing`): yours, else the file's own. A grey
image is three equal channels, like every image here.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as tvf

from advexp_core.data.dicom import DicomError, decode_dicom, is_dicom, strip_header
from advexp_core.data.windowing import (
    PIXEL_RANGE,
    ImageDescription,
    PixelRange,
    Window,
    apply_window,
    given_window_source,
    range_window,
)

# One image limit, in the unit Streamlit's uploader states its own ("Limit 20MB per file"; its browser
# counts MB as 10^6 bytes, as 2^20 on Windows), so every uploader and every refusal gives one number.
MAX_IMAGE_MB = 20
MAX_IMAGE_BYTES = MAX_IMAGE_MB * 1_000_000
MAX_IMAGE_PIXELS = 40_000_000
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "MPO")
ACCEPTED_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "dcm")
FORMATS_TEXT = "PNG, JPEG, WebP, BMP, TIFF, GIF or DICOM"
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
FULL_16_BIT = Window(65535 / 2, 65535, "LINEAR_EXACT")
"""A 16-bit file's own window: its whole range, 0 black and 65535 white (value / 65535)."""


class ImageError(ValueError):
    """An image that cannot be used, with a plain-language message saying what to do."""


@dataclass(frozen=True)
class DecodedImage:
    """An image and how its file became it (`ImageDescription`: kind, window, frame)."""

    image: Tensor
    description: ImageDescription


def decode_image(
    data: bytes,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    window: Window | PixelRange | None = None,
    frame: int = 1,
) -> Tensor:
    """Decode an uploaded file into an RGB image tensor (`decode_image_described` without the
    description).

    Shapes: -> (3, H, W).
    """
    return decode_image_described(
        data, max_bytes=max_bytes, max_pixels=max_pixels, window=window, frame=frame
    ).image


def decode_image_described(
    data: bytes,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    window: Window | PixelRange | None = None,
    frame: int = 1,
) -> DecodedImage:
    """Decode an uploaded file into an RGB image tensor, and say how.

    Accepts PNG, JPEG, WebP, BMP, TIFF and GIF (first frame); grayscale, RGBA and LA (composited on
    white), palette, CMYK and 16-bit images; applies the EXIF orientation. DICOM files (any
    modality; uncompressed, RLE, JPEG, JPEG-LS, JPEG 2000 with the decoders installed) go through
    their modality LUT and a window; MONOCHROME1 is inverted. 16-bit greyscale PNG and TIFF are
    read at full depth through a window too.

    Args:
        data: the file's bytes.
        max_bytes: refuse larger files before decoding.
        max_pixels: refuse images with more pixels (read from the header, before decoding).
        window: for DICOM and 16-bit grey files: a window in the file's values (Hounsfield units
            for CT), ``"range"`` (lowest value black, highest white), or None for the file's own
            (a DICOM file's window, else its VOI LUT, else its pixel range; a 16-bit file's full
            range, value / 65535). Other images take none (the description says so).
        frame: which frame of a multi-frame DICOM file, from 1.

    Returns:
        float32 tensor in [0, 1] and its `ImageDescription`, which holds nothing of a DICOM
        header but the modality, the window and the frame.

    Shapes: -> (3, H, W).

    Raises:
        ImageError: empty, not an image, truncated or corrupt, too large; a DICOM file without
            pixels, compressed in a way no installed package decodes, or without that frame.
    """
    if not data:
        raise ImageError(f"The file is empty. Please choose an image file ({FORMATS_TEXT}).")
    check_image_bytes(len(data), max_bytes=max_bytes)
    if is_dicom(data):
        try:
            array, description = decode_dicom(data, window=window, frame=frame, max_pixels=max_pixels)
        except DicomError as exc:
            raise ImageError(str(exc)) from None  # pydicom's own messages may quote the header
        return DecodedImage(_to_tensor(array), description)
    if frame != 1:
        raise ImageError(f"This image has a single frame; frame {frame} does not exist.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about damaged metadata it skips; not for users
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(data, max_pixels, window)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(max_pixels) from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(
            f"This file is not an image we can read. Please upload a {FORMATS_TEXT} file."
        ) from exc
    except MemoryError as exc:
        raise _too_many_pixels(max_pixels) from exc
    except Exception as exc:  # PIL raises many types for damaged files; all mean the same to a user
        raise ImageError(
            "The image file is damaged or incomplete (it may have been cut off while copying). "
            "Please export or download it again."
        ) from exc


def strip_dicom_header(data: bytes) -> bytes:
    """A DICOM file without the identifiers of its header: only the pixel data and what turns it
    into an image (`advexp_core.data.dicom.strip_header`); it decodes to the same image. Other
    files are returned as they are.

    Raises:
        ImageError: a DICOM header that cannot be read, or no pixel data.
    """
    if not is_dicom(data):
        return data
    try:
        return strip_header(data)
    except DicomError as exc:
        raise ImageError(str(exc)) from None


def check_image_bytes(n_bytes: int, *, max_bytes: int = MAX_IMAGE_BYTES) -> None:
    """Refuse a file by its length alone, before it is read or decoded.

    Raises:
        ImageError: over ``max_bytes``; sizes in MB = 10^6 bytes, the file's rounded up so that it
            never reads as equal to the limit.
    """
    if n_bytes > max_bytes:
        raise ImageError(
            f"The file is {math.ceil(n_bytes / 1e5) / 10:.1f} MB; the limit is {max_bytes / 1e6:g} MB. "
            "Please upload a smaller image."
        )


def _too_many_pixels(max_pixels: int) -> ImageError:
    return ImageError(
        f"The image is too large (over {max_pixels / 1e6:.0f} megapixels). Please resize it and try again."
    )


def _to_tensor(array: np.ndarray) -> Tensor:
    if not np.isfinite(array).all():
        raise ImageError("The image contains invalid pixel values. Please export it again as PNG or JPEG.")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


def _decode(data: bytes, max_pixels: int, window: Window | PixelRange | None) -> DecodedImage:
    with Image.open(io.BytesIO(data)) as probe:
        if probe.format not in ACCEPTED_FORMATS:
            raise ImageError(f"{probe.format or 'This'} files are not supported. Please use {FORMATS_TEXT}.")
        width, height = probe.size
        if width < 1 or height < 1:
            raise ImageError("The image has no pixels. Please choose another file.")
        if width * height > max_pixels:
            raise _too_many_pixels(max_pixels)
        probe.verify()  # checks structure and checksums without decoding pixels
    with Image.open(io.BytesIO(data)) as img:
        img.seek(0)  # first frame of animations
        img.load()
        kind = str(img.format or "image")
        upright: Image.Image = ImageOps.exif_transpose(img) or img
        array, description = _to_rgb_array(upright, kind, window)
    return DecodedImage(_to_tensor(array), description)


def _to_rgb_array(
    img: Image.Image, kind: str = "image", window: Window | PixelRange | None = None
) -> tuple[np.ndarray, ImageDescription]:
    """Convert any PIL mode to float32 (H, W, 3) in [0, 1]; transparency is composited on white;
    16-bit grey goes through the window (other images take none)."""
    mode = img.mode
    ignored = window is not None
    if mode in SIXTEEN_BIT_MODES or mode == "F":
        gray = np.asarray(img, dtype=np.float64)
        if mode == "F":
            top = float(np.nanmax(gray)) if gray.size else 1.0
            gray = np.clip(gray / (top if top > 1.0 else 1.0), 0.0, 1.0)
            described = ImageDescription(f"32-bit float {kind}", window_ignored=ignored)
        elif mode == "I" and gray.max(initial=0) <= 255:  # 8-bit values in a 32-bit image
            gray = np.clip(gray / 255.0, 0.0, 1.0)
            described = ImageDescription(f"8-bit {kind}", window_ignored=ignored)
        else:
            chosen, source = _sixteen_bit_window(gray, window)
            gray = apply_window(gray, chosen)
            described = ImageDescription(f"16-bit {kind}", window=chosen, window_from=source)
        return np.repeat(gray.astype(np.float32)[:, :, None], 3, axis=2), described
    described = ImageDescription(f"8-bit {kind}", colour=mode not in ("L", "LA", "1"), window_ignored=ignored)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return rgb, described


def _sixteen_bit_window(gray: np.ndarray, window: Window | PixelRange | None) -> tuple[Window, str]:
    if window == PIXEL_RANGE:
        return range_window(gray), "the pixel range"
    if isinstance(window, Window):
        return window, given_window_source(window)
    return FULL_16_BIT, "the full 16-bit range"


def to_uint8(image: Tensor) -> np.ndarray:
    """Quantise one image to 8 bits the way PNG export does. Shapes: (3, H, W) -> (H, W, 3) uint8."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ImageError(f"expected an image of shape (3, H, W), got {tuple(image.shape)}")
    arr = image.detach().to("cpu", torch.float32).clamp(0, 1).mul(255).round().to(torch.uint8)
    return arr.permute(1, 2, 0).numpy()


def encode_png(image: Tensor) -> bytes:
    """Encode one image as a lossless 8-bit RGB PNG (values clamped to [0, 1] and rounded).

    Shapes: (3, H, W) or (1, 3, H, W) -> PNG bytes.
    """
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def png_roundtrip(images: Tensor) -> Tensor:
    """Write each image as an 8-bit PNG and read it back: what a user who downloads the file gets.

    Shapes: (N, 3, H, W) -> (N, 3, H, W), on the input's device.
    """
    decoded = [decode_image(encode_png(img)) for img in images]
    return torch.stack(decoded).to(images.device)


def gaussian_window(
    size: int, sigma: float, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """A normalised 1-D Gaussian window of ``size`` taps centred on the middle one.

    Args:
        size: number of taps, >= 1 (odd for a window centred on a pixel).
        sigma: standard deviation in pixels, > 0.

    Returns:
        Weights summing to 1. Shapes: -> (size,).
    """
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def delta_display_scale(deltas: Sequence[Tensor]) -> float:
    """One shared amplification scale for showing δ: the largest |δ| over all of them (1 if all zero)."""
    peak = max((float(d.detach().abs().max()) for d in deltas if d.numel()), default=0.0)
    return peak if peak > 0 else 1.0


def amplify_delta(delta: Tensor, scale: float | None = None) -> Tensor:
    """δ as a displayable image: 0.5 + δ/(2·scale), so ±scale maps to 0 and 1 (mid-grey = no change).

    Args:
        delta: a perturbation in [0, 1] pixel units.
        scale: the |δ| shown at full contrast; default ``delta_display_scale([delta])``. Pass one
            scale to several calls to compare perturbations by eye.

    Returns:
        float32 values in [0, 1], on the input's device. Shapes: any -> same.
    """
    s = delta_display_scale([delta]) if scale is None else float(scale)
    if not s > 0:
        raise ValueError(f"the display scale must be > 0, got {scale!r}")
    return (0.5 + 0.5 * delta.detach().float() / s).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input: resize the short side to ``resize`` then centre-crop ``crop``.

    ``resize=None`` means no margin: the short side is scaled straight to the crop size.
    """

    crop: tuple[int, int]
    resize: int | None = None
    interpolation: str = "bilinear"


class HasPreprocess(Protocol):
    @property
    def preprocess(self) -> Preprocess: ...


def crop_box(size: tuple[int, int], policy: Preprocess) -> tuple[int, int, int, int]:
    """The part of an image of ``size`` (H, W) that `prepare_image` resamples to the crop size:
    ``(top, left, height, width)`` in the image's pixels (the whole image when it already fits).

    The short side is scaled to ``policy.resize`` (the crop's short side when None) and the centred
    crop is taken; a box never extends past the image, so a very small or very elongated image is
    stretched rather than padded.
    """
    height, width = size
    crop_h, crop_w = policy.crop
    if (height, width) == (crop_h, crop_w):
        return 0, 0, height, width
    short = policy.resize if policy.resize is not None else min(crop_h, crop_w)
    scale = short / min(height, width)
    box_h = min(height, max(1, round(crop_h / scale)))
    box_w = min(width, max(1, round(crop_w / scale)))
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def prepare_image(image: Tensor, model: HasPreprocess | Preprocess) -> Tensor:
    """Resize and centre-crop an image to a model's input size (used as given when it already fits).

    The crop box is computed in the original image and only that box is resampled, so a 20000×20
    strip costs no more than a square image.

    Shapes: (3, H, W) -> (3, h, w) with (h, w) the model's input size.
    """
    policy = model if isinstance(model, Preprocess) else model.preprocess
    if image.ndim != 3 or image.shape[0] != 3:
        raise ImageError(f"expected an RGB image of shape (3, H, W), got {tuple(image.shape)}")
    crop_h, crop_w = policy.crop
    _, height, width = image.shape
    if (height, width) == (crop_h, crop_w):
        return image
    top, left, box_h, box_w = crop_box((height, width), policy)
    mode = InterpolationMode.BICUBIC if policy.interpolation == "bicubic" else InterpolationMode.BILINEAR
    out = tvf.resized_crop(
        image, top, left, box_h, box_w, [crop_h, crop_w], interpolation=mode, antialias=True
    )
    return out.clamp(0.0, 1.0)
