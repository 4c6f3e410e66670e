"""The ground-truth scorecard: exact shares on a hand-weighted linear model, the JSON shape, the
single-image example, refusals, and the README block rendered from the stored results."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch
from scipy.stats import binomtest
from torch import nn

from advexp_core.base.statistics import wilson_interval
from advexp_core.data.datasets import MaskedImageDataset
from advexp_core.data.imaging import Preprocess
from advexp_core.experiments.scorecard import ground_truth_example, scorecard
from advexp_core.experiments.scorecard_results import ADVERSARIAL, ScorecardConfig
from advexp_core.measures.mask_metrics import (
    METRICS,
    TOP_K_PERCENTS,
    chance_levels,
    delta_energy_shares,
    mask_shares,
    top_k_count,
    top_k_evidence,
)
from advexp_core.methods.explanations import ExplanationSettings
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.scorecard import scorecard_figure
from advexp_core.readings.intervals import percent_with_interval, with_interval
from tests.models import frozen, hook_count, linear_model, tiny_conv

SIZE = 4
HAND_METHODS = ("gradient", "smoothgrad", "ig", ADVERSARIAL)


def loaded(module: nn.Module, classes: int, size: int, layer: nn.Module | None = None) -> LoadedModel:
    names = tuple(f"c{k}" for k in range(classes))
    return LoadedModel(
        "hand", module, names, (size, size), layer, False, "test", Preprocess((size, size)),  # type: ignore[arg-type]
        lock=threading.RLock(),
    )  # fmt: skip


def pixels(*where: tuple[int, int]) -> torch.Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    for y, x in where:
        mask[y, x] = True
    return mask


CENTRE = ((1, 1), (1, 2), (2, 1), (2, 2))


@pytest.fixture()
def hand() -> tuple[LoadedModel, MaskedImageDataset]:
    """logits = (-w·x, w·x - 6.99): |∂ logit / ∂x| is |w| for both classes, on channel 0 only:
    3 at the corner (0, 0), 1 on the four centre pixels, 0 elsewhere (sum 7).

    Four constant images: A (0.5, class 1, margin 0.01: an L∞ 2/255 attack flips it), B (0.9, class 1),
    C (0.1, class 0), D (0.9, labelled 0 but classified 1).
    """
    w = torch.zeros(3, SIZE, SIZE)
    w[0, 0, 0] = 3.0
    for y, x in CENTRE:
        w[0, y, x] = 1.0
    weight = torch.stack([-w.flatten(), w.flatten()])
    module = linear_model(weight, torch.tensor([0.0, -6.99]))
    images = torch.stack([torch.full((3, SIZE, SIZE), v) for v in (0.5, 0.9, 0.1, 0.9)])
    labels = torch.tensor([1, 1, 0, 0])
    none = pixels()
    evidence = torch.stack(
        [pixels(*CENTRE), pixels(*CENTRE), pixels((0, 0), (0, 1), (0, 2), (0, 3)), pixels(*CENTRE)]
    )
    shortcut = torch.stack([pixels((0, 0)), none, pixels((1, 1)), none])
    data = MaskedImageDataset(
        "toy",
        "test",
        ("c0", "c1"),
        images,
        labels,
        {"evidence": evidence, "shortcut": shortcut},
        with_masks=True,
    )
    return loaded(module, 2, SIZE), data


def test_scores_match_the_hand_computation(hand) -> None:
    model, data = hand
    config = ScorecardConfig(dataset="toy", n_images=4, methods=HAND_METHODS, batch_size=3)
    result = scorecard(model, data, config)
    report = result.to_json()
    assert result.accuracy == pytest.approx(0.75) and result.accuracy_images == 4
    assert report["chance"] == pytest.approx({"evidence": 0.25, "shortcut": 1 / 16})
    assert report["attack"]["correct"] == 3 and report["attack"]["flipped_indices"] == [0]
    assert result.flipped.tolist() == [True, False, False, False]
    assert (
        result.explainers["gradient"].clean.evidence_share
        == report["explainers"]["gradient"]["evidence_share"]
    )
    for method in HAND_METHODS:  # on constant images every method's map is proportional to |w|
        scores = report["explainers"][method]
        # evidence: A 4/7, B 4/7, C 3/7 (the corner row), D 4/7; shortcut over A and C: 3/7, 1/7;
        # pointing: only C's evidence holds the maximum (the corner).
        assert scores["evidence_share"] == pytest.approx(15 / 28, abs=1e-4), method
        assert scores["shortcut_share"] == pytest.approx(2 / 7, abs=1e-4), method
        assert scores["pointing_game"] == pytest.approx(0.25), method
        attacked = scores["attacked"]  # A only, now class 0: the same |w|
        assert attacked["n_images"] == 1
        assert attacked["evidence_share"] == pytest.approx(4 / 7, abs=1e-4), method
        assert attacked["shortcut_share"] == pytest.approx(3 / 7, abs=1e-4), method
        assert attacked["pointing_game"] == 0.0


def test_top_k_evidence_matches_the_hand_computation(hand) -> None:
    """|w|: the corner 3, the centre 1 (four ties), 0 elsewhere. Top 25 % = 4 pixels: the corner, then
    3 of the 4 tied centre pixels. Top 50 % = 8 pixels: the 5 non-zero ones, then 3 of the 11 zeros."""
    model, data = hand
    config = ScorecardConfig(dataset="toy", n_images=4, methods=HAND_METHODS, top_k=(25.0, 50.0))
    report = scorecard(model, data, config).to_json()
    assert report["top_k_pixels"] == {"25": 4, "50": 8}
    for method in HAND_METHODS:  # A, B, D: 3 centre pixels of 4 in the evidence; C: the corner only
        scores = report["explainers"][method]
        assert scores["top_k_evidence"]["25"] == pytest.approx((3 * 3 / 4 + 1 / 4) / 4), method
        assert scores["attacked"]["top_k_evidence"]["25"] == pytest.approx(3 / 4), method
    # 50 %: A, B, D: the 4 centre pixels of 8; C: the corner + 3 places among 11 zeros, 3 in its row
    gradient = report["explainers"]["gradient"]["top_k_evidence"]["50"]
    assert gradient == pytest.approx((3 * 4 / 8 + (1 + 3 * 3 / 11) / 8) / 4)


def test_top_k_evidence_on_hand_made_maps() -> None:
    evidence = pixels((0, 0), (0, 1), (1, 0), (1, 1))  # a quarter of the 16 pixels
    distinct = torch.arange(16.0).flip(0).reshape(SIZE, SIZE)  # 15 at (0, 0), 14 at (0, 1), ...
    ties = torch.zeros(SIZE, SIZE)
    ties[0, 0] = 5.0  # in the evidence, then six tied pixels, two of them in it
    for y, x in ((0, 1), (1, 0), (2, 2), (2, 3), (3, 2), (3, 3)):
        ties[y, x] = 1.0
    sparse = torch.zeros(SIZE, SIZE)
    sparse[0, 0] = sparse[3, 3] = 1.0  # 2 non-zero pixels, then 14 zeros, 3 of them in the evidence
    maps = torch.stack([distinct, ties, sparse, torch.ones(SIZE, SIZE), torch.zeros(SIZE, SIZE)])
    got = top_k_evidence(maps, evidence.expand(5, SIZE, SIZE), (12.5, 25.0, 100.0))  # 2, 4, 16 pixels
    want = [
        [1.0, 2 / 4, 1 / 4],  # the first row: (0,0) (0,1) in, (0,2) (0,3) out
        [(1 + 1 * 2 / 6) / 2, (1 + 3 * 2 / 6) / 4, 1 / 4],  # 1 then 1 (or 3) places among 6 ties
        [1 / 2, (1 + 2 * 3 / 14) / 4, 1 / 4],
        [1 / 4, 1 / 4, 1 / 4],  # a flat map: the evidence area at every k
    ]
    torch.testing.assert_close(got[:4], torch.tensor(want, dtype=torch.float64))
    assert torch.isnan(got[4]).all()  # an all-zero map has no top k
    assert top_k_evidence(-maps[:1], evidence[None], (25.0,)).isnan().all()  # negatives count as 0
    assert top_k_evidence(maps[:0], evidence[None][:0]).shape == (0, len(TOP_K_PERCENTS))


def test_top_k_count_covers_at_least_k_percent() -> None:
    assert [top_k_count(k, 64 * 64) for k in TOP_K_PERCENTS] == [103, 205, 410, 820]
    assert [top_k_count(k, 16) for k in (2.5, 25.0, 100.0)] == [1, 4, 16]
    assert top_k_count(5.0, 100) == 5 and top_k_count(20.0, 10) == 2  # exact products stay exact
    with pytest.raises(ValueError, match="top-k"):
        ScorecardConfig(top_k=(0.0,))
    with pytest.raises(ValueError, match="top-k"):
        ScorecardConfig(top_k=())


def test_top_k_evidence_agrees_with_quantus_top_k_intersection() -> None:
    quantus = pytest.importorskip("quantus")
    import numpy as np

    g = torch.Generator().manual_seed(0)
    maps = torch.rand(6, 32, 32, generator=g)  # continuous: no ties, so no tie rule to differ on
    evidence = torch.rand(6, 32, 32, generator=g) < torch.linspace(0.05, 0.6, 6)[:, None, None]
    ours = top_k_evidence(maps, evidence)
    for j, k in enumerate(TOP_K_PERCENTS):
        metric = quantus.TopKIntersection(
            k=top_k_count(k, 32 * 32), abs=False, normalise=False, disable_warnings=True,
            display_progressbar=False,
        )  # fmt: skip
        theirs = metric(
            model=None, x_batch=np.zeros((6, 3, 32, 32), np.float32), y_batch=np.zeros(6, int),
            a_batch=maps[:, None].numpy(), s_batch=evidence[:, None].float().numpy(), channel_first=True,
        )  # fmt: skip
        assert ours[:, j].tolist() == pytest.approx([float(v) for v in theirs], abs=1e-12), k


def test_report_has_the_documented_shape_and_is_strict_json(hand) -> None:
    model, data = hand
    config = ScorecardConfig(dataset="toy", n_images=2, methods=("gradient",))
    report = scorecard(model, data, config).to_json()
    keys = {"model", "dataset", "split", "n_images", "image_indices", "accuracy", "chance", "explainers"}
    assert keys <= set(report)
    assert report["image_indices"] == [0, 1] and report["dataset"] == "toy" and report["split"] == "test"
    assert set(report["chance"]) == {"evidence", "shortcut"}
    entry = report["explainers"]["gradient"]
    assert set(METRICS) <= set(entry) and set(METRICS) <= set(entry["attacked"])
    ks = [f"{k:g}" for k in TOP_K_PERCENTS]
    assert list(entry["top_k_evidence"]) == ks and list(entry["attacked"]["top_k_evidence"]) == ks
    assert list(report["top_k_pixels"]) == ks
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert report["explainers"]["gradient"]["shortcut_share"] == pytest.approx(3 / 7, abs=1e-5)  # A only


def test_every_mean_and_rate_carries_its_interval(hand) -> None:
    """Shares: a seeded bootstrap over the images (reproducible, containing the mean); the pointing
    game, accuracies and flips: scipy's Wilson interval of the counts; per-image numbers kept."""
    model, data = hand
    config = ScorecardConfig(dataset="toy", n_images=4, methods=("gradient",))
    result = scorecard(model, data, config)
    report = result.to_json()
    entry = report["explainers"]["gradient"]
    low, high = entry["evidence_share_ci"]
    assert low <= entry["evidence_share"] <= high and low < high  # A, B, D 4/7 and C 3/7 differ
    assert entry["images"]["evidence_share"] == pytest.approx([4 / 7, 4 / 7, 3 / 7, 4 / 7], abs=1e-6)
    assert entry["images"]["pointing_game"] == [0.0, 0.0, 1.0, 0.0]
    assert entry["attacked"]["images"]["evidence_share"] == pytest.approx([4 / 7], abs=1e-6)  # A only
    assert entry["attacked"]["evidence_share_ci"] is None  # one flipped image: no bootstrap

    def wilson(k: int, n: int) -> list[float]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        return [ci.low, ci.high]

    assert entry["pointing_game_ci"] == pytest.approx(wilson(1, 4))  # only C's map peaks in the evidence
    assert entry["attacked"]["pointing_game_ci"] == pytest.approx(wilson(0, 1))
    assert report["attack"]["flipped_ci"] == pytest.approx(wilson(1, 3))
    assert report["accuracy_ci"] == pytest.approx(wilson(3, 4))
    assert set(entry["top_k_evidence_ci"]) == set(entry["top_k_evidence"])
    assert report["intervals"]["bootstrap_seed"] == 0 and report["intervals"]["confidence"] == 0.95
    again = scorecard(model, data, config).to_json()["explainers"]["gradient"]
    assert again["evidence_share_ci"] == entry["evidence_share_ci"]  # the same seed, the same interval
    other = scorecard(
        model, data, ScorecardConfig(dataset="toy", n_images=4, methods=("gradient",), bootstrap_seed=1)
    )
    assert other.to_json()["settings"]["bootstrap_seed"] == 1
    assert other.explainers["gradient"].clean.interval("evidence_share") != tuple(entry["evidence_share_ci"])


