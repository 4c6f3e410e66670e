"""`advexp audit` in-process on lesion images written as files, read by a hand-made network that reads
only the ruler: every ruler removed flips its decision, every ruler pasted on flips the others; bad
input exits 2 with a message and leaves no output folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from advexp_core.base.statistics import wilson_interval
from advexp_core.cli import main
from tests.core.test_reliance import _band

N = 6


class SoftRulerReader(nn.Module):
    """Logits (0, 100·(soft yellow share of the ruler band − 0.05)): malignant exactly when a ruler is
    there (`tests.core.test_reliance.RulerReader` with a sigmoid for the threshold, so maps exist)."""

    def forward(self, x: Tensor) -> Tensor:
        yellow = torch.sigmoid(200.0 * ((x[:, 1] - x[:, 2]) - 0.35))
        z = 100.0 * ((yellow * _band()).flatten(1).sum(1) / float(_band().sum()) - 0.05)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _mask_png(mask: np.ndarray, path: Path) -> None:
    Image.fromarray((mask * 255).astype(np.uint8)).save(path)


def test_writes_the_report_the_table_and_the_html(folders: dict[str, Path], capsys) -> None:
    f = folders
    code, stdout, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"]),
        "--labels", str(f["labels"]), "--add-from", str(f["source"]), "--add-mask", str(f["source_mask"]),
        "--methods", "gradient", "--no-adversarial", "--out", str(f["out"]), "--json",
    )  # fmt: skip
    assert code == 0, err
    printed, stored = json.loads(stdout), json.loads((f["out"] / "result.json").read_text())
    assert printed == stored and stored["n_images"] == N and stored["model"] == "hand-made"
    assert {"model", "n_images", "removed", "added", "explainers", "skipped", "timing"} <= set(stored)
    assert stored["n_skipped"] == 0 and "images" not in stored  # the rows are in images.jsonl
    lines = (f["out"] / "images.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == [f"lesion{k}.png" for k in range(N)]
    removed, added = stored["removed"], stored["added"]
    assert removed["n_images"] + added["n_images"] == N
    # The network reads nothing but the ruler: removing it flips every decision, pasting it too.
    assert removed["decisions_changed"] == 1.0 and added["decisions_changed"] == 1.0
    assert {"decisions_changed", "mean_margin_effect", "accuracy_before", "accuracy_after"} <= set(removed)
    for summary in (removed, added):  # every rate with its Wilson interval beside it
        n = summary["n_images"]
        assert summary["decisions_changed_ci"] == list(wilson_interval(n, n))
        assert {"accuracy_before_ci", "accuracy_after_ci", "mean_margin_effect_ci"} <= set(summary)
    gradient = stored["explainers"]["gradient"]
    assert set(gradient) >= {"artifact_share", "misleading_rate", "misleading_rate_ci", "effect_spearman"}
    # Few images, every one changed: relies (the interval lies above 5%), "most" only if it lies above half.
    assert stored["verdict"]["outcome"] == "relies" and "95% interval" in stored["verdict"]["verdict"]
    assert stored["settings"]["tolerance"] == 0.05
    rows = list(csv.DictReader((f["out"] / "images.csv").open()))
    assert [r["name"] for r in rows] == [f"lesion{k}.png" for k in range(N)]
    html = (f["out"] / "report.html").read_text()
    assert "data:image/png;base64," in html and stored["weights_sha256"] in html


def test_summary_without_json(folders: dict[str, Path], capsys) -> None:
    f = folders
    code, stdout, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"]),
        "--methods", "gradient", "--no-adversarial", "--out", str(f["out"]),
    )  # fmt: skip
    assert code == 0, err
    assert "Removing the artifact changed 100% of decisions" in stdout and "report.html" in stdout
    assert "images.jsonl" in stdout
    assert "decisions changed (95% interval" in stdout


def test_the_tolerance_option_decides_the_verdict(folders: dict[str, Path], capsys) -> None:
    f = folders
    base = ["audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"])]
    base += ["--methods", "--no-adversarial", "--json"]
    code, stdout, err = run_cli(capsys, *base, "--tolerance", "0.9", "--out", str(f["out"]))
    assert code == 0, err
    result = json.loads(stdout)
    n = result["removed"]["n_images"]
    low = wilson_interval(n, n)[0]
    assert result["settings"]["tolerance"] == 0.9
    assert result["verdict"]["outcome"] == ("relies" if low > 0.9 else "inconclusive")
    code, _, err = run_cli(capsys, *base, "--tolerance", "1.5", "--out", str(f["rulers"] / "other"))
    assert code == 2 and "tolerance" in err


def test_bad_input_exits_2_and_writes_nothing(folders: dict[str, Path], capsys, tmp_path: Path) -> None:
    f = folders
    base = ["audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"])]
    base += ["--out", str(f["out"])]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(empty), "--masks", str(f["masks"]), "--out", str(f["out"])
    )  # fmt: skip
    assert code == 2 and "no images" in err
    code, _, err = run_cli(capsys, *base, "--add-from", str(f["source"]))
    assert code == 2 and "go together" in err
    code, _, err = run_cli(capsys, *base, "--methods", "astrology")
    assert code == 2 and "unknown" in err
    code, _, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--out", str(f["out"])
    )
    assert code == 2 and "Mark the artifact" in err
    code, _, err = run_cli(capsys, *base, "--boxes", str(f["labels"]))
    assert code == 2 and "not allowed with argument --masks" in err
    for flag in ("--max-images", "--sample"):
        code, _, err = run_cli(capsys, *base, flag, "0")
        assert code == 2 and "positive number" in err
    assert not f["out"].exists()


def test_images_that_cannot_be_audited_are_skipped_named_and_counted(
    folders: dict[str, Path], capsys
) -> None:
    f = folders
    wrong = sorted(f["masks"].iterdir())
    _mask_png(np.ones((10, 10)), wrong[0])  # a mask of another size
    _mask_png(np.zeros((64, 64)), wrong[1])  # an empty mask
    (f["images"] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 40)  # cut off
    Image.new("RGB", (32, 32)).save(f["images"] / "small.png")  # another size: audited, fitted
    code, stdout, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"]),
        "--methods", "gradient", "--no-adversarial", "--batch-size", "3", "--out", str(f["out"]), "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(stdout)
    reasons = {s["name"]: s["reason"] for s in result["skipped"]}
    assert result["n_skipped"] == 3 and result["n_images"] == N + 2 - 3
    assert "the mask is 10×10 but the image is 64×64" in reasons[wrong[0].name]
    assert "marks no pixel" in reasons[wrong[1].name]
    assert "broken.png" in reasons and "small.png" not in reasons
    html = (f["out"] / "report.html").read_text()
    assert "Left out" in html and "marks no pixel" in html


def _boxes(f: dict[str, Path], path: Path) -> None:
    """The rulers' masks as boxes (their bounding boxes) in a CSV."""
    lines = ["name,x0,y0,x1,y1"]
    for mask in sorted(f["masks"].iterdir()):
        m = np.array(Image.open(mask)) > 0
        ys, xs = np.nonzero(m)
        lines.append(f"{mask.name},{xs.min()},{ys.min()},{xs.max() + 1},{ys.max() + 1}")
    path.write_text("\n".join(lines) + "\n")


