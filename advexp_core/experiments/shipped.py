"""The shipped networks' robustness, from the files kept with the checkpoints (docs/method.md §3).

``checkpoints/manifest.json`` records each network this project trained with its ARAs; beside it,
``<id>.rho.json`` keeps the per-image minimal perturbations ρ* (Attack and BTR boundaries) that
``advexp ara`` measured, and the manifest entry records that file's sha256 (``rho_file``,
``rho_sha256``). ``rho_record`` writes the file's content; ``load_shipped`` reads every network's
file back, checks its sha256 and gives the ρ* arrays, so the curves A(ρ) can be drawn without
re-running the search, and the areas' intervals computed from them (a bootstrap over the images;
a ratio to the standard twin measured on the same images, a paired one: docs/method.md §9).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advexp_core.methods.ara import (
    BOOTSTRAP_SEED,
    AraResult,
    Interval,
    RobustnessCurve,
    accuracy_robustness_area,
    ara_interval,
    ara_ratio_interval,
)
from advexp_core.networks import zoo
from advexp_core.networks.checkpoints import sha256_file

RHO_FORMAT = "advexp-rho-1"


class RhoFileError(ValueError):
    """A network's stored ρ* cannot be used: missing, altered since it was recorded, or malformed.

    Attributes: model_id, path, not_recorded (True when the manifest names no file: not measured
    yet, rather than refused).
    """

    def __init__(self, model_id: str, path: Path | None, reason: str, *, not_recorded: bool = False) -> None:
        self.model_id = model_id
        self.path = path
        self.not_recorded = not_recorded
        where = f" ({path.name})" if path is not None else ""
        super().__init__(f"The stored robustness radii of {model_id}{where} were not used: {reason}")


@dataclass(frozen=True)
class ShippedRobustness:
    """One shipped network's per-image ρ* and what it is (docs/method.md §3).

    Attributes:
        model_id, recipe: the manifest's id and training recipe.
        robust_additions: whether the recipe has the paper's penalty and smooth activation (§1).
        num_classes: C (the chance level is 1/C).
        dataset, split: where the images came from.
        image_indices: the dataset index of each image, in the order of the ρ* arrays.
        rho_attack, rho_btr: (N,) float64 ρ* (RMS, pixel units) for the two boundaries.
        settings: the search (steps, size, momentum, batch_size, sample).
    """

    model_id: str
    recipe: str
    robust_additions: bool
    num_classes: int
    dataset: str
    split: str
    image_indices: tuple[int, ...]
    rho_attack: Tensor
    rho_btr: Tensor
    settings: dict[str, Any]

    def rho(self, boundary: str = "attack") -> Tensor:
        """ρ* of one boundary ("attack" or "btr"). Shapes: -> (N,)."""
        return self.rho_attack if boundary == "attack" else self.rho_btr

    def area(self, boundary: str = "attack") -> float:
        """The ARA recomputed from the stored ρ* (``accuracy_robustness_area``)."""
        return accuracy_robustness_area(self.rho(boundary), num_classes=self.num_classes)

    def area_interval(self, boundary: str = "attack", *, seed: int = BOOTSTRAP_SEED) -> Interval | None:
        """The area's 95 % interval, a bootstrap over the stored images (``ara_interval``)."""
        return ara_interval(self.rho(boundary), num_classes=self.num_classes, seed=seed)

    def ratio_interval(
        self, standard: ShippedRobustness, boundary: str = "attack", *, seed: int = BOOTSTRAP_SEED
    ) -> Interval | None:
        """The 95 % interval of this area's ratio to ``standard``'s, a paired bootstrap over the images
        both were measured on (``ara_ratio_interval``); None when the images differ."""
        if self.image_indices != standard.image_indices or self.num_classes != standard.num_classes:
            return None
        return ara_ratio_interval(
            self.rho(boundary), standard.rho(boundary), num_classes=self.num_classes, seed=seed
        )

    def curve(self, boundary: str = "attack") -> RobustnessCurve:
        """This network's curve for ``robustness_curves_figure``."""
        return RobustnessCurve(
            name=self.model_id,
            rho_star=self.rho(boundary),
            num_classes=self.num_classes,
            robust=self.robust_additions,
        )


