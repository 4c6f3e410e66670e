"""The shipped networks the ground-truth experiments pair: each dataset's standard and robust
network, every network the research tables' scorecard covers (research/README.md), and the control each graded network is
compared with (`advexp_core.evaluation.reliance_grades`)."""

from __future__ import annotations

# The shipped ground-truth networks: dataset -> (standard, robust).
GROUND_TRUTH_PAIRS = {
    "lesions": ("lesions-standard", "lesions-robust"),
    "blockdigits": ("blockdigits-standard", "blockdigits-robust"),
}
# Every shipped network the research tables' scorecard covers (research/README.md): the pairs, with blockdigits-adv-train (PGD
# adversarial training, as Shah et al.'s robust models) between the standard and the robust one.
GROUND_TRUTH_NETWORKS = {
    "lesions": GROUND_TRUTH_PAIRS["lesions"],
    "blockdigits": ("blockdigits-standard", "blockdigits-adv-train", "blockdigits-robust"),
}
# Datasets whose networks are graded against what their decisions measurably rest on, with a
# control the shortcut says nothing to: lesions-unbiased was trained with rulers in half of each
# class, so its decisions barely change when a ruler is removed or drawn on (lesions-clean, which
# never saw a ruler, is not such a control: the unfamiliar strip sways it).
GRADES_CONTROL = {"lesions": "lesions-unbiased"}


def ground_truth_networks(dataset: str) -> tuple[str, ...]:
    """The networks a ground-truth page shows: the control first where there is one, then the pair."""
    control = GRADES_CONTROL.get(dataset)
    return (*([control] if control else []), *GROUND_TRUTH_PAIRS[dataset])


def grades_control(dataset: str, model_id: str) -> str | None:
    """The control a network of ``dataset`` is graded against (None: not graded, or it is the control)."""
    control = GRADES_CONTROL.get(dataset)
    return None if control is None or control == model_id else control
