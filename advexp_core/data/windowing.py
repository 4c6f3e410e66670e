"""Windows: how a range of scanner values becomes the grey levels of an image in [0, 1].

A window (centre C, width W) maps values around C to grey and clips the rest, as a radiology
viewer does: the VOI LUT functions of DICOM PS3.3 C.11.2.1.2 (LINEAR, the default; LINEAR_EXACT;
SIGMOID). CT windows are in Hounsfield units, after the file's rescale slope and intercept; other
files' windows are in their stored values. `ImageDescription` says how a file became an image in
a few plain words and numbers: what it is, which window and where it came from, which frame. It
holds nothing else of the file (no patient or study detail ever reaches it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

VoiFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]
PixelRange = Literal["range"]
PIXEL_RANGE: PixelRange = "range"
"""Asked for instead of a window: the image's own lowest and highest values, stretched to black and white."""


@dataclass(frozen=True)
class Window:
    """A window of centre ``centre`` and width ``width`` in the image's values (HU for CT);
    ``name`` is a preset's ("CT lung"), for the description.

    Raises:
        ValueError: a centre or width that is not finite, or a width under 1 (LINEAR, as DICOM
            requires) or not above 0 (the other functions).
    """

    centre: float
    width: float
    function: VoiFunction = "LINEAR"
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.centre) and math.isfinite(self.width)):
            raise ValueError(f"A window's centre and width must be finite numbers, got {self.text}.")
        if self.function == "LINEAR" and self.width < 1:
            raise ValueError(f"A window's width must be at least 1, got {self.width:g}.")
        if not self.width > 0:
            raise ValueError(f"A window's width must be greater than 0, got {self.width:g}.")

    @property
    def text(self) -> str:
        """``centre/width`` as a radiologist writes it (``40/400``)."""
        return f"{_number(self.centre)}/{_number(self.width)}"


WINDOW_PRESETS: dict[str, Window] = {
    name: Window(centre, width, name=name)
    for name, centre, width in (
        ("CT brain", 40, 80),
        ("CT soft tissue", 40, 400),
        ("CT lung", -600, 1500),
        ("CT bone", 400, 1800),
    )
}
"""Common CT windows, in Hounsfield units."""


def parse_window(text: str) -> Window | PixelRange:
    """A window written ``C,W`` or ``C/W`` (``-600,1500``), a preset's name, or ``range``.

    Raises:
        ValueError: anything else, or a window `Window` refuses.
    """
    cleaned = " ".join(text.split())
    if cleaned.lower() == PIXEL_RANGE:
        return PIXEL_RANGE
    presets = {name.lower(): window for name, window in WINDOW_PRESETS.items()}
    if cleaned.lower() in presets:
        return presets[cleaned.lower()]
    parts = cleaned.replace("/", ",").split(",")
    try:
        centre, width = (float(part) for part in parts)
    except ValueError:
        raise ValueError(
            f"A window is a centre and a width, e.g. 40,400 (or 'range', or one of "
            f"{', '.join(WINDOW_PRESETS)}); got {text!r}."
        ) from None
    return Window(centre, width)


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Grey levels in [0, 1] from values, by DICOM's VOI LUT function of the window.

    LINEAR: 0 at or below C − 0.5 − (W − 1)/2, 1 above C − 0.5 + (W − 1)/2, and
    ((x − (C − 0.5)) / (W − 1) + 0.5) between (a width of 1 is a threshold at C − 0.5);
    LINEAR_EXACT: (x − C)/W + 0.5, clipped; SIGMOID: 1 / (1 + exp(−4 (x − C)/W)).

    Shapes: any -> same, float32.
    """
    x = np.asarray(values, dtype=np.float64)
    c, w = float(window.centre), float(window.width)
    if window.function == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / w, -700, 700)))
    elif window.function == "LINEAR_EXACT":
        out = (x - c) / w + 0.5
    elif w == 1:
        out = (x > c - 0.5).astype(np.float64)
    else:
        out = (x - (c - 0.5)) / (w - 1) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def given_window_source(window: Window) -> str:
    """Where a window given by the user came from, for `ImageDescription.window_from`."""
    return f"the preset {window.name}" if window.name else "your setting"


def range_window(values: np.ndarray) -> Window:
    """The window that stretches the values' lowest to black and highest to white (LINEAR_EXACT);
    constant values get a width of 1 around them, so they show as mid-grey."""
    low, high = float(np.min(values)), float(np.max(values))
    return Window((low + high) / 2, max(high - low, 1.0), "LINEAR_EXACT")


@dataclass(frozen=True)
class ImageDescription:
    """How a file became the image: its kind, the window and where it came from, the frame.

    Nothing of a file's header is kept but these fields, and ``modality`` only when it is one of
    DICOM's defined terms (CT, MR, CR…): a report may carry this description without carrying a
    patient's details.

    Args:
        kind: "DICOM", "16-bit PNG", "8-bit JPEG"…
        modality: DICOM's modality (CT, MR, …) or None.
        window: the window applied, None when none was (8-bit and colour images, a VOI LUT).
        window_from: where the window came from ("the file", "your setting", "the pixel range",
            "the full 16-bit range", "the file's VOI LUT", "the preset CT lung"); "" when none
            applies.
        unit: the window's unit ("HU" for CT in Hounsfield units, else "").
        frame, frames: the frame shown (from 1) and how many the file has.
        inverted: MONOCHROME1 (high values dark) was inverted to the usual look.
        colour: a colour image (no window applies).
        window_ignored: a window was asked for but does not apply to this image.
        burned_in: the file says text is burned into its pixels (Burned In Annotation): it is
            part of the image, kept like any pixel, and may name the patient.
    """

    kind: str
    modality: str | None = None
    window: Window | None = None
    window_from: str = ""
    unit: str = ""
    frame: int = 1
    frames: int = 1
    inverted: bool = False
    colour: bool = False
    window_ignored: bool = False
    burned_in: bool = False

    @property
    def windowed(self) -> bool:
        """True for images whose grey levels a window sets (DICOM and 16-bit grey files)."""
        return bool(self.window_from)

    @property
    def summary(self) -> str:
        """One line: "CT, window 40/400 HU from the file, frame 1 of 1"."""
        parts = [self.modality or self.kind]
        if self.window is not None:
            unit = f" {self.unit}" if self.unit else ""
            parts.append(f"window {self.window.text}{unit} from {self.window_from}")
        elif self.window_from:
            parts.append(self.window_from)
        elif self.colour:
            parts.append("colour (no window)")
        if self.inverted:
            parts.append("inverted (MONOCHROME1: high values were dark)")
        if self.kind == "DICOM" or self.frames > 1:
            parts.append(f"frame {self.frame} of {self.frames}")
        text = ", ".join(parts)
        if self.window_ignored:
            text += "; the window asked for does not apply to this image"
        if self.burned_in:
            text += "; the file says text is burned into the pixels (it may name the patient)"
        return text

    def to_json(self) -> dict[str, Any]:
        window = None
        if self.window is not None:
            window = {
                "centre": self.window.centre,
                "width": self.window.width,
                "function": self.window.function,
            }
        return {
            "kind": self.kind,
            "modality": self.modality,
            "window": window,
            "window_from": self.window_from or None,
            "unit": self.unit or None,
            "frame": self.frame,
            "frames": self.frames,
            "inverted": self.inverted,
            "burned_in": self.burned_in,
            "summary": self.summary,
        }


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.6g}"
