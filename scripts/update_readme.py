"""Regenerate the README's CLI reference from the argument parsers, and its findings from the shipped
tables (docs/scorecard.json, checkpoints/manifest.json) as the home page reads them (never typed by hand).

Run: .venv/bin/python scripts/update_readme.py          (rewrite README.md)
     .venv/bin/python scripts/update_readme.py --check  (exit 1 when README.md is stale)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from advexp_core.cli import build_parser  # noqa: E402
from scripts.readme_blocks import replace_block, write_or_check  # noqa: E402

START, END = "<!-- cli:start -->", "<!-- cli:end -->"
FINDINGS = ("<!-- findings:start -->", "<!-- findings:end -->")
PROBE = ("<!-- probe:start -->", "<!-- probe:end -->")
ATTEMPTS = ("<!-- attempts:start -->", "<!-- attempts:end -->")
LESION_USERS = ("<!-- lesion-users:start -->", "<!-- lesion-users:end -->")
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
    from advexp_core.readings.headline import read_headlines

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
    """Each attempt at a robust lesions network (checkpoints/robust-attempts.json), as measured."""
    import json

    data = json.loads((ROOT / "checkpoints" / "robust-attempts.json").read_text())
    attempts = data["attempts"]
    n = {a["n_images"] for a in attempts.values()}
    lines = [
        "Accuracy on the whole `test` split (1,000 images) as drawn, with every ruler removed, and on "
        f"`test-unbiased`; on the first {'/'.join(map(str, sorted(n)))} test images, the decisions that change "
        "when the ruler is removed or drawn on, and the correct decisions an L∞ 2/255 PGD attack flips "
        "(`scripts/robust_lesion_attempts.py`; each command in `checkpoints/robust-attempts.json`):",
        "",
        "| attempt | what was tried | test | rulers removed | test-unbiased | ruler removed: changed | ruler drawn on: changed | PGD: flipped / correct | shipped as |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, a in attempts.items():
        acc = a["test_accuracy"]
        lines.append(
            f"| {label} | {a['what']} | {acc['as_is']:.3f} | {acc['shortcut_removed']:.3f} | "
            f"{a['test_unbiased_accuracy']:.3f} | {a['changed_when_removed']}/{a['images_with_ruler']} | "
            f"{a['changed_when_added']}/{a['images_without_ruler']} | {a['pgd_flipped']}/{a['pgd_correct']} | "
            f"{'`' + a['shipped_as'] + '`' if a['shipped_as'] else '—'} |"
        )
    return "\n".join(lines)


def lesion_users_table() -> str:
    """Standard vs robust, both deciding by the lesion (docs/scorecard-lesion-users.json)."""
    import json

    from advexp_core.saliency import EXPLAINERS

    data = json.loads((ROOT / "docs" / "scorecard-lesion-users.json").read_text())
    (standard, s), (robust, r) = data["networks"].items()
    chance = s["chance"]["evidence"]
    lines = [
        f"On the first {data['n_images']} `{data['split']}` images (`scripts/lesion_users_scorecard.py`), each "
        f"explainer's map of the true class: its share on the lesion (chance: the lesion's area, {chance:.2f}) "
        "and the share of images whose map peaks on it; *attacked*: the same for the new class of the "
        f"decisions an L∞ {s['attack']['eps_255']:g}/255 PGD attack flipped ({s['attack']['flipped']}/"
        f"{s['attack']['correct']} on {standard}, {r['attack']['flipped']}/{r['attack']['correct']} on {robust}).",
        "",
        f"| explainer | on the lesion: {standard} | {robust} | peak on the lesion: {standard} | {robust} "
        f"| attacked, on the lesion: {standard} | {robust} |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, a in s["explainers"].items():
        b = r["explainers"][method]
        name = EXPLAINERS[method].title if method in EXPLAINERS else method
        cells = [
            a["clean"]["evidence_share"], b["clean"]["evidence_share"],
            a["clean"]["pointing_game"], b["clean"]["pointing_game"],
            a["attacked"]["evidence_share"], b["attacked"]["evidence_share"],
        ]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join("—" if c is None else f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


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


def render(text: str) -> str:
    for (start, end), block in (
        ((START, END), cli_reference()),
        (FINDINGS, findings()),
        (PROBE, probe_table()),
        (ATTEMPTS, attempts_table()),
        (LESION_USERS, lesion_users_table()),
    ):
        replaced = replace_block(text, start, end, block)
        if replaced is None:
            raise SystemExit(f"README.md lacks the {start} ... {end} markers")
        text = replaced
    return text


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    stale = "README.md CLI reference or findings are stale: run .venv/bin/python scripts/update_readme.py"
    return write_or_check(readme, text, render(text), check="--check" in sys.argv, stale=stale)


if __name__ == "__main__":
    sys.exit(main())
