"""DICOM files on the command line: ``advexp classify`` with a grey network prints the window used,
``--window`` and ``--frame`` on every command that reads an image, no byte of the patient's
identity in anything written, and hostile files refused with exit code 2."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from advexp_core.cli import COMMANDS, build_parser, main
from advexp_core.cli.common import folder_files
from advexp_core.data.imaging import ACCEPTED_EXTENSIONS, decode_image
from tests.core.test_dicom import identified, identifier_bytes, make_dicom, png16, shipped
from tests.core.test_grey_networks import grey_timm, save_weights
from tests.core.test_own_models import TINY_CNN


@pytest.fixture()
def grey(tmp_path: Path) -> list[str]:
    """The options of a tiny timm network for grey images (random weights, 48 px)."""
    weights = save_weights(grey_timm(), tmp_path / "tiny.safetensors")
    classes = tmp_path / "c.txt"
    classes.write_text("normal\nabnormal\n", encoding="utf-8")
    return ["--model-file", str(weights), "--arch", f"timm:{TINY_CNN}", "--classes", str(classes), "--input-size", "48"]  # fmt: skip


@pytest.fixture()
def scan(tmp_path: Path) -> Path:
    """CT_small with a patient's name and the other identifiers, under a name that says none of them."""
    path = tmp_path / "scan_0001.dcm"
    path.write_bytes(identified())
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_classify_a_ct_prints_predictions_and_the_window(capsys, grey, scan) -> None:
    code, out, err = run(capsys, "classify", str(scan), *grey)
    assert code == 0, err
    assert "normal (0)" in out and "abnormal (1)" in out
    assert "image: CT, window " in out and "HU from the pixel range, frame 1 of 1" in out
    code, out, err = run(capsys, "classify", str(scan), *grey, "--window", "40,400", "--json")
    assert code == 0, err
    result = json.loads(out)
    described = result["image_description"]
    assert described["window"] == {"centre": 40, "width": 400, "function": "LINEAR"}
    assert described["summary"] == "CT, window 40/400 HU from your setting, frame 1 of 1"
    assert (described["modality"], described["unit"], described["frame"]) == ("CT", "HU", 1)
    assert len(result["predictions"]) == 2


def test_window_and_frame_options_in_any_order(capsys, grey, tmp_path) -> None:
    frames = np.stack([np.full((40, 40), 100 * k) for k in range(3)])
    frames[:, 0, 0] = -100
    path = tmp_path / "cine.dcm"
    path.write_bytes(make_dicom(frames, modality="CT"))
    for argv in (
        ["--window", "CT lung", "--frame", "3", str(path)],
        [str(path), "--frame", "3", "--window", "ct lung"],
        ["--frame", "3", str(path), "--window=-600,1500"],  # argparse reads "-600,…" as an option
    ):
        code, out, err = run(capsys, "classify", *argv, *grey, "--json")
        assert code == 0, err
        summary = json.loads(out)["image_description"]["summary"]
        assert "window -600/1500 HU" in summary and summary.endswith("frame 3 of 3")
    code, out, err = run(capsys, "classify", str(path), *grey, "--frame", "4")
    assert code == 2 and "choose a frame from 1 to 3" in err
    for bad in (["--window", "40"], ["--window", "40,0"], ["--frame", "0"], ["--frame", "x"]):
        code, out, err = run(capsys, "classify", str(path), *grey, *bad)
        assert code == 2 and err


def test_every_command_that_reads_an_image_takes_window_and_frame() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    with_image = {n for n, sub in subparsers.items() if any(a.dest == "image" for a in sub._actions)}
    with_window = {n for n, sub in subparsers.items() if "--window" in sub._option_string_actions}
    assert with_image == with_window == {"classify", "attack", "compare", "explain", "sanity"}
    assert all("--frame" in subparsers[n]._option_string_actions for n in with_window)
    assert set(with_window) < set(COMMANDS)


