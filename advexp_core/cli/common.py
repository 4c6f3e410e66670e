"""What only the CLI needs: its error, argument helpers, reading image files (output folders: `output`)."""

from __future__ import annotations

import argparse
import json
import math
import os
import stat
import sys
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advexp_core.base.jsonsafe import json_safe
from advexp_core.data.imaging import MAX_IMAGE_BYTES, ImageError, decode_image_described, prepare_image
from advexp_core.data.windowing import ImageDescription, PixelRange, Window, parse_window
from advexp_core.experiments.report import versions
from advexp_core.networks.registry import DEFAULT_MODEL_ID, LoadedModel, load_model, load_user_model

__all__ = [
    "Progress",
    "ImageFile",
    "ModelFile",
    "UsageError",
    "add_image_options",
    "add_json_argument",
    "add_model_argument",
    "command_report",
    "image_description",
    "folder_files",
    "json_text",
    "load_model_or_usage_error",
    "parse_fraction",
    "read_file",
    "read_image_described",
    "read_image_for_model",
    "resolve_class",
    "usage_errors",
]


MAX_INPUT_SIZE = 1024


class Progress:
    """Work done on stderr with its rate and the time left (tqdm; nothing when ``quiet``). A call with
    a new total starts a new bar (e.g. the next phase of a run)."""

    def __init__(self, quiet: bool, *, desc: str, unit: str) -> None:
        self.quiet, self.desc, self.unit = quiet, desc, unit
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None or self.bar.total != total:
            from tqdm import tqdm  # the CLI's only use of it: not imported by the app

            self.close()
            tty = sys.stderr.isatty()
            self.bar = tqdm(
                total=total, initial=done, unit=self.unit, desc=self.desc, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if tty else 30.0, smoothing=0.1,
            )  # fmt: skip
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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


def read_file(path: str | Path, *, flag: str, limit: int, within: Path | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or a UsageError that names it.

    FIFOs, devices and folders are refused before they are read (a FIFO would block, /dev/zero never
    ends); with ``within``, a symlink must resolve to a file inside that folder.
    """
    path = Path(path)
    label = f"{flag} {path}" if within is None else f"{path.name}"
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise UsageError(f"{label}: no such file.") from None
    if within is not None and not real.is_relative_to(within.resolve()):
        raise UsageError(f"{label}: a link to a file outside {within}; copy the file into the folder.")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then tells what was opened.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UsageError(f"{label}: cannot be read ({exc.strerror or exc}).") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise UsageError(f"{label}: {kind}; give a file.")
        if info.st_size > limit:
            raise UsageError(f"{label}: {info.st_size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.")
        data = handle.read(limit + 1)
    if len(data) > limit:  # the file grew while it was read
        raise UsageError(f"{label}: larger than {limit / 1e6:.0f} MB.")
    return data


def folder_files(folder: Path, flag: str, suffixes: Collection[str]) -> tuple[list[Path], list[str]]:
    """The regular files in ``folder`` whose suffix is one of ``suffixes`` (sorted), and the entries
    with such a suffix that are skipped, each as "name (why)": folders, FIFOs, devices, links out of it."""
    if not folder.is_dir():
        raise UsageError(f"{flag} {folder}: no such folder.")
    inside = folder.resolve()
    files, skipped = [], []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise UsageError(f"{flag} {folder}: cannot be read ({exc.strerror or exc}).") from exc
    for path in entries:
        if path.suffix.lower().lstrip(".") not in suffixes:
            continue
        try:
            real = path.resolve(strict=True)
            regular = stat.S_ISREG(real.stat().st_mode)
        except (OSError, RuntimeError):
            skipped.append(f"{path.name} (a broken link)")
            continue
        if not real.is_relative_to(inside):
            skipped.append(f"{path.name} (a link to a file outside {folder})")
        elif not regular:
            skipped.append(f"{path.name} ({'a folder' if real.is_dir() else 'not a regular file'})")
        else:
            files.append(path)
    return files, skipped


def read_image_for_model(path: str | Path, model: LoadedModel) -> Tensor:
    """Read an image file and fit it to the model's input size (as given when it already fits);
    an `ImageFile` brings its window and frame (``--window``, ``--frame``).

    Shapes: -> (3, h, w).
    """
    return read_image_described(path, model)[0]


def read_image_described(path: str | Path, model: LoadedModel) -> tuple[Tensor, ImageDescription]:
    """`read_image_for_model`, and how the file was read (its kind, window and frame); an
    `ImageFile` also keeps that description for the command's report (`command_report`)."""
    window = path.window if isinstance(path, ImageFile) else None
    frame = path.frame if isinstance(path, ImageFile) else 1
    where = Path(path)
    if not where.exists():
        raise UsageError(f"Image not found: {where}")
    try:
        data = read_file(where, flag="image", limit=MAX_IMAGE_BYTES)
        decoded = decode_image_described(data, window=window, frame=frame)
    except ImageError as exc:
        raise UsageError(f"{where.name}: {exc}") from None  # a DICOM reader's own text stays out
    if isinstance(path, ImageFile):
        path.description = decoded.description
    return prepare_image(decoded.image, model).to(model.device), decoded.description


class ImageFile(str):
    """The IMAGE argument with ``--window`` and ``--frame``: a str whose value is the path, so
    that commands pass it to `read_image_for_model` and write it into reports as before.

    ``description`` is set once the file has been read (`read_image_described`).
    """

    window: Window | PixelRange | None
    frame: int
    description: ImageDescription | None

    def __new__(cls, path: str, window: Window | PixelRange | None = None, frame: int = 1) -> ImageFile:
        made = super().__new__(cls, path)
        made.window, made.frame, made.description = window, frame, None
        return made


def _window_option(text: str) -> Window | PixelRange:
    try:
        return parse_window(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _frame_option(text: str) -> int:
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()) or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"a frame is a whole number from 1, got {text!r}")
    return int(digits)


