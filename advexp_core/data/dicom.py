"""DICOM files in: the pixels of one frame, windowed to grey levels, and nothing of the header.

A DICOM file carries its patient's and study's identity (name, ID, birth date, accession number,
UIDs…) next to its pixels. `decode_dicom` reads only the attributes that say how to turn the
stored values into an image (the image pixel module, the modality and VOI LUTs and their
per-frame versions, the modality) and returns the grey levels with an `ImageDescription`; the
identifiers are never parsed, and no message, warning or log line quotes a header value.
`strip_header` writes the same attributes and the pixel data, still compressed, as a new file:
what the app keeps of an upload so that a window or a frame can be chosen again.

Order of operations (DICOM PS3.3 C.11): stored values -> modality LUT (rescale slope and
intercept, or a Modality LUT Sequence; Hounsfield units for CT) -> VOI (a window: yours, else the
file's window, else its VOI LUT, else the pixel range) -> MONOCHROME1 inverted.

Every refusal is a `DicomError` with a message a clinician can act on (`advexp_core.data.imaging`
turns it into an ``ImageError``).
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
import zlib
from dataclasses import replace
from typing import Any

import numpy as np

from advexp_core.data.windowing import (
    PIXEL_RANGE,
    ImageDescription,
    PixelRange,
    VoiFunction,
    Window,
    apply_window,
    given_window_source,
    range_window,
)

# pydicom writes debug dumps of raw bytes to its logger when debugging is switched on; none of a
# file's bytes may reach a log, whatever the server's logging setup.
logging.getLogger("pydicom").propagate = False

MAGIC_OFFSET = 128
MAX_FRAMES = 100_000
MAX_INFLATED_BYTES = 256 * 1_000_000  # a deflated file is inflated whole: bounded first

PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float and Double Float Pixel Data
PIXEL_DATA_TAG_BYTES = b"\xe0\x7f\x10\x00"  # (7FE0,0010) as a little-endian file writes it
# What `decode_dicom` reads and `strip_header` keeps: how to turn stored values into an image.
KEPT_TAGS = (
    0x00080060,  # Modality
    0x00280002,  # Samples per Pixel
    0x00280004,  # Photometric Interpretation
    0x00280006,  # Planar Configuration
    0x00280008,  # Number of Frames
    0x00280010,  # Rows
    0x00280011,  # Columns
    0x00280100,  # Bits Allocated
    0x00280101,  # Bits Stored
    0x00280102,  # High Bit
    0x00280103,  # Pixel Representation
    0x00280301,  # Burned In Annotation (text in the pixels, which may name the patient)
    0x00281050,  # Window Center
    0x00281051,  # Window Width
    0x00281052,  # Rescale Intercept
    0x00281053,  # Rescale Slope
    0x00281054,  # Rescale Type
    0x00281056,  # VOI LUT Function
    0x00281101,  # Red Palette Color LUT Descriptor
    0x00281102,  # Green …
    0x00281103,  # Blue …
    0x00281201,  # Red Palette Color LUT Data
    0x00281202,  # Green …
    0x00281203,  # Blue …
    0x00283000,  # Modality LUT Sequence
    0x00283010,  # VOI LUT Sequence
    0x52009229,  # Shared Functional Groups Sequence (enhanced multi-frame: rescale, window)
    0x52009230,  # Per-Frame Functional Groups Sequence
    *PIXEL_TAGS,
)
FRAME_GROUPS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")
"""The functional groups read from an enhanced multi-frame file (and kept by `strip_header`)."""

# DICOM's defined terms for Modality (PS3.3 C.7.3.1.1.1): the only header text a description may carry.
MODALITIES = frozenset(
    "AR ASMT AU BDUS BI BMD CR CT CTPROTOCOL DG DOC DX ECG EPS ES FID GM HC HD IO IOL IVOCT IVUS KER "
    "KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PLAN PR PT PX REG RESP RF RG "
    "RTDOSE RTIMAGE RTPLAN RTRECORD RTSEG RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA "
    "XA XC".split()
)
DEFLATED = "1.2.840.10008.1.2.1.99"
# The Python packages that decode each compression (the transfer syntax UID's prefix); pydicom
# names its own plugins otherwise.
DECODERS = {
    "1.2.840.10008.1.2.4.50": "Pillow, or pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.81": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.90": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg with pylibjpeg-rle",
}


class DicomError(ValueError):
    """A DICOM file that cannot be used, with a message that quotes nothing of its header."""


def is_dicom(data: bytes) -> bool:
    """True for bytes of a DICOM file: a 128-byte preamble, then ``DICM`` (PS3.10 7.1)."""
    return data[MAGIC_OFFSET : MAGIC_OFFSET + 4] == b"DICM"


def decode_dicom(
    data: bytes, *, window: Window | PixelRange | None = None, frame: int = 1, max_pixels: int
) -> tuple[np.ndarray, ImageDescription]:
    """One frame of a DICOM file as grey levels (or colours), and how it was read.

    Args:
        data: the file's bytes (`is_dicom`).
        window: the window to apply, in the values after the modality LUT (HU for CT);
            ``"range"`` for the frame's lowest to highest value; None for the file's own (its
            window, else its VOI LUT, else the pixel range). Colour images take none.
        frame: which frame, from 1.
        max_pixels: refuse larger frames before their pixel data is decoded.

    Returns:
        float32 (H, W, 3) in [0, 1] (a grey image has three equal channels), and its description.

    Raises:
        DicomError: a header that cannot be read, no pixel data, a compression no installed
            package decodes (naming the package), absurd dimensions, a frame that does not exist,
            damaged or truncated pixel data.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings may quote header values
            return _decode(data, window, frame, max_pixels)
    except DicomError:
        raise
    except MemoryError:
        raise _too_many_pixels(max_pixels) from None
    except Exception:  # pydicom and its plugins raise many types for damaged files
        # `from None`: the library's message may quote header values; it must not reach a log
        raise DicomError(
            "The DICOM file's pixel data could not be decoded: it is damaged or incomplete (cut off "
            "while copying, say), or compressed in a variant the installed decoders do not read. "
            "Please export it again, uncompressed if you can."
        ) from None


