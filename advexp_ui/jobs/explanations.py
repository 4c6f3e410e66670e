"""Adversarial explanations (docs/method.md §2) on the chosen network, and the same image on a
standard and a robust network side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import Tensor

from advexp_core.base.jsonsafe import JsonObject
from advexp_core.data.imaging import decode_image, delta_display_scale, encode_png
from advexp_core.experiments import (
    AdversarialExplanationsResult,
    ExplanationConfig,
    adversarial_explanations,
    contrast_explanations,
)
from advexp_core.experiments.explanations import ExplainedTarget
from advexp_core.experiments.under_attack import Predictions
from advexp_core.methods.explanations import ContrastResult, ExplanationResult, TargetExplanation
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.explanations import contrast_figure, explanation_figure
from advexp_core.plots.figures import figure_png
from advexp_core.readings import Reading
from advexp_core.readings import explanations as readings
from advexp_ui import gallery, images
from advexp_ui.jobs.common import Later, OnStep, Outcome, cached_result, header, model_image
from advexp_ui.jobs.groundtruth import test_split
from advexp_ui.state import ImageChoice

MAX_TARGETS = 10  # the page's ExplanationConfig.max_targets: one batch of this many 224-px images fits comfortably in memory on a laptop

# The standard and robust network of each kind of image the app has a pair for. A natural photo
# gets the paper's CIFAR-10 pair: of the networks here, only those were trained on natural photos,
# and their classes (cat, dog, horse, ship, automobile, ...) are ImageNet's too.
PAIRS = {
    "cifar10": ("woods2019-cifar10-standard", "woods2019-cifar10-robust"),
    "digits": ("digits-standard", "digits-robust"),
    "lesions": ("lesions-standard", "lesions-robust"),
    "blockdigits": ("blockdigits-standard", "blockdigits-robust"),
}
PAIR_WORDS = {
    "cifar10": "the paper's CIFAR-10 networks (trained on natural photos; cat, dog, horse, ship, automobile "
    "and their other classes are ImageNet classes too)",
    "digits": "this project's digits networks (trained on these digits)",
    "lesions": "this project's lesion networks (trained on these lesion images)",
    "blockdigits": "this project's BlockDigits networks (trained on these images)",
}
SETS = ("lesions", "blockdigits", "digits")  # dataset images by name prefix, the longest first


@dataclass(frozen=True)
class PairChoice:
    """Which standard and robust network the contrast uses for this image, and why.

    Attributes:
        kind: what the image is: ``photo`` or a pair's key in `PAIRS`.
        pair: (standard id, robust id), or None when no pair for this kind of image can load here.
        reason: one sentence saying what the image is and why this pair (or why none).
    """

    kind: str
    pair: tuple[str, str] | None
    reason: str


def image_kind(choice: ImageChoice, model_id: str) -> tuple[str, str]:
    """What the image is, from where it came from (gallery entry, test set) or, for an upload, the
    network chosen for it: (``photo`` or a `PAIRS` key, the clause that says why)."""
    name = choice.name
    if choice.source == "gallery" and name.startswith("digit_"):
        return "digits", f"{name} is a test image of the digits set"
    if choice.source == "gallery" and name.startswith("cifar10_test_"):
        return "cifar10", f"{name} is a CIFAR-10 test image"
    if choice.source == "gallery":
        return "photo", f"{name} is a natural photo from the gallery"
    for dataset in SETS:
        if choice.source == "dataset" and name.startswith(f"{dataset}_"):
            return dataset, f"{name} is a test image of the {dataset} set"
    for family in (*SETS, "woods2019-cifar10"):
        if model_id.startswith(f"{family}-"):
            kind = "cifar10" if family.startswith("woods") else family
            return kind, f"{name} is your image, and the chosen network ({model_id}) reads {kind} images"
    return "photo", f"{name} is your image, and the chosen network ({model_id}) reads natural photos"


def pair_choice(choice: ImageChoice, model_id: str, ready: set[str], *, can_download: bool) -> PairChoice:
    """The contrast's pair for this image (`image_kind`): a photo gets the CIFAR-10 pair when its
    weights are here or can be downloaded, else none (no robust natural-image network offline).

    Args:
        choice: the image and where it came from.
        model_id: the network chosen in the sidebar (decides for an upload).
        ready: the ids whose weights are on this computer.
        can_download: whether missing weights may be downloaded (not offline).
    """
    kind, why = image_kind(choice, model_id)
    family = "cifar10" if kind == "photo" else kind
    pair = PAIRS[family]
    here = set(pair) <= ready
    if here or (family == "cifar10" and can_download):
        fetch = "" if here else " (their weights download once)"
        return PairChoice(kind, pair, f"{why}, so the contrast uses {PAIR_WORDS[family]}{fetch}.")
    if kind == "photo":
        return PairChoice(
            kind,
            None,
            f"{why}, and offline no robust network trained on natural photos is available (the paper's "
            "CIFAR-10 networks need a download); the digits and lesions pairs are for digit and lesion "
            "images.",
        )
    return PairChoice(kind, None, f"{why}, but the {family} networks are not on this computer.")


def dataset_image(dataset: str, index: int = 0) -> ImageChoice:
    """A test image of one of the project's sets, as the session's image (source ``dataset``)."""
    if dataset == "digits":  # the gallery offers the first digits
        key = f"digit_{index}"
        return ImageChoice(key, gallery.entry_bytes(key), "gallery")
    image = test_split(dataset)[index][0]
    return ImageChoice(f"{dataset}_test_{index}", encode_png(image), "dataset")


@dataclass(frozen=True)
class Network:
    """The network a row of the page explains on, as its heading shows it.

    Attributes:
        title, robust: the network (`LoadedModel`'s).
        predictions: its top classes at x.
    """

    title: str
    robust: bool
    predictions: Predictions


@dataclass(frozen=True)
class ExplainPart:
    """One finished target of the explanations page while the others still run.

    Attributes:
        model: the network's row (0 on one network; in the contrast, the order given).
        position: the target's place in the network's grid.
        network: the network's heading.
        target: x+δ, δ and the target's numbers (the values the final result holds).
        steps: S, the steps of the search.
        panels: ``x`` (x+δ) and ``d`` (δ on its own scale, ``scale``), and for the first
            target ``input`` (x as the network sees it): the bytes the final Outcome holds
            (δ there only when its own scale is the shared one).
        scale: the |δ| that ``d`` shows at full contrast.
    """

    model: int
    position: int
    network: Network
    target: TargetExplanation
    steps: int
    panels: dict[str, bytes] = field(default_factory=dict)
    scale: float = 1.0


@dataclass(frozen=True)
class NetworkRow:
    """One network's row of the page: its heading, its explanations and their readings
    (`advexp_core.readings.explanations`).

    Attributes:
        network: the heading.
        result: the network's explanations.
        success: how many explanations succeeded.
        structure: how structured δ is.
    """

    network: Network
    result: AdversarialExplanationsResult
    success: Reading
    structure: Reading


@dataclass(frozen=True)
class ExplanationsOutcome(Outcome):
    """The explanations' `Outcome` (the report and files for download) with what the page shows:
    one row per network."""

    rows: tuple[NetworkRow, ...] = field(kw_only=True)


@dataclass(frozen=True)
class ContrastOutcome(ExplanationsOutcome):
    """The standard-vs-robust `Outcome`: the rows, whether the run shows the contrast, and the
    |δ| that every δ panel shows at full contrast."""

    reading: Reading = field(kw_only=True)
    delta_scale: float = field(kw_only=True)


def _row(network: Network, result: AdversarialExplanationsResult) -> NetworkRow:
    """A network's row with its readings."""
    success = readings.success(result.targets, steps=result.explanations.steps)
    structure = readings.structure(result.targets, noise_share=result.structure_noise)
    return NetworkRow(network, result, success, structure)


class _Parts:
    """Turns the experiment's finished targets into page blocks, keeping each picture for the end.

    δ is drawn on its own scale as it comes (the shared scale is known only at the end); `final`
    redraws those whose scale was not the shared one.
    """

    def __init__(
        self,
        models: Sequence[LoadedModel],
        prefixes: Sequence[str],
        steps: int,
        send: Callable[[ExplainPart], None] | None,
    ) -> None:
        self.models, self.prefixes, self.steps, self.send = models, prefixes, steps, send
        self.panels: dict[str, bytes] = {}
        self.deltas: dict[str, tuple[Tensor, float]] = {}  # panel name -> (δ, the scale it is drawn on)

    def __call__(self, value: ExplainedTarget) -> None:
        prefix, k, t = self.prefixes[value.model], value.position, value.target
        scale = delta_display_scale([t.delta])
        panels = {"x": images.display_png(t.explanation), "d": images.delta_png(t.delta, scale)}
        if k == 0:
            panels["input"] = images.display_png(value.image)
            self.panels[f"{prefix}input"] = panels["input"]
        self.panels[f"{prefix}x-{k}"], self.panels[f"{prefix}d-{k}"] = panels["x"], panels["d"]
        self.deltas[f"{prefix}d-{k}"] = (t.delta, scale)
        if self.send is not None:
            model = self.models[value.model]
            network = Network(model.title, model.robust, value.predictions)
            self.send(ExplainPart(value.model, k, network, t, self.steps, panels, scale))

    def final(self, scale: float) -> dict[str, bytes]:
        """Every panel, δ on the shared ``scale`` (those already drawn on it are kept)."""
        for name, (delta, own) in self.deltas.items():
            if own != scale:
                self.panels[name] = images.delta_png(delta, scale)
        return self.panels


def _files(result: AdversarialExplanationsResult) -> dict[str, bytes | Later]:
    """The lossless PNG of each target."""
    return {
        f: encode_png(t.explanation) for f, t in zip(result.files, result.explanations.targets, strict=True)
    }


def compute_explanations(
    image_bytes: bytes,
    config: ExplanationConfig,
    model: LoadedModel,
    on_step: OnStep | None = None,
    on_part: Callable[[ExplainPart], None] | None = None,
) -> ExplanationsOutcome:
    """The adversarial explanation of each target, with the contact-sheet figure (drawn on request).

    ``on_part`` gets each target's block as soon as the experiment has it; the pictures made for
    it are the ones the Outcome holds (made once; δ again only where the shared scale differs).
    """
    parts = _Parts([model], [""], config.steps, on_part)
    image = model_image(image_bytes, model)
    result = adversarial_explanations(model, image, config, on_step=on_step, on_partial=parts)
    summary: JsonObject = result.to_json()
    del summary["model"]  # the header describes the model in full
    report = {**header(model, config, "adversarial explanations"), **summary}
    scale = delta_display_scale([result.explanations.deltas])
    files = _files(result)
    files["figure.png"] = Later(_figure_png, (result.explanations, scale))
    row = _row(Network(model.title, model.robust, result.predictions), result)
    return ExplanationsOutcome(report, parts.final(scale), files, rows=(row,))


def _figure_png(result: ExplanationResult, scale: float) -> bytes:
    """The contact sheet of one network's explanations (drawn when asked for)."""
    return figure_png(explanation_figure(result, delta_scale=scale))


@cached_result
def explanations(
    image_bytes: bytes,
    model_id: str,
    config: ExplanationConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
    _on_part: Callable[[ExplainPart], None] | None = None,
) -> ExplanationsOutcome:
    """``compute_explanations``, cached by (image bytes, model id, config); parts only when it runs."""
    return compute_explanations(image_bytes, config, _model, _on_step, _on_part)


def compute_contrast(
    image_bytes: bytes,
    config: ExplanationConfig,
    models: Sequence[LoadedModel],
    on_step: OnStep | None = None,
    on_part: Callable[[ExplainPart], None] | None = None,
) -> ContrastOutcome:
    """The same image and targets on several networks, δ on one shared scale (docs/method.md §2).

    ``on_part`` gets each model's targets as they finish, as in `compute_explanations`.
    """
    parts = _Parts(models, [f"m{k}-" for k in range(len(models))], config.steps, on_part)
    res = contrast_explanations(
        list(models), decode_image(image_bytes), config, on_step=on_step, on_partial=parts
    )
    report: JsonObject = {**header(models[0], config, "standard vs robust"), **res.to_json()}
    del report["model"]  # each entry of "models" describes its network
    titles = tuple(m.title for m in models)
    files: dict[str, bytes | Later] = {"contrast.png": Later(_contrast_png, (res.contrast, titles))}
    rows = tuple(_row(Network(n.title, n.robust, n.result.predictions), n.result) for n in res.networks)
    scale = res.contrast.delta_scale
    reading = readings.contrast_of(report["models"])  # read from the networks' entries, as the core does
    return ContrastOutcome(report, parts.final(scale), files, rows=rows, reading=reading, delta_scale=scale)


def _contrast_png(contrast: ContrastResult, titles: tuple[str, ...]) -> bytes:
    """The standard-vs-robust figure, one row pair per network (drawn when asked for)."""
    return figure_png(contrast_figure(contrast, model_labels=list(titles)))


@cached_result
def contrast_run(
    image_bytes: bytes,
    model_ids: tuple[str, ...],
    config: ExplanationConfig,
    _models: Sequence[LoadedModel],
    _on_step: OnStep | None = None,
    _on_part: Callable[[ExplainPart], None] | None = None,
) -> ContrastOutcome:
    """``compute_contrast``, cached by (image bytes, model ids, config); parts only when it runs."""
    return compute_contrast(image_bytes, config, _models, _on_step, _on_part)
