"""Ground truth: a test image with its evidence and shortcut outlined, explained on a standard and a
robust network, and the scorecard of both (`advexp_core.experiments.scorecard`)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image
from torch import Tensor

from advexp_core.base.jsonsafe import JsonObject
from advexp_core.data.datasets import MaskedImageDataset
from advexp_core.data.groundtruth import LESION_CLASS_NAMES as LESION_NAMES
from advexp_core.data.imaging import encode_png
from advexp_core.evaluation import reliance
from advexp_core.evaluation.reliance_grades import MapShares
from advexp_core.experiments.catalogue import GRADES_CONTROL, GROUND_TRUTH_PAIRS, ground_truth_networks
from advexp_core.experiments.progress import stage, tick
from advexp_core.experiments.scorecard import ground_truth_example, scorecard, scorecard_dataset
from advexp_core.experiments.scorecard_grades import control_shares, with_grades
from advexp_core.experiments.scorecard_results import GroundTruthExample, ScorecardConfig, ScorecardResult
from advexp_core.methods.saliency import colour_scales
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.figures import figure_png
from advexp_core.plots.scorecard import scorecard_figure
from advexp_core.readings import groundtruth as gt_readings
from advexp_ui import images
from advexp_ui.jobs.common import Later, OnStep, Outcome, cached_result, header

PAIRS = GROUND_TRUTH_PAIRS  # the scorecard's networks
CONTROL = GRADES_CONTROL  # rulers in half of each class: a ruler says nothing about it
networks = ground_truth_networks  # the control first where there is one, then the pair


PAIR_TITLES = {
    "lesions": "Skin lesions (a ruler is the shortcut)",
    "blockdigits": "BlockDigits (the digit in one quadrant)",
}
CHOICES = 24  # the first test images offered
OUTLINE = {"evidence": (60, 255, 60), "shortcut": (255, 40, 255)}  # green lesion/digit, magenta ruler
OUTLINE_PX = 2


@st.cache_resource(show_spinner="Drawing the test images (once per server)…", max_entries=2)
def test_split(dataset: str) -> MaskedImageDataset:
    """The dataset's test split with its masks, generated once per server (deterministic)."""
    return scorecard_dataset(ScorecardConfig(dataset=dataset, split="test"))


def image_label(dataset: str, index: int) -> str:
    """ "#3: malignant · ruler" for the image picker."""
    data = test_split(dataset)
    name = data.class_names[int(data.labels[index])]
    if "shortcut" not in data.masks:
        return f"#{index}: {name}"
    ruler = "ruler" if bool(data.masks["shortcut"][index].any()) else "no ruler"
    return f"#{index}: {name} · {ruler}"


@st.cache_resource(
    show_spinner="Drawing the images without and with a ruler (once per server)…", max_entries=1
)
def lesion_twins() -> tuple[Tensor, Tensor]:
    """The first `CHOICES` lesion test images with the ruler removed and with a ruler drawn on."""
    twins = reliance.lesion_twins("test", CHOICES)
    return twins.removed, twins.forced


def image_reliance(index: int, models: tuple[LoadedModel, ...]) -> Outcome:
    """What removing / drawing the ruler does to each network's decision on one lesion test image,
    with each network's reading (`readings.groundtruth.intervention`)."""
    image, label, masks = test_split("lesions")[index]
    removed, forced = (t[index] for t in lesion_twins())
    has_ruler = bool(masks["shortcut"].any())
    batch = torch.stack([image, removed, forced])
    networks = []
    for model in models:
        with model.lock, torch.no_grad():  # another run may have hooked the shared module
            probs = torch.softmax(model.module(batch.to(model.device)).float(), 1).cpu()
        as_is, without, with_ = (p.tolist() for p in probs)
        reading = gt_readings.intervention(
            model.model_id, model.class_names, as_is=as_is, removed=without, added=with_, has_ruler=has_ruler
        )
        networks.append(
            {
                "network": model.model_id,
                "as_is": as_is,
                "ruler_removed": without,
                "ruler_added": with_,
                "reads_ruler": reading.outcome == "reads-ruler",
                "reading": reading.to_json(),
            }
        )
    panels = {
        "as_is": truth_png("lesions", index),
        "ruler_removed": images.display_png(removed),
        "ruler_added": images.display_png(forced),
    }
    report = {
        "dataset": "lesions",
        "index": index,
        "label": LESION_NAMES[label],
        "has_ruler": has_ruler,
        "ruler_area": float(masks["shortcut"].float().mean()),
        "networks": networks,
    }
    return Outcome(report, panels, dict[str, bytes | Later]())


