"""ARA (docs/method.md §3): the exact integral against closed forms, the curve, the search on a linear
classifier whose boundary is known exactly, batching, errors and the figures; the shipped networks'
stored ρ* (advexp_core.experiments.shipped): written, read back, refused when altered, and matching the manifest."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from advexp_core.base.statistics import paired_bootstrap_ci
from advexp_core.data.datasets import TensorImageDataset
from advexp_core.methods.ara import (
    BoundaryNotReachedError,
    RobustnessCurve,
    accuracy_curve,
    accuracy_robustness_area,
    ara_figure,
    ara_interval,
    ara_ratio_interval,
    ara_values,
    evaluate_ara,
    robustness_curves_figure,
    robustness_radii,
    select_images,
)


def test_ara_closed_forms() -> None:
    # A = 1, .75, .5, .25 on unit intervals; minus 1/2 → 0.5 + 0.25.
    assert accuracy_robustness_area(torch.tensor([1.0, 2.0, 3.0, 4.0]), num_classes=2) == pytest.approx(0.75)
    # Every image at ρ* = r: A = 1 on [0, r), so ARA = r(1 − 1/C).
    assert accuracy_robustness_area(torch.full((7,), 0.02), num_classes=10) == pytest.approx(0.018)
    assert accuracy_robustness_area(torch.zeros(5), num_classes=10) == 0.0
    # Order does not matter; ties are fine.
    shuffled = torch.tensor([3.0, 0.0, 1.0, 3.0, 2.0])
    assert accuracy_robustness_area(shuffled, num_classes=4) == pytest.approx(
        accuracy_robustness_area(shuffled.sort().values, num_classes=4)
    )
    # ρ*ᵢ = iR/N: Σᵢ (R/N)·max(0, (N − i + 1)/N − 1/C), and → R(1 − 1/C)²/2 as N grows.
    n, r, c = 1000, 0.05, 10
    rho = torch.arange(1, n + 1, dtype=torch.float64) * r / n
    exact = sum(r / n * max(0.0, (n - i + 1) / n - 1 / c) for i in range(1, n + 1))
    assert accuracy_robustness_area(rho, num_classes=c) == pytest.approx(exact, rel=1e-12)
    assert exact == pytest.approx(r * (1 - 1 / c) ** 2 / 2, rel=2e-3)


def test_exact_integral_agrees_with_the_reference_histogram() -> None:
    gen = torch.Generator().manual_seed(0)
    rho = torch.cat([torch.zeros(100), torch.rand(900, generator=gen).pow(2) * 0.1])
    # The reference: 1000-bin histogram on [0, max ρ*] (its main.py, calculate_ara).
    bins, top = 1000, float(rho.max())
    hist = rho.histc(bins, min=0, max=top)
    reference = float(top / bins * (1 - hist.cumsum(0) / len(rho)).add(-0.1).clamp(min=0).sum())
    assert accuracy_robustness_area(rho, num_classes=10) == pytest.approx(reference, abs=top / bins)


def test_curve_is_a_non_increasing_step_function() -> None:
    rho_star = torch.tensor([0.0, 0.3, 0.1, 0.3, 0.0, 0.2])
    rho, acc = accuracy_curve(rho_star)
    assert rho.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert acc.tolist() == pytest.approx([4 / 6, 3 / 6, 2 / 6, 0.0])
    assert bool((acc[1:] <= acc[:-1]).all())
    with pytest.raises(ValueError):
        accuracy_robustness_area(torch.tensor([0.1, -1.0]), num_classes=2)
    with pytest.raises(ValueError):
        accuracy_curve(torch.tensor([]))


class Affine(nn.Module):
    """Two logits (0, w·x + b): the decision boundary is the hyperplane w·x + b = 0."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone(), requires_grad=False)
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _linear_problem() -> tuple[Affine, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(3, 8, 8, generator=gen)
    model = Affine(w, 0.0)
    x = torch.rand(6, 3, 8, 8, generator=gen)
    model.b = -float((x.flatten(1) @ w.flatten()).mean())
    z = x.flatten(1) @ w.flatten() + model.b
    labels = (z > 0).long()
    # Distance to the hyperplane in L2 is |z|/‖w‖; RMS divides by √D (D = C·H·W).
    exact = z.abs() / w.norm() / math.sqrt(w.numel())
    return model, x, labels, exact


def test_search_finds_a_linear_classifiers_exact_boundary() -> None:
    model, x, labels, exact = _linear_problem()
    for boundary in ("attack", "btr"):  # with two classes, softmax_y ≤ 1/2 is the same hyperplane
        # A size matched to the distances (≈ 0.003–0.025) resolves the boundary to 0.1 %.
        rho, met, logits = robustness_radii(model, x, labels, boundary=boundary, size=2.0)
        assert bool(met.all())
        torch.testing.assert_close(rho, exact.double(), rtol=1e-3, atol=0)
        assert torch.equal(logits.argmax(1), labels)
    # The paper's settings (size 20) take early steps of ≈0.09 RMS; the decaying tail still lands
    # within a few percent even for ρ* ≈ 0.003 (the smallest here is the worst).
    rho, met, _ = robustness_radii(model, x, labels)
    assert bool(met.all()) and bool((rho >= exact.double() * (1 - 1e-4)).all())
    torch.testing.assert_close(rho, exact.double(), rtol=0.06, atol=0)
    wrong = 1 - labels  # already across at δ = 0: ρ* = 0 exactly
    rho, met, _ = robustness_radii(model, x, wrong, steps=5)
    assert bool(met.all()) and rho.abs().max().item() == 0.0


def _dataset(images: torch.Tensor, labels: torch.Tensor) -> TensorImageDataset:
    return TensorImageDataset("toy", "test", ["a", "b", "c"], images, labels)


def _toy() -> tuple[nn.Module, TensorImageDataset]:
    gen = torch.Generator().manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    model.eval().requires_grad_(False)
    images = torch.rand(10, 3, 4, 4, generator=gen)
    labels = torch.randint(3, (10,), generator=gen)
    return model, _dataset(images, labels)


def test_evaluate_ara_curve_starts_at_clean_accuracy_and_batches_agree() -> None:
    model, data = _toy()
    result = evaluate_ara(model, data, steps=120, size=20.0, batch_size=4)
    clean = float((model(data.images).argmax(1) == data.labels).double().mean())
    assert result.accuracy == pytest.approx(clean) and 0 < clean < 1
    rho, acc = result.curve("attack")
    assert float(acc[0]) == pytest.approx(clean)  # A(0) is the clean accuracy
    assert bool((acc[1:] <= acc[:-1]).all())
    # softmax_y ≤ 1/C implies misclassified, so BTR needs at least as much perturbation here
    assert bool((result.rho_star_attack <= result.rho_star_btr + 1e-9).all())
    assert result.attack_ara == pytest.approx(accuracy_robustness_area(result.rho_star_attack, num_classes=3))
    one = evaluate_ara(model, data, steps=120, size=20.0, batch_size=1)
    torch.testing.assert_close(one.rho_star_attack, result.rho_star_attack, rtol=1e-5, atol=1e-7)
    firsts = evaluate_ara(model, data, n_images=3, steps=120, size=20.0, batch_size=4)
    torch.testing.assert_close(firsts.rho_star_btr, result.rho_star_btr[:3])
    blob = json.loads(json.dumps(result.to_dict()))
    assert blob["n_images"] == 10 and len(blob["rho_star_attack"]) == 10 and blob["settings"]["steps"] == 120


def test_images_that_never_reach_the_boundary_are_an_error() -> None:
    model, data = _toy()
    with pytest.raises(BoundaryNotReachedError) as info:
        evaluate_ara(model, data, steps=2, size=1e-4)
    correct = int((model(data.images).argmax(1) == data.labels).sum())
    assert info.value.count == correct and f"{correct} of 10 images" in str(info.value)
    assert "more steps" in str(info.value)
    with pytest.raises(ValueError, match="between 1 and 10"):
        evaluate_ara(model, data, n_images=11)


def test_figure_is_written_as_png(tmp_path) -> None:
    model, data = _toy()
    result = evaluate_ara(model, data, steps=60, size=20.0)
    fig = ara_figure(result)
    path = tmp_path / "curve.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes[0].lines) >= 3  # two curves and the 1/C line


# --------------------------------------------------------------------------- the experiment


def _loaded(model: nn.Module, classes: int = 3) -> Any:
    from advexp_core.networks.registry import LoadedModel

    return LoadedModel("toy", model, tuple("abc"[:classes]), (4, 4), model, False, "test", None)  # type: ignore[arg-type]


def test_reference_subset_matches_the_authors_global_seed_and_leaves_the_rng_alone() -> None:
    state = torch.get_rng_state()
    torch.manual_seed(1776)  # exactly what the reference does
    want = torch.randperm(359)[:40].tolist()
    torch.set_rng_state(state)
    assert select_images(359, 40) == want
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match="between 1 and 359"):
        select_images(359, 360)


