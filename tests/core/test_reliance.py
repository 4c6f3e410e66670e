"""Reliance by intervention: the ruler-forced twin changes nothing but the ruler, and the measure gives
the known answer on hand-made networks that read the ruler band, or only the centre."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch
from torch import Tensor, nn

from advexp_core.data.datasets import load_lesions
from advexp_core.data.groundtruth import RULER_WIDTH, generate_lesions
from advexp_core.data.imaging import Preprocess
from advexp_core.evaluation.reliance import (
    RelianceError,
    RelianceResult,
    counterfactual_effect,
    lesion_twins,
    logit_margins,
    shortcut_reliance,
    twin_reliance,
)
from advexp_core.networks.checkpoints import sha256_file
from advexp_core.networks.registry import LoadedModel, load_model
from advexp_core.networks.zoo import CHECKPOINTS_DIR
from tests.models import frozen, linear_model

N = 40  # the first N test images: 20 with a ruler, 20 without (pinned below)


def _band() -> Tensor:
    """The outer RULER_WIDTH px of a 64×64 image, where every ruler lies. Shapes: (64, 64) bool."""
    band = torch.ones(64, 64, dtype=torch.bool)
    band[RULER_WIDTH:-RULER_WIDTH, RULER_WIDTH:-RULER_WIDTH] = False
    return band


def yellow_share(images: Tensor) -> Tensor:
    """Share of the band's pixels that are ruler-yellow (green minus blue above 0.35; skin stays
    below 0.2, the ruler's yellow above 0.39 even in a dark corner). Shapes: (N, 3, 64, 64) -> (N,)."""
    yellow = (images[:, 1] - images[:, 2]) > 0.35
    return (yellow & _band()).flatten(1).float().sum(1) / float(_band().sum())


class RulerReader(nn.Module):
    """Logits (0, 100·(yellow share of the band − 0.05)): malignant exactly when a ruler is there."""

    def forward(self, x: Tensor) -> Tensor:
        z = 100.0 * (yellow_share(x) - 0.05)
        return torch.stack([torch.zeros_like(z), z], dim=1)


class CentreReader(nn.Module):
    """Logits (0, 10·(mean red of the centre − 0.5)): blind to everything in the ruler band."""

    def forward(self, x: Tensor) -> Tensor:
        z = 10.0 * (x[:, 0, RULER_WIDTH:-RULER_WIDTH, RULER_WIDTH:-RULER_WIDTH].mean((1, 2)) - 0.5)
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _loaded(module: nn.Module, classes: tuple[str, ...] = ("benign", "malignant")) -> LoadedModel:
    net = frozen(module)
    return LoadedModel(
        "hand-made", net, classes, (64, 64), net, False, "test", Preprocess((64, 64)), lock=threading.RLock()
    )


@pytest.fixture(scope="module")
def twins() -> dict[str, Tensor]:
    data = load_lesions("test", with_masks=True)
    return {
        "images": data.images[:N],
        "labels": data.labels[:N],
        "has_ruler": data.masks["shortcut"][:N].flatten(1).any(1),
        "removed": load_lesions("test", shortcut=False).images[:N],
        "forced": load_lesions("test", force_ruler=True).images[:N],
    }


@pytest.fixture(scope="module")
def ruler_result() -> RelianceResult:
    return shortcut_reliance(_loaded(RulerReader()), split="test", n_images=N, batch_size=16)


# --- the ruler-forced twin ----------------------------------------------------------------------


