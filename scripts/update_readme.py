"""Regenerate every generated block of the user guide and of the lab's findings (never typed by hand).

Each block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in the file where it lives:
- README.md: ``findings`` (the home page's three claims, read from the shipped tables as the home page
  reads them) and ``cli`` (the argument parsers);
- research/README.md: ``attempts`` (checkpoints/robust-attempts.json), ``lesion-users``
  (checkpoints/scorecard-lesion-users.json) and ``probe`` (checkpoints/ruler-probe.json), rendered
  here; ``scorecard`` (checkpoints/scorecard.json) and ``results-table`` (checkpoints/manifest.json),
  rendered by research/scorecard_table.py and scripts/results_table.py, which this script runs.

Run from the repository root:
     .venv/bin/python -m scripts.update_readme          (rewrite every block; redraws docs/robustness-curves.png)
     .venv/bin/python -m scripts.update_readme --check  (exit 1 when any block is stale; writes nothing)
Options: --root DIR (the tree whose README.md, research/README.md and docs/ are rewritten or checked;
         default this repository; the shipped tables are always read from this repository).
Exit codes: 0 ok, 1 a block is stale (--check) or lacks its markers, 2 a stored table is missing or refused.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from advexp_core.cli import build_parser
from research import scorecard_table
from scripts import results_table
from scripts.readme_blocks import replace_block, write_or_check

ROOT = Path(__file__).resolve().parent.parent
RESEARCH_README = Path("research") / "README.md"
FIGURE = Path("docs") / "robustness-curves.png"
OWN_MODEL_FLAGS = "[--model-file PATH] [--arch NAME] [--classes FILE] [--input-size N] [--mean R,G,B] [--std R,G,B] [--single-logit]"


def cli_reference() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    lines = ["| command | what it does |", "|---|---|"]
    for name, command in sub.choices.items():
        usage = " ".join(command.format_usage().split())
        usage = usage.removeprefix("usage: ").replace(OWN_MODEL_FLAGS, "[OWN MODEL]").replace("|", "\\|")
        lines.append(f"| `{usage}` | {helps.get(name, '')} |")
    lines += ["", f"`[OWN MODEL]` stands for `{OWN_MODEL_FLAGS}` (your own network, below)."]
    return "\n".join(lines)


def findings() -> str:
    """The home page's three claims, each with what this project's shipped tables say about it."""
    from advexp_core.experiments.headline import read_headlines

    return "\n".join(
        f"{k}. **{h.claim}** {h.reading.text} (from {', '.join(f'`{s}`' for s in h.sources)})"
        for k, h in enumerate(read_headlines(), start=1)
    )


def probe_table() -> str:
    """The shortcut probe study (checkpoints/ruler-probe.json): does each network's adversarial
    explanation draw the ruler, against the control's on the same images."""
    import json

    data = json.loads((ROOT / "checkpoints" / "ruler-probe.json").read_text())
    study, validation = data["study"], data["probe"]["validation"]
    control = next(iter(study["networks"]))
    lines = [
        f"On the first {study['n_images']} ruler-free benign test images, toward malignant (`{data['command']}`); "
        f"the control is {control}. Each reading of δ on a network against the control's on the same images "
        "(difference with its 95 % bootstrap interval), and whether it separates them (above the control, "
        "above its own phase-scrambled null, the control not above its null):",
        "",
        "| network | reading | network's value | control's value | difference [95 %] | separates |",
        "|---|---|---|---|---|---|",
    ]
    for network, readings in study["separation_from_control"].items():
        for r in readings:
            d, lo, hi = r["difference"]
            lines.append(
                f"| {network} | {r['reading'].replace('_', ' ')} | {r['ruler_net']:.3f} | {r['control']:.3f} | "
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] | {'yes' if r['separates'] else 'no'} |"
            )
    lines += ["", f"The probe's validation on fresh images: {_validation_text(validation)}"]
    return "\n".join(lines)


