"""`advexp sanity` in-process on this project's digits networks; `compare --methods lime` accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advexp_core.cli import main
from advexp_core.data.datasets import load_dataset
from advexp_core.data.imaging import encode_png

MODEL = "digits-standard"


@pytest.fixture(scope="module")
def digit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("digit") / "digit_3.png"
    path.write_bytes(encode_png(load_dataset("digits", "test")[3][0]))
    return path


@pytest.fixture(scope="module")
def sanity_run(digit: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    out = tmp_path_factory.mktemp("sanity") / "s"
    argv = ["sanity", str(digit), "--model", MODEL, "--methods", "gradient,gradcam,occlusion"]
    assert main([*argv, "--seed", "2", "--max-layers", "3", "--out", str(out), "--json"]) == 0
    return out, json.loads((out / "sanity.json").read_text()), json.loads((out / "sanity.json").read_text())


def test_sanity_writes_the_json_and_the_figure(sanity_run: tuple[Path, dict, dict]) -> None:
    out, result, _ = sanity_run
    assert sorted(p.name for p in out.iterdir()) == [".advexp-run.json", "sanity.json", "sanity.png"]
    assert (out / "sanity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"model", "image", "methods", "seed"} <= set(result)
    assert result["model"] == MODEL and result["seed"] == 2 and result["image"].endswith("digit_3.png")
    assert set(result["methods"]) == {"gradient", "gradcam", "occlusion"}


def test_every_curve_starts_at_one_on_the_trained_network(sanity_run: tuple[Path, dict, dict]) -> None:
    _, result, _ = sanity_run
    for curve in result["methods"].values():
        assert curve["layers"][0] == "none" and len(curve["layers"]) == 1 + 3
        assert curve["spearman"][0] == 1.0 and curve["ssim"][0] == 1.0
        assert len(curve["spearman"]) == len(curve["ssim"]) == len(curve["layers"])
        assert curve["layers"][-1] == result["layers_all"][-1]  # the last point: everything randomised
    assert result["layers_measured"] == 3 and result["maps_computed"] == 3 * (1 + 3)
    assert result["reading"]


def test_digits_standard_gets_the_data_randomisation_section(sanity_run: tuple[Path, dict, dict]) -> None:
    _, result, _ = sanity_run
    data = result["data"]
    assert data is not None and data["partner"] == "digits-random-labels"
    for v in data["methods"].values():
        assert len(v["spearman"]) == data["images"] and -1.0 <= v["mean_spearman"] <= 1.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "guided-backprop"], "unknown or no saliency method guided-backprop"),
        (["--methods", ","], "none given"),
        (["--max-layers", "0"], "max_layers must be at least 1"),
        (["--max-layers", "many"], "positive integer or 'all'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    digit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "never"
    assert main(["sanity", str(digit), "--model", MODEL, *extra, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_compare_accepts_lime(digit: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    argv = ["compare", str(digit), "--model", MODEL, "--steps", "2", "--methods", "lime,gradient"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert set(result["maps"]) == {"lime", "gradient"}
