"""The shortcut audit: interventions on hand-made images, the exact effect on a hand-made network that
reads one region, every rate's Wilson interval and the three-way verdict on lesion images read by
hand-made ruler readers, clear errors for bad input, the readings and the report, and the
inpainting's agreement with the lesions' exact twins on a few images."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import Tensor, nn

from advexp_core.base.statistics import images_to_rule_out, wilson_interval
from advexp_core.data.datasets import load_lesions
from advexp_core.data.imaging import Preprocess
from advexp_core.data.interventions import Artifact, AuditError, paste_artifact, remove_artifact
from advexp_core.evaluation.reliance import lesion_twins
from advexp_core.experiments.audit import audit, validate_inpainting
from advexp_core.experiments.audit_records import AuditConfig, AuditResult
from advexp_core.networks.registry import LoadedModel, load_model
from advexp_core.networks.zoo import ModelError
from advexp_core.plots.audit_report import audit_html, image_pictures, summary_reading
from advexp_core.readings import audit as readings
from tests.core.test_reliance import CentreReader, RulerReader
from tests.core.test_reliance import _loaded as _lesions_model
from tests.models import frozen

SIZE = 16


class CornerReader(nn.Module):
    """Logits (0, 10·(mean red of the top-left 4×4 corner − 0.5)): class 1 exactly when the corner is red."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)  # a conv layer for Grad-CAM; its output is not used
        nn.init.zeros_(self.conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        z = 10.0 * (x[:, 0, :4, :4].mean((1, 2)) - 0.5) + 0.0 * self.conv(x).sum((1, 2, 3))
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _loaded() -> LoadedModel:
    net = frozen(CornerReader())
    return LoadedModel(
        "corner-reader", net, ("plain", "red"), (SIZE, SIZE), net.conv, False, "test",
        Preprocess((SIZE, SIZE)), lock=threading.RLock(),
    )  # fmt: skip


def _grey(n: int) -> Tensor:
    return torch.full((n, 3, SIZE, SIZE), 0.3)


def _corner() -> Tensor:
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[:4, :4] = True
    return mask


def test_inpainting_touches_only_masked_pixels() -> None:
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(2, SIZE, SIZE, dtype=torch.bool)
    masks[0, 5:9, 2:12] = True  # image 1 has an empty mask: returned as it is
    out = remove_artifact(images, masks)
    assert torch.equal(out[~masks[:, None].expand_as(out)], images[~masks[:, None].expand_as(images)])
    assert not torch.equal(out[0], images[0]) and torch.equal(out[1], images[1])
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_inpainting_a_flat_image_gives_it_back() -> None:
    images = _grey(1)
    images[0, :, 6:10, 6:10] = 1.0  # a white square on flat grey
    masks = torch.zeros(1, SIZE, SIZE, dtype=torch.bool)
    masks[0, 6:10, 6:10] = True
    assert torch.allclose(remove_artifact(images, masks), _grey(1), atol=1e-6)


def test_paste_puts_the_artifact_where_asked() -> None:
    source = _grey(1)[0]
    source[:, 2:4, 5:11] = 1.0  # a 6×2 white bar near the top
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    mask[2:4, 5:11] = True
    out, placed = paste_artifact(_grey(2), Artifact(source, mask), where="same")
    assert torch.equal(placed[0], mask) and torch.equal(out[1], source)
    out, placed = paste_artifact(_grey(1), Artifact(source, mask), where="border", border="bottom")
    expected = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    expected[14:16, 5:11] = True  # flush with the bottom edge, centred: (16 - 6) // 2 = 5
    assert torch.equal(placed[0], expected)
    assert torch.equal(out[0][:, expected], torch.ones(3, 12)) and torch.equal(
        out[0][:, ~expected], _grey(1)[0][:, ~expected]
    )
    _, placed = paste_artifact(_grey(1), Artifact(source, mask), where="border", border="left")
    rows, cols = torch.nonzero(placed[0], as_tuple=True)
    assert cols.tolist() == [0, 1] * 6 and rows.min() == 5 and rows.max() == 10  # turned to run down the edge


def test_a_network_that_reads_one_region_gives_the_exact_effect() -> None:
    model = _loaded()
    images = _grey(3)
    images[0, 0, :4, :4] = 1.0  # image 0: a red corner (the "artifact"); the others plain
    source = images[0].clone()
    masks = [_corner(), None, None]
    pictures: dict[int, dict[str, bytes]] = {}
    result = audit(
        model, list(images), masks, labels=[0, 0, None], artifact=Artifact(source, _corner()),
        artifact_source="image 1", config=AuditConfig(methods=("gradient",), adversarial=False),
        on_image=lambda image: pictures.update({image.row.index: image_pictures(image)}),
    )  # fmt: skip
    first, second, third = result.images
    # Removing the red corner: the fill from flat grey is grey (0.3), logit 10·(1 − 0.5) = 5 -> 10·(0.3 − 0.5) = −2.
    assert first.intervention == "removed" and first.prediction == 1 and first.prediction_after == 0
    assert (
        first.reference == 0
        and first.margin == pytest.approx(-5.0)
        and first.margin_after == pytest.approx(2.0)
    )
    assert first.margin_effect == pytest.approx(7.0)
    # Pasting it on the plain images: −2 -> 5, the label's margin falls by 7.
    assert second.intervention == third.intervention == "added" and second.margin_effect == pytest.approx(
        -7.0
    )
    assert third.reference == 0  # no label: the class decided as it is
    assert result.removed is not None and result.removed.decisions_changed == 1.0
    assert result.removed.accuracy_before == 0.0 and result.removed.accuracy_after == 1.0
    assert result.added is not None and result.added.n_changed == 2 and result.added.accuracy_after == 0.0
    # The gradient of a network that reads only the corner lies on the corner: all of its mass.
    assert first.shares["gradient"] == pytest.approx(1.0)
    grades = result.to_json()["explainers"]["gradient"]
    assert grades["misleading_rate"] == 0.0 and grades["artifact_share"] == pytest.approx(1.0)
    assert grades["misleading_rate_ci"] == list(wilson_interval(0, 1))
    assert result.to_json()["settings"]["artifact_source"] == "image 1"
    # One image: a change is real (the interval starts at 21 %, above 5 %), but not "most".
    verdict = summary_reading(result)
    assert verdict.outcome == "relies" and "most" not in verdict.text
    assert "100% of decisions (1 of 1 images; 95% interval 21% to 100%)" in verdict.text
    page = audit_html(result, pictures)
    # Every image is shown (the most and least affected of few): as it is, after, its gradient map.
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 9
    assert result.weights_sha256 in page
    low, high = wilson_interval(1, 1)
    assert f"1.000 [{low:.3f}, {high:.3f}]" in page  # the removal's share, its interval beside it


def test_the_adversarial_explanation_is_made_toward_the_other_class() -> None:
    images = _grey(1)
    result = audit(_loaded(), list(images), [_corner()], config=AuditConfig(methods=(), steps=4))
    ae = result.images[0].adversarial
    assert ae is not None and ae.toward == 1 and ae.artifact_share == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("images", "masks", "message"),
    [
        ([], [], "no images"),
        (
            [torch.zeros(3, SIZE, SIZE)],
            [torch.ones(8, 8, dtype=torch.bool)],
            "the mask is 8×8 but the image is 16×16",
        ),
        ([torch.zeros(3, SIZE, SIZE)], [torch.zeros(SIZE, SIZE, dtype=torch.bool)], "marks no pixel"),
        (
            [torch.zeros(3, SIZE, SIZE)],
            [torch.ones(SIZE, SIZE, dtype=torch.bool)],
            "covers 100% of the image",
        ),
        ([torch.zeros(3, SIZE, SIZE), torch.zeros(3, 8, 8)], [None, None], "2 different sizes"),
    ],
)
def test_bad_input_gives_a_clear_error(
    images: list[Tensor], masks: list[Tensor | None], message: str
) -> None:
    with pytest.raises(AuditError, match=message):
        audit(_loaded(), images, masks, config=AuditConfig(methods=(), adversarial=False))


