"""Nothing lost: ``--out`` never deletes or replaces a file advexp did not write, the audit reads only
regular files inside the folders it was given, and bad files end in exit 2 with a message naming them.

The audit runs in-process on lesion images written as files, read by the hand-made ruler reader of
`tests.cli.test_cli_audit` (gradient maps only: seconds a run)."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from advexp_core.base.text import csv_safe, terminal_text
from advexp_core.cli import audit as audit_cli
from advexp_core.cli import main
from advexp_core.cli.common import json_text
from advexp_core.cli.output import MARKER
from tests.cli.test_cli_audit import SoftRulerReader, run_cli
from tests.core.test_reliance import _loaded

FAST = ("--methods", "gradient", "--no-adversarial")


def audit(
    capsys: pytest.CaptureFixture[str], f: dict[str, Path], out: Path, *extra: str
) -> tuple[int, str, str]:
    return run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"]),
        *FAST, "--out", str(out), *extra,
    )  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` with its bytes (None for folders and special files)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() and not p.is_symlink() else None
        for p in sorted(folder.rglob("*"))
    }


def test_out_pointing_at_the_input_folder_keeps_every_input(folders: dict[str, Path], capsys) -> None:
    f = folders
    root = f["rulers"]  # holds images/, masks/ and labels.csv
    (root / "notes.txt").write_text("my notes")
    (root.parent / f".{root.name}.old").mkdir()  # the old helper's backup name: a sibling of the user's
    os.chmod(root, 0o755)
    before = snapshot(root)
    code, _, err = audit(capsys, f, root)
    assert code == 2 and "advexp did not write" in err and "--into-existing" in err, err
    assert snapshot(root) == before
    assert (root.parent / f".{root.name}.old").is_dir()

    code, _, err = audit(capsys, f, root, "--into-existing")
    assert code == 0, err
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k in before} == before  # every input kept, byte for byte
    assert set(after) - set(before) == {"result.json", "images.csv", "images.jsonl", "report.html", MARKER}
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    assert (root.parent / f".{root.name}.old").is_dir()


def test_a_rerun_replaces_only_its_own_files(folders: dict[str, Path], capsys) -> None:
    f, out = folders, folders["out"]
    assert audit(capsys, f, out)[0] == 0
    assert json.loads((out / MARKER).read_text())["files"] == [
        "images.csv", "images.jsonl", "report.html", "result.json",
    ]  # fmt: skip
    (out / "result.json").write_text("{}")  # to tell the rerun's file from the first run's
    assert audit(capsys, f, out)[0] == 0  # a folder of advexp's own: the rerun needs no flag
    assert json.loads((out / "result.json").read_text())["n_images"] == 6
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MARKER, "images.csv", "images.jsonl", "report.html", "result.json"]
    )
    (out / "mine.txt").write_text("keep me")
    code, _, err = audit(capsys, f, out)
    assert code == 2 and "mine.txt" in err
    assert (out / "mine.txt").read_text() == "keep me"


def test_a_file_of_the_same_name_is_never_replaced(folders: dict[str, Path], capsys) -> None:
    f, out = folders, folders["out"]
    out.mkdir()
    (out / "report.html").write_text("the user's own report")
    code, _, err = audit(capsys, f, out, "--into-existing")
    assert code == 2 and "report.html" in err and "nothing was replaced" in err, err
    assert [p.name for p in out.iterdir()] == ["report.html"]
    assert (out / "report.html").read_text() == "the user's own report"


def test_an_empty_or_new_folder_is_written_and_a_failed_run_leaves_nothing(
    folders: dict[str, Path], capsys, tmp_path: Path
) -> None:
    f = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    assert audit(capsys, f, empty)[0] == 0 and (empty / "report.html").is_file()
    new = tmp_path / "a" / "b"
    assert audit(capsys, f, new)[0] == 0 and (new / "result.json").is_file()
    failed = tmp_path / "failed"
    code, _, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"]),
        "--add-from", str(tmp_path / "missing.png"), "--add-mask", str(f["source_mask"]), *FAST,
        "--out", str(failed),
    )  # fmt: skip
    assert code == 2 and "missing.png" in err and "no such file" in err, err
    assert not failed.exists()


def test_out_as_the_current_folder_or_a_file_is_refused(
    folders: dict[str, Path], capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = folders
    monkeypatch.chdir(f["rulers"])
    before = snapshot(f["rulers"])
    code, _, err = audit(capsys, f, Path("."))
    assert code == 2 and "advexp did not write" in err, err
    code, _, err = audit(capsys, f, f["labels"])
    assert code == 2 and "not a folder" in err, err
    assert snapshot(f["rulers"]) == before


def test_special_files_in_the_images_folder_are_skipped_and_named(folders: dict[str, Path], capsys) -> None:
    f = folders
    os.mkfifo(f["images"] / "f.png")  # read, it would wait for a writer for ever
    (f["images"] / "z.png").symlink_to("/dev/zero")  # read, it never ends
    (f["images"] / "d.png").mkdir()
    outside = f["rulers"].parent / "outside.png"
    outside.write_bytes((f["images"] / "lesion0.png").read_bytes())
    (f["images"] / "out.png").symlink_to(outside)
    code, stdout, err = audit(capsys, f, f["out"], "--json")
    assert code == 0, err
    for name in ("f.png", "z.png", "d.png", "out.png"):
        assert name in err
    result = json.loads(stdout)
    assert result["n_images"] == 6 and "f.png (not a regular file)" in result["warnings"][0]
    assert "d.png (a folder)" in result["warnings"][0] and "out.png (a link to a file outside" in err


def test_bad_labels_exit_2_and_bad_masks_are_skipped_naming_the_file(
    folders: dict[str, Path], capsys, tmp_path: Path
) -> None:
    f = folders
    labels = tmp_path / "latin1.csv"
    labels.write_bytes("name,class\nl\xe9sion0.png,1\n".encode("latin-1"))
    code, _, err = audit(capsys, f, f["out"], "--labels", str(labels))
    assert code == 2 and "not a UTF-8 text file" in err, err
    labels.write_text("name,class\nlesion0.png,7\n")
    code, _, err = audit(capsys, f, f["out"], "--labels", str(labels))
    assert code == 2 and "Class index 7 does not exist" in err, err
    assert not f["out"].exists()

    big = tmp_path / "big"
    big.mkdir()
    Image.new("1", (20000, 20000)).save(big / "lesion0.png")  # 50 kB on disk, 400 million pixels
    Image.new("1", (9000, 5000)).save(big / "lesion1.png")  # under PIL's own bomb limit, over ours
    code, stdout, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(big), *FAST,
        "--out", str(f["out"]), "--json",
    )  # fmt: skip
    assert code == 0, err
    reasons = {s["name"]: s["reason"] for s in json.loads(stdout)["skipped"]}
    assert "million pixels, the limit" in reasons["lesion0.png"]
    assert "lesion1.png: a mask of 9000×5000 pixels" in reasons["lesion1.png"]
    code, stdout, _ = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(big), *FAST,
        "--out", str(f["out"]),
    )  # fmt: skip
    assert code == 0 and "skipped 2 image(s)" in stdout


def test_unmatched_masks_are_named(folders: dict[str, Path], capsys) -> None:
    f = folders
    (f["masks"] / "lesion99.png").write_bytes((f["source_mask"]).read_bytes())
    code, stdout, err = audit(capsys, f, f["out"])
    assert code == 0 and "lesion99.png match(es) no image" in err and "lesion99.png" in stdout


def test_names_are_data_in_the_csv_and_the_terminal(
    folders: dict[str, Path], capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = folders
    hostile = ("=cmd|' /C calc'!A0", "do\033[31mg\x9b2J")
    monkeypatch.setattr(
        audit_cli, "load_model_or_usage_error", lambda _id: _loaded(SoftRulerReader(), hostile)
    )
    (f["images"] / "lesion0.png").rename(f["images"] / "@SUM(1+1).png")
    code, stdout, err = audit(capsys, f, f["out"])
    assert code == 0, err
    assert "\033" not in stdout and "\x9b" not in stdout
    rows = list(csv.DictReader(io.StringIO((f["out"] / "images.csv").read_text())))
    cells = [v for row in rows for v in row.values()]
    assert not any(v[:1] in "=+-@" and not v.lstrip("-").replace(".", "", 1).isdigit() for v in cells if v)
    assert "'@SUM(1+1).png" in cells and any(c.startswith("'=cmd") for c in cells)
    assert (f["out"] / "images.jsonl").read_text().count("\n") == 6


@pytest.mark.parametrize("size", ["²", "0", "-5", "22.4", "100000"])
def test_input_size_must_be_plain_digits_in_range(size: str, tmp_path: Path, capsys) -> None:
    weights, classes = tmp_path / "w.pt", tmp_path / "c.txt"
    weights.write_bytes(b"x"), classes.write_text("a\nb\n")
    code, _, err = run_cli(
        capsys, "classify", "img.png", "--model-file", str(weights), "--classes", str(classes),
        "--arch", "resnet18", "--input-size", size,
    )  # fmt: skip
    assert code == 2 and "--input-size takes a whole number" in err, err


def test_json_is_always_strict_and_terminal_text_has_no_controls() -> None:
    text = json_text({"p": float("nan"), "q": [float("inf"), 1.5], "name": "a\x9bb\x1bc"})
    assert json.loads(text) == {"p": None, "q": [None, 1.5], "name": "a\x9bb\x1bc"}
    assert "\x9b" not in text and "\x1b" not in text
    assert terminal_text("do\033[31mg\x9b\r\nok\t") == "do[31mg\nok\t"
    assert [csv_safe(v) for v in ("=1", "+a", "-b", "@c", "\tx", "ok", -0.5, 3)] == [
        "'=1", "'+a", "'-b", "'@c", "'\tx", "ok", -0.5, 3,
    ]  # fmt: skip


def test_a_failing_command_before_writing_leaves_no_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "never"
    code = main(["attack", str(tmp_path / "nope.png"), "--model", "digits-standard", "--out", str(out)])
    assert code == 2 and not out.exists()