def test_sixteen_bit_png_takes_the_window_too(capsys, grey, tmp_path) -> None:
    path = tmp_path / "xray.png"
    path.write_bytes(png16(np.arange(48 * 48).reshape(48, 48)))
    code, out, err = run(capsys, "classify", str(path), *grey, "--window", "range", "--json")
    assert code == 0, err
    assert (
        json.loads(out)["image_description"]["summary"]
        == "16-bit PNG, window 1151.5/2303 from the pixel range"
    )


def test_no_byte_of_the_patient_in_anything_written(capsys, grey, scan, tmp_path) -> None:
    outputs = {
        "attack": ["--steps", "2", "--eps", "4/255"],
        "explain": ["--steps", "2", "--target", "all"],
        "compare": ["--methods", "gradient", "--steps", "2"],
    }
    written = []
    for command, options in outputs.items():
        out_dir = tmp_path / command
        code, out, err = run(
            capsys, command, str(scan), *grey, *options, "--out", str(out_dir), "--window", "40,400"
        )
        assert code == 0, (command, err)
        written += [out.encode(), err.encode()]
        files = [p for p in out_dir.rglob("*") if p.is_file()]
        assert files, command
        written += [p.read_bytes() for p in files] + [str(p).encode() for p in files]
        code, out, err = run(
            capsys, command, str(scan), *grey, *options, "--out", str(tmp_path / f"{command}-json"), "--json"
        )
        assert code == 0, (command, err)
        written += [out.encode(), err.encode()]
    report = json.loads((tmp_path / "attack" / "result.json").read_text())
    assert report["image_description"]["window"]["width"] == 400
    for value in identifier_bytes():
        for blob in written:
            assert value not in blob, value


@pytest.mark.parametrize(
    "case", ["truncated", "no-pixels", "no-decoder", "huge", "not-dicom", "constant-16-bit", "video"]
)
def test_hostile_dicom_files_exit_2_with_a_message(capsys, grey, tmp_path, monkeypatch, case) -> None:
    path = tmp_path / f"{case}.dcm"
    expected = {
        "truncated": "incomplete",
        "no-pixels": "no pixel data",
        "no-decoder": "pylibjpeg-openjpeg",
        "huge": "too large",
        "not-dicom": "not a DICOM file",
        "video": "cannot decode",
    }
    ct = shipped("CT_small.dcm").read_bytes()
    if case == "truncated":
        path.write_bytes(ct[: len(ct) // 2])
    elif case == "no-pixels":
        path.write_bytes(shipped("rtplan.dcm").read_bytes())
    elif case == "no-decoder":
        from pydicom.pixels.decoders.base import Decoder

        monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
        path.write_bytes(shipped("MR_small_jp2klossless.dcm").read_bytes())
    elif case in ("huge", "video"):
        ds = pydicom.dcmread(shipped("MR_small_jp2klossless.dcm" if case == "video" else "CT_small.dcm"))
        if case == "huge":
            ds.Rows = ds.Columns = 60000
        else:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG4HP41
        buffer = io.BytesIO()
        ds.save_as(buffer)
        path.write_bytes(buffer.getvalue())
    elif case == "not-dicom":
        path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI" + bytes(300))
    else:
        path = tmp_path / "flat.png"
        path.write_bytes(png16(np.full((48, 48), 1234)))
    code, out, err = run(capsys, "classify", str(path), *grey)
    if case == "constant-16-bit":  # not hostile: a window is still defined
        assert code == 0 and "window 32767.5/65535 from the full 16-bit range" in out
        return
    assert code == 2, (case, out)
    assert expected[case] in err and "Traceback" not in err
    assert err.startswith("advexp classify: error: ") and path.name in err


def test_a_folder_of_dicom_files_is_read_through_imaging(tmp_path: Path) -> None:
    """What the audit reads a folder with: `folder_files` with `ACCEPTED_EXTENSIONS`, then
    `decode_image` on each file's bytes."""
    for k, name in enumerate(("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm")):
        (tmp_path / f"{k}.dcm").write_bytes(shipped(name).read_bytes())
    files, skipped = folder_files(tmp_path, "--images", ACCEPTED_EXTENSIONS)
    assert [p.name for p in files] == ["0.dcm", "1.dcm", "2.dcm"] and not skipped
    assert all(decode_image(p.read_bytes()).shape[0] == 3 for p in files)
