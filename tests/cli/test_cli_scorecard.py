"""`advexp scorecard` in-process: files and JSON on a tiny 64-px network, exit 2 on bad arguments."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from advexp_core.cli import main
from advexp_core.cli import scorecard as scorecard_cli
from advexp_core.data.imaging import Preprocess
from advexp_core.networks.registry import LoadedModel
from tests.models import tiny_conv


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def tiny_lesion_model(monkeypatch: pytest.MonkeyPatch) -> LoadedModel:
    """An untrained two-class conv net on 64-px images, served for any --model."""
    net = tiny_conv(classes=2)
    model = LoadedModel(
        "tiny-lesions", net, ("benign", "malignant"), (64, 64), net.features, False, "test",  # type: ignore[arg-type]
        Preprocess((64, 64)), lock=threading.RLock(),
    )  # fmt: skip
    monkeypatch.setattr(scorecard_cli, "load_model_or_usage_error", lambda _id: model)
    return model


def test_writes_result_json_and_figure(tmp_path: Path, capsys, tiny_lesion_model) -> None:
    out = tmp_path / "sc"
    argv = [
        "scorecard",
        "--model",
        "x",
        "--dataset",
        "lesions",
        "--n-images",
        "3",
        "--methods",
        "gradient,gradcam",
    ]
    code, stdout, err = run_cli(capsys, *argv, "--out", str(out), "--json")
    assert code == 0, err
    printed = json.loads(stdout)
    stored = json.loads((out / "result.json").read_text())
    assert printed == stored and (out / "scorecard.png").read_bytes()[:4] == b"\x89PNG"
    assert stored["model"] == "tiny-lesions" and stored["split"] == "test" and stored["n_images"] == 3
    assert stored["image_indices"] == [0, 1, 2] and set(stored["explainers"]) == {"gradient", "gradcam"}
    assert stored["accuracy_images"] == 1000 and set(stored["chance"]) == {"evidence", "shortcut"}
    assert stored["top_k_pixels"] == {"2.5": 103, "5": 205, "10": 410, "20": 820}  # of 64 x 64
    shares = stored["explainers"]["gradient"]["top_k_evidence"]
    assert list(shares) == ["2.5", "5", "10", "20"] and all(0 <= v <= 1 for v in shares.values())
    grades = stored["reliance_grades"]  # a lesions network is graded against the control
    assert grades["control"] == "lesions-unbiased" and grades["model"] == "tiny-lesions"
    assert set(grades["explainers"]) == {"gradient", "gradcam"}
    graded = {"misleading_rate", "shortcut_detection_auroc", "effect_spearman"}
    assert all(graded | {f"{k}_ci" for k in graded} <= set(g) for g in grades["explainers"].values())
    # Every share and rate with its interval beside it, the per-image numbers kept.
    gradient = stored["explainers"]["gradient"]
    assert {"evidence_share_ci", "pointing_game_ci", "top_k_evidence_ci", "images"} <= set(gradient)
    assert len(gradient["images"]["evidence_share"]) == 3
    assert "flipped_ci" in stored["attack"] and "accuracy_ci" in stored
    low, high = stored["accuracy_ci"]
    assert low <= stored["accuracy"] <= high
    code, stdout, _ = run_cli(
        capsys, *argv[:-2], "--methods", "gradient", "--top-k", "1,50", "--out", str(out)
    )
    assert code == 0 and "evidence" in stdout and "wrote" in stdout  # the text summary
    assert stdout.index("misleading") < stdout.index("chance:")  # the grades come first
    stored = json.loads((out / "result.json").read_text())
    accuracy = stored["accuracy_ci"]
    assert f"accuracy {stored['accuracy']:.3f} [{accuracy[0]:.3f}, {accuracy[1]:.3f}]" in stdout
    pointing = stored["explainers"]["gradient"]["pointing_game_ci"]
    assert f"[{pointing[0]:.2f}, {pointing[1]:.2f}]" in stdout  # a rate printed with its interval
    assert "95 % intervals" in stdout
    assert "k = 1 / 50 %" in stdout
    stored = json.loads((out / "result.json").read_text())
    assert stored["top_k_pixels"] == {"1": 41, "50": 2048}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "lesions", "--split", "validation"], "no split 'validation'"),
        (["--dataset", "lesions", "--n-images", "1001"], "larger than"),
        (["--dataset", "blockdigits", "--n-images", "2"], "classes"),  # 2 classes vs 10
        (["--dataset", "cifar10"], "masks"),
        (["--dataset", "lesions", "--methods", "gradient,nonsense"], "nonsense"),
        (["--dataset", "lesions", "--n-images", "0"], "--n-images: the number of images"),
        (["--dataset", "lesions", "--n-images", "1001"], "--n-images: The number of images (1001)"),
        (["--dataset", "lesions", "--top-k", "5,150"], "--top-k: top-k must be"),
        (["--dataset", "lesions", "--top-k", "five"], "--top-k"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(
    tmp_path: Path, capsys, tiny_lesion_model, extra: list[str], message: str
) -> None:
    out = tmp_path / "sc"
    code, _, err = run_cli(capsys, "scorecard", "--model", "x", *extra, "--out", str(out))
    assert code == 2 and message in err, err
    assert "Traceback" not in err and not out.exists()


def test_a_registered_model_with_other_classes_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sc"
    code, _, err = run_cli(
        capsys, "scorecard", "--model", "digits-standard", "--dataset", "lesions", "--out", str(out)
    )
    assert code == 2 and "10 classes" in err and not out.exists()