class _ImageOptionAction(argparse.Action):
    """Store ``--window`` or ``--frame``, then rebuild ``args.image`` as an `ImageFile` with both."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        image = getattr(namespace, "image", None)
        if image is not None:
            namespace.image = ImageFile(str(image), namespace.window, namespace.frame)


class _ImagePathAction(_ImageOptionAction):
    """The IMAGE positional: stored as an `ImageFile` with the options given before it."""


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """``--window C,W`` and ``--frame N`` for reading a DICOM or 16-bit file; with an IMAGE
    positional already added, ``args.image`` becomes an `ImageFile` carrying them."""
    group = parser.add_argument_group(
        "radiology images", "DICOM and 16-bit greyscale PNG/TIFF files (other images take no window)"
    )
    group.add_argument(
        "--window",
        metavar="C,W",
        type=_window_option,
        action=_ImageOptionAction,
        default=None,
        help="window centre and width in the file's values (HU for CT), e.g. 40,400 (a negative "
        "centre as --window=-600,1500); 'range' for the lowest to highest value; or a preset: "
        "'CT brain', 'CT soft tissue', 'CT lung', 'CT bone' (default: the file's own window)",
    )
    group.add_argument(
        "--frame",
        metavar="N",
        type=_frame_option,
        action=_ImageOptionAction,
        default=1,
        help="which frame of a multi-frame DICOM file, from 1 (default 1)",
    )
    for action in parser._actions:  # argparse has no public way to reach an added argument
        if action.dest == "image" and not action.option_strings:
            # the positional may come after the options: it must pick them up as well
            action.__class__ = _ImagePathAction


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
        "--mean": ("R,G,B", "normalisation mean in [0, 1] units, or one value (default: the architecture's)"),
        "--std": ("R,G,B", "normalisation std in [0, 1] units, or one value (default: the architecture's)"),
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
    if any(a.dest == "image" and not a.option_strings for a in parser._actions):
        add_image_options(parser)  # every command that reads one image file


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
    data = read_file(path, flag="--classes", limit=1 << 20)
    try:
        return [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise UsageError(f"--classes {path} is not a UTF-8 text file.") from exc


def _triplet(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 3) or not all(math.isfinite(v) for v in values):
        raise UsageError(
            f"{flag} takes three numbers R,G,B, e.g. 0.485,0.456,0.406, or one for every channel "
            f"(a grey network's); got {text!r}."
        )
    if flag == "--std" and min(values) <= 0:
        raise UsageError(f"--std values must be greater than 0; got {text!r}.")
    return values


def _input_size(text: str | None) -> int | None:
    if text is None:
        return None
    digits = text.strip()
    # isdigit() alone admits superscripts and other scripts' digits, which int() refuses
    if not (digits.isascii() and digits.isdigit()) or not 16 <= int(digits) <= MAX_INPUT_SIZE:
        raise UsageError(
            f"--input-size takes a whole number of pixels from 16 to {MAX_INPUT_SIZE}, e.g. 224; got {text!r}."
        )
    return int(digits)


def image_description(args: argparse.Namespace) -> dict[str, Any]:
    """``{"image_description": …}`` (how the image was read: its window and frame, never a DICOM
    header's content), or nothing when the image needed no description."""
    described = getattr(args.image, "description", None)
    return {} if described is None else {"image_description": described.to_json()}


def command_report(
    command: str, args: argparse.Namespace, report: dict[str, Any], files: dict[str, str]
) -> dict[str, Any]:
    """An experiment's report framed for result.json: the command, the image (and how it was read:
    its window and frame, never a DICOM header's content), versions, files, out."""
    image = str(args.image)
    body = {k: v for k, v in report.items() if k != "settings"}
    return {
        "command": command,
        "image": image,
        **image_description(args),
        "settings": {"image": image, **report["settings"]},
        "versions": versions(),
        **body,
        "files": files,
        "out": str(args.out),
    }


_C1_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def json_text(result: Any, indent: int | None = None) -> str:
    """Strict JSON (no NaN) with C1 control characters escaped; json already escapes C0 ones."""
    return json.dumps(json_safe(result), ensure_ascii=False, allow_nan=False, indent=indent).translate(
        _C1_ESCAPES
    )
