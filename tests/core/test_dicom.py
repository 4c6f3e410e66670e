"""DICOM and 16-bit files in: the modality LUT and the window by hand on a few pixels, MONOCHROME1,
frames, VOI LUTs, header identifiers never kept, and hostile files refused with a message.

Files are pydicom's shipped examples (read offline, never downloaded) and files made here."""

from __future__ import annotations

import io
import logging
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from advexp_core.data import dicom
from advexp_core.data.imaging import (
    ACCEPTED_EXTENSIONS,
    ImageError,
    decode_image,
    decode_image_described,
    strip_dicom_header,
)
from advexp_core.data.windowing import (
    PIXEL_RANGE,
    WINDOW_PRESETS,
    Window,
    apply_window,
    parse_window,
    range_window,
)

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"  # shipped in the wheel
PATIENT = "Quixotic^Zebulon^Marmaduke"
# Identifiers of the DICOM basic confidentiality profile (PS3.15 E.1-1), set on a copy of CT_small.
IDENTIFIERS = {
    "PatientName": PATIENT,
    "PatientID": "PID-7734-QQX",
    "PatientBirthDate": "19230407",
    "AccessionNumber": "ACC99812377",
    "StudyInstanceUID": "1.2.826.0.1.3680043.99.4242.1",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.99.4242.2",
    "SOPInstanceUID": "1.2.826.0.1.3680043.99.4242.3",
    "InstitutionName": "Saint Hypothetical Infirmary",
    "ReferringPhysicianName": "Doctor^Imaginary",
    "StudyDate": "20990101",
    "StudyID": "STUDY-55511",
    "OtherPatientIDs": "OTHER-ID-3141",
}


def shipped(name: str) -> Path:
    path = TEST_FILES / name
    assert path.is_file(), f"pydicom no longer ships {name}"
    return path


def identified(name: str = "CT_small.dcm") -> bytes:
    """A shipped file with the identifiers of `IDENTIFIERS` set."""
    ds = pydicom.dcmread(shipped(name))
    for keyword, value in IDENTIFIERS.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def identifier_bytes() -> list[bytes]:
    """Every identifier value, and each part of the patient's name, as bytes to search for."""
    values = [v.encode() for v in IDENTIFIERS.values()]
    return values + [part.encode() for part in PATIENT.split("^")]


