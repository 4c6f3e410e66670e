"""The scorecard's reliance grades: each explainer graded against what the network's decisions
measurably rest on, beside a control network the shortcut says nothing to (`advexp_core.reliance_grades`,
`advexp_core.experiments.catalogue.GRADES_CONTROL`).

The scorecard's mask columns say where a map falls (on the lesion: where a dermatologist would look),
not whether it explains the decision; these grades do, so they are read first.
"""

from __future__ import annotations

import dataclasses

from advexp_core.experiments.scorecard import ScorecardResult
from advexp_core.models import LoadedModel
from advexp_core.reliance import lesion_twins
from advexp_core.reliance_grades import MapShares, RelianceGrades, grade_shares, map_shares


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
