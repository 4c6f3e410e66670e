"""One call per experiment: a frozen config in, a frozen result out (what pages and the CLI call).

Every default of the project is written once, in the config dataclasses of this package
(`configs`). Each experiment takes a `LoadedModel`, holds its lock once for the whole run (the app
shares one model across sessions; hook-based explainers must not meet another run's forward
pass), reports progress through one `advexp_core.base.runtime.OnStep` as ``on_step(done, total)``, and
returns a frozen result holding the tensors, the numbers and a JSON-able ``report``.
"""

from advexp_core.experiments.configs import (
    ATTACK_METHODS,
    MAP_METHODS,
    RANDOM_LABEL_PARTNERS,
    REGIONS,
    AttackConfig,
    ExplainersConfig,
    ExplanationConfig,
    ManipulationConfig,
    SaliencyConfig,
    SanityConfig,
    norm_scale,
)
from advexp_core.experiments.explainers import CompareExplainersResult, agreement, compare_explainers
from advexp_core.experiments.explanations import (
    AdversarialExplanationsResult,
    ContrastExplanationsResult,
    adversarial_explanations,
    contrast_explanations,
)
from advexp_core.experiments.maps import classify
from advexp_core.experiments.move_map import MoveTheMapResult, move_the_map
from advexp_core.experiments.sanity import SanityChecksResult, SanityPlan, sanity_checks, sanity_plan
from advexp_core.experiments.under_attack import (
    AdversarialExampleResult,
    SaliencyUnderAttackResult,
    adversarial_example,
    saliency_under_attack,
)

__all__ = [
    "ATTACK_METHODS",
    "MAP_METHODS",
    "RANDOM_LABEL_PARTNERS",
    "REGIONS",
    "AdversarialExampleResult",
    "AdversarialExplanationsResult",
    "AttackConfig",
    "CompareExplainersResult",
    "ContrastExplanationsResult",
    "ExplainersConfig",
    "ExplanationConfig",
    "ManipulationConfig",
    "MoveTheMapResult",
    "SaliencyConfig",
    "SaliencyUnderAttackResult",
    "SanityChecksResult",
    "SanityConfig",
    "SanityPlan",
    "adversarial_example",
    "adversarial_explanations",
    "agreement",
    "classify",
    "compare_explainers",
    "contrast_explanations",
    "move_the_map",
    "norm_scale",
    "saliency_under_attack",
    "sanity_checks",
    "sanity_plan",
]