def make_dicom(
    frames: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    modality: str = "CT",
    signed: bool = True,
    **attributes: object,
) -> bytes:
    """An uncompressed DICOM file of 16-bit frames (F, H, W) with the attributes given."""
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.PatientName = PATIENT
    ds.Modality = modality
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    if frames.shape[0] > 1:
        ds.NumberOfFrames = int(frames.shape[0])
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = int(signed)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = frames.astype(np.int16 if signed else np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def png16(values: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(buffer, format=fmt)
    return buffer.getvalue()


def linear(x: float, centre: float, width: float) -> float:
    """DICOM PS3.3 C.11.2.1.2.1, written out again: the reference for the hand checks."""
    if x <= centre - 0.5 - (width - 1) / 2:
        return 0.0
    if x > centre - 0.5 + (width - 1) / 2:
        return 1.0
    return (x - (centre - 0.5)) / (width - 1) + 0.5


# --- windows ------------------------------------------------------------------------------------


def test_linear_window_by_hand() -> None:
    window = Window(40, 400)
    xs = np.array([-1000.0, -160.5, -159.5, 0.0, 39.5, 40.0, 239.5, 240.0, 3000.0])
    expected = [linear(float(x), 40, 400) for x in xs]
    assert np.allclose(apply_window(xs, window), expected, atol=1e-6)
    assert apply_window(np.array([39.5]), window)[0] == pytest.approx(0.5)


def test_exact_sigmoid_and_threshold_windows() -> None:
    xs = np.array([-100.0, 0.0, 50.0, 100.0])
    assert np.allclose(apply_window(xs, Window(0, 100, "LINEAR_EXACT")), [0.0, 0.5, 1.0, 1.0])
    sigmoid = apply_window(xs, Window(0, 100, "SIGMOID"))
    assert np.allclose(sigmoid, 1 / (1 + np.exp(-4 * xs / 100)), atol=1e-6)
    assert apply_window(np.array([9.4, 9.6]), Window(10, 1)).tolist() == [0.0, 1.0]  # C − 0.5


def test_windows_refuse_what_dicom_refuses() -> None:
    for bad in ((40, 0), (40, 0.5), (float("nan"), 400), (40, float("inf"))):
        with pytest.raises(ValueError, match="window"):
            Window(*bad)
    with pytest.raises(ValueError):
        Window(0, 0, "LINEAR_EXACT")
    assert Window(0, 0.5, "LINEAR_EXACT").width == 0.5


def test_window_text_presets_and_parsing() -> None:
    assert parse_window("40,400") == Window(40, 400)
    assert parse_window(" -600 / 1500 ") == Window(-600, 1500)
    assert parse_window("ct LUNG") == WINDOW_PRESETS["CT lung"] == Window(-600, 1500)
    assert parse_window("range") == PIXEL_RANGE
    assert WINDOW_PRESETS["CT brain"].text == "40/80" and WINDOW_PRESETS["CT bone"].text == "400/1800"
    for bad in ("40", "a,b", "1,2,3", "40,0", ""):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_range_window_of_constant_values_is_defined() -> None:
    window = range_window(np.full((4, 4), 1234.0))
    assert window.width == 1 and window.centre == 1234
    assert np.allclose(apply_window(np.full((2, 2), 1234.0), window), 0.5)


# --- DICOM: shipped files ------------------------------------------------------------------------


def test_ct_window_equals_a_hand_computation() -> None:
    data = shipped("CT_small.dcm").read_bytes()
    ds = pydicom.dcmread(shipped("CT_small.dcm"))
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    decoded = decode_image_described(data, window=Window(40, 400))
    for r, c in ((0, 0), (64, 64), (10, 100), (127, 3), (90, 40)):
        expected = linear(hu[r, c], 40, 400)
        assert decoded.image[:, r, c].tolist() == pytest.approx([expected] * 3, abs=1e-6), (r, c, hu[r, c])
    described = decoded.description
    assert (described.modality, described.unit, described.frames) == ("CT", "HU", 1)
    assert described.summary == "CT, window 40/400 HU from your setting, frame 1 of 1"


def test_ct_without_a_window_in_the_file_uses_its_pixel_range() -> None:
    ds = pydicom.dcmread(shipped("CT_small.dcm"))
    assert "WindowCenter" not in ds
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    decoded = decode_image_described(shipped("CT_small.dcm").read_bytes())
    low, high = hu.min(), hu.max()
    assert decoded.description.window == Window((low + high) / 2, high - low, "LINEAR_EXACT")
    r, c = np.unravel_index(np.argmin(hu), hu.shape)
    assert float(decoded.image[0, r, c]) == 0.0
    r, c = np.unravel_index(np.argmax(hu), hu.shape)
    assert float(decoded.image[0, r, c]) == 1.0
    assert decoded.description.summary.startswith("CT, window ")
    assert "HU from the pixel range, frame 1 of 1" in decoded.description.summary


def test_mr_window_from_the_file() -> None:
    ds = pydicom.dcmread(shipped("MR_small.dcm"))
    centre, width = float(ds.WindowCenter), float(ds.WindowWidth)
    decoded = decode_image_described(shipped("MR_small.dcm").read_bytes())
    assert decoded.description.summary == f"MR, window {centre:g}/{width:g} from the file, frame 1 of 1"
    for r, c in ((0, 0), (32, 32), (50, 12)):
        assert float(decoded.image[1, r, c]) == pytest.approx(
            linear(ds.pixel_array[r, c], centre, width), abs=1e-6
        )


def test_a_preset_is_named_in_the_description() -> None:
    described = decode_image_described(shipped("CT_small.dcm").read_bytes(), window=parse_window("CT lung"))
    assert described.description.summary == "CT, window -600/1500 HU from the preset CT lung, frame 1 of 1"


@pytest.mark.parametrize(
    "name",
    ["MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
     "MR_small_jpeg_ls_lossless.dcm"],
)  # fmt: skip
def test_every_encoding_of_one_image_gives_the_same_image(name: str) -> None:
    reference = decode_image(shipped("MR_small.dcm").read_bytes())
    assert torch.allclose(decode_image(shipped(name).read_bytes()), reference, atol=1e-6)


def test_colour_and_palette_files_are_read_without_a_window() -> None:
    rgb = decode_image_described(
        shipped("SC_rgb_rle_2frame.dcm").read_bytes(), frame=2, window=Window(40, 400)
    )
    assert rgb.description.colour and rgb.description.window is None and rgb.description.window_ignored
    assert rgb.description.summary.startswith("OT, colour (no window), frame 2 of 2")
    ds = pydicom.dcmread(shipped("SC_rgb_rle_2frame.dcm"))
    expected = torch.from_numpy(ds.pixel_array[1].astype(np.float32) / 255).permute(2, 0, 1)
    assert torch.allclose(rgb.image, expected)
    palette = decode_image_described(shipped("examples_palette.dcm").read_bytes())
    assert palette.description.colour and palette.image.shape == (3, 350, 800)


def test_every_shipped_file_decodes_or_is_refused_with_a_message() -> None:
    """A sweep of pydicom's own examples, odd ones included: an image or an ImageError, nothing
    else; and a file without its header decodes to the same image."""
    decoded = refused = 0
    for path in sorted(TEST_FILES.glob("*.dcm")):
        data = path.read_bytes()
        try:
            image = decode_image(data)
        except ImageError as exc:
            assert str(exc) and "Traceback" not in str(exc)
            refused += 1
            continue
        assert image.ndim == 3 and image.shape[0] == 3 and torch.isfinite(image).all(), path.name
        assert float(image.min()) >= 0 and float(image.max()) <= 1
        if dicom.is_dicom(data):
            assert torch.equal(decode_image(strip_dicom_header(data)), image), path.name
        decoded += 1
    assert decoded >= 40 and refused >= 3


# --- DICOM: files made here ----------------------------------------------------------------------


def test_monochrome1_is_inverted_after_the_window() -> None:
    values = np.array([[0, 100], [200, 300]])
    data = make_dicom(values, photometric="MONOCHROME1", modality="CR", WindowCenter=150, WindowWidth=201)
    decoded = decode_image_described(data)
    expected = [[1 - linear(v, 150, 201) for v in row] for row in values]
    assert np.allclose(decoded.image[0].numpy(), expected, atol=1e-6)
    assert decoded.description.inverted and "inverted (MONOCHROME1" in decoded.description.summary


def test_rescale_then_window_by_hand() -> None:
    values = np.array([[0, 500, 1000, 2000]])
    data = make_dicom(values, RescaleSlope=0.5, RescaleIntercept=-100, WindowCenter=100, WindowWidth=300)
    out = decode_image(data)[0, 0].numpy()
    assert np.allclose(out, [linear(v * 0.5 - 100, 100, 300) for v in values[0]], atol=1e-6)


def test_multi_frame_files_give_the_frame_asked_for() -> None:
    frames = np.stack([np.full((4, 5), k * 100) for k in range(3)])
    frames[:, 0, 0] = -50  # every frame spans -50 .. its own value
    data = make_dicom(frames, WindowCenter=100, WindowWidth=400)
    for frame in (1, 2, 3):
        decoded = decode_image_described(data, frame=frame)
        assert float(decoded.image[0, 2, 2]) == pytest.approx(linear((frame - 1) * 100, 100, 400))
        assert decoded.description.summary.endswith(f"frame {frame} of 3")
    for frame in (0, 4):
        with pytest.raises(ImageError, match="choose a frame from 1 to 3"):
            decode_image(data, frame=frame)
    with pytest.raises(ImageError, match="single frame"):
        decode_image(shipped("CT_small.dcm").read_bytes(), frame=2)
    with pytest.raises(ImageError, match="single frame"):
        decode_image(png16(np.zeros((2, 2))), frame=2)
    dose = decode_image_described(shipped("rtdose.dcm").read_bytes(), frame=15)
    assert dose.description.summary.endswith("frame 15 of 15")


def test_enhanced_multi_frame_windows_and_rescale_per_frame() -> None:
    frames = np.stack([np.arange(4).reshape(1, 4) * 100, np.arange(4).reshape(1, 4) * 100])
    shared = Dataset()
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -100, "HU"
    shared.PixelValueTransformationSequence = Sequence([transform])
    per_frame = []
    for centre in (0, 400):
        item, voi = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = centre, 200
        item.FrameVOILUTSequence = Sequence([voi])
        per_frame.append(item)
    data = make_dicom(
        frames,
        SharedFunctionalGroupsSequence=Sequence([shared]),
        PerFrameFunctionalGroupsSequence=Sequence(per_frame),
    )
    for frame, centre in ((1, 0), (2, 400)):
        decoded = decode_image_described(data, frame=frame)
        expected = [linear(v * 2 - 100, centre, 200) for v in (0, 100, 200, 300)]
        assert np.allclose(decoded.image[0, 0].numpy(), expected, atol=1e-6)
        assert decoded.description.window == Window(centre, 200)
        assert decoded.description.unit == "HU"
    stripped = strip_dicom_header(data)
    assert torch.equal(decode_image(stripped, frame=2), decode_image(data, frame=2))


def test_a_voi_lut_sequence_is_applied() -> None:
    lut = Dataset()
    lut.LUTDescriptor = [4, 10, 8]
    lut.LUTData = np.array([0, 85, 170, 255], dtype="<u2").tobytes()
    data = make_dicom(np.array([[5, 10, 11, 12, 13, 99]]), modality="MR", VOILUTSequence=Sequence([lut]))
    decoded = decode_image_described(data)
    assert np.allclose(decoded.image[0, 0].numpy(), [0, 0, 1 / 3, 2 / 3, 1, 1], atol=1e-6)
    assert decoded.description.summary == "MR, the file's VOI LUT, frame 1 of 1"
    given = decode_image_described(data, window=Window(10, 4))  # yours wins over the file's LUT
    assert given.description.window == Window(10, 4)


def test_dicom_is_read_through_imaging_by_its_preamble() -> None:
    assert "dcm" in ACCEPTED_EXTENSIONS
    data = shipped("CT_small.dcm").read_bytes()
    assert dicom.is_dicom(data) and not dicom.is_dicom(png16(np.zeros((2, 2))))
    assert decode_image(data).shape == (3, 128, 128)


# --- 16-bit PNG and TIFF -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_files_are_read_at_full_depth_through_a_window(fmt: str) -> None:
    values = np.array([[0, 1000, 1001, 2000, 4095, 65535]])
    full = decode_image_described(png16(values, fmt))
    assert np.allclose(full.image[0, 0].numpy(), values[0] / 65535, atol=1e-7)  # no 8-bit step
    assert full.description.summary == f"16-bit {fmt}, window 32767.5/65535 from the full 16-bit range"
    windowed = decode_image_described(png16(values, fmt), window=Window(1000, 100))
    assert np.allclose(windowed.image[0, 0].numpy(), [linear(v, 1000, 100) for v in values[0]], atol=1e-6)
    assert float(windowed.image[0, 0, 1]) != float(windowed.image[0, 0, 2])  # 1000 and 1001 stay apart
    stretched = decode_image_described(png16(values[:, :5], fmt), window=PIXEL_RANGE)
    assert np.allclose(stretched.image[0, 0].numpy(), values[0, :5] / 4095, atol=1e-6)


def test_constant_sixteen_bit_file_has_a_defined_window() -> None:
    for window in (None, PIXEL_RANGE):
        decoded = decode_image_described(png16(np.full((8, 8), 3000)), window=window)
        assert decoded.description.window is not None
        assert torch.isfinite(decoded.image).all()
    assert float(decode_image(png16(np.full((8, 8), 3000)), window=PIXEL_RANGE)[0, 0, 0]) == 0.5
    constant = decode_image_described(make_dicom(np.full((4, 4), 77)))
    assert constant.description.window == Window(77, 1, "LINEAR_EXACT")
    assert float(constant.image[0, 0, 0]) == 0.5


def test_eight_bit_images_take_no_window() -> None:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), 100).save(buffer, format="PNG")
    decoded = decode_image_described(buffer.getvalue(), window=Window(40, 400))
    assert decoded.description.window is None and decoded.description.window_ignored
    assert float(decoded.image[0, 0, 0]) == pytest.approx(100 / 255)