def test_progress_is_monotone_and_ends_at_the_total(hand) -> None:
    model, data = hand
    calls: list[tuple[int, int]] = []
    scorecard(model, data, ScorecardConfig(dataset="toy", n_images=4, methods=("gradient", "ig")),
              on_step=lambda d, t: calls.append((d, t)))  # fmt: skip
    done = [d for d, _ in calls]
    assert done == sorted(done) and len({t for _, t in calls}) == 1 and done[-1] == calls[0][1]


def test_mask_shares_edge_cases() -> None:
    maps = torch.zeros(2, SIZE, SIZE)
    maps[1, 3, 3] = 2.0
    shares = mask_shares(maps, torch.stack([pixels((3, 3)), pixels((3, 3))]), None)
    assert math.isnan(shares["evidence_share"][0]) and shares["pointing_game"][0] == 0  # empty map
    assert shares["evidence_share"][1] == 1.0 and shares["pointing_game"][1] == 1.0
    assert torch.isnan(shares["shortcut_share"]).all()  # no shortcut in the dataset
    assert chance_levels(torch.stack([pixels((0, 0))]), None) == {"evidence": 1 / 16, "shortcut": None}
    delta = torch.zeros(3, SIZE, SIZE)
    delta[:, 0, 0], delta[0, 1, 1] = 1.0, 1.0
    shares_d = delta_energy_shares(delta, {"evidence": pixels((1, 1)), "shortcut": pixels((0, 0))})
    assert shares_d == pytest.approx({"evidence": 0.25, "shortcut": 0.75})
    assert delta_energy_shares(delta, {"evidence": pixels((1, 1))})["shortcut"] is None