def test_forced_ruler_twin_differs_from_the_image_only_inside_its_ruler_mask() -> None:
    gen = lambda **kw: generate_lesions(30, generator=torch.Generator().manual_seed(7), **kw)  # noqa: E731
    drawn, removed, forced = gen(), gen(shortcut=False), gen(force_ruler=True)
    assert forced.has_ruler.all() and 0 < int(drawn.has_ruler.sum()) < 30
    assert torch.equal(forced.labels, drawn.labels) and torch.equal(forced.lesion_masks, drawn.lesion_masks)
    had = drawn.has_ruler
    # Images that had a ruler are unchanged, ruler and all.
    assert torch.equal(forced.images[had], drawn.images[had])
    assert torch.equal(forced.ruler_masks[had], drawn.ruler_masks[had])
    # Every image equals its shortcut-free twin outside the forced ruler's mask, and differs inside it.
    outside = ~forced.ruler_masks[:, None].expand_as(forced.images)
    assert torch.equal(forced.images[outside], removed.images[outside])
    changed = (forced.images - removed.images).abs().amax(1)
    assert float((changed[forced.ruler_masks] > 0.05).float().mean()) > 0.95


def test_force_ruler_leaves_the_existing_images_as_they_were() -> None:
    default = generate_lesions(12, generator=torch.Generator().manual_seed(3))
    explicit = generate_lesions(12, generator=torch.Generator().manual_seed(3), force_ruler=False)
    assert torch.equal(default.images, explicit.images) and torch.equal(default.has_ruler, explicit.has_ruler)
    # The first 16 test images' classes, rulers and mean, as drawn before the option existed.
    data = load_lesions("test", with_masks=True)
    assert data.labels[:16].tolist() == [1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 0, 1]
    has = data.masks["shortcut"][:16].flatten(1).any(1).int().tolist()
    assert has == [1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1]
    assert float(data.images[:16].double().mean()) == pytest.approx(0.5652888780495952, abs=1e-6)


def test_force_ruler_needs_the_shortcut() -> None:
    with pytest.raises(ValueError, match="force_ruler"):
        generate_lesions(2, generator=torch.Generator().manual_seed(0), shortcut=False, force_ruler=True)


# --- the general part ---------------------------------------------------------------------------


def test_logit_margin_is_the_true_logit_minus_the_largest_other() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0], [1.0, 3.0, 2.0], [5.0, -1.0, 0.5]])
    labels = torch.tensor([1, 2, 0])
    torch.testing.assert_close(logit_margins(logits, labels), torch.tensor([1.0, -1.0, 4.5]))


def test_counterfactual_effect_on_a_linear_model_is_the_weighted_change() -> None:
    # logits = (0, x[0, 0, 0] − x[0, 0, 1]) on 2×2 images: the margin moves by exactly ±Δ.
    weight = torch.zeros(2, 12)
    weight[1, 0], weight[1, 1] = 1.0, -1.0
    model = linear_model(weight)
    images = torch.zeros(3, 3, 2, 2)
    images[:, 0, 0, 0] = torch.tensor([0.6, 0.2, 0.9])
    after = images.clone()
    after[:, 0, 0, 1] = torch.tensor([0.0, 0.0, 0.5])  # only the third image changes, by −0.5
    after[1, 0, 0, 0] = 0.8  # the second one gains +0.6
    labels = torch.tensor([1, 0, 1])
    effect = counterfactual_effect(model, images, after, labels, batch_size=2)
    torch.testing.assert_close(effect.before.margins, torch.tensor([0.6, -0.2, 0.9]))
    torch.testing.assert_close(effect.margin_effect, torch.tensor([0.0, -0.6, -0.5]))
    assert effect.changed.tolist() == [False, False, False]
    after[2, 0, 0, 1] = 1.0  # now the third decision flips to benign
    assert counterfactual_effect(model, images, after, labels).changed.tolist() == [False, False, True]
    with pytest.raises(ValueError, match="same images"):
        counterfactual_effect(model, images, after[:2], labels)


# --- the lesions measure on hand-made networks ---------------------------------------------------