# --- nothing of the header is kept ---------------------------------------------------------------


def test_the_description_and_the_stripped_file_hold_no_identifier(caplog: pytest.LogCaptureFixture) -> None:
    data = identified()
    assert all(value in data for value in identifier_bytes())
    with caplog.at_level(logging.DEBUG):
        pydicom.config.debug(True)  # pydicom's own byte dumps must not reach any log either
        try:
            decoded = decode_image_described(data)
            stripped = strip_dicom_header(data)
        finally:
            pydicom.config.debug(False)
    text = repr(decoded.description) + str(decoded.description.to_json())
    for value in identifier_bytes():
        assert value.decode() not in text
        assert value not in stripped
        assert value.decode() not in caplog.text
    kept = pydicom.dcmread(io.BytesIO(stripped))
    assert "PatientName" not in kept and "StudyInstanceUID" not in kept and "SOPInstanceUID" not in kept
    assert torch.equal(decode_image(stripped), decoded.image)


def test_text_burned_into_the_pixels_is_said() -> None:
    data = make_dicom(np.zeros((4, 4)), modality="US", BurnedInAnnotation="YES")
    described = decode_image_described(data).description
    assert described.burned_in and "burned into the pixels" in described.summary
    assert not decode_image_described(shipped("CT_small.dcm").read_bytes()).description.burned_in


