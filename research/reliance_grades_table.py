"""Print each explainer's grades against the measured reliance of every lesions network (markdown).

For the shipped lesions networks (``lesions-standard``, ``-robust`` and the controls ``lesions-clean``,
``lesions-unbiased``), on the first N test images: the maps of every explainer on the images with a
ruler, graded by ``advexp_core.evaluation.reliance_grades`` (misleading rate, shortcut-detection AUROC against
each control, effect Spearman), each grade with its 95 % interval in brackets (the misleading rate:
Wilson; the ruler share, AUROC and Spearman: a bootstrap over the graded images, seed 0; docs/method.md
§9). The maps of each network are computed once and shared by every pairing. Writes the full numbers,
with their ``_ci`` intervals, as JSON with --out.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m research.reliance_grades_table [--n-images 200] [--methods ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from advexp_core.evaluation.reliance import lesion_twins
from advexp_core.evaluation.reliance_grades import ExplainerGrades, RelianceGrades, grade_shares
from advexp_core.experiments.scorecard_grades import map_shares
from advexp_core.experiments.scorecard_results import SCORECARD_METHODS
from advexp_core.networks.registry import load_model
from advexp_core.readings.intervals import with_interval

ROOT = Path(__file__).resolve().parent.parent

NETWORKS = ("lesions-standard", "lesions-robust", "lesions-clean", "lesions-unbiased")
CONTROLS = ("lesions-clean", "lesions-unbiased")


def _cell(grades: ExplainerGrades, name: str) -> str:
    """One grade with its interval, "0.79 [0.63, 0.90]"."""
    return with_interval(getattr(grades, name), grades.interval(name))


def table(results: dict[str, dict[str, RelianceGrades]]) -> str:
    """One row per (explainer, network): n graded, mean ruler share, the grades, AUROC per control."""
    head = (
        "| Explainer | Network | graded | ruler share | misleading rate | "
        + " | ".join(f"AUROC vs {c}" for c in CONTROLS)
        + " | effect Spearman | (all ruler images) |"
    )
    lines = [head, "|" + "---|" * (7 + len(CONTROLS))]
    first = next(iter(results.values()))
    methods = [g.method for g in next(iter(first.values())).grades]
    for k, method in enumerate(methods):
        for network, by_control in results.items():
            any_grades = next(iter(by_control.values())).grades[k]
            aurocs = [
                _cell(by_control[c].grades[k], "shortcut_detection_auroc") if c in by_control else "—"
                for c in CONTROLS
            ]
            lines.append(
                f"| {method} | {network} | {any_grades.n_images} | {_cell(any_grades, 'mean_ruler_share')} | "
                f"{_cell(any_grades, 'misleading_rate')} | {' | '.join(aurocs)} | "
                f"{_cell(any_grades, 'effect_spearman')} | {_cell(any_grades, 'effect_spearman_all')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200, help="the first N test images (default 200)")
    parser.add_argument("--methods", default=",".join(SCORECARD_METHODS), help="comma-separated explainers")
    parser.add_argument("--out", type=Path, default=None, help="write every number as JSON here")
    args = parser.parse_args(argv)
    methods = tuple(m for m in args.methods.split(",") if m)
    twins = lesion_twins("test", args.n_images)
    shares = {}
    for network in NETWORKS:
        shares[network] = map_shares(load_model(network, device="cpu"), twins, methods=methods)
        print(f"{network}: maps done", file=sys.stderr, flush=True)
    results = {
        network: {c: grade_shares(shares[network], shares[c]) for c in CONTROLS if c != network}
        for network in NETWORKS
    }
    if args.out is not None:
        payload = {n: {c: g.to_json() for c, g in by.items()} for n, by in results.items()}
        args.out.write_text(
            json.dumps({"n_images": args.n_images, "split": "test", "grades": payload}, indent=2) + "\n"
        )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