def attempts_table() -> str:
    """Each attempt at a robust lesions network (checkpoints/robust-attempts.json), as measured, every
    rate with its 95 % Wilson interval."""
    import json

    from advexp_core.base.statistics import wilson_interval
    from advexp_core.data.datasets import LESIONS_SIZES
    from advexp_core.readings.intervals import count_with_interval, with_interval

    def accuracy(value: float, split: str) -> str:
        n = LESIONS_SIZES[split]
        return with_interval(value, wilson_interval(round(value * n), n), digits=3)

    def count(k: int, n: int) -> str:
        return count_with_interval(k, n, wilson_interval(k, n))

    data = json.loads((ROOT / "checkpoints" / "robust-attempts.json").read_text())
    attempts = data["attempts"]
    n = {a["n_images"] for a in attempts.values()}
    lines = [
        "Accuracy on the whole `test` split (1,000 images) as drawn, with every ruler removed, and on "
        f"`test-unbiased` (1,000); on the first {'/'.join(map(str, sorted(n)))} test images, the decisions that "
        "change when the ruler is removed or drawn on, and the correct decisions an L∞ 2/255 PGD attack flips "
        "(`research/robust_lesion_attempts.py`; each command in `checkpoints/robust-attempts.json`). In "
        "brackets: the 95 % Wilson interval of each rate.",
        "",
        "| attempt | what was tried | test | rulers removed | test-unbiased | ruler removed: changed | ruler drawn on: changed | PGD: flipped / correct | shipped as |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, a in attempts.items():
        acc = a["test_accuracy"]
        lines.append(
            f"| {label} | {a['what']} | {accuracy(acc['as_is'], 'test')} | {accuracy(acc['shortcut_removed'], 'test')} | "
            f"{accuracy(a['test_unbiased_accuracy'], 'test-unbiased')} | "
            f"{count(a['changed_when_removed'], a['images_with_ruler'])} | "
            f"{count(a['changed_when_added'], a['images_without_ruler'])} | {count(a['pgd_flipped'], a['pgd_correct'])} | "
            f"{'`' + a['shipped_as'] + '`' if a['shipped_as'] else '—'} |"
        )
    return "\n".join(lines)


def lesion_users_table() -> str:
    """Standard vs robust, both deciding by the lesion (checkpoints/scorecard-lesion-users.json): each
    share with its interval, and the robust − standard difference on the same images with its paired
    bootstrap interval and what it favours."""
    import json

    from advexp_core.methods.saliency import EXPLAINERS
    from advexp_core.readings.intervals import count_with_interval, with_interval

    data = json.loads((ROOT / "checkpoints" / "scorecard-lesion-users.json").read_text())
    (standard, s), (robust, r) = data["networks"].items()
    chance = s["chance"]["evidence"]

    def flips(network: dict) -> str:
        a = network["attack"]
        return count_with_interval(a["flipped"], a["correct"], a.get("flipped_ci"))

    lines = [
        f"On the first {data['n_images']} `{data['split']}` images (`research/lesion_users_scorecard.py`), each "
        f"explainer's map of the true class: its share on the lesion (chance: the lesion's area, {chance:.2f}) "
        "and the share of images whose map peaks on it; *attacked*: the same for the new class of the "
        f"decisions an L∞ {s['attack']['eps_255']:g}/255 PGD attack flipped ({flips(s)} on {standard}, "
        f"{flips(r)} on {robust}). In brackets: the 95 % interval (shares: a bootstrap over the images, seed "
        f"{s.get('intervals', {}).get('bootstrap_seed', 0)}; peaks: Wilson); *difference*: {robust} − {standard} "
        "on the same images, with its paired bootstrap interval and what it favours.",
        "",
        f"| explainer | on the lesion: {standard} | {robust} | difference | peak on the lesion: {standard} | {robust} "
        f"| difference | attacked, on the lesion: {standard} | {robust} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, a in s["explainers"].items():
        b = r["explainers"][method]
        name = EXPLAINERS[method].title if method in EXPLAINERS else method

        def cell(entry: dict, key: str) -> str:
            return with_interval(entry[key], entry.get(f"{key}_ci"))

        cells = [
            cell(a["clean"], "evidence_share"), cell(b["clean"], "evidence_share"), _difference(b, a, "evidence_share"),
            cell(a["clean"], "pointing_game"), cell(b["clean"], "pointing_game"), _difference(b, a, "pointing_game"),
            cell(a["attacked"], "evidence_share"), cell(b["attacked"], "evidence_share"),
        ]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _difference(robust: dict, standard: dict, key: str) -> str:
    """robust − standard of one clean per-image measure on the same images, with its paired interval
    (a share of the map: bootstrap; the 0/1 pointing game: Newcombe's) and what it favours ("—"
    without per-image numbers)."""
    from advexp_core.experiments.headline import paired_difference
    from advexp_core.readings.intervals import COMPARISON_WORDS

    d = paired_difference(
        (robust["clean"].get("images") or {}).get(key) or [],
        (standard["clean"].get("images") or {}).get(key) or [],
    )
    return "—" if d is None else f"{d.text()} ({COMPARISON_WORDS[d.comparison]})"


def _validation_text(validation: dict) -> str:
    """The probe's validation as one line: mean P(ruler) on each kind of fresh image."""
    names = {
        "without": "no ruler",
        "with_ruler": "with its ruler",
        "white": f"white noise of RMS {validation['rms']:g}",
        "ruler_at_budget": f"the ruler's change scaled to RMS {validation['rms']:g}",
        "ruler_scrambled": "that change with scrambled phases",
    }
    means = validation["mean_p_ruler"]
    parts = [f"{names.get(k, k)} {v:.3f}" for k, v in means.items()]
    return (
        f"accuracy {validation['accuracy']:.3f} on {validation['n_pairs']} pairs; mean P(ruler): "
        + ", ".join(parts)
        + "."
    )


Block = tuple[str, Callable[[], str]]
BLOCKS: dict[Path, tuple[Block, ...]] = {
    Path("README.md"): (("findings", findings), ("cli", cli_reference)),
    RESEARCH_README: (
        ("attempts", attempts_table),
        ("lesion-users", lesion_users_table),
        ("probe", probe_table),
    ),
}
"""The blocks this script renders, by the file (relative to the root) they live in."""


def render(text: str, blocks: Sequence[Block], file: Path) -> tuple[str, list[str]]:
    """``text`` with each block rendered between its markers, and the names of the blocks that changed."""
    changed = []
    for name, make in blocks:
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        replaced = replace_block(text, start, end, make())
        if replaced is None:
            raise SystemExit(f"{file} lacks the {start} ... {end} markers")
        if replaced != text:
            changed.append(name)
        text = replaced
    return text, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when any block is stale; write nothing")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the tree whose files are rewritten or checked"
    )
    args = parser.parse_args(argv)
    codes = []
    for file, blocks in BLOCKS.items():
        path = args.root / file
        text = path.read_text()
        new, changed = render(text, blocks, file)
        stale = (
            f"{file}: the {', '.join(changed)} block is stale: run .venv/bin/python -m scripts.update_readme"
        )
        codes.append(write_or_check(path, text, new, check=args.check, stale=stale))
    research = ["--readme", str(args.root / RESEARCH_README)]
    codes.append(scorecard_table.main([*research, "--check" if args.check else "--render"]))
    figure = ["--figure", str(args.root / FIGURE)]
    codes.append(results_table.main([*research, *figure, *(["--check"] if args.check else [])]))
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