def test_messages_quote_nothing_of_the_header() -> None:
    ds = pydicom.dcmread(io.BytesIO(identified()))
    ds.PhotometricInterpretation = "PALETTE COLOR"  # without its palette: refused
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(ImageError) as caught:
        decode_image(buffer.getvalue())
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no library text
    for value in identifier_bytes():
        assert value.decode() not in str(caught.value)


# --- hostile files -------------------------------------------------------------------------------


def test_truncated_dicom_files_are_refused() -> None:
    data = shipped("CT_small.dcm").read_bytes()
    end = data.index(b"\xfc\xff\xfc\xff")  # the pixel data ends here (dataset trailing padding follows)
    for cut in (140, 400, 1000, 6300, len(data) // 2, end - 10):
        with pytest.raises(ImageError, match="damaged|incomplete"):
            decode_image(data[:cut])
    with pytest.raises(ImageError, match="damaged|incomplete"):
        decode_image(shipped("MR_truncated.dcm").read_bytes())


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm"])
def test_a_dicom_without_pixel_data_is_refused(name: str) -> None:
    with pytest.raises(ImageError, match="no pixel data"):
        decode_image(shipped(name).read_bytes())


def test_a_compression_without_a_decoder_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydicom.pixels.decoders.base import Decoder

    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    with pytest.raises(ImageError, match="pylibjpeg-openjpeg"):
        decode_image(shipped("MR_small_jp2klossless.dcm").read_bytes())
    with pytest.raises(ImageError, match="pylibjpeg-libjpeg"):
        decode_image(shipped("MR_small_jpeg_ls_lossless.dcm").read_bytes())


def test_an_unsupported_compression_is_refused() -> None:
    ds = pydicom.dcmread(shipped("MR_small_jp2klossless.dcm"))
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG4HP41  # video: no decoder at all
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(ImageError, match="cannot decode.*export the image uncompressed"):
        decode_image(buffer.getvalue())


def test_absurd_dimensions_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    import pydicom.pixels

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pixel data decoded")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", never)
    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((2, 2)))))
    ds.Rows = ds.Columns = 65535  # 4.3 gigapixels from 8 bytes
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(ImageError, match="too large"):
        decode_image(buffer.getvalue())
    ds.Rows = 0
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(ImageError, match="no pixels"):
        decode_image(buffer.getvalue())