def test_a_network_that_reads_the_ruler_follows_it_everywhere(ruler_result, twins) -> None:
    has, labels = twins["has_ruler"], twins["labels"]
    assert int(has.sum()) == 20  # the pinned split: 20 of the first 40 images have a ruler
    r = ruler_result
    assert torch.equal(r.removal.before.predictions, has.long())  # malignant exactly where the ruler is
    assert not r.removal.after.predictions.any() and r.addition.after.predictions.all()
    s = r.shortcut()
    assert s["images_with"] == 20 and s["images_without"] == 20
    assert s["decisions_changed_when_removed"] == 1.0 and s["decisions_changed_when_added"] == 1.0
    assert r.accuracy() == {
        "as_is": int((has.long() == labels).sum()) / N,
        "shortcut_removed": int((labels == 0).sum()) / N,
        "shortcut_added": int((labels == 1).sum()) / N,
    }
    # The margin effect by hand: z falls from 100·(share − 0.05) to −5; the true class gains −Δz or +Δz.
    dz = -100.0 * yellow_share(twins["images"])
    sign = torch.where(labels == 1, 1.0, -1.0)
    expected = (sign * dz)[has]
    torch.testing.assert_close(r.removal.margin_effect[has], expected)
    assert s["mean_margin_effect"] == pytest.approx(float(expected.mean()), rel=1e-6)
    assert s["mean_abs_margin_effect"] == pytest.approx(float(expected.abs().mean()), rel=1e-6)
    added = (sign * 100.0 * yellow_share(twins["forced"]))[~has]
    torch.testing.assert_close(r.addition.margin_effect[~has], added)


def test_a_network_blind_to_the_band_never_changes(twins) -> None:
    r = shortcut_reliance(_loaded(CentreReader()), split="test", n_images=N)
    s = r.shortcut()
    assert s["decisions_changed_when_removed"] == 0.0 and s["decisions_changed_when_added"] == 0.0
    assert s["mean_margin_effect"] == 0.0 and s["mean_margin_effect_when_added"] == 0.0
    acc = r.accuracy()
    assert acc["as_is"] == acc["shortcut_removed"] == acc["shortcut_added"]


def test_json_and_per_image_records_agree(ruler_result, twins) -> None:
    out = ruler_result.to_json()
    assert {"model", "dataset", "split", "n_images", "image_indices", "accuracy", "shortcut"} <= set(out)
    assert out["dataset"] == "lesions" and out["split"] == "test" and out["n_images"] == N
    assert out["image_indices"] == list(range(N))
    assert set(out["accuracy"]) == {"as_is", "shortcut_removed", "shortcut_added"}
    assert {
        "images_with",
        "decisions_changed_when_removed",
        "decisions_changed_when_added",
        "mean_margin_effect",
    } <= set(out["shortcut"])
    rows = ruler_result.images()
    assert [row.index for row in rows] == list(range(N))
    assert [row.has_ruler for row in rows] == twins["has_ruler"].tolist()
    with_ruler = [row for row in rows if row.has_ruler]
    mean = sum(row.margin_removed - row.margin_as_is for row in with_ruler) / len(with_ruler)
    assert math.isclose(mean, out["shortcut"]["mean_margin_effect"], rel_tol=1e-5)
    assert all(row.prediction_removed == row.prediction_as_is for row in rows if not row.has_ruler)
    assert set(rows[0].to_json()) == set(type(rows[0]).__dataclass_fields__)


def test_shares_are_none_where_no_image_qualifies() -> None:
    # The first test image has a ruler: nothing to add it to.
    r = shortcut_reliance(_loaded(CentreReader()), split="test", n_images=1)
    s = r.shortcut()
    assert s["images_with"] == 1 and s["images_without"] == 0
    assert s["decisions_changed_when_added"] is None and s["mean_margin_effect_when_added"] is None


@pytest.mark.parametrize(
    ("kwargs", "setting", "message"),
    [
        ({"split": "val"}, "split", "no split 'val'"),
        ({"n_images": 1001}, "n_images", "1000 images; asked for 1001"),
        ({"n_images": 0}, "n_images", "asked for 0"),
        ({"batch_size": 0}, "batch_size", "at least 1"),
    ],
)
def test_impossible_settings_name_the_setting(kwargs, setting, message) -> None:
    with pytest.raises(RelianceError, match=message) as info:
        shortcut_reliance(_loaded(CentreReader()), **kwargs)
    assert info.value.setting == setting


