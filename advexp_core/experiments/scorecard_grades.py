"""The scorecard's reliance grades: each explainer graded against what the network's decisions
measurably rest on, beside a control network the shortcut says nothing to (`advexp_core.evaluation.reliance_grades`,
`advexp_core.experiments.catalogue.GRADES_CONTROL`).

The scorecard's mask columns say where a map falls (on the lesion: where a dermatologist would look),
not whether it explains the decision; these grades do, so they are read first.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from advexp_core.evaluation.reliance import LesionTwins, check_lesions_model, lesion_twins, twin_reliance
from advexp_core.evaluation.reliance_grades import (
    MapShares,
    RelianceGrades,
    area_shares,
    grade_shares,
    ruler_shares,
)
from advexp_core.experiments.scorecard import explanation_maps
from advexp_core.experiments.scorecard_results import ScorecardConfig, ScorecardResult
from advexp_core.networks.registry import LoadedModel


def control_shares(control: LoadedModel, result: ScorecardResult) -> MapShares:
    """The control's ruler shares on the result's split, N and explainers (the same for every
    network graded on them); the control's lock is held once per method."""
    config = result.config
    twins = lesion_twins(config.split, config.n_images)
    return map_shares(control, twins, methods=tuple(result.explainers), batch_size=config.batch_size)


def with_grades(
    model: LoadedModel, result: ScorecardResult, control: LoadedModel, *, reference: MapShares | None = None
) -> ScorecardResult:
    """The scorecard with its explainers' reliance grades against ``control`` (docs/method.md §5).

    Args:
        model: the scored network (a lesions network); its lock is held once per method.
        result: its scorecard.
        control: the control network (`catalogue.GRADES_CONTROL`).
        reference: the control's `control_shares` when already measured (e.g. for the other
            network of a pair); None: measured here.

    Raises:
        RelianceError (a ValueError): a network that does not classify the lesions.

    Shapes: grades over the images of the first N that have a ruler.
    """
    config = result.config
    twins = lesion_twins(config.split, config.n_images)
    methods = tuple(result.explainers)
    network = map_shares(model, twins, methods=methods, batch_size=config.batch_size)
    if reference is None:
        reference = map_shares(control, twins, methods=methods, batch_size=config.batch_size)
    grades: RelianceGrades = grade_shares(network, reference, control_id=control.model_id)
    return dataclasses.replace(result, grades=grades)


def explainer_maps(
    model: LoadedModel, images: Tensor, targets: Tensor, *, method: str, seed: int = 0, batch_size: int = 32
) -> Tensor:
    """One explainer's maps of any network, as the grades read them: the scorecard's maps
    (non-negative, input resolution, the project's default settings, SmoothGrad noise from ``seed``).
    No lock is taken: hold ``model.lock`` around the call (Grad-CAM hooks the shared module).

    Raises:
        ValueError: an unknown method.

    Shapes: images (N, 3, H, W), targets (N,) -> (N, H, W) on the CPU.
    """
    config = ScorecardConfig(
        methods=(method,), n_images=max(1, len(images)), seed=seed, batch_size=batch_size
    )
    return explanation_maps(model, images, targets, method, config)


def map_shares(
    model: LoadedModel, twins: LesionTwins, *, methods: tuple[str, ...], batch_size: int = 32
) -> MapShares:
    """Measure the network's reliance on the twins and each explainer's ruler shares on the images
    with a ruler; the lock is held once per method (Grad-CAM hooks the shared module).

    Raises:
        RelianceError: not a lesions network; ValueError: an unknown method.

    Shapes: twins of N images -> shares (R,) over the R with a ruler.
    """
    check_lesions_model(model)
    config = ScorecardConfig(
        dataset="lesions",
        split=twins.split,
        n_images=len(twins.labels),
        methods=methods,
        batch_size=batch_size,
    )
    reliance = twin_reliance(model, twins, batch_size=batch_size)
    has = twins.has_ruler
    images, masks = twins.images[has], twins.ruler_masks[has]
    targets = reliance.removal.before.predictions[has]
    shares = {}
    for method in methods:
        with model.lock:
            shares[method] = ruler_shares(explanation_maps(model, images, targets, method, config), masks)
    return MapShares(reliance, shares, area_shares(masks))


def reliance_grades(
    model: LoadedModel,
    control: LoadedModel | None,
    *,
    split: str = "test",
    n_images: int = 200,
    methods: tuple[str, ...] = ("gradient", "smoothgrad", "ig", "gradcam"),
    batch_size: int = 32,
) -> RelianceGrades:
    """Measure the network's reliance on the ruler and grade each explainer's maps against it.

    Args:
        model: a lesions network.
        control: a lesions network that does not rest on the ruler (None: no AUROC).
        split, n_images: the first N images of a lesions split.
        methods: explainers of ``experiments.scorecard.SCORECARD_METHODS``.
        batch_size: images per batched map call.

    Raises:
        RelianceError: see ``shortcut_reliance``; ValueError: an unknown method.

    Shapes: maps (R, 64, 64) over the R images of the first N that have a ruler.
    """
    check_lesions_model(model)
    if control is not None:
        check_lesions_model(control)
    twins = lesion_twins(split, n_images)
    network = map_shares(model, twins, methods=methods, batch_size=batch_size)
    reference = (
        None if control is None else map_shares(control, twins, methods=methods, batch_size=batch_size)
    )
    return grade_shares(network, reference)