def test_an_empty_artifact_and_a_whole_mask_are_refused() -> None:
    with pytest.raises(AuditError, match="nothing to paste"):
        paste_artifact(_grey(1), Artifact(_grey(1)[0], torch.zeros(SIZE, SIZE, dtype=torch.bool)))
    with pytest.raises(AuditError, match="whole image"):
        remove_artifact(_grey(1), torch.ones(1, SIZE, SIZE, dtype=torch.bool))
    with pytest.raises(ValueError, match="where must be"):
        AuditConfig(where="middle")


def test_readings_quote_their_numbers() -> None:
    r = readings.map_against_reliance("Gradient", share=0.05, area=0.2, relies=True, intervention="removed")
    assert r.outcome == "misleading" and "5%" in r.sentence and "20%" in r.sentence
    r = readings.summary(removed=(5, 8), added=None, hidden=[("Gradient", 4, 5)])
    # 5 of 8: the interval 31% to 86% lies above 5%, but not above one half: no "most".
    assert r.outcome == "relies" and "62%" in r.text and "95% interval 31% to 86%" in r.text
    assert "most" not in r.text and "at least 31%" in r.text
    assert "the Gradient map would have hidden it on 80% [38%, 96%] of 5 images" in r.text
    r = readings.summary(removed=(0, 3), added=(1, 2), hidden=[])
    assert r.outcome == "inconclusive" and "does not" not in r.text
    assert "pasting it on changed 50% (1 of 2; 95% interval 9.5% to 91%)" in r.text
    assert readings.summary(removed=None, added=(1, 2), hidden=[]).outcome == "added-only"
    assert readings.summary(removed=None, added=None, hidden=[]).outcome == "nothing-measured"


