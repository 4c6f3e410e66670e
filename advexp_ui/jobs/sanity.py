"""The randomisation sanity checks (docs/method.md §5): does each map follow the network?"""

from __future__ import annotations

from advexp_core.experiments import SanityConfig, sanity_checks
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.figures import figure_png
from advexp_core.plots.sanity import sanity_figure
from advexp_ui.jobs.common import OnStep, Outcome, cached_result, header, model_image

FIGURE = "sanity.png"


def compute_sanity(
    image_bytes: bytes, config: SanityConfig, model: LoadedModel, on_step: OnStep | None = None
) -> Outcome:
    """The cascading (and, for digits-standard, data) randomisation check; the figure as a panel."""
    result = sanity_checks(model, model_image(image_bytes, model), config, on_step=on_step)
    body = {k: v for k, v in result.to_json().items() if k not in ("settings", "image", "model")}
    report = {**header(model, config, "sanity checks"), **body}
    png = figure_png(sanity_figure(result.cascade, result.image))
    return Outcome(report, {"figure": png}, {FIGURE: png})


@cached_result
def sanity(
    image_bytes: bytes,
    model_id: str,
    config: SanityConfig,
    _model: LoadedModel,
    _on_step: OnStep | None = None,
) -> Outcome:
    """``compute_sanity``, cached by (image bytes, model id, config)."""
    return compute_sanity(image_bytes, config, _model, _on_step)