def _outline(png: bytes, masks: dict[str, Tensor]) -> bytes:
    """The picture with each mask's border drawn on it (at the picture's own, enlarged resolution)."""
    array = np.array(Image.open(io.BytesIO(png)).convert("RGB"))
    for key, colour in OUTLINE.items():
        mask = masks.get(key)
        if mask is None or not bool(mask.any()):
            continue
        m = mask.cpu().numpy()
        factor = array.shape[0] // m.shape[0]
        big = m.repeat(factor, 0).repeat(factor, 1)
        inner = big.copy()
        for _ in range(OUTLINE_PX):  # erode with the 4-neighbourhood; the ring left is the border
            p = np.pad(inner, 1)
            inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        array[big & ~inner] = colour
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def truth_png(dataset: str, index: int) -> bytes:
    """The test image enlarged, with the evidence and the shortcut outlined."""
    image, _, masks = test_split(dataset)[index]
    return _outline(images.display_png(image), masks)


@dataclass(frozen=True)
class NetworkExample:
    """One network's explanations of one test image as the page shows them.

    Attributes:
        dataset, index: the test image.
        header: what ran, on which network, with which settings (`jobs.common.header`).
        class_names: the network's classes.
        example: the core's record (maps, shares, the adversarial explanation).
        panels: the pictures: each map and the explanation with the masks outlined.
        files: the explanation's lossless PNG for download.
    """

    dataset: str
    index: int
    header: JsonObject
    class_names: tuple[str, ...]
    example: GroundTruthExample
    panels: dict[str, bytes]
    files: dict[str, bytes | Later]

    @property
    def network(self) -> str:
        return str(self.header["model"]["id"])

    def probability(self, index: int) -> float:
        """The network's probability of class ``index`` on the image."""
        return float(self.example.probabilities[index])

    @property
    def predicted(self) -> int:
        return int(self.example.probabilities.argmax())

    @property
    def mask_area(self) -> dict[str, float]:
        """Each mask's share of the image."""
        return {k: float(v.float().mean()) for k, v in self.example.masks.items()}

    def to_json(self) -> JsonObject:
        """The download's entry for this network."""
        ex, names = self.example, self.class_names
        return {
            **self.header,
            "network": self.network,
            "dataset": self.dataset,
            "index": self.index,
            "label": names[ex.label],
            "predicted": names[self.predicted],
            "probability_of_label": self.probability(ex.label),
            "shares": {m: s.to_json() for m, s in ex.shares.items()},
            "toward": names[ex.toward],
            "probability_toward": self.probability(ex.toward),
            "delta_shares": ex.delta_shares,
            "explanation_valid": ex.valid,
            "mask_area": self.mask_area,
        }


