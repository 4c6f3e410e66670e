"""The reports and files behind the downloads: settings with the seed, versions, predictions,
metrics, and a lossless PNG that gives the reported prediction when read back."""

from __future__ import annotations

import torch

from advexp_core.data.imaging import decode_image
from advexp_core.experiments import AttackConfig, ExplanationConfig, SaliencyConfig
from advexp_ui.jobs.attack import compute_attack
from advexp_ui.jobs.common import file_bytes
from advexp_ui.loaders import cached_model
from tests.app.conftest import CIFAR_STANDARD


def test_attack_report_and_files(woods_dir) -> None:
    model = cached_model(CIFAR_STANDARD)
    config = AttackConfig(steps=2, random_start=True, seed=7, target=0)
    out = compute_attack(
        (woods_dir / "cifar10_test_0.png").read_bytes(), config, SaliencyConfig(ig_steps=4), model
    )
    report = out.report
    assert report["settings"]["seed"] == 7 and report["settings"]["target"] == 0
    assert report["settings"]["attacked_label"] == "airplane"
    assert {"torch", "advexp", "captum"} <= set(report["versions"])
    for key in ("predictions_before", "predictions_after", "png_predictions_after"):
        assert len(report[key]) == 5 and abs(sum(p["probability"] for p in report[key]) - 1) < 0.5
    assert set(report["maps"]) == {"gradcam", "ig"}
    assert {"spearman", "topk_intersection", "ssim", "center_shift_px", "delta_energy_in_topk"} <= set(
        report["maps"]["gradcam"]
    )
    assert report["perturbation"]["linf_255"] <= 2.0 + 1e-3
    assert all(isinstance(s, str) and s for s in report["readings"]["maps"]["ig"].values())
    saved = decode_image(out.files["adversarial.png"])
    assert saved.shape == (3, 32, 32) and file_bytes(out.files["figure.png"]).startswith(b"\x89PNG")
    with torch.no_grad():
        top = int(model.module(saved[None].to(model.device)).argmax())
    assert top == report["png_predictions_after"][0]["index"]


def test_manifest_rows_wherever_the_entry_keeps_them(tmp_path) -> None:
    import json

    from advexp_ui.jobs.robustness import manifest, manifest_row

    entries = [
        {"id": "digits-standard", "recipe": "standard", "test_accuracy": 0.97, "attack_ara": 0.001, "btr_ara": 0.002},
        {"id": "digits-robust", "metrics": {"test_accuracy": 0.9, "attack_ara": 0.01, "btr_ara": 0.03,
                                            "rho_star_attack": [0.0, 0.02, 0.01]}},
    ]  # fmt: skip
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"networks": entries}))
    assert manifest(tmp_path / "absent.json") == []
    rows = [manifest_row(e) for e in manifest(path)]
    assert rows[0] == {"network": "digits-standard", "recipe": "standard", "test accuracy": 0.97,
                       "Attack ARA": 0.001, "BTR ARA": 0.002}  # fmt: skip
    assert rows[1]["Attack ARA"] == 0.01 and rows[1]["test accuracy"] == 0.9


def test_explanation_and_robustness_reports_keep_the_model_and_all_settings(woods_dir) -> None:
    from advexp_ui.jobs.explanations import compute_explanations
    from advexp_ui.jobs.robustness import LiveAraConfig, compute_ara

    model = cached_model("woods2019-cifar10-robust")
    out = compute_explanations(
        (woods_dir / "cifar10_test_2.png").read_bytes(), ExplanationConfig(steps=3), model
    )
    assert out.report["model"]["id"] == model.model_id and out.report["settings"]["rho"] == 0.1
    assert [t["label"] for t in out.report["targets"]][:1] == [out.report["predictions"][0]["label"]]
    assert {t["file"] for t in out.report["targets"]} <= set(out.files)
    ara = compute_ara(LiveAraConfig(dataset="cifar10-five", n_images=2, steps=12), model).report
    assert ara["settings"]["dataset"] == "cifar10-five" and ara["settings"]["steps"] == 12
    assert ara["n_images"] == 2 and len(ara["rho_star_attack"]) == 2 and "curves" in ara
