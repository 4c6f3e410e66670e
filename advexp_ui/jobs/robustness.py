"""Robustness (docs/method.md §3): the shipped networks' ARAs and curves from their stored files, and a live run.

The shipped networks' curves A(ρ) are drawn from the per-image ρ* kept beside the manifest
(``advexp_core.experiments.shipped``), each file checked against the sha256 the manifest records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.experiments import shipped
from advexp_core.experiments.ara import (
    PAPER_IMAGES,
    ARAConfig,
    check_fits,
    paper_numbers,
    robustness_experiment,
    stored_numbers,
)
from advexp_core.methods.ara import ara_figure, robustness_curves_figure
from advexp_core.networks.registry import LoadedModel
from advexp_core.networks.zoo import CIFAR10_CLASSES
from advexp_core.plots.figures import figure_png
from advexp_core.readings import Reading
from advexp_core.readings.ara import ratios
from advexp_core.readings.intervals import ratio_with_interval, with_interval
from advexp_ui import gallery
from advexp_ui.jobs.common import OnStep, Outcome, cached_result, header

BOUNDARY_NAMES = {"attack": "Attack (misclassified)", "btr": "BTR (true class at chance or below)"}

DATASETS = {
    "digits": "digits test set (offline; for the digits networks)",
    "cifar10-five": "the paper's five CIFAR-10 test images (offline; for the CIFAR-10 networks)",
    "cifar10": "CIFAR-10 test set (downloads once when online)",
    "gallery": "the gallery photos with their ImageNet labels (for ImageNet networks)",
}


@dataclass(frozen=True)
class LiveAraConfig(ARAConfig):
    """The live ARA run: the experiment's settings (``ARAConfig``) plus which offline image set."""

    dataset: str = "digits"


def default_dataset(model: LoadedModel) -> str:
    """The offline image set that fits the model best."""
    if model.model_id.startswith("digits-"):
        return "digits"
    if model.class_names == CIFAR10_CLASSES and gallery.weights_dir() is not None:
        return "cifar10-five"
    return "gallery" if model.num_classes == 1000 else "digits"


def _five_cifar() -> Dataset:
    folder = gallery.weights_dir()
    if folder is None:
        raise ValueError("The paper's CIFAR-10 images are not on this computer (set ADVEXP_WEIGHTS_DIR).")
    names = list(gallery.CIFAR_IMAGES)
    images = torch.stack([decode_image((folder / n).read_bytes()) for n in names])
    labels = torch.tensor([CIFAR10_CLASSES.index(gallery.CIFAR_IMAGES[n]) for n in names])
    return TensorDataset(images, labels)


def _gallery_photos(model: LoadedModel) -> Dataset:
    entries = json.loads((gallery.GALLERY_DIR / "gallery.json").read_text())
    known = {name: k for k, name in enumerate(model.class_names)}
    pairs = [
        (key, known[item["imagenet_label"]])
        for key, item in entries.items()
        if item.get("imagenet_label") in known
    ]
    if not pairs:
        raise ValueError("The gallery photos carry ImageNet labels; this network has other classes.")
    images = torch.stack([prepare_image(decode_image(gallery.entry_bytes(k)), model) for k, _ in pairs])
    return TensorDataset(images, torch.tensor([label for _, label in pairs]))


def load_images(name: str, model: LoadedModel) -> Dataset:
    """The evaluation images for a dataset choice, checked against the model's classes and size."""
    from advexp_core.data.datasets import load_dataset

    if name == "cifar10-five":
        data = _five_cifar()
    elif name == "gallery":
        data = _gallery_photos(model)
    elif name in ("digits", "cifar10"):
        data = load_dataset(name, ARAConfig.split)
    else:
        raise ValueError(f"Unknown image set {name!r}.")
    check_fits(model, data)
    return data


def compute_ara(config: LiveAraConfig, model: LoadedModel, on_step: OnStep | None = None) -> Outcome:
    """Attack and BTR ARA of the model on N images of the chosen set (docs/method.md §3)."""
    data = load_images(config.dataset, model)
    n = min(config.n_images or len(data), len(data))  # type: ignore[arg-type]
    result = robustness_experiment(model, data, replace(config, n_images=n), on_step=on_step)
    report = header(model, config, "robustness")
    report["settings"].update(result.report["settings"])
    report.update({k: v for k, v in result.report.items() if k not in ("settings", "versions", "model")})
    report["dataset"] = config.dataset
    title = f"{model.title}: {DATASETS[config.dataset].split(' (')[0]} (N = {n})"
    return Outcome(report, {}, {"curve.png": figure_png(ara_figure(result.ara, title=title))})


@cached_result
def ara(model_id: str, config: LiveAraConfig, _model: LoadedModel, _on_step: OnStep | None = None) -> Outcome:
    """``compute_ara``, cached by (model id, config)."""
    return compute_ara(config, _model, _on_step)


def manifest(path: Path | None = None) -> list[dict[str, Any]]:
    """The shipped networks' entries (empty when the manifest is not there); default the checkpoints'."""
    path = path or shipped.checkpoints_dir() / "manifest.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return list(data) if isinstance(data, list) else list(data.get("networks", []))