def test_experiment_reports_indices_in_order_and_flags_late_minima() -> None:
    from advexp_core.experiments.ara import ARAConfig, robustness_experiment

    model, data = _toy()
    config = ARAConfig(n_images=6, steps=120, size=20.0, batch_size=4)
    result = robustness_experiment(_loaded(model), data, config)
    assert result.image_indices == tuple(select_images(10, 6)) and len(set(result.image_indices)) == 6
    direct = evaluate_ara(model, data, indices=list(result.image_indices), steps=120, size=20.0, batch_size=4)
    torch.testing.assert_close(result.ara.rho_star_attack, direct.rho_star_attack)
    report = json.loads(json.dumps(result.report))
    assert report["image_indices"] == list(result.image_indices)
    assert report["settings"]["sample"] == "reference" and report["settings"]["seed"] == 1776
    assert len(report["images"]) == 6 and report["curves"]["attack"]["accuracy"][0] == result.accuracy
    assert result.late == {"attack": (), "btr": ()} and not result.warnings
    first = robustness_experiment(_loaded(model), data, ARAConfig(n_images=3, steps=120, sample="first"))
    assert first.image_indices == (0, 1, 2)
    # A size so small that the minimum is found only late in the schedule: flagged, not accepted silently.
    slow = robustness_experiment(_loaded(model), data, ARAConfig(n_images=10, steps=60, size=0.3))
    late = slow.report["late_minimum"]["attack"]
    assert late["count"] == len(slow.late["attack"]) > 0 and slow.warnings
    reached = dict(zip(slow.image_indices, slow.ara.reached_attack.tolist(), strict=True))
    assert all(reached[i] > 30 for i in late["indices"]) and "after step 30 of 60" in slow.warnings[0]