def test_refuses_n_larger_than_the_split_and_a_class_mismatch(hand) -> None:
    model, data = hand
    with pytest.raises(ValueError, match="larger than"):
        scorecard(model, data, ScorecardConfig(dataset="toy", n_images=5, methods=("gradient",)))
    three = loaded(linear_model(torch.zeros(3, 3 * SIZE * SIZE)), 3, SIZE)
    with pytest.raises(ValueError, match="3 classes"):
        scorecard(three, data, ScorecardConfig(dataset="toy", n_images=2, methods=("gradient",)))
    with pytest.raises(ValueError, match="unknown"):
        ScorecardConfig(methods=("nonsense",))
    with pytest.raises(ValueError, match="untargeted"):
        from advexp_core.experiments import AttackConfig

        ScorecardConfig(attack=AttackConfig(target=1))


def test_every_registered_explainer_on_a_conv_net_leaves_the_model_untouched() -> None:
    net = tiny_conv(classes=2)
    model = loaded(net, 2, 16, layer=net.features)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 16, 16, generator=g)
    masks = {
        "evidence": torch.rand(3, 16, 16, generator=g) > 0.7,
        "shortcut": torch.zeros(3, 16, 16, dtype=torch.bool),
    }
    data = MaskedImageDataset("toy", "test", ("a", "b"), images, torch.tensor([0, 1, 0]), masks)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    config = ScorecardConfig(dataset="toy", n_images=3, explanation=ExplanationSettings(steps=4))
    result = scorecard(model, data, config)
    report = result.to_json()
    assert set(report["explainers"]) == set(config.methods) and "lime" in config.methods
    assert report["chance"]["shortcut"] is None  # no image has a shortcut
    for entry in report["explainers"].values():
        assert entry["shortcut_share"] is None and 0 <= entry["evidence_share"] <= 1
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert hook_count(net) == 0 and not net.training
    assert scorecard(model, data, config).to_json() == report  # deterministic
    assert scorecard_figure([result]).axes


