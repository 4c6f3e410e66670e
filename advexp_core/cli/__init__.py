"""Command-line interface: ``python -m advexp_core <command>`` (also installed as ``advexp``).

Each command lives in its own module exposing ``register(subparsers)``; the parser's ``run(args)``
returns one JSON-able object, printed as JSON with ``--json`` and summarised otherwise.
Bad input exits with code 2 and a message on stderr; long commands (train, ara) also show progress
on stderr unless given --quiet.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from advexp_core.base.runtime import use_compute_threads
from advexp_core.base.text import terminal_text
from advexp_core.cli.common import UsageError, json_text
from advexp_core.cli.output import check_output_folder
from advexp_core.data.imaging import ImageError
from advexp_core.networks.checkpoints import CheckpointError
from advexp_core.networks.zoo import ModelError

COMMANDS = (
    "models",
    "classify",
    "attack",
    "compare",
    "explain",
    "sanity",
    "scorecard",
    "reliance",
    "audit",
    "repair",
    "train",
    "ara",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every command's subparser."""
    parser = argparse.ArgumentParser(
        prog="advexp",
        description="Adversarial explanations (Woods, Chen & Teuscher 2019): attack, explain and score image classifiers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"advexp_core.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code (0 ok, 2 bad input, 1 unexpected failure)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage message
        return int(exc.code or 0)
    use_compute_threads()  # the app's thread count too, so both give the same numbers
    try:
        if hasattr(args, "into_existing"):  # every command that writes an --out folder
            check_output_folder(args)
        result = args.run(args)
    except (UsageError, ImageError, ModelError, CheckpointError) as exc:
        sys.stderr.write(terminal_text(f"advexp {args.command}: error: {exc}") + "\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"advexp {args.command}: interrupted; nothing was written.\n")
        return 130
    if getattr(args, "json", False):
        sys.stdout.write(json_text(result) + "\n")
    else:
        summary = getattr(args, "summary", None)
        sys.stdout.write(terminal_text(summary(result) if summary else json_text(result, indent=2)) + "\n")
    return 0