def test_experiment_refuses_images_of_another_shape() -> None:
    from advexp_core.experiments.ara import ARAConfig, robustness_experiment

    model, data = _toy()
    with pytest.raises(ValueError, match="classes"):
        robustness_experiment(_loaded(model, classes=2), data, ARAConfig(n_images=2, steps=5))
    with pytest.raises(ValueError, match="steps"):
        robustness_experiment(_loaded(model), data, ARAConfig(steps=0))


# --------------------------------------------------------------------------- several networks, stored ρ*


def _curves() -> list[RobustnessCurve]:
    gen = torch.Generator().manual_seed(7)
    spec = (
        ("standard", 0.02, False),
        ("adv-train", 0.05, False),
        ("robust", 0.08, True),
        ("all", 0.09, True),
    )
    return [
        RobustnessCurve(name, torch.rand(40, generator=gen) * top, 10, robust) for name, top, robust in spec
    ]


def test_curves_figure_draws_each_network_marks_chance_and_shades_one() -> None:
    curves = _curves()
    fig = robustness_curves_figure(curves, highlight="robust")
    ax = fig.axes[0]
    drawn = {line.get_gid(): line for line in ax.lines if (line.get_gid() or "").startswith("curve:")}
    assert list(drawn) == [f"curve:{c.name}" for c in curves]
    # Robust additions: solid reds; without: dashed blues.
    assert [drawn[f"curve:{c.name}"].get_linestyle() for c in curves] == ["--", "--", "-", "-"]
    red, blue = drawn["curve:all"].get_color(), drawn["curve:standard"].get_color()
    assert red[0] > red[2] and blue[2] > blue[0]
    # The step points are the curve's own.
    rho, acc = accuracy_curve(curves[2].rho_star)
    assert drawn["curve:robust"].get_xdata().tolist() == pytest.approx(rho.tolist())
    assert drawn["curve:robust"].get_ydata().tolist() == pytest.approx(acc.tolist())
    chance = [line for line in ax.lines if line.get_gid() is None]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.1, 0.1]
    assert [c.get_label() for c in ax.collections] == ["area of robust"]  # only the picked one is shaded
    assert not robustness_curves_figure(curves).axes[0].collections


