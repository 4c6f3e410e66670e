"""``--model-file`` on the command line: timm weights and ONNX files on every command that takes
``--model``, and bad input refused with exit code 2 and a message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import save_file

from advexp_core.cli import COMMANDS, build_parser, main
from tests.core.test_own_models import TINY_CNN, TINY_VIT, export_onnx, hostile_onnx, tiny_net

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "gallery" / "cat.jpg"


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    save_file(tiny_net(TINY_VIT).state_dict(), tmp_path / "vit.safetensors")
    classes = tmp_path / "classes.txt"
    classes.write_text("normal\nbenign\n\nmalignant\n", encoding="utf-8")
    export_onnx(tiny_net(TINY_CNN), tmp_path / "cnn.onnx")
    return {"vit": tmp_path / "vit.safetensors", "classes": classes, "onnx": tmp_path / "cnn.onnx"}


def vit_options(files: dict[str, Path]) -> list[str]:
    return [
        "--model-file",
        str(files["vit"]),
        "--arch",
        f"timm:{TINY_VIT}",
        "--classes",
        str(files["classes"]),
    ]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_with_model_also_takes_model_file() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    with_model = {name for name, sub in subparsers.items() if "--model" in sub._option_string_actions}
    with_file = {name for name, sub in subparsers.items() if "--model-file" in sub._option_string_actions}
    assert with_model == set(COMMANDS) - {"models", "train"}  # every command that runs a network
    assert with_file == with_model


def test_classify_a_timm_vit_and_an_onnx_file(capsys, files) -> None:
    vit = vit_options(files)
    code, out, err = run(capsys, "classify", str(IMAGE), *vit, "--json", "--top", "3")
    assert code == 0, err
    result = json.loads(out)
    assert {p["label"] for p in result["predictions"]} == {"normal", "benign", "malignant"}
    assert abs(sum(p["probability"] for p in result["predictions"]) - 1) < 1e-5
    onnx = ["--model-file", str(files["onnx"]), "--classes", str(files["classes"])]
    code, out, err = run(capsys, "classify", str(IMAGE), *onnx, "--mean", "0.5,0.5,0.5", "--json")
    assert code == 0, err
    assert len(json.loads(out)["predictions"]) == 3


def test_attack_on_a_timm_vit_writes_its_files(capsys, files, tmp_path: Path) -> None:
    out_dir = tmp_path / "attack"
    argv = vit_options(files)
    code, out, err = run(capsys, "attack", str(IMAGE), *argv, "--steps", "2", "--out", str(out_dir), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["settings"]["model"] == "user:vit"  # the model id of the weights file, vit.safetensors
    assert (out_dir / "result.json").is_file()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-classes", "--model-file needs --classes FILE"),
        ("both", "Give either --model or --model-file, not both"),
        ("arch-alone", "give its file with --model-file PATH"),
        ("bad-mean", "--mean takes three numbers R,G,B"),
        ("bad-std", "--std values must be greater than 0"),
        ("bad-size", "--input-size takes a whole number"),
        ("missing-file", "does not exist"),
        ("unknown-arch", "timm has no architecture 'not_a_net'"),
        ("onnx-with-arch", "ONNX file carries its own architecture"),
        ("external-data", "outside the file"),
        ("custom-domain", "outside the standard ONNX set"),
        ("wrong-classes", "does not match the architecture"),
    ],
)
def test_bad_model_file_input_exits_2_with_a_message(capsys, files, tmp_path: Path, case, message) -> None:
    model, classes = str(files["vit"]), str(files["classes"])
    arch = ["--arch", f"timm:{TINY_VIT}"]
    argv = {
        "no-classes": ["--model-file", model, *arch],
        "both": ["--model", "digits-standard", "--model-file", model, *arch, "--classes", classes],
        "arch-alone": [*arch, "--classes", classes],
        "bad-mean": ["--model-file", model, *arch, "--classes", classes, "--mean", "0.5,0.5"],
        "bad-std": ["--model-file", model, *arch, "--classes", classes, "--std", "0.5,0,0.5"],
        "bad-size": ["--model-file", model, *arch, "--classes", classes, "--input-size", "big"],
        "missing-file": ["--model-file", str(tmp_path / "nope.pt"), *arch, "--classes", classes],
        "unknown-arch": ["--model-file", model, "--arch", "timm:not_a_net", "--classes", classes],
        "onnx-with-arch": ["--model-file", str(files["onnx"]), "--arch", "resnet18", "--classes", classes],
        "external-data": ["--model-file", str(hostile_onnx("external-data", tmp_path)), "--classes", classes],
        "custom-domain": ["--model-file", str(hostile_onnx("custom-domain", tmp_path)), "--classes", classes],
        "wrong-classes": ["--model-file", model, "--arch", f"timm:{TINY_CNN}", "--classes", classes],
    }[case]
    code, out, err = run(capsys, "classify", str(IMAGE), *argv)
    assert code == 2 and not out
    assert message in err and "Traceback" not in err, err


def test_a_required_model_takes_either_option(capsys, files) -> None:
    import argparse

    from advexp_core.cli.common import UsageError, add_model_argument, load_model_or_usage_error

    parser = argparse.ArgumentParser()
    add_model_argument(parser, required=True)
    with pytest.raises(UsageError, match="--model ID .* or --model-file PATH"):
        load_model_or_usage_error(parser.parse_args([]).model)
    argv = ["--classes", str(files["classes"]), "--model-file", str(files["onnx"])]
    model = load_model_or_usage_error(parser.parse_args(argv).model)
    assert model.class_names == ("normal", "benign", "malignant") and model.card is not None


def test_audit_an_onnx_file_on_images_with_a_marked_artifact(capsys, files, tmp_path: Path) -> None:
    from PIL import Image

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for name in ("a.png", "b.png"):
        Image.open(IMAGE).convert("RGB").resize((48, 48)).save(images / name)
        mask = Image.new("L", (48, 48))
        mask.paste(255, (4, 36, 44, 44))  # a strip along the bottom
        mask.save(masks / name)
    argv = ["--model-file", str(files["onnx"]), "--classes", str(files["classes"])]
    argv += ["--images", str(images), "--masks", str(masks), "--methods", "gradient", "--no-adversarial"]
    code, out, err = run(capsys, "audit", *argv, "--out", str(tmp_path / "out"), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == "user:cnn" and report["n_images"] == 2
    rows = (tmp_path / "out" / "images.jsonl").read_text().splitlines()
    assert set(report["explainers"]) == {"gradient"} and len(rows) == 2
