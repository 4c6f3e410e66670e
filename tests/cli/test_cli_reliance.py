"""`advexp reliance` in-process: result.json and images.csv on a hand-made ruler reader, exit 2 with a
message that names the flag on bad arguments."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from advexp_core.cli import main
from advexp_core.cli import reliance as reliance_cli
from advexp_core.models import LoadedModel
from tests.core.test_reliance import CentreReader, RulerReader, _loaded


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _serve(monkeypatch: pytest.MonkeyPatch, model: LoadedModel) -> None:
    monkeypatch.setattr(reliance_cli, "load_model_or_usage_error", lambda _id: model)


def test_writes_the_summary_and_one_csv_row_per_image(tmp_path: Path, capsys, monkeypatch) -> None:
    _serve(monkeypatch, _loaded(RulerReader()))
    out = tmp_path / "rel"
    argv = ["reliance", "--model", "x", "--dataset", "lesions", "--n-images", "12", "--out", str(out)]
    code, stdout, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    printed, stored = json.loads(stdout), json.loads((out / "result.json").read_text())
    assert printed == stored
    assert {"model", "dataset", "split", "n_images", "image_indices", "accuracy", "shortcut"} <= set(stored)
    assert stored["model"] == "hand-made" and stored["split"] == "test" and stored["n_images"] == 12
    assert stored["image_indices"] == list(range(12))
    assert set(stored["accuracy"]) == {"as_is", "shortcut_removed", "shortcut_added"}
    shortcut = stored["shortcut"]
    for key in (
        "images_with",
        "decisions_changed_when_removed",
        "decisions_changed_when_added",
        "mean_margin_effect",
    ):
        assert key in shortcut
    assert (
        shortcut["decisions_changed_when_removed"] == 1.0 and shortcut["decisions_changed_when_added"] == 1.0
    )
    rows = list(csv.DictReader((out / "images.csv").open()))
    assert [int(r["index"]) for r in rows] == list(range(12))
    assert sum(r["has_ruler"] == "True" for r in rows) == shortcut["images_with"]
    assert all(r["prediction_added"] == "1" and r["prediction_removed"] == "0" for r in rows)
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0 and f"of {shortcut['images_with']} decisions" in stdout and "wrote" in stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "blockdigits"], "--dataset 'blockdigits'"),
        (["--dataset", "lesions", "--split", "val"], "--split: lesions has no split 'val'"),
        (
            ["--dataset", "lesions", "--n-images", "5000"],
            "--n-images: the lesions test split has 1000 images",
        ),
        (["--dataset", "lesions", "--n-images", "0"], "--n-images"),
        (["--dataset", "lesions", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_arguments_exit_2_with_the_flag(tmp_path: Path, capsys, monkeypatch, extra, message) -> None:
    _serve(monkeypatch, _loaded(CentreReader()))
    out = tmp_path / "rel"
    code, stdout, err = run_cli(capsys, "reliance", "--model", "x", *extra, "--out", str(out))
    assert code == 2 and stdout == "" and message in err
    assert not out.exists()


def test_a_model_of_other_classes_exits_2(tmp_path: Path, capsys, monkeypatch) -> None:
    _serve(monkeypatch, _loaded(CentreReader(), tuple(str(i) for i in range(10))))
    argv = ["reliance", "--model", "digits", "--dataset", "lesions", "--out", str(tmp_path / "o")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "--model: " in err and "lesions are (benign, malignant)" in err


def test_an_unknown_model_exits_2(tmp_path: Path, capsys) -> None:
    argv = ["reliance", "--model", "no-such-model", "--dataset", "lesions", "--out", str(tmp_path / "o")]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "no-such-model" in err
