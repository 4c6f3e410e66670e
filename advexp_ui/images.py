"""Pictures for the page (no Streamlit here, so jobs can build them inside cached functions):
images enlarged without blurring, heat-map overlays on one colour scale, amplified δ, and the
image as a network reads it with its input reading; and the one check every image upload passes,
with radiology files (DICOM, 16-bit grey) read through a window into the PNG the pages work on."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from PIL import Image
from torch import Tensor

from advexp_core.data.imaging import (
    MAX_IMAGE_BYTES,
    DecodedImage,
    ImageError,
    Preprocess,
    check_image_bytes,
    decode_image,
    decode_image_described,
    encode_png,
    prepare_image,
    strip_dicom_header,
    to_uint8,
)
from advexp_core.data.windowing import ImageDescription, PixelRange, Window
from advexp_core.readings import Reading
from advexp_core.readings.inputs import input_reading

SHOWN_PX = 256  # small images (32 px) are enlarged to this size with nearest-neighbour pixels
# zlib level of the screen's PNGs: a 224-px photo takes 3.7 ms at 1 and 13.5 ms at PIL's default 6,
# for 6 % more bytes (still lossless); the page encodes a few dozen per run.
SCREEN_PNG_LEVEL = 1


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=SCREEN_PNG_LEVEL)
    return buffer.getvalue()


def _enlarge(array: np.ndarray, size: int = SHOWN_PX) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W, 3) uint8 array so that its long side is >= size."""
    factor = max(1, -(-size // max(array.shape[:2])))
    return array.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else array


def display_png(image: Tensor) -> bytes:
    """An image for the screen: 8-bit, small images enlarged with visible pixels. (3, H, W) -> PNG."""
    return _png(_enlarge(to_uint8(image)))


def delta_png(delta: Tensor, scale: float | None = None) -> bytes:
    """δ amplified around mid-grey (0.5 + δ/(2·scale); scale defaults to max |δ|). (3, H, W) -> PNG."""
    peak = float(delta.detach().abs().max()) if scale is None else scale
    shown = (0.5 + 0.5 * delta.detach().float().cpu() / (peak if peak > 0 else 1.0)).clamp(0, 1)
    return display_png(shown)


def overlay_png(image: Tensor, saliency: Tensor, vmax: float, *, alpha: float = 0.6) -> bytes:
    """A heat map (inferno, 0..vmax) over a grey copy of the image. (3, H, W), (H, W) -> PNG."""
    grey = image.detach().float().cpu().mean(dim=0).numpy()
    heat = np.clip(saliency.detach().float().cpu().numpy() / (vmax if vmax > 0 else 1.0), 0.0, 1.0)
    rgb = colormaps["inferno"](heat)[..., :3]
    mixed = (1 - alpha) * grey[..., None] + alpha * rgb
    return _png(_enlarge((mixed * 255).round().clip(0, 255).astype(np.uint8)))


def network_view(data: bytes, policy: Preprocess) -> tuple[Reading, bytes]:
    """An image file as a network reads it: the input reading (`readings.inputs`) and the fitted
    image for the screen (PNG, small inputs enlarged with visible pixels)."""
    image = decode_image(data)
    size = (int(image.shape[1]), int(image.shape[2]))
    return input_reading(size, policy), display_png(prepare_image(image, policy))


def read_upload(name: str, size: int, read: Callable[[], bytes]) -> tuple[bytes, Tensor]:
    """An uploaded image file's bytes and the image they decode to, its length checked before it is
    read (a file over the limit is never decoded); a DICOM file's bytes come back without its
    header's identifiers (`advexp_core.data.imaging.strip_dicom_header`), so that nothing which
    keeps them keeps a patient's details.

    Args:
        name: the file's name, for the message; size: its length in bytes; read: gives its bytes.

    Returns:
        The bytes, and the image as float32 in [0, 1]. Shapes: -> (3, H, W).

    Raises:
        ImageError: its message starts with the file's name, then says what is wrong and what to do.
    """
    try:
        check_image_bytes(size, max_bytes=MAX_IMAGE_BYTES)
        data = strip_dicom_header(read())
        return data, decode_image(data, max_bytes=MAX_IMAGE_BYTES)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from exc


@dataclass(frozen=True)
class Intake:
    """An accepted upload: the bytes every page works on, and for a radiology file the bytes it is
    read from again (a DICOM file without its header; a 16-bit file as it is) and how it was read."""

    data: bytes
    source: bytes | None
    description: ImageDescription


def take_upload(name: str, size: int, read: Callable[[], bytes]) -> Intake:
    """`read_upload` for any accepted file: a DICOM file loses its header's identifiers at once
    (`advexp_core.data.imaging.strip_dicom_header`), and a DICOM or 16-bit grey file is read with
    its own window into the PNG the pages work on (`read_scan`).

    Raises:
        ImageError: its message starts with the file's name.
    """
    try:
        check_image_bytes(size, max_bytes=MAX_IMAGE_BYTES)
        source = strip_dicom_header(read())
        decoded = decode_image_described(source, max_bytes=MAX_IMAGE_BYTES)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None
    if decoded.description.kind != "DICOM" and not decoded.description.windowed:
        return Intake(source, None, decoded.description)
    return Intake(working_png(decoded), source, decoded.description)


def read_scan(source: bytes, *, window: Window | PixelRange | None, frame: int) -> Intake:
    """A radiology file (as `take_upload` keeps it) read with another window or frame.

    Raises:
        ImageError: a window or frame the file cannot take.
    """
    decoded = decode_image_described(source, window=window, frame=frame)
    return Intake(working_png(decoded), source, decoded.description)


def working_png(decoded: DecodedImage) -> bytes:
    """The PNG the pages work on: a windowed grey image as 16-bit grey (it reads back within
    1/131070 of each value, so a page and the command line see the same image), else 8-bit RGB."""
    image = decoded.image
    if not decoded.description.windowed or decoded.description.colour:
        return encode_png(image)
    levels = np.rint(image[0].clamp(0, 1).numpy().astype(np.float64) * 65535).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, format="PNG", compress_level=SCREEN_PNG_LEVEL)
    return buffer.getvalue()