def _find(entry: dict[str, Any], name: str) -> Any:
    """A value at the top of a manifest entry or one level down (e.g. under "ara")."""
    if name in entry:
        return entry[name]
    return next((v[name] for v in entry.values() if isinstance(v, dict) and name in v), None)


def shipped_reading() -> Reading | None:
    """The ARA ratios of the manifest's networks (the table on screen) to its standard one, as stored,
    read from their stored 95 % intervals when every network has them; None when the manifest has no
    standard network with its areas."""
    data = shipped.read_manifest()
    entries = [e for e in data.get("networks", []) if "attack_ara" in e and "btr_ara" in e]
    standard = next((e["id"] for e in entries if e.get("recipe") == "standard"), None)
    if standard is None:
        return None
    dataset = str(data.get("dataset", "test"))
    n = data.get("ara_settings", {}).get("n_images")
    rows = [stored_numbers(e, dataset, n) for e in entries]
    source = f"Measured by this project on {rows[0].images.removesuffix(', stored')}"
    intervals = {
        e["id"]: {b: _interval(e.get(f"{b}_ara_ratio_to_standard_ci")) for b in ("attack", "btr")}
        for e in entries
        if e["id"] != standard
    }
    known = all(v["attack"] is not None for v in intervals.values())
    return ratios(rows, standard=standard, source=source, intervals=intervals if known else None)


def _interval(value: Any) -> tuple[float, float] | None:
    """A stored ``[low, high]`` as a pair (None when absent or malformed)."""
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return float(value[0]), float(value[1])
    return None


def paper_reading() -> Reading:
    """The ARA ratios of the authors' published CIFAR-10 figures (`PAPER_ARA`) to their standard network."""
    return ratios(
        paper_numbers(),
        standard="woods2019-cifar10-standard",
        source=PAPER_IMAGES[0].upper() + PAPER_IMAGES[1:],
    )


_NAMES = {"attack": "Attack", "btr": "BTR"}


def manifest_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One table row: network, accuracy, both ARAs and their ratios to the standard network (when
    kept), each with its stored 95 % interval as "0.0106 [0.0101, 0.0110]" when the manifest has it."""
    row = {
        "network": entry.get("id", "?"),
        "recipe": entry.get("recipe", _find(entry, "recipe")),
        "test accuracy": _find(entry, "test_accuracy") or _find(entry, "accuracy"),
    }
    for boundary in ("attack", "btr"):
        area, interval = _find(entry, f"{boundary}_ara"), _interval(_find(entry, f"{boundary}_ara_ci"))
        row[f"{_NAMES[boundary]} ARA"] = (
            area if interval is None or area is None else with_interval(float(area), interval, digits=5)
        )
    for boundary in ("attack", "btr"):
        ratio = _find(entry, f"{boundary}_ara_ratio_to_standard")
        interval = _interval(_find(entry, f"{boundary}_ara_ratio_to_standard_ci"))
        if ratio is not None:
            row[f"{_NAMES[boundary]} ARA ÷ standard"] = (
                round(float(ratio), 2)
                if interval is None
                else ratio_with_interval(float(ratio), interval, digits=2)
            )
    return row


@dataclass(frozen=True)
class ShippedCurves:
    """The shipped networks whose stored ρ* can be drawn, and what was not used.

    Attributes:
        networks: the loaded files, in manifest order.
        refused: plain-language messages for files that failed their sha256 or format check.
        not_measured: ids of networks whose manifest entry records no ρ* file yet.
    """

    networks: tuple[shipped.ShippedRobustness, ...]
    refused: tuple[str, ...]
    not_measured: tuple[str, ...]


def shipped_curves() -> ShippedCurves:
    """Every shipped network's stored ρ*, each file checked against the manifest (``load_shipped``)."""
    loaded, errors = shipped.load_shipped()
    return ShippedCurves(
        networks=tuple(loaded),
        refused=tuple(str(e) for e in errors if not e.not_recorded),
        not_measured=tuple(e.model_id for e in errors if e.not_recorded),
    )


def curves_png(curves: ShippedCurves, boundary: str, highlight: str | None) -> bytes:
    """A(ρ) of every loaded network on one plot with ``highlight``'s area shaded, as a PNG."""
    key = tuple((n.model_id, n.rho(boundary).numpy().tobytes()) for n in curves.networks)
    return _curves_png(key, boundary, highlight, curves)


@cached_result
def _curves_png(key: tuple[Any, ...], boundary: str, highlight: str | None, _curves: ShippedCurves) -> bytes:
    # Keyed by the ρ* themselves, so a re-measured file redraws.
    first = _curves.networks[0]
    title = (
        f"{BOUNDARY_NAMES[boundary].split(' (')[0]} boundary: {first.dataset} {first.split} split, "
        f"N = {len(first.image_indices)}, S = {first.settings.get('steps')}"
    )
    figure = robustness_curves_figure(
        [n.curve(boundary) for n in _curves.networks], highlight=highlight, title=title
    )
    return figure_png(figure)
