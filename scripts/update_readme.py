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


def cli_reference() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    lines = ["| command | what it does |", "|---|---|"]
    for name, command in sub.choices.items():
        usage = " ".join(command.format_usage().split())
        usage = usage.removeprefix("usage: ").replace("|", "\\|")
        lines.append(f"| `{usage}` | {helps.get(name, '')} |")
    return "\n".join(lines)


def findings() -> str:
    """The home page's three claims, each with what this project's shipped tables say about it."""
    from advexp_core.readings.headline import read_headlines

    return "\n".join(
        f"{k}. **{h.claim}** {h.reading.text} (from {', '.join(f'`{s}`' for s in h.sources)})"
        for k, h in enumerate(read_headlines(), start=1)
    )


def render(text: str) -> str:
    for (start, end), block in (((START, END), cli_reference()), (FINDINGS, findings())):
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