def test_ground_truth_example_explains_the_true_class_and_pushes_toward_the_other() -> None:
    net = frozen(tiny_conv(classes=2))
    model = loaded(net, 2, 16, layer=net.features)
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(2))
    masks = {
        "evidence": torch.zeros(16, 16, dtype=torch.bool),
        "shortcut": torch.zeros(16, 16, dtype=torch.bool),
    }
    masks["evidence"][4:12, 4:12] = True
    masks["shortcut"][:, :2] = True
    config = ScorecardConfig(
        dataset="toy", methods=("gradient", "gradcam", ADVERSARIAL), explanation=ExplanationSettings(steps=6)
    )
    example = ground_truth_example(model, image, 1, masks, config)
    assert example.toward == 0 and set(example.maps) == {"gradient", "gradcam", ADVERSARIAL}
    assert all(m.shape == (16, 16) and (m >= 0).all() for m in example.maps.values())
    assert example.delta.shape == (3, 16, 16) and example.explanation.shape == (3, 16, 16)
    share = example.delta_shares
    assert 0 <= share["evidence"] <= 1 and 0 <= share["shortcut"] <= 1
    assert set(example.shares["gradient"].to_json()) == set(METRICS)
    with pytest.raises(ValueError, match="Class 2"):
        ground_truth_example(model, image, 2, masks, config)


