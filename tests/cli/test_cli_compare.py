"""`advexp compare` in-process on the paper's standard CIFAR-10 network."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from torch import nn

from advexp_core.cli import main
from advexp_core.data.imaging import decode_image

MODEL = "woods2019-cifar10-standard"
MAP_KEYS = set(
    "spearman topk_intersection ssim center_shift_px delta_energy_in_topk delta_energy_in_attacked_topk".split()
)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def compare_run(woods_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """One compare run and one attack run with the same settings (module-scoped: the costly part)."""
    tmp = tmp_path_factory.mktemp("compare")
    image = str(woods_dir / "cifar10_test_0.png")
    common = ["--model", MODEL, "--eps", "2/255", "--steps", "5", "--seed", "3", "--json"]
    assert main(["compare", image, *common, "--methods", "gradcam,gradient", "--out", str(tmp / "c")]) == 0
    assert main(["attack", image, *common, "--out", str(tmp / "a")]) == 0
    compare = json.loads((tmp / "c" / "result.json").read_text())
    attack = json.loads((tmp / "a" / "result.json").read_text())
    return tmp / "c", compare, attack


def test_compare_writes_the_three_files(compare_run: tuple[Path, dict, dict]) -> None:
    out, result, _ = compare_run
    assert sorted(p.name for p in out.iterdir()) == [
        ".advexp-run.json",
        "adversarial.png",
        "figure.png",
        "result.json",
    ]
    adv = decode_image((out / "adversarial.png").read_bytes())
    assert adv.shape == (3, 32, 32)
    figure = decode_image((out / "figure.png").read_bytes())
    assert figure.shape[1] > 200 and figure.shape[2] > 200
    assert not [p for p in out.iterdir() if p.name.startswith(".advexp-partial")]  # no scratch folders left


def test_result_holds_everything_attack_writes_plus_maps(compare_run: tuple[Path, dict, dict]) -> None:
    _, result, attack = compare_run
    for key in ("settings", "versions", "predictions_before", "predictions_after", "png_predictions_after"):
        assert key in result
    assert set(attack) - {"command", "files", "out"} <= set(result)
    for key in (
        "predictions_before",
        "predictions_after",
        "png_predictions_after",
        "perturbation",
        "success",
    ):
        assert result[key] == attack[key]  # the same deterministic attack
    for key, value in attack["settings"].items():
        assert result["settings"][key] == value or key == "image"
    assert result["settings"]["seed"] == 3 and result["settings"]["saliency"]["methods"] == [
        "gradcam",
        "gradient",
    ]
    assert set(result["perturbation"]) == {"linf_255", "l2", "rms", "psnr", "ssim"}
    assert result["perturbation"]["linf_255"] <= 2.0 + 1e-4


def test_map_metrics_are_sane(compare_run: tuple[Path, dict, dict]) -> None:
    _, result, _ = compare_run
    assert set(result["maps"]) == {"gradcam", "gradient"}
    for method, values in result["maps"].items():
        assert set(values) == MAP_KEYS, method
        assert -1 <= values["spearman"] <= 1
        assert 0 <= values["topk_intersection"] <= 1 and 0 <= values["delta_energy_in_topk"] <= 1
        assert values["center_shift_px"] >= 0
        assert set(result["readings"]["maps"][method]) == MAP_KEYS | {"verdict", "outcome"}
        verdict = result["readings"]["maps"][method]["verdict"]
        assert f"rank correlation {values['spearman']:.2f}" in verdict  # the sentence quotes this run
        classes = result["saliency"][method]["classes"]
        assert classes["clean"] == result["predictions_before"][0]["index"]
        assert classes["attacked"] == result["predictions_after"][0]["index"]
        scale = result["saliency"][method]["colour_scale"]
        assert scale["clean"] == scale["attacked"]  # one shared scale by default


def test_json_printed_equals_result_file(
    woods_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = str(woods_dir / "cifar10_test_9.png")
    code, out, err = run_cli(
        capsys, "compare", image, "--model", MODEL, "--method", "fgsm", "--methods", "gradient",
        "--json", "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 0 and err == ""
    assert json.loads(out) == json.loads((tmp_path / "o" / "result.json").read_text())
    code, out, _ = run_cli(
        capsys, "compare", image, "--model", MODEL, "--method", "fgsm", "--methods", "gradient",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert code == 0 and "gradient: Spearman" in out  # human summary; existing folder replaced


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "gradcam,guided-backprop"], "guided-backprop"),
        (["--eps", "-1"], "eps"),
        (["--steps", "0"], "steps"),
        (["--target", "unicorn"], "unicorn"),
        (["--topk", "1.5"], "topk"),
    ],
)
def test_bad_input_exits_2_and_leaves_nothing(
    woods_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys, "compare", str(woods_dir / "cifar10_test_0.png"), "--model", MODEL, *extra, "--out", str(out)
    )
    assert code == 2 and message in err and stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_unreadable_image_exits_2(
    woods_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, _, err = run_cli(capsys, "compare", str(bad), "--model", MODEL, "--out", str(tmp_path / "o"))
    assert code == 2 and "bad.png" in err
    assert not (tmp_path / "o").exists()


def test_gradcam_on_a_model_without_convolutions_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, woods_dir: Path
) -> None:
    from advexp_core.cli import compare
    from advexp_core.data.imaging import Preprocess
    from advexp_core.networks.registry import LoadedModel

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval().requires_grad_(False)
    loaded = LoadedModel(
        "mlp", mlp, tuple("abcdefghij"), (32, 32), None, False, "test", Preprocess((32, 32)),  # type: ignore[arg-type]
        lock=threading.RLock(),
    )  # fmt: skip
    monkeypatch.setattr(compare, "load_model_or_usage_error", lambda _id: loaded)
    image = str(woods_dir / "cifar10_test_0.png")
    code, _, err = run_cli(capsys, "compare", image, "--methods", "gradcam", "--out", str(tmp_path / "o"))
    assert code == 2 and "Grad-CAM" in err
    assert not (tmp_path / "o").exists()
    code, _, _ = run_cli(
        capsys, "compare", image, "--methods", "gradient", "--steps", "2", "--out", str(tmp_path / "o")
    )
    assert code == 0