def strip_header(data: bytes) -> bytes:
    """A copy of a DICOM file holding only what `decode_dicom` reads: the pixel data (still
    compressed), the pixel description, the modality, the LUTs and windows. No patient, study,
    date, device or UID attribute survives; it decodes to the same image.

    Raises:
        DicomError: as `decode_dicom` for a header that cannot be read or a file without pixels.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _read(data)
        out = Dataset()
        for tag in KEPT_TAGS:
            if tag in ds and tag not in (0x52009229, 0x52009230):
                out[tag] = ds[tag]
        for name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            if name in ds:
                setattr(out, name, Sequence([_kept_groups(item) for item in ds[name].value]))
        out.file_meta = FileMetaDataset()
        out.file_meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
        out.preamble = b"\0" * MAGIC_OFFSET
        buffer = io.BytesIO()
        try:
            out.save_as(buffer, implicit_vr=None, little_endian=None, enforce_file_format=False)
        except Exception:
            raise DicomError("The DICOM file could not be read again without its header.") from None
    return buffer.getvalue()


def _kept_groups(item: Any) -> Any:
    from pydicom.dataset import Dataset

    kept = Dataset()
    for name in FRAME_GROUPS:
        if name in item:
            setattr(kept, name, item[name].value)
    return kept


def _read(data: bytes) -> Any:
    """The dataset with `KEPT_TAGS` only; every other attribute is skipped unparsed."""
    from pydicom import dcmread

    syntax = transfer_syntax(data)
    if syntax is None:
        raise DicomError(
            "The file starts like a DICOM file but its header cannot be read; it is damaged or not "
            "a DICOM file. Please export the image again."
        )
    if syntax == DEFLATED:
        _check_inflated_size(data)
    try:
        ds = dcmread(io.BytesIO(data), specific_tags=list(KEPT_TAGS))
    except Exception:
        raise DicomError(
            "The DICOM file's header is damaged or incomplete (it may have been cut off while "
            "copying). Please export it again."
        ) from None
    if not any(tag in ds for tag in PIXEL_TAGS):
        if _meant_an_image(ds, data):
            raise DicomError(
                "The DICOM file's image is missing or incomplete (it may have been cut off while "
                "copying). Please export it again."
            )
        raise DicomError(
            "This DICOM file holds no image (no pixel data): it may be a report, a treatment plan, "
            "a waveform or a series index. Please choose an image of the series."
        )
    return ds


def _meant_an_image(ds: Any, data: bytes) -> bool:
    """True when a file without pixel data should have had some: it describes an image (rows),
    its storage class is an image's, or the pixel data's tag is there but was not read whole."""
    sop_class = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return (
        "Rows" in ds
        or "Image Storage" in str(getattr(sop_class, "name", ""))
        or PIXEL_DATA_TAG_BYTES in data[_file_meta(data)[1] :]
    )


def transfer_syntax(data: bytes) -> str | None:
    """The Transfer Syntax UID of a DICOM file, read from its file meta group (explicit VR little
    endian by definition) without reading on; None when there is no such group."""
    return _file_meta(data)[0]


def _file_meta(data: bytes) -> tuple[str | None, int]:
    """(the Transfer Syntax UID or None, the offset where the dataset after the meta group starts)."""
    pos, syntax = MAGIC_OFFSET + 4, None
    long_vrs = (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in long_vrs:
            if pos + 12 > len(data):
                break
            length, start = struct.unpack_from("<I", data, pos + 8)[0], pos + 12
        else:
            length, start = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
        if element == 0x0010:
            value = data[start : start + length].rstrip(b"\0 ")
            syntax = value.decode("ascii", "replace") if value else None
        pos = start + length
    return syntax, pos


def _check_inflated_size(data: bytes) -> None:
    """Refuse a deflated file that would inflate past `MAX_INFLATED_BYTES` (pydicom inflates it whole)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflater.decompress(data[_file_meta(data)[1] :], MAX_INFLATED_BYTES)
    except zlib.error:
        return  # damaged: the reader says so
    if inflater.unconsumed_tail:
        raise DicomError(
            f"The DICOM file inflates to more than {MAX_INFLATED_BYTES / 1e6:.0f} MB; refused. "
            "Please export it uncompressed or with another compression."
        )


