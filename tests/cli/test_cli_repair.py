"""``advexp repair``: the repaired weights in the format the network came in, with their card, and a
clear refusal (exit 2) of what a repair cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advexp_core.data.datasets import load_lesions
from advexp_core.data.imaging import encode_png
from advexp_core.networks.checkpoints import load_weights_file, sha256_file
from advexp_core.networks.registry import load_model, load_user_model
from advexp_core.networks.zoo import CHECKPOINTS_DIR
from tests.cli.test_cli_audit import _mask_png, run_cli

N = 24
STANDARD = CHECKPOINTS_DIR / "lesions-standard.pt"


@pytest.fixture()
def lesions(tmp_path: Path) -> dict[str, Path]:
    """The first N lesion test images with their ruler masks and labels (both classes carry rulers)."""
    data = load_lesions("test", with_masks=True)
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    rulers = data.masks["shortcut"][:N].flatten(1).any(1)
    for k in range(N):
        (images / f"lesion{k:02d}.png").write_bytes(encode_png(data.images[k]))
        if rulers[k]:
            _mask_png(data.masks["shortcut"][k].numpy(), masks / f"lesion{k:02d}.png")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "name,class\n" + "".join(f"lesion{k:02d}.png,{int(data.labels[k])}\n" for k in range(N))
    )
    classes = tmp_path / "classes.txt"
    classes.write_text("benign\nmalignant\n")
    return {"images": images, "masks": masks, "labels": labels, "classes": classes, "out": tmp_path / "out",
            "root": tmp_path, "rulers": rulers, "y": data.labels[:N]}  # fmt: skip


def _folders(f: dict[str, Path]) -> list[str]:
    return ["--images", str(f["images"]), "--masks", str(f["masks"]), "--labels", str(f["labels"])]


def test_repairs_a_project_network_into_an_advexp_checkpoint_that_loads(lesions, capsys) -> None:
    f = lesions
    code, stdout, err = run_cli(
        capsys, "repair", "--model", str(STANDARD), *_folders(f), "--method", "augment", "--epochs", "1",
        "--held-out", "0.25", "--seed", "3", "--out", str(f["out"]), "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    written = f["out"] / "lesions-standard-repaired.pt"
    card = json.loads((f["out"] / "card.json").read_text())
    assert card["sha256"] == sha256_file(written) and card["repaired_from"]["sha256"] == sha256_file(STANDARD)
    assert card["method"] == "augment" and card["format"] == "advexp" and card["data"]["held_out"] > 0
    assert card["load_with"] == f"--model {written}"
    repaired = load_model(str(written), device="cpu")  # what --model PATH does
    assert repaired.class_names == ("benign", "malignant")
    assert report["split"]["seed"] == 3 and report["intervention"] == "inpainting and pasting"
    for when in ("before", "after"):
        m = report[when]
        assert m["removed"]["n_images"] > 0 and m["added"]["n_images"] > 0
        assert m["removed"]["outcome"] in ("relies", "does-not-rely", "inconclusive")
        assert len(m["accuracy_ci"]["artifact_removed"]) == 2 and m["attack"]["n_correct"] >= 0
    html = (f["out"] / "report.html").read_text()
    assert "Repair of" in html and "decisions changed when the artifact is removed" in html
    assert report["settings"]["attack"]["steps"] == 10 and report["settings"]["attack"]["eps_255"] == 2


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_users_weights_come_back_in_their_own_format(lesions, capsys, suffix: str) -> None:
    import torchvision.models as tvm

    from advexp_core.networks.checkpoints import save_checkpoint

    f = lesions
    torch.manual_seed(0)
    state = tvm.get_model("mobilenet_v3_small", weights=None, num_classes=2).state_dict()
    weights = f["root"] / f"mine{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    else:
        save_checkpoint(weights, state)
    own = [
        "--model-file",
        str(weights),
        "--arch",
        "mobilenet_v3_small",
        "--classes",
        str(f["classes"]),
        "--input-size",
        "64",
    ]
    code, stdout, err = run_cli(
        capsys, "repair", *own, *_folders(f), "--method", "last-layer", "--epochs", "1", "--out", str(f["out"]), "--json",
        "--quiet",
    )  # fmt: skip
    assert code == 0, err
    written = f["out"] / f"mine-repaired{suffix}"
    card = json.loads((f["out"] / "card.json").read_text())
    assert json.loads(stdout)["files"]["weights"] == written.name
    assert card["format"] == ("safetensors" if suffix == ".safetensors" else "state_dict")
    assert card["trained"] == "net.classifier.3" and card["load_with"].startswith(
        f"--model-file {written} --arch"
    )
    loaded = load_weights_file(written)
    changed = {k for k, v in loaded.items() if not torch.equal(v, state[k])}
    assert set(loaded) == set(state) and changed == {"classifier.3.weight", "classifier.3.bias"}
    model = load_user_model(
        "mobilenet_v3_small", written, ["benign", "malignant"], input_size=64, device="cpu"
    )
    assert model.num_classes == 2


def _refusal(capsys, *argv: str) -> str:
    code, _, err = run_cli(capsys, "repair", *argv)
    assert code == 2, err
    return err


def test_no_masks_at_all_is_refused(lesions, capsys) -> None:
    f = lesions
    empty = f["root"] / "no-masks"
    empty.mkdir()
    argv = ["--images", str(f["images"]), "--masks", str(empty), "--labels", str(f["labels"])]
    err = _refusal(capsys, "--model", str(STANDARD), *argv, "--method", "augment", "--out", str(f["out"]))
    assert "no mask PNG is named like an image" in err and not f["out"].exists()


def test_masks_of_one_class_only_are_refused(lesions, capsys) -> None:
    f = lesions
    for k in range(N):
        if int(f["y"][k]) == 0:
            (f["masks"] / f"lesion{k:02d}.png").unlink(missing_ok=True)
    err = _refusal(capsys, "--model", str(STANDARD), *_folders(f), "--method", "rrr", "--out", str(f["out"]))
    assert "--masks: the artifact is marked only on images of class 'malignant'" in err


def test_labels_missing_for_some_images_are_refused(lesions, capsys) -> None:
    f = lesions
    lines = f["labels"].read_text().splitlines()
    f["labels"].write_text("\n".join(lines[:-2]) + "\n")
    err = _refusal(
        capsys, "--model", str(STANDARD), *_folders(f), "--method", "augment", "--out", str(f["out"])
    )
    assert "--labels: no class for lesion22.png, lesion23.png" in err


def test_an_onnx_model_is_refused_with_what_to_bring_instead(lesions, capsys) -> None:
    f = lesions
    onnx = f["root"] / "model.onnx"
    onnx.write_bytes(b"not read")
    own = ["--model-file", str(onnx), "--classes", str(f["classes"])]
    err = _refusal(capsys, *own, *_folders(f), "--method", "augment", "--out", str(f["out"]))
    assert "is an ONNX model, which cannot be fine-tuned here. Export its weights" in err


def test_incomplete_or_mixed_data_options_are_refused(lesions, capsys) -> None:
    f = lesions
    argv = ["--model", str(STANDARD), "--method", "augment", "--out", str(f["out"])]
    assert "--images DIR --masks DIR --labels CSV together" in _refusal(
        capsys, *argv, "--images", str(f["images"])
    )
    assert "brings its own images" in _refusal(
        capsys, *argv, "--dataset", "lesions", "--images", str(f["images"])
    )
    assert "--dataset lesions: digits-standard" in _refusal(
        capsys,
        "--model",
        "digits-standard",
        "--dataset",
        "lesions",
        "--method",
        "augment",
        "--out",
        str(f["out"]),
    )
    assert "--held-out" in _refusal(capsys, *argv, *_folders(f), "--held-out", "1.5")


def test_an_out_folder_with_the_users_files_is_refused_before_any_work(lesions, capsys) -> None:
    f = lesions
    f["out"].mkdir()
    (f["out"] / "notes.txt").write_text("mine")
    err = _refusal(
        capsys, "--model", str(STANDARD), *_folders(f), "--method", "augment", "--out", str(f["out"])
    )
    assert "already holds files that advexp did not write" in err
    assert (f["out"] / "notes.txt").read_text() == "mine"
