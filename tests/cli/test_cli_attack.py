"""``advexp attack``: files, report contents, --json, and bad input (exit 2, nothing left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advexp_core.cli import main

MODEL = "woods2019-cifar10-standard"
KEYS = {
    "settings",
    "versions",
    "predictions_before",
    "predictions_after",
    "png_predictions_after",
    "perturbation",
}


@pytest.fixture()
def cat_png(woods_dir: Path) -> Path:
    return woods_dir / "cifar10_test_0.png"  # a cat (3) the standard network gets right


def _attack(image: Path, out: Path, *extra: str) -> int:
    return main(["attack", str(image), "--model", MODEL, "--out", str(out), *extra])


def test_attack_writes_the_png_and_a_complete_report(cat_png: Path, tmp_path: Path) -> None:
    from advexp_core.data.imaging import decode_image
    from advexp_core.networks.registry import load_model

    out = tmp_path / "run"
    assert _attack(cat_png, out) == 0
    assert sorted(p.name for p in out.iterdir()) == [".advexp-run.json", "adversarial.png", "result.json"]
    report = json.loads((out / "result.json").read_text())
    assert KEYS <= set(report)
    settings = report["settings"]
    assert (settings["method"], settings["norm"], settings["steps"], settings["seed"]) == (
        "pgd",
        "linf",
        20,
        0,
    )
    assert settings["eps"] == pytest.approx(2 / 255) and settings["step_size"] == pytest.approx(
        2.5 * 2 / 255 / 20
    )
    for key in ("predictions_before", "predictions_after", "png_predictions_after"):
        assert len(report[key]) == 5 and set(report[key][0]) == {"index", "label", "probability"}
    assert report["predictions_before"][0]["label"] == "cat"
    assert set(report["perturbation"]) == {"linf_255", "l2", "rms", "psnr", "ssim"}
    assert report["perturbation"]["linf_255"] <= 2.0 + 1e-4
    # The PNG on disk is what the report's PNG predictions describe.
    adversarial = decode_image((out / "adversarial.png").read_bytes())
    assert adversarial.shape == (3, 32, 32)
    with torch.no_grad():
        logits = load_model(MODEL).module(adversarial[None])[0]
    assert int(logits.argmax()) == report["png_predictions_after"][0]["index"]
    assert report["png_success"] == (int(logits.argmax()) != 3)
    assert report["success"] == (report["predictions_after"][0]["index"] != 3)


def test_json_flag_prints_the_same_object(
    cat_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _attack(cat_png, out, "--json", "--method", "fgsm", "--norm", "rms", "--eps", "1/255") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "result.json").read_text())
    assert printed["settings"]["method"] == "fgsm" and printed["settings"]["steps"] == 1
    assert printed["perturbation"]["rms"] <= 1 / 255 + 1e-6


def test_targeted_attack_and_seeded_random_start_are_reproducible(cat_png: Path, tmp_path: Path) -> None:
    args = ("--target", "dog", "--eps", "4/255", "--random-start", "--seed", "3", "--json")
    assert _attack(cat_png, tmp_path / "a", *args) == 0
    assert _attack(cat_png, tmp_path / "b", *args) == 0
    report = json.loads((tmp_path / "a" / "result.json").read_text())
    assert report["settings"]["target"] == {"index": 5, "label": "dog"}
    assert report["settings"]["random_start"] and report["settings"]["seed"] == 3
    assert report["success"] == (report["predictions_after"][0]["label"] == "dog")
    assert (tmp_path / "a" / "adversarial.png").read_bytes() == (
        tmp_path / "b" / "adversarial.png"
    ).read_bytes()


@pytest.mark.parametrize(
    "extra",
    [
        ("--eps", "-1/255"),
        ("--eps", "two"),
        ("--steps", "0"),
        ("--step-size", "-0.1"),
        ("--target", "unicorn"),
        ("--target", "10"),
        ("--model", "no-such-model"),
    ],
)
def test_bad_input_exits_2_and_leaves_no_output(
    extra: tuple[str, ...], cat_png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _attack(cat_png, out, *extra) == 2
    assert "error" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_image_exits_2_and_keeps_an_existing_output(
    woods_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")
    assert _attack(bad, out) == 2
    assert capsys.readouterr().err.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.png", "run"]
    assert (out / "keep.txt").read_text() == "previous run"
