"""The ARA experiment (docs/method.md §3): one frozen config in, one frozen result out.

What ``advexp ara`` and the Robustness page both call. The experiment's defaults: the authors'
search (`advexp_core.methods.attacks.SearchSettings`, where its numbers are written once), their image
subset (seed 1776), the test split, all images unless told otherwise.

Each area comes with its 95 % interval (docs/method.md §9): a BCa bootstrap over the images of the
area computed from the resampled per-image ρ* (`methods.ara.ara_interval`, seeded); a live area's
ratio to a stored standard network's, that interval over the stored area (`live_ratio_interval`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sized
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from advexp_core.base.distributed import DistContext
from advexp_core.base.jsonsafe import json_number
from advexp_core.base.runtime import OnStep, device_of
from advexp_core.base.statistics import CONFIDENCE, wilson_interval
from advexp_core.experiments.report import predictions, versions
from advexp_core.experiments.shipped import read_manifest
from advexp_core.methods.ara import (
    BOOTSTRAP_SEED,
    REFERENCE_SEED,
    AraResult,
    Boundary,
    Interval,
    Sample,
    ara_interval,
    evaluate_ara,
    select_images,
)
from advexp_core.methods.attacks import SearchSettings
from advexp_core.networks.registry import LoadedModel
from advexp_core.readings import ara as readings
from advexp_core.readings.ara import AraNumbers

BOUNDARIES: tuple[Boundary, ...] = ("attack", "btr")
# The authors' published figures (docs/method.md §3: 1000 CIFAR-10 test images): (test accuracy,
# Attack ARA, BTR ARA). Shown and compared as theirs, never as ours.
PAPER_ARA = {
    "woods2019-cifar10-standard": (0.938, 0.0013, 0.0015),
    "woods2019-cifar10-adv-train": (0.864, 0.0100, 0.0157),
    "woods2019-cifar10-all": (0.679, 0.0188, 0.0414),
    "woods2019-cifar10-robust": (0.676, 0.0142, 0.0395),
}
PAPER_IMAGES = "the authors' figures on 1000 CIFAR-10 test images"
PAPER_ROBUST = ("woods2019-cifar10-all", "woods2019-cifar10-robust")  # the paper's robust additions


@dataclass(frozen=True)
class ARAConfig:
    """Settings of one ARA run.

    Attributes:
        n_images: N, how many images of the set (None: all).
        steps, size, momentum: the minimal-perturbation search (`attacks.SearchSettings`: the paper's).
        batch_size: images per search batch (memory, not results).
        split: the dataset split the images come from (recorded in the report).
        sample: "reference" (the authors' seeded random subset) or "first" (the first N).
    """

    n_images: int | None = None
    steps: int = SearchSettings.steps
    size: float = SearchSettings.size
    momentum: float = SearchSettings.momentum
    batch_size: int = 128
    split: str = "test"
    sample: Sample = "reference"

    @property
    def search(self) -> SearchSettings:
        """The search's settings as the algorithm takes them."""
        return SearchSettings(steps=self.steps, size=self.size, momentum=self.momentum)

    def check(self) -> None:
        """ValueError naming the first setting out of range."""
        if self.n_images is not None and self.n_images < 1:
            raise ValueError("n_images must be at least 1.")
        self.search.check()
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1.")
        if self.sample not in ("reference", "first"):
            raise ValueError(f"sample must be 'reference' or 'first', got {self.sample!r}.")


@dataclass(frozen=True)
class RobustnessResult:
    """Both ARAs, the curves, which images, what looked wrong, and the JSON report.

    Attributes:
        attack_ara, btr_ara, accuracy: the areas (RMS units) and clean accuracy.
        image_indices: dataset indices evaluated, in order.
        curves: boundary -> (ρ, A(ρ)) step points (``accuracy_curve``).
        late: boundary -> dataset indices whose minimum was first found after step S/2.
        warnings: sentences for the user (empty when nothing needs saying).
        intervals: "attack_ara", "btr_ara", "accuracy" -> its 95 % interval (None under two images;
            the accuracy's is Wilson's).
        ara: the full ``AraResult`` (per-image tensors; ``ara_figure`` draws it).
        report: JSON-able: everything above plus per-image ρ*, predictions, settings, versions, and
            ``reading`` (`advexp_core.readings.ara.live`: against the stored standard network of the
            model's family, when there is one: `standard_reference`).
    """

    attack_ara: float
    btr_ara: float
    accuracy: float
    image_indices: tuple[int, ...]
    curves: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    late: dict[str, tuple[int, ...]]
    warnings: tuple[str, ...]
    intervals: dict[str, Interval | None]
    ara: AraResult
    report: dict[str, Any]


def check_fits(model: LoadedModel, dataset: Dataset) -> None:
    """ValueError unless the dataset's classes and image size are the model's."""
    names = getattr(dataset, "class_names", None)
    if names is not None and len(names) != model.num_classes:
        raise ValueError(
            f"{model.model_id} has {model.num_classes} classes but the images have {len(names)}; "
            "the network was not trained on this dataset."
        )
    size = tuple(dataset[0][0].shape[-2:])
    if size != tuple(model.input_size):
        raise ValueError(
            f"The images are {size[0]}×{size[1]} px but {model.model_id} takes {model.input_size}."
        )


def robustness_experiment(
    model: LoadedModel,
    dataset: Dataset,
    config: ARAConfig = ARAConfig(),
    *,
    on_step: OnStep | None = None,
    ctx: DistContext | None = None,
) -> RobustnessResult:
    """Attack and BTR ARA of ``model`` on ``config.n_images`` images of ``dataset`` (docs/method.md §3).

    Args:
        model: the loaded network (not modified; its lock is taken once, to copy it).
        dataset: (image (3, H, W) in [0, 1], label) pairs of the model's classes and size.
        config: the settings (``ARAConfig``).
        on_step: progress, on_step(done, total) after every search step of this process.
        ctx: a process group to shard the search over (``advexp_core.base.distributed``).

    Returns:
        ``RobustnessResult``.

    Raises:
        ValueError: bad settings, images that do not fit the model, N out of range.
        BoundaryNotReachedError: some image never met a boundary (too few steps).
    """
    config.check()
    check_fits(model, dataset)
    assert isinstance(dataset, Sized)
    indices = select_images(len(dataset), config.n_images, sample=config.sample)
    # The search runs for minutes; on a copy, the shared module stays free for other pages
    # (and their hook-based explainers never see this search's forwards).
    with model.lock:
        network = copy.deepcopy(model.module)
    ara = evaluate_ara(
        network, dataset, indices=indices, num_classes=model.num_classes, steps=config.steps,
        size=config.size, momentum=config.momentum, batch_size=config.batch_size,
        ctx=ctx or DistContext(device=device_of(network)), on_progress=on_step,
    )  # fmt: skip
    curves: dict[str, Any] = {b: tuple(tuple(t.tolist()) for t in ara.curve(b)) for b in BOUNDARIES}
    late: dict[str, tuple[int, ...]] = {b: tuple(ara.late(b)) for b in BOUNDARIES}
    warnings = tuple(_late_warning(b, late[b], ara) for b in BOUNDARIES if late[b])
    intervals = area_intervals(ara)
    return RobustnessResult(
        attack_ara=ara.attack_ara, btr_ara=ara.btr_ara, accuracy=ara.accuracy, image_indices=ara.image_indices,
        curves=curves, late=late, warnings=warnings, intervals=intervals, ara=ara,
        report=_report(model, dataset, config, ara, curves, warnings, intervals),
    )  # fmt: skip


def area_intervals(ara: AraResult, *, seed: int = BOOTSTRAP_SEED) -> dict[str, Interval | None]:
    """Both areas' bootstrap intervals over the images and the accuracy's Wilson interval."""
    correct = round(ara.accuracy * ara.n_images)
    return {
        "attack_ara": ara_interval(ara.rho_star_attack, num_classes=ara.num_classes, seed=seed),
        "btr_ara": ara_interval(ara.rho_star_btr, num_classes=ara.num_classes, seed=seed),
        "accuracy": wilson_interval(correct, ara.n_images),
    }


def _late_warning(boundary: Boundary, late: tuple[int, ...], ara: AraResult) -> str:
    shown = ", ".join(str(i) for i in late[:20]) + (" …" if len(late) > 20 else "")
    name = "Attack" if boundary == "attack" else "BTR"
    return (
        f"{len(late)} of {ara.n_images} images first met the {name} boundary after step {ara.steps // 2} "
        f"of {ara.steps}; the authors' code refuses such a search, since too few steps are left to shrink "
        f"the perturbation and ρ* may be over-estimated. Use more steps or a larger size. Images: {shown}"
    )


def _report(
    model: LoadedModel, dataset: Dataset, config: ARAConfig, ara: AraResult,
    curves: dict[str, Any], warnings: tuple[str, ...], intervals: dict[str, Interval | None],
) -> dict[str, Any]:  # fmt: skip
    """The JSON report: areas with their intervals, indices, per-image results, curves, warnings,
    settings, versions."""
    summary = ara.to_dict()
    settings = {**asdict(config), **summary.pop("settings"), "n_images": ara.n_images}
    settings.update(bootstrap_seed=BOOTSTRAP_SEED, confidence=CONFIDENCE)
    if config.sample == "reference":
        settings["seed"] = REFERENCE_SEED
    numbers: dict[str, Any] = {}
    for key in ("attack_ara", "btr_ara", "accuracy"):
        interval = intervals.get(key)
        numbers[key] = json_number(summary.pop(key))
        numbers[f"{key}_ci"] = None if interval is None else [json_number(v) for v in interval]
    images = [
        {"index": i, "label": int(y), "prediction": predictions(logits, model.class_names, 1)[0]}
        for i, y, logits in zip(ara.image_indices, ara.labels.tolist(), ara.clean_logits, strict=True)
    ]
    name = getattr(dataset, "name", None)
    measured = AraNumbers(
        model.model_id, model.robust, ara.attack_ara, ara.btr_ara,
        f"{ara.n_images} {name + ' ' if name else ''}{config.split} images",
    )  # fmt: skip
    reference = standard_reference(model.model_id)
    reading = readings.live(
        measured, accuracy=ara.accuracy, reference=reference,
        ratio_interval=live_ratio_interval(intervals["attack_ara"], reference),
    )  # fmt: skip
    return {
        "experiment": "ara",
        "model": model.model_id,
        "dataset": name,
        **numbers,
        **summary,
        "reading": reading.to_json(),
        "images": images,
        "curves": {b: {"rho": list(rho), "accuracy": list(acc)} for b, (rho, acc) in curves.items()},
        "warnings": list(warnings),
        "settings": settings,
        "versions": versions(),
    }


def live_ratio_interval(interval: Interval | None, reference: AraNumbers | None) -> Interval | None:
    """The interval of a live Attack ARA's ratio to a stored reference's: the live area's bootstrap
    interval over its images divided by the reference's area, taken as fixed (it comes from a stored
    run on as many images or more, or from the authors' table, which has no per-image data). With
    under two live images nothing bounds the ratio: (0, inf). None without a reference area."""
    if reference is None or not reference.attack_ara > 0:
        return None
    if interval is None:
        return 0.0, float("inf")
    return interval[0] / reference.attack_ara, interval[1] / reference.attack_ara


def _entries(manifest: Mapping[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every scored network of a manifest with its dataset (the digits networks, the ground-truth ones)."""
    default = str(manifest.get("dataset", ""))
    return [
        (entry, str(entry.get("dataset", default)))
        for entry in [*manifest.get("networks", []), *manifest.get("groundtruth", [])]
    ]


def stored_numbers(entry: Mapping[str, Any], dataset: str, n_images: int | None = None) -> AraNumbers:
    """A manifest entry's stored areas (``n_images``: its ARA image count when the entry does not say)."""
    n = entry.get("ara_settings", {}).get("n_images", n_images)
    return AraNumbers(
        str(entry["id"]), bool(entry.get("robust_additions", False)), float(entry["attack_ara"]),
        float(entry["btr_ara"]), f"{n} {dataset} test images, stored",
    )  # fmt: skip


def paper_numbers() -> list[AraNumbers]:
    """The authors' published CIFAR-10 areas (`PAPER_ARA`) as readings take them."""
    return [AraNumbers(k, k in PAPER_ROBUST, a, b, PAPER_IMAGES) for k, (_, a, b) in PAPER_ARA.items()]


def standard_reference(model_id: str, folder: Path | None = None) -> AraNumbers | None:
    """The standard network a live ARA of ``model_id`` is read against: the authors' standard
    CIFAR-10 figure for their networks, else the stored standard network of the same dataset in
    the checkpoints' manifest (``folder``, default the shipped one); None when there is none."""
    if model_id in PAPER_ARA:
        return paper_numbers()[0]
    manifest = read_manifest(folder)
    n = manifest.get("ara_settings", {}).get("n_images")
    entries = _entries(manifest)
    dataset = next((d for e, d in entries if e.get("id") == model_id), None)
    standard = next(
        (e for e, d in entries if d == dataset and e.get("recipe") == "standard" and "attack_ara" in e), None
    )
    return None if dataset is None or standard is None else stored_numbers(standard, dataset, n)


__all__ = [
    "PAPER_ARA",
    "ARAConfig",
    "RobustnessResult",
    "area_intervals",
    "check_fits",
    "live_ratio_interval",
    "paper_numbers",
    "robustness_experiment",
    "standard_reference",
    "stored_numbers",
]
