"""`advexp reliance` in-process: result.json and images.csv on a hand-made ruler reader, exit 2 with a
message that names the flag on bad arguments."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from advexp_core.base.statistics import wilson_interval
from advexp_core.cli import main
from advexp_core.cli import reliance as reliance_cli
from advexp_core.networks.registry import LoadedModel
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
    n_with, n_without = shortcut["images_with"], shortcut["images_without"]
    assert shortcut["decisions_changed_when_removed_ci"] == list(wilson_interval(n_with, n_with))
    assert shortcut["decisions_changed_when_added_ci"] == list(wilson_interval(n_without, n_without))
    assert set(stored["accuracy_ci"]) == set(stored["accuracy"])
    assert shortcut["outcome"] == "relies" and stored["settings"]["tolerance"] == 0.05
    rows = list(csv.DictReader((out / "images.csv").open()))
    assert [int(r["index"]) for r in rows] == list(range(12))
    assert sum(r["has_ruler"] == "True" for r in rows) == shortcut["images_with"]
    assert all(r["prediction_added"] == "1" and r["prediction_removed"] == "0" for r in rows)
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0 and f"of {shortcut['images_with']} decisions" in stdout and "wrote" in stdout
    assert "95% interval" in stdout and "outcome at a 5% tolerance: relies" in stdout


def test_no_change_on_a_few_images_reads_inconclusive(tmp_path: Path, capsys, monkeypatch) -> None:
    _serve(monkeypatch, _loaded(CentreReader()))
    argv = ["reliance", "--model", "x", "--dataset", "lesions", "--n-images", "12", "--json"]
    code, stdout, err = run_cli(capsys, *argv, "--out", str(tmp_path / "a"))
    assert code == 0, err
    shortcut = json.loads(stdout)["shortcut"]
    assert shortcut["n_changed_when_removed"] == 0 and shortcut["outcome"] == "inconclusive"
    assert shortcut["decisions_changed_when_removed_ci"][1] > 0.05  # a few images cannot rule out 5%
    code, stdout, err = run_cli(capsys, *argv, "--tolerance", "0.6", "--out", str(tmp_path / "b"))
    assert code == 0, err
    assert json.loads(stdout)["shortcut"]["outcome"] == "does-not-rely"  # under 60%: ruled out


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
        (["--dataset", "lesions", "--tolerance", "0"], "--tolerance: tolerance must lie between 0 and 1"),
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
