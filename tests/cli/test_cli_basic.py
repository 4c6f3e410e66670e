"""`advexp models` and `advexp classify`: JSON contract, installed entry point, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from advexp_core.cli import COMMANDS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_classify_json_on_a_paper_network(capsys, woods_dir: Path) -> None:
    code, out, err = run_cli(
        capsys,
        "classify",
        str(woods_dir / "cifar10_test_9.png"),
        "--model",
        "woods2019-cifar10-standard",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["model"] == "woods2019-cifar10-standard"
    preds = result["predictions"]
    assert preds[0]["label"] == "automobile" and preds[0]["index"] == 1
    probs = [p["probability"] for p in preds]
    assert probs == sorted(probs, reverse=True) and len(preds) == 5


def test_classify_default_model_as_a_subprocess(gallery_dir: Path) -> None:
    """The installed way: `python -m advexp_core classify <gallery cat> --model … --json`."""
    proc = subprocess.run(
        [sys.executable, "-m", "advexp_core", "classify", str(gallery_dir / "cat.jpg"),
         "--model", "efficientnet-lite0-imagenet", "--top", "3", "--json"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["predictions"][0]["label"] in {"tiger cat", "tabby", "Egyptian cat"}
    assert len(result["predictions"]) == 3


def test_models_json_lists_every_entry(capsys) -> None:
    code, out, _ = run_cli(capsys, "models", "--json")
    assert code == 0
    ids = {m["model_id"] for m in json.loads(out)["models"]}
    assert {"efficientnet-lite0-imagenet", "woods2019-cifar10-robust", "torchvision-resnet50"} <= ids


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["classify", "missing.png"], "not found"),
        (["classify", "pyproject.toml"], "not an image"),
        (["classify", "gallery/cat.jpg", "--model", "nope"], "Unknown model"),
        (["classify", "gallery/cat.jpg", "--top", "0"], "--top"),
    ],
)
def test_bad_input_exits_2_with_a_message(capsys, monkeypatch, argv: list[str], needle: str) -> None:
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert needle in err and "Traceback" not in err


def test_every_command_is_registered() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