def test_curves_figure_refuses_nothing_to_draw_and_an_unknown_highlight() -> None:
    with pytest.raises(ValueError, match="at least one"):
        robustness_curves_figure([])
    with pytest.raises(ValueError, match="not one of the curves"):
        robustness_curves_figure(_curves(), highlight="digits-nothing")


def _stored(folder: Any, model_id: str = "toy") -> dict[str, Any]:
    """A rho file for the toy network in ``folder`` and its manifest entry (as ship_robustness writes them)."""
    from advexp_core.experiments.shipped import rho_record
    from advexp_core.networks.checkpoints import sha256_file

    model, data = _toy()
    result = evaluate_ara(model, data, steps=60, size=20.0)
    record = rho_record(result, model_id=model_id, dataset="toy", split="test", sample="first")
    (folder / f"{model_id}.rho.json").write_text(json.dumps(record))
    entry = {"id": model_id, "recipe": "robust", "robust_additions": True, "attack_ara": result.attack_ara,
             "rho_file": f"{model_id}.rho.json", "rho_sha256": sha256_file(folder / f"{model_id}.rho.json")}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps({"networks": [entry]}))
    return {"entry": entry, "result": result}


def test_stored_rho_reads_back_exactly_with_its_settings(tmp_path) -> None:
    from advexp_core.experiments.shipped import load_rho, load_shipped

    made = _stored(tmp_path)
    result = made["result"]
    stored = load_rho(made["entry"], tmp_path)
    assert torch.equal(stored.rho_attack, result.rho_star_attack) and torch.equal(
        stored.rho_btr, result.rho_star_btr
    )
    assert stored.image_indices == result.image_indices and stored.num_classes == 3
    assert stored.area("attack") == result.attack_ara and stored.area("btr") == result.btr_ara
    assert stored.settings == {
        "steps": 60,
        "size": 20.0,
        "momentum": 0.9,
        "batch_size": 128,
        "sample": "first",
    }
    assert stored.recipe == "robust" and stored.curve("btr").robust and stored.curve().name == "toy"
    loaded, refused = load_shipped(tmp_path)
    assert [n.model_id for n in loaded] == ["toy"] and refused == []


def test_a_rho_file_changed_after_it_was_recorded_is_refused_with_a_clear_message(tmp_path) -> None:
    from advexp_core.experiments.shipped import RhoFileError, load_rho, load_shipped

    entry = _stored(tmp_path)["entry"]
    path = tmp_path / "toy.rho.json"
    data = json.loads(path.read_text())
    data["rho_attack"] = [r * 2 for r in data["rho_attack"]]
    path.write_text(json.dumps(data))
    with pytest.raises(RhoFileError) as info:
        load_rho(entry, tmp_path)
    message = str(info.value)
    assert (
        "toy" in message and "toy.rho.json" in message and "differs from the one in the manifest" in message
    )
    assert "ship_robustness" in message and not info.value.not_recorded
    loaded, refused = load_shipped(tmp_path)
    assert loaded == [] and [e.model_id for e in refused] == ["toy"]
    path.unlink()
    with pytest.raises(RhoFileError, match="missing"):
        load_rho(entry, tmp_path)
    with pytest.raises(RhoFileError, match="records no per-image") as info:
        load_rho({"id": "later"}, tmp_path)
    assert info.value.not_recorded


def test_a_rho_file_for_another_network_or_malformed_is_refused(tmp_path) -> None:
    from advexp_core.experiments.shipped import RhoFileError, load_rho
    from advexp_core.networks.checkpoints import sha256_file

    entry = _stored(tmp_path, "other")["entry"]
    with pytest.raises(RhoFileError, match="not a advexp-rho-1 file for toy"):
        load_rho({**entry, "id": "toy"}, tmp_path)
    (tmp_path / "bad.rho.json").write_text('{"rho_attack": [0.1, -1]}')
    bad = {"id": "bad", "rho_file": "../bad.rho.json", "rho_sha256": sha256_file(tmp_path / "bad.rho.json")}
    with pytest.raises(RhoFileError, match="malformed"):
        load_rho(bad, tmp_path)  # a bare name is used: "../" cannot leave the folder


