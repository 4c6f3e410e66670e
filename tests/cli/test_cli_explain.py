"""``advexp explain``: files, report contents, --json, and bad input (exit 2, nothing left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from advexp_core.cli import main
from advexp_core.experiments.report import safe_label

ROBUST = "woods2019-cifar10-robust"
STANDARD = "woods2019-cifar10-standard"
TARGET_KEYS = {
    "index",
    "label",
    "file",
    "probability_before",
    "probability_after",
    "probability_after_display",
    "probability_after_png",
    "target_is_top_after_png",
    "rms",
    "reached_step",
    "budget_reached_by_half",
    "structure",
    "message",
}


@pytest.fixture()
def ship_png(woods_dir: Path) -> Path:
    return woods_dir / "cifar10_test_2.png"  # a ship (8)


def _explain(image: Path, out: Path, *extra: str, model: str = ROBUST) -> int:
    return main(["explain", str(image), "--model", model, "--out", str(out), *extra])


def test_explain_writes_one_png_per_target_a_figure_and_a_report(ship_png: Path, tmp_path: Path) -> None:
    from advexp_core.data.imaging import decode_image
    from advexp_core.methods.explanations import adversarial_explanation
    from advexp_core.networks.registry import load_model

    out = tmp_path / "run"
    assert _explain(ship_png, out, "--target", "ship", "--target", "runner-up", "--steps", "8") == 0
    report = json.loads((out / "result.json").read_text())
    files = [t["file"] for t in report["targets"]]
    assert files[0] == "explanation_8_ship.png" and len(files) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*files, ".advexp-run.json", "figure.png", "result.json"]
    )
    assert report["settings"]["rho"] == 0.1 and report["settings"]["steps"] == 8
    assert report["settings"]["targets_requested"] == ["ship", "runner-up"]
    assert {"torch", "advexp"} <= set(report["versions"]) and report["predictions"][0]["label"]
    assert all(set(t) == TARGET_KEYS for t in report["targets"])
    # The PNG is x+δ at the model's input size, the 32-px input used as given (not resized).
    model = load_model(ROBUST, device="cpu")
    image = decode_image(ship_png.read_bytes())
    expected = adversarial_explanation(
        model.module, image, [8, report["targets"][1]["index"]], steps=8, class_names=model.class_names
    )
    for entry, t in zip(report["targets"], expected.targets, strict=True):
        saved = decode_image((out / entry["file"]).read_bytes())
        assert saved.shape == (3, 32, 32)
        assert torch.equal((saved * 255).round(), (t.explanation * 255).round())
        assert entry["probability_before"] == pytest.approx(t.probability_before, abs=1e-6)
        assert entry["probability_after"] == pytest.approx(t.probability_after, abs=1e-5)
        with torch.no_grad():
            p_png = torch.softmax(model.module(saved[None]), dim=1)[0, entry["index"]]
        assert entry["probability_after_png"] == pytest.approx(float(p_png), abs=1e-5)
        assert entry["target_is_top_after_png"] == (
            int(torch.softmax(model.module(saved[None]), 1).argmax()) == entry["index"]
        )
    assert Image.open(out / "figure.png").format == "PNG"


def test_json_flag_prints_the_report_and_unreached_budgets_are_flagged(
    woods_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _explain(woods_dir / "cifar10_test_0.png", out, "--json", model=STANDARD) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "result.json").read_text())
    (target,) = printed["targets"]
    assert target["label"] == "cat" and printed["settings"]["steps"] == 35
    # The saturated standard network cannot spend the budget: a failed explanation, said plainly.
    assert printed["all_budgets_reached"] is False and target["budget_reached_by_half"] is False
    assert "failed explanation" in target["message"]
    # The readings the app shows, computed from these numbers: 0 of 1 succeeded, δ's share quoted.
    readings = printed["readings"]
    assert (
        readings["success"]["outcome"] == "failed"
        and "0 of 1 explanations succeeded" in readings["success"]["verdict"]
    )
    share, noise = target["structure"], printed["structure_noise"]
    assert f"on average {share:.0%} of δ's energy" in readings["structure"]["verdict"]
    assert f"{share / noise:.1f}× the {noise:.0%} of white noise" in readings["structure"]["verdict"]


def test_the_summary_prints_the_readings(
    woods_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _explain(woods_dir / "cifar10_test_2.png", out, "--steps", "6") == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "result.json").read_text())
    for reading in report["readings"].values():
        assert reading["verdict"] in printed


def test_an_image_of_another_size_is_fitted_to_the_model(ship_png: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.open(ship_png).resize((64, 48)).save(big)
    out = tmp_path / "run"
    assert _explain(big, out, "--steps", "3", "--rho", "1/20") == 0
    report = json.loads((out / "result.json").read_text())
    assert report["settings"]["rho"] == pytest.approx(0.05)
    assert Image.open(out / report["targets"][0]["file"]).size == (32, 32)


@pytest.mark.parametrize(
    "extra",
    [
        ("--rho", "0"),
        ("--rho", "-0.1"),
        ("--rho", "abc"),
        ("--rho", "nan"),
        ("--steps", "1"),
        ("--steps", "two"),
        ("--overshoot", "0"),
        ("--target", "zebra"),
        ("--target", "top-11"),
        ("--target", "10"),
        ("--model", "no-such-model"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    ship_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    out = tmp_path / "run"
    assert _explain(ship_png, out, "--steps", "2", *extra) == 2
    assert "error" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unreadable_images_exit_2_and_keep_an_existing_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"not a png at all")
    for path in (tmp_path / "missing.png", not_an_image):
        assert _explain(path, out) == 2
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.png", "run"]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("cat", "cat"),
        ("tabby, tabby cat", "tabby-tabby-cat"),
        ("../../etc/passwd", "etc-passwd"),
        ("", "class"),
    ],
)
def test_labels_are_safe_file_names(label: str, expected: str) -> None:
    assert safe_label(label) == expected