def _table_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "research" / "scorecard_table.py"
    spec = importlib.util.spec_from_file_location("scorecard_table", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _gradient_report(hand) -> dict:
    """The scorecard JSON of the gradient alone on the hand-weighted model's four images."""
    model, data = hand
    return scorecard(model, data, ScorecardConfig(dataset="toy", n_images=4, methods=("gradient",))).to_json()


def test_readme_block_goes_before_benchmarks_and_is_replaced_in_place(hand) -> None:
    table, report = _table_script(), _gradient_report(hand)
    results = {
        "command": "python -m research.scorecard_table --n-images 4", "missing": ["b-robust"], "reports": [report],
        "accuracies": [{"model": "hand", "dataset": "toy", "test": 0.75, "test-unbiased": None,
                        "no-shortcut": None, "source": "measured here"}],
    }  # fmt: skip
    text = "# T\n\nintro\n\n## Benchmarks\n\nbench\n"
    once = table.render(text, results)
    assert once.index(table.START) < once.index("## Benchmarks") and once.count("## Ground truth") == 1
    g = report["explainers"]["gradient"]
    cells = [with_interval(x[m], x[f"{m}_ci"]) for x in (g, g["attacked"]) for m in METRICS]
    assert (
        cells[0].startswith("0.54 [") and cells[1].startswith("0.29 [") and cells[3] == "0.57"
    )  # 15/28, 2/7
    assert f"| Gradient | hand | {' | '.join(cells)} |" in once  # A alone attacked: no bootstrap
    flips = percent_with_interval(1 / 3, wilson_interval(1, 3))  # a toy dataset: no size, the accuracy alone
    assert f"| hand | 0.75 | — | — | 1 / 3 ({flips}) | measured here |" in once and "b-robust" in once
    assert "`python -m research.scorecard_table --n-images 4 --datasets toy`" in once
    assert table.render(once, results) == once
    assert table.render("# T\n", results).rstrip().endswith(table.END)  # no Benchmarks heading: at the end
    manifest = {
        "networks": [],
        "groundtruth": [{"id": "n", "test_accuracy": 0.9, "accuracy": {"test-unbiased": 0.7}}],
    }
    assert table.manifest_accuracies(manifest, "n") == {"test": 0.9, "test-unbiased": 0.7}
    assert table.manifest_accuracies(manifest, "other") == {}


def test_readme_scorecard_block_is_fresh() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if not (root / "checkpoints" / "scorecard.json").is_file():
        pytest.skip("checkpoints/scorecard.json not generated yet (python -m research.scorecard_table)")
    proc = subprocess.run(
        [sys.executable, "-m", "research.scorecard_table", "--check"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_scoring_one_pair_keeps_the_other_pairs_stored_results() -> None:
    table = _table_script()
    old = {"missing": ["blockdigits-robust"], "reports": [{"model": "blockdigits-standard"}, {"model": "lesions-standard"}],
           "accuracies": [{"model": "lesions-standard"}, {"model": "blockdigits-standard"}]}  # fmt: skip
    new = {"missing": [], "reports": [{"model": "lesions-robust"}, {"model": "lesions-standard", "v": 2}],
           "accuracies": [{"model": "lesions-standard", "v": 2}]}  # fmt: skip
    merged = table.merge(old, new)
    assert [r["model"] for r in merged["reports"]] == [
        "lesions-standard",
        "lesions-robust",
        "blockdigits-standard",
    ]
    assert merged["reports"][0]["v"] == 2 and merged["missing"] == ["blockdigits-robust"]
    assert [a["model"] for a in merged["accuracies"]] == ["lesions-standard", "blockdigits-standard"]


def test_lesions_grades_come_first_and_the_mask_columns_say_where_the_map_falls(hand) -> None:
    table, report = _table_script(), _gradient_report(hand)
    shortcut = {
        "images_with": 10,
        "images_without": 6,
        "n_changed_when_removed": 4,
        "n_changed_when_added": 3,
        "decisions_changed_when_removed": 0.4,
        "decisions_changed_when_added": 0.5,
        "mean_margin_effect": -1.25,
    }
    grades = {"control": "toy-clean", "reliance": shortcut, "explainers": {"gradient": {
        "n_images": 4, "mean_ruler_share": 0.125, "misleading_rate": 0.75, "shortcut_detection_auroc": 0.625,
        "effect_spearman": -0.5, "effect_spearman_all": None}}}  # fmt: skip
    lesions = {**report, "dataset": "lesions", "reliance_grades": grades}
    results = {"missing": [], "reports": [lesions, report], "accuracies": []}
    block = table.render_block(results)
    # Counts with their Wilson intervals (computed from the counts when the report does not store them).
    assert "| hand | 10 | 4 / 10 (40 % [17 %, 69 %]) | 6 | 3 / 6 (50 % [19 %, 81 %]) | -1.25 |" in block
    assert "| Gradient | hand | 4 | 0.12 | 0.75 | 0.62 | -0.50 | — |" in block
    lesions_part, toy_part = block.split("**toy**")
    assert lesions_part.index("AUROC vs toy-clean") < lesions_part.index("where a dermatologist would look")
    assert "dermatologist" not in toy_part and "| evidence share |" in toy_part and "AUROC" not in toy_part


@pytest.mark.slow  # draws the lesions test split three times (as drawn, without, with rulers)
def test_with_grades_grades_the_lesions_networks_against_the_control() -> None:
    table = _table_script()
    reports = [
        {"model": m, "dataset": d, "split": "test", "n_images": 12, "explainers": {"gradient": {}}}
        for m, d in (
            ("lesions-standard", "lesions"),
            ("lesions-unbiased", "lesions"),
            ("other", "blockdigits"),
        )
    ]
    from advexp_core.networks.zoo import CHECKPOINTS_DIR

    if not all((CHECKPOINTS_DIR / f"{m}.pt").is_file() for m in ("lesions-standard", "lesions-unbiased")):
        pytest.skip("the lesions checkpoints are not shipped in this checkout")
    graded = table.with_grades(reports)
    grades = graded[0]["reliance_grades"]
    assert grades["model"] == "lesions-standard" and grades["control"] == "lesions-unbiased"
    assert grades["n_images"] == 12 and list(grades["explainers"]) == ["gradient"]
    assert grades["explainers"]["gradient"]["n_images"] == len(grades["graded_indices"])
    assert (
        graded[1] == reports[1] and graded[2] == reports[2]
    )  # the control and another dataset: as they were


def test_the_config_composes_the_settings_it_runs_with() -> None:
    from advexp_core.experiments import SaliencyConfig
    from advexp_core.methods.gradient_maps import SmoothGradSettings

    config = ScorecardConfig(
        saliency=SaliencyConfig(smoothgrad_samples=4), explanation=ExplanationSettings(rho=0.2)
    )
    assert config.settings(ADVERSARIAL) is config.explanation
    assert config.settings("smoothgrad") == SmoothGradSettings(n_samples=4, sigma=0.15, seed=0)
    assert ScorecardConfig(seed=3).settings("smoothgrad") == SmoothGradSettings(seed=3)  # the seed shorthand
    with pytest.raises(ValueError, match="rho"):
        ExplanationSettings(rho=0.0)