def test_a_codestream_larger_than_its_header_is_refused_before_decoding() -> None:
    ds = pydicom.dcmread(shipped("MR_small_jp2klossless.dcm"))
    ds.Rows = ds.Columns = 32  # the JPEG 2000 codestream still says 64 x 64
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(ImageError, match="64×64 image, but its header says 32×32"):
        decode_image(buffer.getvalue())
    sof = b"\xff\xd8\xff\xc0\x00\x11\x08" + (60000).to_bytes(2, "big") * 2 + b"\x03" + bytes(9)
    assert dicom.codestream_size(sof) == (60000, 60000)
    assert dicom.codestream_size(b"not an image") is None


def test_a_deflated_file_is_bounded_before_it_is_inflated(monkeypatch: pytest.MonkeyPatch) -> None:
    data = shipped("image_dfl.dcm").read_bytes()
    assert dicom.transfer_syntax(data) == dicom.DEFLATED
    assert decode_image(data).shape == (3, 512, 512)
    monkeypatch.setattr(dicom, "MAX_INFLATED_BYTES", 10_000)
    with pytest.raises(ImageError, match="inflates to more than"):
        decode_image(data)


def test_a_file_that_only_looks_like_dicom_is_refused() -> None:
    fake = b"\0" * 128 + b"DICM" + bytes(range(256)) * 4
    with pytest.raises(ImageError, match="not a DICOM file|damaged"):
        decode_image(fake)
    with pytest.raises(ImageError, match="damaged"):
        decode_image(b"\0" * 128 + b"DICM")
    meta_only = b"\0" * 128 + b"DICM" + shipped("CT_small.dcm").read_bytes()[132:400]
    with pytest.raises(ImageError):
        decode_image(meta_only)
    bomb = b"\0" * 128 + b"DICM" + zlib.compress(bytes(10_000_000))
    with pytest.raises(ImageError):
        decode_image(bomb)
