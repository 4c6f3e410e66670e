"""Measure the ground-truth scorecard and render its tables: which explainer points at the evidence?

For each shipped ground-truth network (``GROUND_TRUTH_NETWORKS``: ``lesions-standard``/``-robust``,
``blockdigits-standard``/``-adv-train``/``-robust``) the script runs
``advexp_core.experiments.scorecard`` on the first N test images (every explainer, clean and after an
L∞ 2/255 PGD flip) and measures each network's accuracy on ``test``,
``test-unbiased`` and the shortcut-free twin of ``test`` (taken from checkpoints/manifest.json when
its entry records them). The reports are stored in checkpoints/scorecard.json (the home page's
findings read it) and the Markdown tables are rendered from that file between
``<!-- scorecard:start -->`` and ``<!-- scorecard:end -->`` in research/README.md (a "Ground truth"
section is added before "## Benchmarks", or at the end, when the markers are missing).
The lesions networks are also graded against what their decisions measurably rest on
(``advexp_core.evaluation.reliance_grades`` against ``lesions-unbiased``, trained with rulers in half of each
class, so a ruler says nothing about the class to it): those grades
and the measured reliance come first in their section, and the mask columns are titled for what they
are, where a dermatologist would look. The numbers are never typed by hand.

Run from the repository root:
     .venv/bin/python -m research.scorecard_table               (compute, store, rewrite the block)
     .venv/bin/python -m research.scorecard_table --render      (rewrite the block from the stored file)
     .venv/bin/python -m research.scorecard_table --check       (exit 1 when the block is stale)
     .venv/bin/python -m research.scorecard_table --grades-only (grade the stored lesions reports again)
Options: --n-images N (default 100), --datasets lesions|blockdigits (score only those networks, keep
         the others' stored results), --only ID ... (score only these networks, likewise),
         --results PATH, --readme PATH, --manifest PATH.
Exit codes: 0 ok, 1 stale (--check), 2 stored results missing, or no network to score.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from scripts.readme_blocks import replace_block, write_or_check

ROOT = Path(__file__).resolve().parent.parent

START, END = "<!-- scorecard:start -->", "<!-- scorecard:end -->"
SECTION = "## Ground truth"
BEFORE = "## Benchmarks"
ACCURACY_SPLITS = ("test", "test-unbiased", "no-shortcut")
# Keys a manifest entry may record the three accuracies under (first match wins).
MANIFEST_KEYS = {
    "test": ("test_accuracy",),
    "test-unbiased": ("test_unbiased_accuracy", "unbiased_accuracy"),
    "no-shortcut": ("no_shortcut_accuracy", "test_no_shortcut_accuracy"),
}
INTRO = (
    "On images whose evidence is known pixel by pixel (synthetic lesions whose ruler is a "
    "shortcut present in 85 % of malignant and 15 % of benign training images; BlockDigits, the digit in "
    "one quadrant), each explainer explains the true class of the first N test images. *Evidence share* "
    "(lesions: *on the lesion*): the share of the map inside the lesion (digit quadrant); *shortcut share* "
    "(*on the ruler*): inside the ruler, over the images that have one; *pointing game* (*maximum on the "
    "lesion*): the share of images whose map maximum lies in the evidence "
    "(an all-zero map, which LIME gives when no superpixel speaks for the class, has no share and misses). "
    "*Attacked*: the same three for the attacked image's map of its new class, on the correct decisions "
    "an L∞ 2/255 PGD attack flipped: a map that noticed the attack would move. *Top-k evidence* (last "
    "table of each dataset): the share of the map's k % highest pixels that lie in the evidence, the "
    "measure of Shah, Jain & Netrapalli (2021), who found that adversarially trained networks' input "
    "gradients rank the discriminative pixels first; a map that ranks pixels at random scores the "
    "evidence area (chance row). The same numbers on a chosen image are on the *Ground truth* page."
)


def manifest_accuracies(manifest: dict[str, Any], model_id: str) -> dict[str, float]:
    """The accuracies a manifest entry records for ``model_id`` (split -> value; may be empty)."""
    entries = manifest.get("networks", []) + manifest.get("groundtruth", [])
    entry = next((n for n in entries if n.get("id") == model_id), None)
    if entry is None:
        return {}
    nested = entry.get("accuracy") if isinstance(entry.get("accuracy"), dict) else {}
    out = {}
    for split, keys in MANIFEST_KEYS.items():
        value = next((entry[k] for k in keys if isinstance(entry.get(k), int | float)), nested.get(split))
        if isinstance(value, int | float):
            out[split] = float(value)
    return out


def measured_accuracies(model: Any, dataset: str) -> dict[str, float]:
    """Accuracy on every split the dataset has (lesions: test, test-unbiased, no-shortcut)."""
    from advexp_core.data.datasets import load_dataset
    from advexp_core.experiments.scorecard import split_accuracy

    splits = {"test": load_dataset(dataset, "test")}
    if dataset == "lesions":
        splits["test-unbiased"] = load_dataset(dataset, "test-unbiased")
        splits["no-shortcut"] = load_dataset(dataset, "test", shortcut=False)
    return {name: split_accuracy(model, data, batch_size=128) for name, data in splits.items()}  # type: ignore[arg-type]


def checkpoint_sha256(model_id: str) -> str | None:
    """The sha256 of the shipped checkpoint the numbers were measured on (None when not a file here)."""
    from advexp_core.networks.checkpoints import sha256_file
    from advexp_core.networks.zoo import CHECKPOINTS_DIR

    path = CHECKPOINTS_DIR / f"{model_id}.pt"
    return sha256_file(path) if path.is_file() else None


def compute(
    n_images: int,
    manifest: dict[str, Any],
    datasets: list[str] | None = None,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """Score every shipped ground-truth network that loads (of ``datasets`` and ``only``; None: all)."""
    from advexp_core.experiments.catalogue import GROUND_TRUTH_NETWORKS
    from advexp_core.experiments.report import versions
    from advexp_core.experiments.scorecard import scorecard, scorecard_dataset
    from advexp_core.experiments.scorecard_results import ScorecardConfig
    from advexp_core.networks.registry import load_model
    from advexp_core.networks.zoo import ModelError

    reports, accuracies, missing = [], [], []
    for dataset, all_networks in GROUND_TRUTH_NETWORKS.items():
        networks = [m for m in all_networks if only is None or m in only]
        if (datasets is not None and dataset not in datasets) or not networks:
            continue
        config = ScorecardConfig(dataset=dataset, split="test", n_images=n_images)
        data = scorecard_dataset(config)
        for model_id in networks:
            try:
                model = load_model(model_id)
            except ModelError as exc:
                missing.append(model_id)
                print(f"{model_id}: not scored ({exc})", file=sys.stderr)
                continue
            print(f"{model_id}: scoring {n_images} images…", file=sys.stderr)
            reports.append(scorecard(model, data, config).to_json())
            stored = manifest_accuracies(manifest, model_id)
            measured = measured_accuracies(model, dataset)
            values = {s: stored.get(s, measured.get(s)) for s in ACCURACY_SPLITS}
            source = "manifest" if stored and all(s in stored for s in measured) else "measured here"
            accuracies.append(
                {
                    "model": model_id,
                    "dataset": dataset,
                    **values,
                    **{f"{s}_ci": accuracy_interval(dataset, s, values[s]) for s in ACCURACY_SPLITS},
                    "source": source,
                    "sha256": checkpoint_sha256(model_id),
                }
            )
    command = f"python -m research.scorecard_table --n-images {n_images}"
    reports = with_grades(reports)
    return {
        "format": "advexp-scorecard-1",
        "command": command,
        "n_images": n_images,
        "missing": missing,
        "versions": versions(),
        "reports": reports,
        "accuracies": accuracies,
    }


def with_grades(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reports, those of a graded dataset with their explainers' ``reliance_grades`` against the
    dataset's control (``advexp_core.evaluation.reliance_grades``), on the report's split, N and explainers."""
    from advexp_core.evaluation.reliance import lesion_twins
    from advexp_core.evaluation.reliance_grades import MapShares, grade_shares
    from advexp_core.experiments.catalogue import grades_control
    from advexp_core.experiments.scorecard_grades import map_shares
    from advexp_core.networks.registry import load_model

    controls: dict[tuple[str, int, tuple[str, ...]], tuple[Any, MapShares]] = {}
    out = []
    for report in reports:
        control_id = grades_control(report["dataset"], report["model"])
        if control_id is None:
            out.append(report)
            continue
        methods = tuple(report["explainers"])
        key = (report["split"], report["n_images"], methods)
        if key not in controls:
            twins = lesion_twins(report["split"], report["n_images"])
            controls[key] = (twins, map_shares(load_model(control_id), twins, methods=methods))
        twins, control = controls[key]
        print(f"{report['model']}: grading against {control_id}…", file=sys.stderr)
        shares = map_shares(load_model(report["model"]), twins, methods=methods)
        grades = grade_shares(shares, control, control_id=control_id)
        out.append({**report, "reliance_grades": grades.to_json()})
    return out


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the stored networks it did not score kept (in the networks' order), for ``--datasets``."""
    from advexp_core.experiments.catalogue import GROUND_TRUTH_NETWORKS

    order = [m for networks in GROUND_TRUTH_NETWORKS.values() for m in networks]
    scored = {r["model"] for r in new["reports"]}

    def keep(items: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> list[dict[str, Any]]:
        both = [x for x in items if x["model"] not in scored] + fresh
        return sorted(both, key=lambda x: order.index(x["model"]) if x["model"] in order else len(order))

    missing = sorted(set(old.get("missing", [])) - scored | set(new["missing"]), key=order.index)
    return {**new, "missing": missing, "reports": keep(old.get("reports", []), new["reports"]),
            "accuracies": keep(old.get("accuracies", []), new["accuracies"])}  # fmt: skip


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _ci(entry: dict[str, Any], key: str) -> str:
    """A stored number with its stored 95 % interval (``<key>_ci``), "0.86 [0.83, 0.89]"."""
    from advexp_core.readings.intervals import with_interval

    return with_interval(entry.get(key), entry.get(f"{key}_ci"))


def _count(k: int, n: int, interval: Any) -> str:
    """ "59 / 90 (66 % [55 %, 75 %])"; the Wilson interval computed from the counts when not stored."""
    from advexp_core.base.statistics import wilson_interval
    from advexp_core.readings.intervals import percent_with_interval

    if not n:
        return f"{k} / {n}"
    return f"{k} / {n} ({percent_with_interval(k / n, interval or wilson_interval(k, n))})"


def scorecard_table(reports: list[dict[str, Any]]) -> str:
    """One Markdown table for one dataset: chance, then each explainer on each network."""
    from advexp_core.readings.groundtruth import share_titles

    titles, attacked = share_titles(reports[0]["dataset"])
    head = (
        f"| explainer | network | {' | '.join(titles)} | "
        + " | ".join(f"attacked: {t}" for t in attacked)
        + " |\n|---|---|---|---|---|---|---|---|"
    )
    chance = reports[0]["chance"]
    lines = [
        head,
        f"| *chance (mask area)* | — | {_fmt(chance['evidence'])} | {_fmt(chance['shortcut'])} | — | | | |",
    ]
    for method in reports[0]["explainers"]:
        for r in reports:
            s = r["explainers"].get(method)
            if s is None:
                continue
            a = s["attacked"]
            cells = [_ci(x, m) for x in (s, a) for m in ("evidence_share", "shortcut_share", "pointing_game")]
            lines.append(f"| {_method_title(method)} | {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _method_title(method: str) -> str:
    from advexp_core.methods.saliency import EXPLAINERS

    return EXPLAINERS[method].title if method in EXPLAINERS else method


def top_k_table(reports: list[dict[str, Any]]) -> str | None:
    """One Markdown table for one dataset: each explainer's top-k evidence on each network, clean
    (None when the stored reports predate the measure)."""
    if any("top_k_pixels" not in r for r in reports):
        return None
    ks = list(reports[0]["top_k_pixels"])
    pixels = reports[0]["top_k_pixels"]
    head = "| explainer | network | " + " | ".join(f"top {k} % ({pixels[k]} px)" for k in ks) + " |"
    chance = _fmt(reports[0]["chance"]["evidence"])
    lines = [
        head,
        "|---|---|" + "---|" * len(ks),
        "| *chance (evidence area)* | — | " + " | ".join(chance for _ in ks) + " |",
    ]
    for method in reports[0]["explainers"]:
        for r in reports:
            s = r["explainers"].get(method)
            if s is not None:
                top, intervals = s["top_k_evidence"], s.get("top_k_evidence_ci") or {}
                cells = " | ".join(_ci({"v": top[k], "v_ci": intervals.get(k)}, "v") for k in ks)
                lines.append(f"| {_method_title(method)} | {r['model']} | {cells} |")
    return "\n".join(lines)


GRADES_INTRO = (
    "What the decisions rest on is measured first, without any explainer: the ruler removed from each "
    "image that has one, and drawn on each that has none (exact twins that differ only inside the ruler). "
    "Each explainer's map of the predicted class is then graded on the images whose decision changes when "
    "the ruler is removed: *map on the ruler*, its mean share there; *misleading rate*, the share of those "
    "maps that give the ruler less than its area (they hide what the decision rests on; lower is better); "
    "*AUROC vs {control}*, how well the map's ruler share tells the network from {control}, trained with "
    "rulers in half of each class so that a ruler says nothing to it (0.5: not at all); *effect Spearman*, the rank correlation between the map's ruler share and "
    "how far removing the ruler moves the decision's margin (also over every ruler image). The last two "
    "tables only say where the maps fall: the lesion is where a dermatologist would look, which is not what the "
    "network must use."
)


def reliance_table(reports: list[dict[str, Any]]) -> str | None:
    """What each graded network's decisions rest on, measured without any explainer (None: no grades)."""
    graded = [r for r in reports if "reliance_grades" in r]
    if not graded:
        return None
    lines = [
        "| network | images with a ruler | decisions that change when it is removed | images without "
        "| decisions that change when one is drawn on | mean margin change when removed |",
        "|---|---|---|---|---|---|",
    ]
    for r in graded:
        s = r["reliance_grades"]["reliance"]
        removed = _count(
            s["n_changed_when_removed"], s["images_with"], s.get("decisions_changed_when_removed_ci")
        )
        added = _count(
            s["n_changed_when_added"], s["images_without"], s.get("decisions_changed_when_added_ci")
        )
        lines.append(
            f"| {r['model']} | {s['images_with']} | {removed} | {s['images_without']} | {added} "
            f"| {_ci(s, 'mean_margin_effect')} |"
        )
    return "\n".join(lines)


def grades_table(reports: list[dict[str, Any]]) -> str | None:
    """Each explainer's grades against each graded network's measured reliance (None: no grades)."""
    graded = [r for r in reports if "reliance_grades" in r]
    if not graded:
        return None
    control = graded[0]["reliance_grades"]["control"]
    lines = [
        "| explainer | network | graded images | map on the ruler | misleading rate "
        f"| AUROC vs {control} | effect Spearman | (every ruler image) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in graded[0]["reliance_grades"]["explainers"]:
        for r in graded:
            g = r["reliance_grades"]["explainers"].get(method)
            if g is not None:
                cells = [
                    _ci(g, k)
                    for k in (
                        "mean_ruler_share", "misleading_rate", "shortcut_detection_auroc", "effect_spearman",
                        "effect_spearman_all",
                    )
                ]  # fmt: skip
                lines.append(
                    f"| {_method_title(method)} | {r['model']} | {g['n_images']} | "
                    + " | ".join(cells)
                    + " |"
                )
    return "\n".join(lines)


def accuracy_interval(dataset: str, split: str, value: float | None) -> list[float] | None:
    """The Wilson interval of an accuracy over a whole split ("no-shortcut": the test split's twins);
    None for a dataset that cannot be drawn here."""
    from advexp_core.base.statistics import wilson_interval
    from advexp_core.data.datasets import DatasetError, load_dataset

    if value is None:
        return None
    try:
        n = len(load_dataset(dataset, "test" if split == "no-shortcut" else split))
    except DatasetError:  # a dataset this checkout cannot draw: the accuracy alone
        return None
    return list(wilson_interval(round(value * n), n))


def accuracy_table(results: dict[str, Any]) -> str:
    """The networks' accuracies on the whole splits with their Wilson intervals, and how many correct
    decisions the scorecard's attack flipped."""
    from advexp_core.readings.intervals import with_interval

    attacks = {r["model"]: r["attack"] for r in results["reports"]}

    def accuracy(a: dict[str, Any], split: str) -> str:
        interval = a.get(f"{split}_ci") or accuracy_interval(a["dataset"], split, a[split])
        return with_interval(a[split], interval)

    lines = [
        "| network | test | test-unbiased | no-shortcut (test without rulers) | scorecard: flipped / correct | source |",
        "|---|---|---|---|---|---|",
    ]
    for a in results["accuracies"]:
        att = attacks.get(a["model"])
        flips = _count(att["flipped"], att["correct"], att.get("flipped_ci")) if att else "—"
        cells = [accuracy(a, split) for split in ACCURACY_SPLITS]
        lines.append(f"| {a['model']} | " + " | ".join(cells) + f" | {flips} | {a['source']} |")
    return "\n".join(lines)


def _commands(by_dataset: dict[str, list[dict[str, Any]]]) -> str:
    """The script's command line for each dataset, read from the stored reports' N."""
    return ", ".join(
        f"`python -m research.scorecard_table --n-images {reports[0]['n_images']} --datasets {dataset}`"
        for dataset, reports in by_dataset.items()
    )


def render_block(results: dict[str, Any]) -> str:
    """The Markdown between the markers."""
    parts = [INTRO, "", accuracy_table(results)]
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for r in results["reports"]:
        by_dataset.setdefault(r["dataset"], []).append(r)
    for dataset, reports in by_dataset.items():
        parts += [
            "",
            f"**{dataset}** (`{reports[0]['split']}` split, first N = {reports[0]['n_images']} images)",
            "",
        ]
        graded = [r for r in reports if "reliance_grades" in r]
        if graded:
            parts += [GRADES_INTRO.format(control=graded[0]["reliance_grades"]["control"]), ""]
        for table in (reliance_table(reports), grades_table(reports)):
            if table is not None:
                parts += [table, ""]
        parts.append(scorecard_table(reports))
        top_k = top_k_table(reports)
        if top_k is not None:
            parts += ["", top_k]
    if results.get("missing"):
        parts += [
            "",
            f"Not scored (checkpoint missing when the table was made): {', '.join(results['missing'])}.",
        ]
    parts += [
        "",
        "In brackets: the 95 % interval (a mean share: a BCa bootstrap over the images, seed 0; a share of "
        "images or decisions, the pointing game, accuracies and flips: Wilson; the grades that rank, detection and "
        "correlations: a bootstrap over the graded images; docs/method.md §9). "
        "Each attacked column covers only the flipped images (count in the first table). Stored in "
        f"`checkpoints/scorecard.json`; generated by {_commands(by_dataset)} (`advexp scorecard` scores one network).",
    ]
    return "\n".join(parts)


def render(text: str, results: dict[str, Any]) -> str:
    """``text`` with the block replaced, or a new Ground truth section holding it."""
    body = render_block(results)
    replaced = replace_block(text, START, END, body)
    if replaced is not None:
        return replaced
    section = f"{SECTION}: which explainer points at the evidence?\n\n{START}\n{body}\n{END}\n\n"
    at = text.find(f"\n{BEFORE}\n")
    if at < 0:
        return text.rstrip("\n") + "\n\n" + section
    return text[: at + 1] + section + text[at + 1 :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=100)
    parser.add_argument("--results", type=Path, default=ROOT / "checkpoints" / "scorecard.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "research" / "README.md")
    parser.add_argument("--manifest", type=Path, default=ROOT / "checkpoints" / "manifest.json")
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        help="score only these datasets' networks (lesions, blockdigits); keep the others stored",
    )
    parser.add_argument(
        "--only", nargs="+", default=None, help="score only these networks; keep the others stored"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when the block is stale")
    mode.add_argument("--render", action="store_true", help="rewrite the block from the stored results only")
    mode.add_argument(
        "--grades-only", action="store_true", help="grade the stored lesions reports again; score nothing"
    )
    args = parser.parse_args(argv)
    if args.check or args.render or args.grades_only:
        if not args.results.is_file():
            print(f"{args.results} not found: run python -m research.scorecard_table", file=sys.stderr)
            return 2
        results = json.loads(args.results.read_text())
        if args.grades_only:
            graded = {r["model"]: r for r in with_grades(results["reports"]) if "reliance_grades" in r}
            results = json.loads(args.results.read_text())  # re-read: a network scored meanwhile is kept
            results["reports"] = [graded.get(r["model"], r) for r in results["reports"]]
            args.results.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    else:
        manifest = json.loads(args.manifest.read_text()) if args.manifest.is_file() else {}
        results = compute(args.n_images, manifest, args.datasets, args.only)
        if (args.datasets or args.only) and args.results.is_file():
            results = merge(json.loads(args.results.read_text()), results)
        if not results["reports"]:
            print("no ground-truth network could be loaded; nothing to score", file=sys.stderr)
            return 2
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    text = args.readme.read_text()
    new = render(text, results)
    stale = f"{args.readme} scorecard block is stale: run python -m research.scorecard_table --render"
    return write_or_check(args.readme, text, new, check=args.check, stale=stale)


if __name__ == "__main__":
    sys.exit(main())
