"""``advexp train`` and ``advexp ara`` end to end on tiny networks, their bad-input exits, and the
README results table (and curves figure) generated from checkpoints/manifest.json and its rho files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advexp_core.cli import main
from advexp_core.networks.checkpoints import save_checkpoint, sha256_file

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--widths", "4,4,4", "--num-blocks", "1,1,1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "net.pt"
    args = ["train", "--dataset", "digits", "--recipe", "robust", "--epochs", "1", "--out", str(out), *TINY]
    assert main([*args, "--json", "--release"]) == 0
    return out


def test_train_writes_a_loadable_checkpoint(trained: Path) -> None:
    out = trained
    from advexp_core.networks.checkpoints import load_checkpoint

    payload = load_checkpoint(out)
    assert payload["recipe"] == "robust" and payload["arch"]["activation"] == "hhrelu"
    assert payload["dataset"] == "digits" and payload["epoch"] == 1 and "optimizer" not in payload
    assert len(payload["metrics"]["history"]) == 1


def test_train_prints_json_with_the_numbers(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.pt"
    args = ["train", "--dataset", "digits", "--recipe", "standard", "--epochs", "1", "--out", str(out), *TINY]
    assert main([*args, "--json", "--batch-size", "256"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sha256"] == sha256_file(out) and result["recipe"] == "standard"
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["psi"] == 220.0
    # --out exists: refused, file untouched; --resume of a finished run changes nothing.
    digest = sha256_file(out)
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err and sha256_file(out) == digest
    assert main([*args, "--resume", "--batch-size", "256"]) == 0
    # Resuming with another architecture is refused.
    other = [a if a != "4,4,4" else "8,8,8" for a in args]
    assert main([*other, "--resume", "--batch-size", "256"]) == 2
    assert "other settings" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "digits", "--recipe", "magic"], "unknown recipe"),
        (["--dataset", "svhn", "--recipe", "standard"], "unknown dataset"),
        (["--dataset", "digits", "--recipe", "standard", "--widths", "4,x"], "comma-separated"),
        (["--dataset", "digits", "--recipe", "standard", "--epochs", "0"], "--epochs"),
    ],
)
def test_train_bad_input_exits_2(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.pt"
    assert main(["train", *argv, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_ara_writes_curve_and_result(trained: Path, tmp_path: Path, capsys) -> None:
    out = trained
    folder = tmp_path / "ara"
    argv = ["ara", "--model", str(out), "--dataset", "digits", "--n-images", "6", "--steps", "60"]
    assert main([*argv, "--size", "5", "--out", str(folder), "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((folder / "result.json").read_text())
    assert (folder / "curve.png").read_bytes()[:4] == b"\x89PNG"
    for key in (
        "attack_ara",
        "btr_ara",
        "accuracy",
        "n_images",
        "rho_star_attack",
        "rho_star_btr",
        "settings",
    ):
        assert key in saved and saved[key] == printed[key]
    assert saved["n_images"] == 6 and len(saved["rho_star_btr"]) == 6
    # Each area with its bootstrap interval over the 6 images (seed recorded), the accuracy with Wilson's.
    for key in ("attack_ara", "btr_ara", "accuracy"):
        low, high = saved[f"{key}_ci"]
        assert low <= saved[key] <= high, key
    assert saved["settings"]["bootstrap_seed"] == 0
    assert saved["settings"]["steps"] == 60 and saved["settings"]["size"] == 5.0
    assert saved["settings"]["momentum"] == 0.9 and saved["settings"]["model"] == str(out)
    # The authors' image subset by default, listed in order; the half-way rule is counted.
    from advexp_core.methods.ara import select_images

    assert saved["image_indices"] == select_images(359, 6) and saved["settings"]["sample"] == "reference"
    assert set(saved["late_minimum"]) == {"attack", "btr"}
    # rho.json: the per-image ρ* with the settings, the file kept beside a shipped checkpoint.
    rho = json.loads((folder / "rho.json").read_text())
    assert rho["format"] == "advexp-rho-1" and rho["model"] == saved["model"] and rho["dataset"] == "digits"
    assert rho["rho_attack"] == saved["rho_star_attack"] and rho["rho_btr"] == saved["rho_star_btr"]
    assert rho["image_indices"] == saved["image_indices"] and rho["num_classes"] == 10
    assert (rho["split"], rho["steps"], rho["size"], rho["momentum"]) == ("test", 60, 5.0, 0.9)
    from advexp_core.methods.ara import accuracy_robustness_area

    assert accuracy_robustness_area(torch.tensor(rho["rho_btr"]), num_classes=10) == pytest.approx(
        saved["btr_ara"]
    )


def test_ara_first_n_and_late_minima_warn_on_stderr(tmp_path: Path, capsys) -> None:
    # The shipped robust digits network with too small a size: three BTR minima are first found
    # after step 20 of 40 (steps 24, 28, 27) — kept, counted, and warned about.
    folder = tmp_path / "ara"
    argv = ["ara", "--model", "digits-robust", "--dataset", "digits", "--n-images", "4", "--sample", "first"]
    assert main([*argv, "--steps", "40", "--size", "0.3", "--out", str(folder), "--quiet"]) == 0
    saved = json.loads((folder / "result.json").read_text())
    assert saved["image_indices"] == [0, 1, 2, 3] and saved["reached_step_btr"] == [24, 11, 28, 27]
    assert saved["late_minimum"] == {
        "attack": {"count": 0, "indices": []},
        "btr": {"count": 3, "indices": [0, 2, 3]},
    }
    printed = capsys.readouterr()
    err = printed.err
    assert err.count("warning:") == 1 == len(saved["warnings"]) and "BTR boundary after step 20 of 40" in err
    # The reading quotes this run's areas against the stored standard digits network, and is printed.
    reading = saved["reading"]
    assert f"Attack ARA {saved['attack_ara']:.4f} and BTR ARA {saved['btr_ara']:.4f}" in reading["verdict"]
    assert "of digits-standard (359 digits test images, stored)" in reading["verdict"]
    assert reading["verdict"] in printed.out
    low, high = saved["attack_ara_ci"]
    assert f"Attack ARA {saved['attack_ara']:.5f} [{low:.5f}, {high:.5f}]" in printed.out  # the summary
    assert "the ratio's 95 % interval is [" in reading["verdict"]


def test_ara_bad_input_exits_2_and_writes_nothing(trained: Path, tmp_path: Path, capsys) -> None:
    out = trained
    folder = tmp_path / "ara"
    base = ["ara", "--model", str(out), "--out", str(folder), "--quiet"]
    assert main([*base, "--dataset", "digits", "--n-images", "100000"]) == 2
    assert "between 1 and 359" in capsys.readouterr().err
    assert main([*base, "--dataset", "digits", "--n-images", "8", "--steps", "1", "--size", "0.0001"]) == 2
    err = capsys.readouterr().err
    assert "never reached" in err and "more steps" in err and "(--steps, --size)" in err
    assert main([*base, "--dataset", "mnist", "--data-root", str(tmp_path / "empty")]) == 2
    assert "could not be downloaded" in capsys.readouterr().err
    assert not folder.exists()
    # A checkpoint of another architecture.
    alien = tmp_path / "alien.pt"
    save_checkpoint(alien, {"format": "advexp-checkpoint-1", "arch": {"name": "vgg"}, "state_dict": {}})
    assert main(["ara", "--model", str(alien), "--dataset", "digits", "--out", str(folder), "--quiet"]) == 2
    assert "architecture" in capsys.readouterr().err and not folder.exists()


# --------------------------------------------------------------------------- README results table


def _manifest(ratio: float) -> dict:
    nets = []
    for name, attack, btr in (("standard", 0.001, 0.002), ("robust", 0.001 * ratio, 0.004)):
        nets.append(
            {"id": f"digits-{name}", "recipe": name, "test_accuracy": 0.9, "attack_ara": attack, "btr_ara": btr,
             "psi": 220.0, "robust_additions": name == "robust", "train_seconds": 12.0, "command": f"advexp train --recipe {name}", "seed": 0}
        )  # fmt: skip
    return {"dataset": "digits", "ara_settings": {"n_images": 359, "steps": 450, "size": 20.0, "momentum": 0.9},
            "networks": nets}  # fmt: skip


def test_results_table_regenerates_the_readme_and_checks_staleness(tmp_path: Path) -> None:
    manifest, readme = tmp_path / "manifest.json", tmp_path / "README.md"
    manifest.write_text(json.dumps(_manifest(3.0)))
    readme.write_text("# T\n\nbefore\n<!-- results-table:start -->\nold\n<!-- results-table:end -->\nafter\n")
    script = [sys.executable, "-m", "scripts.results_table", "--manifest", str(manifest)]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*script, "--readme", str(readme), *extra], cwd=ROOT, capture_output=True, text=True
        )

    assert run("--check").returncode == 1
    assert run().returncode == 0
    text = readme.read_text()
    assert text.startswith("# T\n\nbefore\n") and text.endswith("after\n") and "old" not in text
    assert "| digits-robust |" in text and "3.00×" in text and "| 220 |" in text and "| — |" in text
    assert run("--check").returncode == 0
    manifest.write_text(json.dumps(_manifest(4.0)))
    assert run("--check").returncode == 1
    readme.write_text("no markers here\n")
    assert run().returncode == 2


def _with_rho_files(folder: Path) -> dict:
    """_manifest(3.0) with a stored rho file for each network, recorded by name and sha256."""
    manifest = _manifest(3.0)
    for k, net in enumerate(manifest["networks"]):
        rho = [0.01 * (k + 1) * (i + 1) / 5 for i in range(5)]
        record = {"format": "advexp-rho-1", "model": net["id"], "dataset": "digits", "split": "test",
                  "num_classes": 10, "image_indices": list(range(5)), "rho_attack": rho, "rho_btr": rho,
                  "steps": 450, "size": 20.0, "momentum": 0.9}  # fmt: skip
        (folder / f"{net['id']}.rho.json").write_text(json.dumps(record))
        net.update(rho_file=f"{net['id']}.rho.json", rho_sha256=sha256_file(folder / f"{net['id']}.rho.json"))
    return manifest


def test_results_table_draws_the_stored_curves_and_refuses_an_altered_file(tmp_path: Path) -> None:
    manifest, readme, figure = (
        tmp_path / "manifest.json",
        tmp_path / "README.md",
        tmp_path / "docs" / "curves.png",
    )
    manifest.write_text(json.dumps(_with_rho_files(tmp_path)))
    readme.write_text("<!-- results-table:start -->\n<!-- results-table:end -->\n")
    script = [sys.executable, "-m", "scripts.results_table", "--manifest", str(manifest)]
    argv = [*script, "--readme", str(readme), "--figure", str(figure)]
    assert subprocess.run(argv, cwd=ROOT, capture_output=True, text=True).returncode == 0
    text = readme.read_text()
    assert figure.read_bytes()[:4] == b"\x89PNG" and "](docs/curves.png)" in text
    assert "for 2 networks" in text and "digits-robust's Attack ARA" in text
    assert subprocess.run([*argv, "--check"], cwd=ROOT, capture_output=True, text=True).returncode == 0
    (tmp_path / "digits-robust.rho.json").write_text("{}")
    proc = subprocess.run([*argv, "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "digits-robust" in proc.stderr and "sha256" in proc.stderr


def test_ship_robustness_stores_rho_beside_the_manifest_and_checks_the_areas(tmp_path: Path) -> None:
    from advexp_core.experiments.shipped import load_rho

    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())
    manifest["ara_settings"].update(n_images=4, steps=20, size=2.0, sample="first")  # seconds, not minutes
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    script = [sys.executable, "-m", "research.ship_robustness", "--checkpoints", str(tmp_path)]
    argv = [*script, "--only", "digits-standard", "--work", str(tmp_path / "work")]
    first = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    # Other settings than the recorded ARA's: the areas differ, are updated and said so.
    assert first.returncode == 1 and "UPDATED" in first.stdout and "attack_ara" in first.stdout, first.stderr
    after = json.loads((tmp_path / "manifest.json").read_text())
    entry = after["networks"][0]
    assert entry["rho_file"] == "digits-standard.rho.json" and entry["rho_sha256"] == sha256_file(
        tmp_path / "digits-standard.rho.json"
    )
    assert "--n-images 4" in entry["rho_command"] and entry["rho_seconds"] > 0
    stored = load_rho(entry, tmp_path)
    assert len(stored.rho_attack) == 4 and stored.area("attack") == entry["attack_ara"]
    # The other entries keep their numbers; only their ratios to the (re-measured) standard move.
    for was, now in zip(manifest["networks"][1:], after["networks"][1:], strict=True):
        ratio = now.pop("attack_ara_ratio_to_standard")
        assert ratio == pytest.approx(now["attack_ara"] / entry["attack_ara"])
        now.pop("btr_ara_ratio_to_standard")
        # Their ρ* are not in this folder: no interval of the new ratio, rather than a stale one.
        assert (
            now.pop("attack_ara_ratio_to_standard_ci") is None
            and now.pop("btr_ara_ratio_to_standard_ci") is None
        )
        assert now == {k: v for k, v in was.items() if "_ratio_to_standard" not in k}
    low, high = entry["attack_ara_ci"]  # the re-measured network's area, bootstrapped over its 4 images
    assert low <= entry["attack_ara"] <= high
    # The same settings again: the same ρ*, so the areas match and nothing is updated.
    again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and "the areas match the manifest" in again.stdout, (
        again.stdout + again.stderr
    )
    unknown = subprocess.run([*script, "--only", "digits-nothing"], cwd=ROOT, capture_output=True, text=True)
    assert unknown.returncode != 0 and "not in the manifest" in unknown.stderr