def rho_record(
    ara: AraResult, *, model_id: str, dataset: str | None, split: str, sample: str
) -> dict[str, Any]:
    """The content of a ``.rho.json`` file: per-image ρ* of both boundaries with their settings.

    Args:
        ara: the measured result (``evaluate_ara``).
        model_id: the network, as named on the command line (a zoo id for shipped networks).
        dataset, split, sample: where the images came from and how they were chosen.

    Returns:
        A JSON-able dict (format ``advexp-rho-1``).
    """
    return {
        "format": RHO_FORMAT,
        "model": model_id,
        "dataset": dataset,
        "split": split,
        "num_classes": ara.num_classes,
        "n_images": ara.n_images,
        "image_indices": list(ara.image_indices),
        "attack_ara": ara.attack_ara,
        "btr_ara": ara.btr_ara,
        "accuracy": ara.accuracy,
        "rho_attack": ara.rho_star_attack.tolist(),
        "rho_btr": ara.rho_star_btr.tolist(),
        "steps": ara.steps,
        "size": ara.size,
        "momentum": ara.momentum,
        "batch_size": ara.batch_size,
        "sample": sample,
    }


def checkpoints_dir() -> Path:
    """The folder of the shipped checkpoints and their manifest (read at call time, so tests can move it)."""
    return Path(zoo.CHECKPOINTS_DIR)


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The manifest of ``folder`` (default ``checkpoints_dir()``); {} when it is not there."""
    path = (folder or checkpoints_dir()) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def load_rho(entry: dict[str, Any], folder: Path | None = None) -> ShippedRobustness:
    """The stored ρ* of one manifest entry, after checking the file against the manifest's sha256.

    Args:
        entry: one item of the manifest's "networks".
        folder: where the manifest and the rho files are (default ``checkpoints_dir()``).

    Returns:
        ``ShippedRobustness``.

    Raises:
        RhoFileError: the entry names no rho file, the file is missing, its sha256 differs from the
        manifest's, or its content is malformed.
    """
    model_id = str(entry.get("id", "?"))
    name, digest = entry.get("rho_file"), entry.get("rho_sha256")
    if not name or not digest:
        raise RhoFileError(
            model_id,
            None,
            "the manifest records no per-image ρ* for it yet (python -m research.ship_robustness measures them).",
            not_recorded=True,
        )
    path = (folder or checkpoints_dir()) / Path(str(name)).name  # a bare name: never outside the folder
    if not path.is_file():
        raise RhoFileError(model_id, path, "the file is missing.")
    actual = sha256_file(path)
    if actual != digest:
        raise RhoFileError(
            model_id, path,
            f"its sha256 ({actual[:12]}…) differs from the one in the manifest ({str(digest)[:12]}…), "
            "so it was changed after it was recorded. Re-run python -m research.ship_robustness to measure it again.",
        )  # fmt: skip
    return _parse(entry, path, model_id)


def _parse(entry: dict[str, Any], path: Path, model_id: str) -> ShippedRobustness:
    try:
        data = json.loads(path.read_text())
        rho = {b: torch.tensor(data[f"rho_{b}"], dtype=torch.float64) for b in ("attack", "btr")}
        indices = tuple(int(i) for i in data["image_indices"])
        num_classes = int(data["num_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RhoFileError(model_id, path, f"its content is malformed ({exc}).") from exc
    n = len(indices)
    if data.get("format") != RHO_FORMAT or data.get("model") != model_id or num_classes < 2:
        raise RhoFileError(model_id, path, f"it is not a {RHO_FORMAT} file for {model_id}.")
    if any(r.shape != (n,) or not bool(torch.isfinite(r).all()) or bool((r < 0).any()) for r in rho.values()):
        raise RhoFileError(model_id, path, "its ρ* are not one finite value ≥ 0 per image.")
    return ShippedRobustness(
        model_id=model_id, recipe=str(entry.get("recipe", "?")),
        robust_additions=bool(entry.get("robust_additions", False)), num_classes=num_classes,
        dataset=str(data.get("dataset")), split=str(data.get("split")), image_indices=indices,
        rho_attack=rho["attack"], rho_btr=rho["btr"],
        settings={k: data.get(k) for k in ("steps", "size", "momentum", "batch_size", "sample")},
    )  # fmt: skip


def load_shipped(folder: Path | None = None) -> tuple[list[ShippedRobustness], list[RhoFileError]]:
    """Every shipped network's stored ρ*, in manifest order, and the files refused.

    A refused file does not stop the others: it is returned with its reason instead.

    Returns:
        (the networks whose files passed, one ``RhoFileError`` per network whose file did not).
    """
    loaded: list[ShippedRobustness] = []
    refused: list[RhoFileError] = []
    for entry in read_manifest(folder).get("networks", []):
        try:
            loaded.append(load_rho(entry, folder))
        except RhoFileError as exc:
            refused.append(exc)
    return loaded, refused


__all__ = [
    "RHO_FORMAT",
    "RhoFileError",
    "ShippedRobustness",
    "checkpoints_dir",
    "load_rho",
    "load_shipped",
    "read_manifest",
    "rho_record",
]