def test_a_model_of_other_classes_is_refused() -> None:
    digits = tuple(str(i) for i in range(10))
    with pytest.raises(RelianceError, match="classes") as info:
        shortcut_reliance(_loaded(CentreReader(), digits), n_images=2)
    assert info.value.setting == "model"


# --- the shipped lesions networks ---------------------------------------------------------------

LESIONS_NETWORKS = (
    "lesions-standard",
    "lesions-robust",
    "lesions-clean",
    "lesions-unbiased",
    "lesions-robust-unbiased",
)


def test_the_manifest_reliance_is_what_the_shipped_files_give() -> None:
    manifest = json.loads((CHECKPOINTS_DIR / "manifest.json").read_text())
    entries = {e["id"]: e for e in manifest["groundtruth"]}
    recorded = {i: entries[i]["reliance"] for i in LESIONS_NETWORKS}
    n = {r["n_images"] for r in recorded.values()}
    assert len(n) == 1 and all(r["split"] == "test" for r in recorded.values())
    twins = lesion_twins("test", n.pop())
    for model_id, stored in recorded.items():
        assert sha256_file(CHECKPOINTS_DIR / f"{model_id}.pt") == entries[model_id]["sha256"]
        assert stored["command"].endswith(f"reliance --model {model_id} --dataset lesions --split test "
                                          f"--n-images {len(twins.labels)} --out reliance-{model_id}")  # fmt: skip
        measured = twin_reliance(load_model(model_id, device="cpu"), twins)
        shortcut = measured.shortcut()
        for key in ("images_with", "n_changed_when_removed", "n_changed_when_added"):
            assert shortcut[key] == stored["shortcut"][key], (model_id, key)
        assert measured.accuracy() == pytest.approx(stored["accuracy"], abs=1e-9)
        assert shortcut["mean_margin_effect"] == pytest.approx(
            stored["shortcut"]["mean_margin_effect"], abs=1e-3
        )
    for control, template_id in (
        ("lesions-clean", "lesions-standard"),
        ("lesions-unbiased", "lesions-standard"),
        ("lesions-robust-unbiased", "lesions-robust"),
    ):
        config, template = entries[control]["config"], entries[template_id]["config"]
        assert {k for k in config if config[k] != template[k]} == {"dataset"}


def test_the_robust_attempts_agree_with_the_manifest() -> None:
    """The attempts table's shipped networks are the manifest's files, with the same measured reliance."""
    attempts = json.loads((CHECKPOINTS_DIR / "robust-attempts.json").read_text())["attempts"]
    entries = {e["id"]: e for e in json.loads((CHECKPOINTS_DIR / "manifest.json").read_text())["groundtruth"]}
    shipped = {a["shipped_as"]: a for a in attempts.values() if a["shipped_as"]}
    assert {"lesions-robust", "lesions-robust-unbiased"} <= set(shipped)
    for model_id, attempt in shipped.items():
        entry = entries[model_id]
        assert attempt["sha256"] == entry["sha256"] == sha256_file(CHECKPOINTS_DIR / f"{model_id}.pt")
        assert attempt["n_images"] == entry["reliance"]["n_images"]
        assert attempt["changed_when_removed"] == entry["reliance"]["shortcut"]["n_changed_when_removed"]
        assert attempt["changed_when_added"] == entry["reliance"]["shortcut"]["n_changed_when_added"]
    for label, attempt in attempts.items():
        assert attempt["command"].endswith(f"--out {label}.pt --release")
        if attempt["warm_start"]:  # names the attempt it started from, by its file
            earlier = next(k for k, a in attempts.items() if a["sha256"] == attempt["warm_start"]["sha256"])
            assert f"--warm-start {earlier}.pt" in attempt["command"]
