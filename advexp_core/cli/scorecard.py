"""``advexp scorecard --model M --dataset D --out DIR``: does each explainer point at the evidence?

On a dataset whose evidence is known pixel by pixel (``lesions``: the lesion, with a ruler as the
shortcut; ``blockdigits``: the digit's quadrant), every explainer explains the true class of the
first N images of the split; the scorecard reports the share of each map inside the evidence and
the shortcut masks, the pointing game and the top-k evidence (the share of the map's k % highest
pixels inside the evidence), clean and after an L∞ 2/255 PGD attack that flips the decision
(`advexp_core.experiments.scorecard`). A lesions network other than the control is also graded
against what its decisions measurably rest on (``reliance_grades`` in the JSON, printed first:
misleading rate, shortcut-detection AUROC against lesions-unbiased, effect Spearman). Writes
``result.json`` and ``scorecard.png``.

Cost: per image, one forward+backward pass for the gradient, SmoothGrad's and IG's samples, LIME's
and occlusion's forward passes and the adversarial explanation's S steps, twice (clean, attacked).
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from advexp_core.base.jsonsafe import format_number
from advexp_core.cli import common
from advexp_core.cli.common import UsageError, json_text, load_model_or_usage_error, usage_errors
from advexp_core.cli.output import add_out_argument, output_folder
from advexp_core.experiments import scorecard as experiment
from advexp_core.experiments.catalogue import grades_control
from advexp_core.experiments.scorecard_grades import with_grades
from advexp_core.experiments.scorecard_results import SCORECARD_METHODS, ScorecardConfig, ScorecardResult
from advexp_core.networks.registry import LoadedModel, load_model
from advexp_core.networks.zoo import ModelError
from advexp_core.plots.figures import figure_png
from advexp_core.plots.scorecard import scorecard_figure
from advexp_core.readings.intervals import count_with_interval, percent_with_interval, with_interval

DEFAULT = ScorecardConfig()
FILES = {"result": "result.json", "figure": "scorecard.png"}
_cell = functools.partial(format_number, missing="—")  # an empty table cell, as in the README table
# The settings the core's messages name, and the flag that sets each.
FLAGS = (("number of images", "--n-images"), ("top-k", "--top-k"), ("explainer", "--methods"))


@contextmanager
def flag_errors() -> Iterator[None]:
    """A ValueError of the config or the experiment as a UsageError that names the flag to change."""
    try:
        yield
    except UsageError:
        raise
    except ValueError as exc:
        flag = next((f for setting, f in FLAGS if setting in str(exc)), None)
        raise UsageError(f"{flag}: {exc}" if flag else str(exc)) from exc


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "scorecard", help="ground truth: does each explainer point at the evidence or at the shortcut?"
    )
    common.add_model_argument(parser, required=True)
    parser.add_argument(
        "--dataset", required=True, help="a dataset with ground-truth masks: lesions or blockdigits"
    )
    parser.add_argument(
        "--split", default=DEFAULT.split, help=f"split (default {DEFAULT.split}; lesions also test-unbiased)"
    )
    parser.add_argument(
        "--n-images",
        type=int,
        default=DEFAULT.n_images,
        help=f"the first N images (default {DEFAULT.n_images})",
    )
    every = ",".join(DEFAULT.methods)
    choices = ",".join(SCORECARD_METHODS)
    parser.add_argument(
        "--methods", default=every, help=f"comma-separated explainers from {choices} (default all)"
    )
    parser.add_argument(
        "--top-k",
        default=",".join(f"{k:g}" for k in DEFAULT.top_k),
        help="comma-separated k of the top-k evidence, in %% of the image's pixels "
        f"(default {','.join(f'{k:g}' for k in DEFAULT.top_k)})",
    )
    add_out_argument(parser, "result.json, scorecard.png")
    common.add_json_argument(parser)
    parser.set_defaults(run=run, summary=summary)


def scorecard_config(args: argparse.Namespace) -> ScorecardConfig:
    """The settings the command line asks for (UsageError on an unknown method, a bad N or k)."""
    methods = tuple(m.strip() for m in str(args.methods).split(",") if m.strip())
    with usage_errors("--top-k: "):  # a ValueError: not a number
        top_k = tuple(float(k) for k in str(args.top_k).split(",") if k.strip())
    with flag_errors():
        return ScorecardConfig(
            dataset=args.dataset, split=args.split, n_images=args.n_images, methods=methods, top_k=top_k
        )


def graded(result: ScorecardResult, model: LoadedModel) -> ScorecardResult:
    """The result with its reliance grades when the dataset has a control network that loads
    (`catalogue.GRADES_CONTROL`: the lesions pair against lesions-unbiased); as it is otherwise."""
    control_id = grades_control(result.dataset, result.model)
    if control_id is None:
        return result
    try:
        control = load_model(control_id, device=model.device)
    except ModelError:  # a checkout without the control's checkpoint: the scorecard still stands
        return result
    with flag_errors():  # a split the twins do not cover, a network that is not a lesions one
        return with_grades(model, result, control)


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = scorecard_config(args)
    with usage_errors():  # an unknown dataset or split (DatasetError)
        dataset = experiment.scorecard_dataset(config)
    model = load_model_or_usage_error(args.model)
    with flag_errors():  # N larger than the split, classes or image size that do not fit
        result = graded(experiment.scorecard(model, dataset, config), model)
    if not result.explainers:
        raise UsageError("no explainer to score.")
    report = {**result.to_json(), "versions": common.versions(), "files": FILES, "out": str(args.out)}
    with output_folder(args) as tmp:
        (tmp / FILES["figure"]).write_bytes(figure_png(scorecard_figure([result])))
        (tmp / FILES["result"]).write_text(json_text(report, indent=2) + "\n")
    return report


def summary(result: dict[str, Any]) -> str:
    """The human summary: every share and rate with its 95 % interval (docs/method.md §9)."""
    chance, attack = result["chance"], result["attack"]
    seed = (result.get("intervals") or {}).get("bootstrap_seed", 0)
    lines = [
        f"{result['model']} on {result['dataset']} {result['split']}: accuracy "
        f"{with_interval(result['accuracy'], result.get('accuracy_ci'), digits=3)} ({result['accuracy_on']}); "
        f"first {result['n_images']} images explained for their true class"
    ]
    lines += _grades_lines(result.get("reliance_grades"))
    lines += [
        f"chance: evidence {_cell(chance['evidence'])}, shortcut {_cell(chance['shortcut'])}; "
        f"the L∞ {attack['eps_255']:g}/255 attack flipped {attack['flipped']} of {attack['correct']} correct "
        f"decisions ({percent_with_interval(_share(attack['flipped'], attack['correct']), attack.get('flipped_ci'))})",
        f"[95 % intervals: shares bootstrapped over images (seed {seed}), the pointing game Wilson]",
        f"{'explainer':<14} {'evidence':<19} {'shortcut':<19} pointing",
    ]
    for name, s in result["explainers"].items():
        lines.append(f"{name:<14} {_shares(s)}")
        lines.append(
            f"{'  attacked':<14} {_shares(s['attacked'])}  (the {s['attacked']['n_images']} flipped)"
        )
    ks = list(result["top_k_pixels"])
    lines.append(f"top-k evidence, k = {' / '.join(ks)} % of the pixels (chance: the evidence area)")
    for name, s in result["explainers"].items():
        lines.append(f"{name:<14} {_top_k(s, ks)}")
        lines.append(f"{'  attacked':<14} {_top_k(s['attacked'], ks)}")
    lines.append(f"wrote {result['out']}/{FILES['result']} and {FILES['figure']}")
    return "\n".join(lines)


def _share(k: int, n: int) -> float | None:
    return k / n if n else None


def _shares(s: dict[str, Any]) -> str:
    """Evidence, shortcut and pointing game, each with its interval, in columns."""
    cells = [
        with_interval(s[m], s.get(f"{m}_ci")) for m in ("evidence_share", "shortcut_share", "pointing_game")
    ]
    return f"{cells[0]:<19} {cells[1]:<19} {cells[2]}"


def _top_k(s: dict[str, Any], ks: list[str]) -> str:
    intervals = s.get("top_k_evidence_ci") or {}
    return "  ".join(f"{with_interval(s['top_k_evidence'][k], intervals.get(k)):<17}" for k in ks).rstrip()


def _grades_lines(grades: dict[str, Any] | None) -> list[str]:
    """The reliance grades first: they say whether a map explains the decision; the shares below
    only say where it falls (on the lesions: where a dermatologist would look)."""
    if grades is None:
        return []
    r = grades["reliance"]
    changed = count_with_interval(
        r["n_changed_when_removed"], r["images_with"], r.get("decisions_changed_when_removed_ci")
    )
    lines = [
        f"graded against what the decisions rest on ({changed} decisions change when the ruler is "
        f"removed; control {grades['control']}):",
        f"{'explainer':<14} {'misleading':<19} {'AUROC vs control':<19} effect Spearman",
    ]
    for name, g in grades["explainers"].items():
        cells = [
            with_interval(g[k], g.get(f"{k}_ci"))
            for k in ("misleading_rate", "shortcut_detection_auroc", "effect_spearman")
        ]
        lines.append(f"{name:<14} {cells[0]:<19} {cells[1]:<19} {cells[2]}")
    return lines