def compute_example(
    dataset: str,
    index: int,
    config: ScorecardConfig,
    model: LoadedModel,
    toward: int | None,
    on_step: OnStep | None,
) -> NetworkExample:
    """One network on one test image: every map with its shares, the adversarial explanation toward another class."""
    image, label, masks = test_split(dataset)[index]
    ex = ground_truth_example(model, image, label, masks, config, toward=toward, on_step=on_step)
    panels = {}
    for method, m in ex.maps.items():  # each map on its own scale: methods have different units
        ((_, vmax),) = colour_scales(m)
        panels[method] = _outline(images.overlay_png(ex.image, m, vmax), masks)
    panels["explanation"] = _outline(images.display_png(ex.explanation), masks)
    panels["delta"] = _outline(images.delta_png(ex.delta), masks)
    names = tuple(model.class_names)
    files: dict[str, bytes | Later] = {
        f"{model.model_id}-explanation-{names[ex.toward]}.png": encode_png(ex.explanation)
    }
    return NetworkExample(dataset, index, header(model, config, "ground truth"), names, ex, panels, files)


@cached_result
def example(
    dataset: str,
    index: int,
    model_id: str,
    config: ScorecardConfig,
    toward: int | None,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> NetworkExample:
    """``compute_example``, cached by (dataset, image index, model id, config, target class)."""
    return compute_example(dataset, index, config, _model, toward, _on_step)


def pair_examples(
    dataset: str,
    index: int,
    config: ScorecardConfig,
    models: tuple[LoadedModel, ...],
    toward: int | None,
    on_step: OnStep | None = None,
) -> list[NetworkExample]:
    """``example`` on each network of the pair, one progress count for both."""
    n = len(models)
    return [
        example(dataset, index, m.model_id, config, toward, m, stage(on_step, k * 100, 100, n * 100))
        for k, m in enumerate(models)
    ]


@dataclass(frozen=True)
class PairScorecard:
    """The pair's scorecards, graded where the dataset has a control, and their figure.

    Attributes:
        results: one per network of the pair, in `PAIRS` order.
        figure: the bars of every result (PNG).
    """

    results: tuple[ScorecardResult, ...]
    figure: bytes

    def to_json(self) -> JsonObject:
        """The download: every network's scorecard JSON (`ScorecardResult.to_json`)."""
        return {"scorecards": [r.to_json() for r in self.results]}


def compute_scorecard(
    config: ScorecardConfig, model: LoadedModel, on_step: OnStep | None, control: LoadedModel | None = None
) -> ScorecardResult:
    """One network's scorecard on the config's split, with its reliance grades against ``control``
    (None: not graded)."""
    result = scorecard(model, test_split(config.dataset), config, on_step=stage(on_step, 0, 80, 100))
    if control is None:
        return result
    reference = control_reference(control.model_id, config, control, result)
    graded = with_grades(model, result, control, reference=reference)
    tick(on_step, 100, 100)
    return graded


@cached_result
def control_reference(
    control_id: str, config: ScorecardConfig, _control: LoadedModel, _result: ScorecardResult
) -> MapShares:
    """The control's ruler shares (`scorecard_grades.control_shares`), cached by (control id, config):
    measured once for both networks of the pair."""
    return control_shares(_control, _result)


@cached_result
def scorecard_report(
    model_id: str,
    config: ScorecardConfig,
    control_id: str | None,
    _model: LoadedModel,
    _control: LoadedModel | None = None,
    _on_step: OnStep | None = None,
) -> ScorecardResult:
    """``compute_scorecard``, cached by (model id, config, control id)."""
    return compute_scorecard(config, _model, _on_step, _control)


def pair_scorecard(
    config: ScorecardConfig, models: tuple[LoadedModel, ...], on_step: OnStep | None = None
) -> PairScorecard:
    """The pair's scorecards (`PAIRS`), each graded against the control among ``models`` where the
    dataset has one, and their figure."""
    control = next((m for m in models if m.model_id == CONTROL.get(config.dataset)), None)
    pair = tuple(m for m in models if m.model_id in PAIRS[config.dataset])
    n = len(pair)
    results = tuple(
        scorecard_report(
            m.model_id,
            config,
            None if control is None else control.model_id,
            m,
            control,
            stage(on_step, k * 100, 100, n * 100),
        )
        for k, m in enumerate(pair)
    )
    return PairScorecard(results, figure_png(scorecard_figure(results)))