def _too_many_pixels(max_pixels: int) -> DicomError:
    return DicomError(
        f"The image is too large (over {max_pixels / 1e6:.0f} megapixels). Please resize it and try again."
    )


def _decode(
    data: bytes, window: Window | PixelRange | None, frame: int, max_pixels: int
) -> tuple[np.ndarray, ImageDescription]:
    from pydicom.pixels import pixel_array

    ds = _read(data)
    rows, columns, frames = _check_dimensions(ds, max_pixels)
    if not 1 <= frame <= frames:
        raise DicomError(
            f"This file has {frames} frames; choose a frame from 1 to {frames}."
            if frames > 1
            else f"This file has a single frame; frame {frame} does not exist."
        )
    _check_decoder(ds.file_meta.TransferSyntaxUID)
    _check_codestream(ds, frame - 1, frames, rows, columns, max_pixels)
    stored = pixel_array(ds, index=frame - 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    modality = str(ds.get("Modality", "")).strip().upper()
    burned_in = str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES"
    described = ImageDescription(
        "DICOM", modality if modality in MODALITIES else None, frame=frame, frames=frames, burned_in=burned_in
    )
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        return _grey(ds, stored, frame - 1, window, photometric == "MONOCHROME1", described)
    return _colour(ds, stored, photometric, window is not None, described)


def _check_dimensions(ds: Any, max_pixels: int) -> tuple[int, int, int]:
    """(rows, columns, frames) of a file whose frames are not absurd, from the header alone."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
        samples = int(ds.get("SamplesPerPixel") or 1)
    except (AttributeError, TypeError, ValueError):
        raise DicomError(
            "The DICOM file does not say its image's size (rows, columns); it is damaged. "
            "Please export it again."
        ) from None
    if rows < 1 or columns < 1:
        raise DicomError("The image has no pixels. Please choose another file.")
    if rows * columns > max_pixels:
        raise _too_many_pixels(max_pixels)
    if not 1 <= frames <= MAX_FRAMES or samples not in (1, 3):
        raise DicomError(
            f"The DICOM file describes {frames} frames of {samples} samples per pixel; it is damaged "
            f"or not an image advexp reads (up to {MAX_FRAMES:,} frames of 1 or 3 samples)."
        )
    return rows, columns, frames


def _check_decoder(syntax: Any) -> None:
    """Refuse a compression that pydicom does not know or that no installed package decodes."""
    from pydicom.pixels import get_decoder

    name = getattr(syntax, "name", "") or "an unknown compression"
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DicomError(
            f"This DICOM file's pixels are stored as {name}, which advexp cannot decode. Please "
            "export the image uncompressed (or as JPEG, JPEG-LS, JPEG 2000 or RLE)."
        ) from None
    if decoder.is_available:
        return
    packages = DECODERS.get(str(syntax)) or "; ".join(decoder.missing_dependencies) or "a decoding plugin"
    raise DicomError(
        f"This DICOM file's pixels are compressed as {name}, and no decoder for it is installed on "
        f"this server. The Python package(s) {packages} would decode it; or export the image "
        "uncompressed."
    )


def _check_codestream(ds: Any, index: int, frames: int, rows: int, columns: int, max_pixels: int) -> None:
    """Refuse a compressed frame whose own header claims a size other than the file's (a decoder
    allocates what the codestream says, before pydicom compares it with the rows and columns)."""
    from pydicom.encaps import get_frame

    if not ds.file_meta.TransferSyntaxUID.is_encapsulated or "PixelData" not in ds:
        return
    codestream = get_frame(ds.PixelData, index, number_of_frames=frames)
    size = codestream_size(codestream[:65536])
    if size is None:
        return
    if size[0] * size[1] > max_pixels:
        raise _too_many_pixels(max_pixels)
    if size != (rows, columns):
        raise DicomError(
            f"The DICOM file's compressed pixels hold a {size[1]}×{size[0]} image, but its header says "
            f"{columns}×{rows}; the file is damaged. Please export it again."
        )


def codestream_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG frame header (SOFn) or a JPEG 2000 SIZ marker; None for other data."""
    if data.startswith(b"\x00\x00\x00\x0cjP  "):  # a JP2 file: the codestream follows its 'jp2c' box
        at = data.find(b"jp2c")
        data = data[at + 4 :] if at >= 0 else b""
    if data.startswith(b"\xff\x4f\xff\x51") and len(data) >= 24:
        width, height, x0, y0 = struct.unpack_from(">IIII", data, 8)
        return height - y0, width - x0
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        # SOF0-SOF15 but DHT (C4), JPG (C8), DAC (CC); SOF55 (F7) is JPEG-LS's
        if (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xF7:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return height, width
        pos += 2 + length
    return None


def _frame_item(ds: Any, index: int, group: str) -> Any:
    """The first item of a functional group for one frame (per-frame, else shared), or the dataset."""
    for name, at in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(name)
        if items is not None and len(items) > at and items[at].get(group):
            return items[at].get(group)[0]
    return ds


def _first(value: Any) -> float | None:
    """A DS value's first number (Window Center may list several windows), or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, int | float):  # DS and IS values are float and int; MultiValue is not
        try:
            value = value[0]
        except (TypeError, IndexError):
            return None
    return float(value)


def _grey(
    ds: Any,
    stored: np.ndarray,
    index: int,
    window: Window | PixelRange | None,
    inverted: bool,
    described: ImageDescription,
) -> tuple[np.ndarray, ImageDescription]:
    values, unit = _modality_values(ds, stored, index)
    if not np.isfinite(values).all():
        raise DicomError("The DICOM file's rescale gives invalid pixel values; it is damaged.")
    chosen: Window | None
    if window == PIXEL_RANGE:
        chosen, source = range_window(values), "the pixel range"
    elif isinstance(window, Window):
        chosen, source = window, given_window_source(window)
    else:
        chosen, source, lut = _file_window(ds, values, index)
    grey = lut if chosen is None and lut is not None else apply_window(values, chosen or range_window(values))
    if inverted:
        grey = 1.0 - grey
    described = _with(described, window=chosen, window_from=source, unit=unit, inverted=inverted)
    return np.repeat(grey[:, :, None], 3, axis=2), described


def _modality_values(ds: Any, stored: np.ndarray, index: int) -> tuple[np.ndarray, str]:
    """Stored values through the modality LUT, and their unit ("HU" for CT in Hounsfield units)."""
    from pydicom.pixels import apply_modality_lut

    if ds.get("ModalityLUTSequence"):
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64), ""
    item = _frame_item(ds, index, "PixelValueTransformationSequence")
    slope = _first(item.get("RescaleSlope"))
    intercept = _first(item.get("RescaleIntercept"))
    values = stored.astype(np.float64) * (1.0 if slope is None else slope) + (intercept or 0.0)
    rescale_type = str(item.get("RescaleType", "") or "").strip().upper()
    is_ct = str(ds.get("Modality", "")).strip().upper() == "CT"
    return values, "HU" if is_ct and rescale_type in ("", "HU") else ""


def _file_window(ds: Any, values: np.ndarray, index: int) -> tuple[Window | None, str, np.ndarray | None]:
    """The file's own VOI: its (first) window, else its VOI LUT (the grey levels it gives), else
    the pixel range; a window DICOM does not allow (a width under 1) counts as none."""
    item = _frame_item(ds, index, "FrameVOILUTSequence")
    centre, width = _first(item.get("WindowCenter")), _first(item.get("WindowWidth"))
    named = str(item.get("VOILUTFunction", "") or "").strip().upper()
    function: VoiFunction = (
        "SIGMOID" if named == "SIGMOID" else "LINEAR_EXACT" if named == "LINEAR_EXACT" else "LINEAR"
    )
    if centre is not None and width is not None:
        try:
            return Window(centre, width, function), "the file", None
        except ValueError:
            pass
    if ds.get("VOILUTSequence"):
        return None, "the file's VOI LUT", _voi_lut(ds, values)
    return range_window(values), "the pixel range", None


def _voi_lut(ds: Any, values: np.ndarray) -> np.ndarray:
    """The file's first VOI LUT applied to values, as grey levels in [0, 1] (PS3.3 C.11.2.1.1)."""
    from pydicom.pixels import apply_voi

    bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    if not 8 <= bits <= 16:
        raise DicomError("The DICOM file's VOI LUT is damaged. Please export the image again.")
    levels = apply_voi(np.rint(values).astype(np.int64), ds, index=0)
    return np.clip(levels.astype(np.float64) / (2**bits - 1), 0.0, 1.0).astype(np.float32)


def _colour(
    ds: Any, stored: np.ndarray, photometric: str, window_asked: bool, described: ImageDescription
) -> tuple[np.ndarray, ImageDescription]:
    """RGB (pydicom converts YBR), or a palette image through its colour LUT, scaled to [0, 1]."""
    from pydicom.pixels import apply_color_lut

    if photometric == "PALETTE COLOR":
        stored = apply_color_lut(stored, ds)
        top = float(2 ** int(ds.RedPaletteColorLookupTableDescriptor[2]) - 1)
    elif stored.ndim == 3 and stored.shape[2] == 3:
        top = float(2 ** int(ds.get("BitsStored") or ds.BitsAllocated) - 1)
    else:
        raise DicomError(  # the value itself is header text: not quoted
            "The DICOM file's photometric interpretation is not one advexp reads. "
            "Please export it as greyscale or RGB."
        )
    rgb = np.clip(stored.astype(np.float64) / top, 0.0, 1.0).astype(np.float32)
    return rgb, _with(described, colour=True, window_ignored=window_asked)


def _with(described: ImageDescription, **changes: Any) -> ImageDescription:
    return replace(described, **changes)