def test_the_verdict_follows_the_interval_not_the_share() -> None:
    # No change on 8 images: up to 32% is still possible, and 73 images would rule out 5%.
    r = readings.summary(removed=(0, 8), added=None, hidden=[])
    assert r.outcome == "inconclusive" and "0 of 8 images; 95% interval 0% to 32%" in r.text
    assert "up to 32%" in r.text and f"no change on {images_to_rule_out(0.05)} images" in r.text
    assert "73 images you could rule out more than 5%" in r.text
    # No change on 73 images: ruled out. On 72: one image short.
    assert readings.summary(removed=(0, 73), added=None, hidden=[]).outcome == "does-not-rely"
    assert readings.summary(removed=(0, 72), added=None, hidden=[]).outcome == "inconclusive"
    # 64 of 103: the interval (52% to 71%) lies above one half: "most".
    r = readings.summary(removed=(64, 103), added=None, hidden=[])
    assert r.outcome == "relies" and "most of these images (at least 52%)" in r.text
    assert not readings.summary(removed=(64, 103), added=None, hidden=[], ties=1).near_threshold  # 63, 65 too
    # 1 of 8: 2.2% to 47% straddles 5%; 2 of 8 would read "relies": flagged when a near tie could flip.
    r = readings.summary(removed=(1, 8), added=None, hidden=[])
    assert r.outcome == "inconclusive" and not r.near_threshold and "2.2%" in r.text
    assert readings.summary(removed=(1, 8), added=None, hidden=[], ties=1).near_threshold
    # A looser tolerance decides 0 of 8 (upper end 32% < 50%).
    assert readings.summary(removed=(0, 8), added=None, hidden=[], tolerance=0.5).outcome == "does-not-rely"


def test_inpainting_the_ruler_agrees_with_the_exact_twin_on_a_few_lesions() -> None:
    try:
        model = load_model("lesions-standard", device="cpu")
    except ModelError as exc:
        pytest.skip(f"lesions-standard is not shipped ({exc})")
    twins = lesion_twins("test", 24)
    would_be = load_lesions("test", force_ruler=True, with_masks=True).masks["shortcut"][:24]
    result = validate_inpainting(model, twins.images, twins.ruler_masks, twins.removed, would_be)
    assert result.n_images >= 5 and result.agreement >= 0.9
    assert result.changed_twin > 0  # the network does read the ruler here, so agreeing is not trivial


def _lesion_audit(module: nn.Module, n: int = 8) -> AuditResult:
    """The first n lesion test images with their rulers marked, each read by ``module``, labelled."""
    data = load_lesions("test", with_masks=True)
    rulers = data.masks["shortcut"][:n]
    masks = [m if bool(m.any()) else None for m in rulers]
    labels = [int(y) for y in data.labels[:n]]
    config = AuditConfig(methods=(), adversarial=False)
    return audit(_lesions_model(module), list(data.images[:n]), masks, labels=labels, config=config)


def test_a_real_audit_reports_each_rate_with_its_wilson_interval() -> None:
    result = _lesion_audit(RulerReader())
    removed = result.removed
    assert removed is not None and removed.n_images == 5  # the pinned split: 5 of the first 8 have a ruler
    report = result.to_json()["removed"]
    assert removed.n_changed == 5  # the network reads nothing but the ruler
    assert report["decisions_changed_ci"] == list(wilson_interval(removed.n_changed, removed.n_images))
    assert removed.decisions_changed_ci == wilson_interval(5, 5)
    assert report["n_labelled"] == 5
    assert report["accuracy_before_ci"] == list(wilson_interval(removed.n_correct_before, 5))
    assert report["accuracy_after_ci"] == list(wilson_interval(removed.n_correct_after, 5))
    low, high = report["mean_margin_effect_ci"]
    assert low <= report["mean_margin_effect"] <= high
    assert result.to_json()["added"]["decisions_changed_ci"] is None  # nothing pasted: no rate, no interval
    assert result.to_json()["settings"]["tolerance"] == 0.05
    verdict = summary_reading(result)
    # 5 of 5: the interval (57% to 100%) lies above one half.
    assert verdict.outcome == "relies" and "most of these images" in verdict.text


def test_no_change_on_a_few_images_is_inconclusive_not_a_clean_bill() -> None:
    result = _lesion_audit(CentreReader())  # blind to the band the rulers lie in
    assert result.removed is not None and result.removed.n_changed == 0
    n = result.removed.n_images
    assert result.to_json()["removed"]["decisions_changed_ci"] == [0.0, wilson_interval(0, n)[1]]
    verdict = summary_reading(result)
    assert verdict.outcome == "inconclusive" and "does not decide" not in verdict.text
    assert f"0 of {n} images" in verdict.text and "with no change on 73 images" in verdict.text


def test_the_tolerance_is_a_checked_setting() -> None:
    assert AuditConfig().tolerance == 0.05
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="tolerance"):
            AuditConfig(tolerance=bad)


def test_nothing_marked_and_nothing_pasted_measures_nothing() -> None:
    config = AuditConfig(methods=("gradient",), adversarial=False)
    result = audit(_loaded(), list(_grey(2)), [None, None], config=config)
    assert result.removed is None and result.added is None
    assert result.to_json()["explainers"]["gradient"]["misleading_rate"] is None
    assert summary_reading(result).outcome == "nothing-measured"
    assert [r.intervention for r in result.images] == ["none", "none"]
