"""What only the CLI needs: its error, atomic output folders, argument helpers, reading image files."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

from torch import Tensor

from advexp_core.imaging import ImageError, decode_image, prepare_image
from advexp_core.models import DEFAULT_MODEL_ID, LoadedModel, load_model
from advexp_core.reports import versions

__all__ = [
    "UsageError",
    "add_json_argument",
    "add_model_argument",
    "atomic_output_dir",
    "command_report",
    "load_model_or_usage_error",
    "parse_fraction",
    "read_image_for_model",
    "resolve_class",
    "usage_errors",
    "versions",  # re-exported: `advexp ara` imports it from here
]


class UsageError(ValueError):
    """Bad input on the command line: printed on stderr, exit code 2."""


@contextmanager
def usage_errors(prefix: str = "") -> Iterator[None]:
    """Turn a ValueError of a config or an experiment (impossible settings) into a UsageError."""
    try:
        yield
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(f"{prefix}{exc}") from exc


@contextmanager
def atomic_output_dir(out: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; it becomes ``out`` only if the block succeeds.

    On any error the temporary folder is removed and an existing ``out`` is left untouched.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            backup = out.with_name(f".{out.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            out.rename(backup)
            tmp.rename(out)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_image_for_model(path: str | Path, model: LoadedModel) -> Tensor:
    """Read an image file and fit it to the model's input size (as given when it already fits).

    Shapes: -> (3, h, w).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"Image not found: {path}")
    try:
        image = decode_image(path.read_bytes())
    except ImageError as exc:
        raise UsageError(f"{path.name}: {exc}") from exc
    return prepare_image(image, model).to(model.device)


def parse_fraction(text: str | float) -> float:
    """Parse ``0.01``, ``2/255`` or ``8/255`` into a float."""
    try:
        return float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError) as exc:
        raise UsageError(f"{text!r} is not a number (use e.g. 0.01 or 2/255).") from exc


def resolve_class(name_or_index: str | int, class_names: Sequence[str]) -> int:
    """A class given by index or (case-insensitive) name -> its index."""
    text = str(name_or_index).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < len(class_names):
            return index
        raise UsageError(
            f"Class index {index} does not exist; this model has classes 0..{len(class_names) - 1}."
        )
    lowered = [c.lower() for c in class_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = [c for c in class_names if text.lower() in c.lower()][:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UsageError(f"Unknown class {text!r} for this model.{hint}")


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model ID`` with the offline default."""
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL_ID,
        help=f"model id (see `advexp models`) or an advexp .pt checkpoint; default {DEFAULT_MODEL_ID}",
    )


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """``--json``: print one JSON object on stdout."""
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def load_model_or_usage_error(model_id: str) -> LoadedModel:
    """``load_model`` for the CLI (its ModelError already exits with code 2)."""
    return load_model(model_id)


def command_report(
    command: str, args: argparse.Namespace, report: dict[str, Any], files: dict[str, str]
) -> dict[str, Any]:
    """An experiment's report framed for result.json: the command, the image, versions, files, out."""
    image = str(args.image)
    body = {k: v for k, v in report.items() if k != "settings"}
    return {
        "command": command,
        "image": image,
        "settings": {"image": image, **report["settings"]},
        "versions": versions(),
        **body,
        "files": files,
        "out": str(args.out),
    }
