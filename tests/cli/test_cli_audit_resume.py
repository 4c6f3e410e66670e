"""`advexp audit` interrupted and resumed: a run stopped after some batches (Ctrl-C raised from its
progress callback) continues with --resume and gives the same summary as an uninterrupted run (timing
aside); what is done lives in the output folder's partial folder and nothing else is touched."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from advexp_core.cli import audit as audit_cli
from advexp_core.cli.output import MARKER
from advexp_core.experiments.audit_store import ROWS, STATE
from tests.cli.test_cli_audit import N, run_cli

FAST = ("--methods", "gradient", "smoothgrad", "--no-adversarial", "--batch-size", "2")


def _audit(
    capsys: pytest.CaptureFixture[str], f: dict[str, Path], out: Path, *extra: str
) -> tuple[int, str, str]:
    return run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"]),
        "--labels", str(f["labels"]), *FAST, "--out", str(out), "--json", *extra,
    )  # fmt: skip


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, images: int) -> None:
    """Ctrl-C as soon as the progress says ``images`` are done (after their batch is committed)."""
    original = audit_cli.Progress.__call__

    def progress(self: audit_cli.Progress, done: int, total: int) -> None:
        original(self, done, total)
        if done >= images:
            raise KeyboardInterrupt

    monkeypatch.setattr(audit_cli.Progress, "__call__", progress)


def _summary(stdout: str) -> dict[str, Any]:
    result = json.loads(stdout)
    result.pop("timing")
    return result


def test_a_resumed_audit_gives_the_summary_of_an_uninterrupted_one(
    folders: dict[str, Path], capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    f = folders
    code, whole, err = _audit(capsys, f, tmp_path / "whole")
    assert code == 0, err
    out = f["out"]
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 2)
        with pytest.raises(SystemExit) as stopped:
            _audit(capsys, f, out)
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert f"interrupted after 2 of {N} images" in err and "--resume" in err
    partial = out / audit_cli.PARTIAL
    assert sorted(p.name for p in out.iterdir()) == [audit_cli.PARTIAL]  # nothing else yet
    assert len((partial / ROWS).read_text().splitlines()) == 2
    assert len((partial / "images.csv").read_text().splitlines()) == 3  # the header and two rows
    code, _, err = _audit(capsys, f, out)
    assert code == 2 and "interrupted audit" in err and "--resume" in err  # never started over unasked
    code, resumed, err = _audit(capsys, f, out, "--resume")
    assert code == 0, err
    assert _summary(resumed) | {"out": ""} == _summary(whole) | {"out": ""}
    assert json.loads(resumed)["timing"]["resumed_from"] == 2
    assert (out / "images.csv").read_text() == (tmp_path / "whole" / "images.csv").read_text()
    assert (out / "images.jsonl").read_text() == (tmp_path / "whole" / "images.jsonl").read_text()
    assert not partial.exists()
    assert json.loads((out / MARKER).read_text())["files"] == [
        "images.csv", "images.jsonl", "report.html", "result.json",
    ]  # fmt: skip


def test_a_batch_cut_off_half_way_is_done_again(
    folders: dict[str, Path], capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    f = folders
    code, whole, _ = _audit(capsys, f, tmp_path / "whole")
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 4)
        with pytest.raises(SystemExit):
            _audit(capsys, f, f["out"])
    partial = f["out"] / audit_cli.PARTIAL
    state = json.loads((partial / STATE).read_text())
    assert state["batches_done"] == 2
    # A kill in the middle of the third batch: one row written after the last commit, one half-written.
    rows = (partial / ROWS).read_text().splitlines()
    with open(partial / ROWS, "a") as handle:
        handle.write(rows[0].replace('"index": 0', '"index": 4') + "\n" + rows[1][:20])
    code, resumed, err = _audit(capsys, f, f["out"], "--resume")
    assert code == 0, err
    assert _summary(resumed) | {"out": ""} == _summary(whole) | {"out": ""}


def test_resume_refuses_other_settings_and_keeps_the_partial_audit(
    folders: dict[str, Path], capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = folders
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 2)
        with pytest.raises(SystemExit):
            _audit(capsys, f, f["out"])
    partial = f["out"] / audit_cli.PARTIAL
    before = {p.name: p.read_bytes() for p in partial.iterdir() if p.is_file()}
    code, _, err = _audit(capsys, f, f["out"], "--resume", "--tolerance", "0.1")
    assert code == 2 and "made with other settings" in err, err
    (f["images"] / "lesion5.png").unlink()
    code, _, err = _audit(capsys, f, f["out"], "--resume")
    assert code == 2 and "made with other inputs" in err, err
    assert {p.name: p.read_bytes() for p in partial.iterdir() if p.is_file()} == before


def test_nothing_to_resume_starts_and_a_foreign_partial_folder_is_never_touched(
    folders: dict[str, Path], capsys, tmp_path: Path
) -> None:
    f = folders
    code, _, err = _audit(capsys, f, tmp_path / "fresh", "--resume")
    assert code == 0 and "nothing to resume" in err
    out = tmp_path / "foreign"
    (out / audit_cli.PARTIAL).mkdir(parents=True)
    (out / audit_cli.PARTIAL / "mine.txt").write_text("keep me")
    code, _, err = _audit(capsys, f, out, "--into-existing")
    assert code == 2 and "not an empty folder" in err, err
    assert (out / audit_cli.PARTIAL / "mine.txt").read_text() == "keep me"


def test_all_pictures_in_a_zip(folders: dict[str, Path], capsys) -> None:
    f = folders
    code, stdout, err = _audit(capsys, f, f["out"], "--pictures", "all")
    assert code == 0, err
    assert json.loads(stdout)["files"]["pictures"] == "pictures.zip"
    with zipfile.ZipFile(f["out"] / "pictures.zip") as archive:
        names = archive.namelist()
    assert len({n.split("/")[0] for n in names}) == N
    assert any(n.endswith("/0-image.png") for n in names) and any("map0-gradient" in n for n in names)