def test_boxes_mark_the_artifact_like_masks(folders: dict[str, Path], capsys, tmp_path: Path) -> None:
    f = folders
    boxes = tmp_path / "boxes.csv"
    _boxes(f, boxes)
    code, stdout, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--boxes", str(boxes),
        "--methods", "gradient", "--no-adversarial", "--out", str(f["out"]), "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(stdout)
    n_rulers = len(list(f["masks"].iterdir()))
    assert result["removed"]["n_images"] == n_rulers and result["removed"]["decisions_changed"] == 1.0
    boxes.write_text("name,x0,y0,x1,y1\nlesion0.png,0,0,900,10\nghost.png,1,1,2,2\n")
    code, stdout, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--boxes", str(boxes),
        "--methods", "--no-adversarial", "--out", str(tmp_path / "b"), "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(stdout)
    assert "reaches outside the image (64×64 px)" in result["skipped"][0]["reason"]
    assert "ghost" in err and "match no image" in err
    boxes.write_text("lesion0.png,5,5,2,9\n")
    code, _, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--boxes", str(boxes),
        "--out", str(tmp_path / "c"),
    )  # fmt: skip
    assert code == 2 and "line 1" in err and "x0 < x1" in err


def test_max_images_and_a_seeded_sample(folders: dict[str, Path], capsys, tmp_path: Path) -> None:
    f = folders
    base = ["audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"])]
    base += ["--methods", "--no-adversarial", "--json"]
    code, stdout, _ = run_cli(capsys, *base, "--max-images", "2", "--out", str(tmp_path / "a"))
    names = [json.loads(x)["name"] for x in (tmp_path / "a" / "images.jsonl").read_text().splitlines()]
    assert code == 0 and names == ["lesion0.png", "lesion1.png"]
    picked = []
    for out in ("b", "c"):
        code, stdout, _ = run_cli(capsys, *base, "--sample", "3", "--seed", "7", "--out", str(tmp_path / out))
        rows = (tmp_path / out / "images.jsonl").read_text().splitlines()
        picked.append([json.loads(x)["name"] for x in rows])
    assert code == 0 and picked[0] == picked[1] and len(picked[0]) == 3 and picked[0] == sorted(picked[0])


def test_progress_goes_to_stderr_with_its_rate_and_time_left(folders: dict[str, Path], capsys) -> None:
    f = folders
    code, stdout, err = run_cli(
        capsys, "audit", "--model", "x", "--images", str(f["images"]), "--masks", str(f["masks"]),
        "--methods", "gradient", "--no-adversarial", "--batch-size", "2", "--out", str(f["out"]), "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(stdout)["n_images"] == N  # stdout holds the JSON alone
    assert f"{N}/{N}" in err and "image/s" in err and "<" in err  # tqdm: done/total [elapsed<left, rate]
