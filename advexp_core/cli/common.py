"""What only the CLI needs: its error, atomic output folders, argument helpers, reading image files."""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advexp_core.imaging import ImageError, decode_image, prepare_image
from advexp_core.models import DEFAULT_MODEL_ID, LoadedModel, load_model, load_user_model
from advexp_core.reports import versions

__all__ = [
    "ModelFile",
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


class ModelFile(str):
    """``--model-file`` and its companions as the value of ``args.model``.

    Every command passes ``args.model`` to `load_model_or_usage_error` and writes it into its
    report; as a str whose value is the file's path, this one does both without the command knowing
    about files. Each option's action rebuilds it, so the options may come in any order.
    """

    options: dict[str, Any]
    explicit_model: str | None

    def __new__(cls, options: dict[str, Any], explicit_model: str | None = None) -> ModelFile:
        made = super().__new__(cls, str(options.get("model_file") or ""))
        made.options = options
        made.explicit_model = explicit_model
        return made


MODEL_FILE_OPTIONS = ("model_file", "arch", "classes", "input_size", "mean", "std", "single_logit")


class _ModelFileAction(argparse.Action):
    """Store the option, then make ``args.model`` a `ModelFile` holding every model-file option."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, True if self.nargs == 0 else values)
        current = getattr(namespace, "model", None)
        explicit = current.explicit_model if isinstance(current, ModelFile) else None
        if not isinstance(current, ModelFile) and getattr(namespace, "_model_given", False):
            explicit = str(current)
        options = {name: getattr(namespace, name, None) for name in MODEL_FILE_OPTIONS}
        namespace.model = ModelFile(options, explicit)


class _ModelAction(argparse.Action):
    """``--model ID``; remembered as given, so that it and ``--model-file`` are not both used."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        current = getattr(namespace, "model", None)
        namespace._model_given = True
        if isinstance(current, ModelFile):
            namespace.model = ModelFile(current.options, str(values))
        else:
            namespace.model = values


def add_model_argument(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--model ID`` (the offline default unless ``required``), or ``--model-file PATH`` with its
    companions; with ``required``, one of the two must be given (`load_model_or_usage_error` says so)."""
    default = f"default {DEFAULT_MODEL_ID}" if not required else "this or --model-file is required"
    parser.add_argument(
        "--model",
        default=None if required else DEFAULT_MODEL_ID,
        action=_ModelAction,
        help=f"model id (see `advexp models`) or an advexp .pt checkpoint; {default}",
    )
    group = parser.add_argument_group(
        "your own model", "instead of --model: your weights (or an .onnx file) and what they need"
    )
    own = {
        "--model-file": ("PATH", "your weights: .safetensors, a state_dict .pt/.pth, or .onnx"),
        "--arch": ("NAME", "the weights' architecture: a torchvision name or timm:NAME (none for .onnx)"),
        "--classes": ("FILE", "a text file with the class names, one a line, in output order"),
        "--input-size": ("N", "square input size in pixels (default: the architecture's or the file's)"),
        "--mean": ("R,G,B", "normalisation mean in [0, 1] units (default: the architecture's)"),
        "--std": ("R,G,B", "normalisation std in [0, 1] units (default: the architecture's)"),
    }
    for flag, (metavar, text) in own.items():
        group.add_argument(flag, metavar=metavar, action=_ModelFileAction, default=None, help=text)
    group.add_argument(
        "--single-logit",
        nargs=0,
        action=_ModelFileAction,
        default=False,
        help="the network returns one logit z (binary); read as the two logits (0, z)",
    )


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """``--json``: print one JSON object on stdout."""
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def load_model_or_usage_error(
    model_id: str | None, *, device: str | torch.device | None = None
) -> LoadedModel:
    """``load_model``, or the user's own model when ``model_id`` is a `ModelFile` (its ModelError
    already exits with code 2)."""
    if model_id is None:  # add_model_argument(required=True) and neither option given
        raise UsageError("Give the model: --model ID (see `advexp models`) or --model-file PATH.")
    if not isinstance(model_id, ModelFile):
        return load_model(model_id, device=device)
    options = model_id.options
    if model_id.explicit_model is not None:
        raise UsageError("Give either --model or --model-file, not both.")
    if not options.get("model_file"):
        given = [f"--{n.replace('_', '-')}" for n in MODEL_FILE_OPTIONS if options.get(n)]
        raise UsageError(
            f"{', '.join(given)} describe(s) your own model: give its file with --model-file PATH."
        )
    path = Path(options["model_file"])
    if not path.is_file():
        raise UsageError(f"--model-file {path} does not exist.")
    if not options.get("classes"):
        raise UsageError("--model-file needs --classes FILE (the class names, one a line).")
    return load_user_model(
        options.get("arch"),
        path,
        _read_classes(Path(options["classes"])),
        mean=_triplet(options.get("mean"), "--mean"),
        std=_triplet(options.get("std"), "--std"),
        input_size=_input_size(options.get("input_size")),
        single_logit=bool(options.get("single_logit")),
        device=device,
    )


def _read_classes(path: Path) -> list[str]:
    if not path.is_file():
        raise UsageError(f"--classes {path} does not exist.")
    if path.stat().st_size > 1 << 20:
        raise UsageError(f"--classes {path} is larger than 1 MB; it should hold one class name a line.")
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise UsageError(f"--classes {path} is not a UTF-8 text file.") from exc


def _triplet(text: str | None, flag: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{flag} takes three numbers R,G,B, e.g. 0.485,0.456,0.406; got {text!r}.")
    if flag == "--std" and min(values) <= 0:
        raise UsageError(f"--std values must be greater than 0; got {text!r}.")
    return values  # type: ignore[return-value]


def _input_size(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit():
        raise UsageError(f"--input-size takes a whole number of pixels, e.g. 224; got {text!r}.")
    return int(text)


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