def test_shipped_rho_files_match_the_manifest() -> None:
    from advexp_core.experiments.shipped import checkpoints_dir, load_rho, read_manifest

    manifest = read_manifest()
    entries = [n for n in manifest.get("networks", []) if n.get("rho_file")]
    if not entries:
        pytest.skip("no shipped network has a stored rho file yet")
    settings = manifest["ara_settings"]
    for entry in entries:
        stored = load_rho(entry, checkpoints_dir())  # sha256 checked
        assert len(stored.image_indices) == settings["n_images"] and stored.split == settings["split"]
        assert stored.settings["steps"] == settings["steps"] and stored.settings["size"] == settings["size"]
        assert stored.area("attack") == pytest.approx(entry["attack_ara"], rel=1e-9)
        assert stored.area("btr") == pytest.approx(entry["btr_ara"], rel=1e-9)


# --------------------------------------------------------------------------- intervals


def test_vectorised_area_is_the_exact_integral() -> None:
    gen = torch.Generator().manual_seed(2)
    rho = torch.rand(4, 50, generator=gen, dtype=torch.float64) * 0.1
    rows = ara_values(rho.numpy(), 10)
    for row, value in zip(rho, rows, strict=True):
        assert value == pytest.approx(accuracy_robustness_area(row, num_classes=10), rel=1e-12)
    assert ara_values(rho.T.numpy(), 10, axis=0) == pytest.approx(rows, rel=1e-12)


def test_area_interval_is_a_seeded_bootstrap_over_images() -> None:
    gen = torch.Generator().manual_seed(3)
    rho = torch.rand(60, generator=gen, dtype=torch.float64) * 0.05
    area = accuracy_robustness_area(rho, num_classes=10)
    interval = ara_interval(rho, num_classes=10, seed=0)
    assert interval is not None
    low, high = interval
    assert low < area < high
    assert ara_interval(rho, num_classes=10, seed=0) == (low, high)  # the same seed, the same interval
    assert ara_interval(rho, num_classes=10, seed=1) != (low, high)
    expected = paired_bootstrap_ci(
        rho.numpy(), np.zeros(60), lambda a, _b, axis=-1: ara_values(a, 10, axis), seed=0
    )
    assert (low, high) == expected  # scipy's BCa of the area, resampling images
    assert ara_interval(rho[:1], num_classes=10) is None
    assert ara_interval(torch.full((5,), 0.02), num_classes=10) == pytest.approx((0.018, 0.018))


def test_ratio_interval_pairs_the_images_of_both_networks() -> None:
    gen = torch.Generator().manual_seed(4)
    standard = torch.rand(80, generator=gen, dtype=torch.float64) * 0.01
    robust = standard * 4 + torch.rand(80, generator=gen, dtype=torch.float64) * 0.01
    ratio = accuracy_robustness_area(robust, num_classes=10) / accuracy_robustness_area(
        standard, num_classes=10
    )
    interval = ara_ratio_interval(robust, standard, num_classes=10, seed=0)
    assert interval is not None
    low, high = interval
    assert 1 < low < ratio < high
    assert ara_ratio_interval(robust, standard, num_classes=10, seed=0) == (low, high)
    assert ara_ratio_interval(standard * 2, standard, num_classes=10) == pytest.approx((2.0, 2.0))
    assert ara_ratio_interval(robust, torch.zeros(80), num_classes=10) is None  # no area to divide by


def test_stored_networks_compare_only_on_the_same_images(tmp_path) -> None:
    from advexp_core.experiments.shipped import load_rho

    made = _stored(tmp_path)
    stored = load_rho(made["entry"], tmp_path)
    interval = stored.area_interval("attack")
    assert interval is not None and interval[0] <= stored.area("attack") <= interval[1]
    assert stored.ratio_interval(stored) == pytest.approx((1.0, 1.0))
    other = dataclasses.replace(stored, image_indices=tuple(i + 1 for i in stored.image_indices))
    assert stored.ratio_interval(other) is None
