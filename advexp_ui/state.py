"""What persists across pages for one browser session (``st.session_state``).

Widget values are dropped by Streamlit when a page without that widget runs, so the choices live
under plain keys that no widget owns; each page's widgets are seeded from them and write back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import streamlit as st

from advexp_core.data.windowing import ImageDescription, PixelRange, Window
from advexp_core.networks.registry import DEFAULT_MODEL_ID

MODEL_KEY = "advexp_model_id"
IMAGE_KEY = "advexp_image"
USER_MODEL_KEY = "advexp_user_model"
DEFAULT_IMAGE = "cat"


@dataclass(frozen=True)
class Scan:
    """A radiology upload (DICOM, 16-bit grey PNG or TIFF) as the session keeps it, so that its
    window and frame can be chosen again: the file without its DICOM header (a 16-bit file as
    uploaded), the window and frame it is read with now, and how it was read.

    ``window`` is None for the file's own; ``choice`` is the label of the sidebar's window option.
    """

    source: bytes = field(repr=False)
    window: Window | PixelRange | None
    choice: str
    frame: int
    description: ImageDescription


@dataclass(frozen=True)
class ImageChoice:
    """The image every page works on: its file bytes, a display name and where it came from.

    For a radiology upload, ``data`` is the windowed frame as a PNG (16-bit grey, or 8-bit
    colour) and ``scan`` what it was read from.
    """

    name: str
    data: bytes = field(repr=False)
    source: str  # "gallery" or "upload"
    scan: Scan | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:16]


def model_id() -> str:
    """The chosen model id (the offline default until the user picks another)."""
    return str(st.session_state.get(MODEL_KEY, DEFAULT_MODEL_ID))


def set_model_id(value: str) -> None:
    st.session_state[MODEL_KEY] = value


def image() -> ImageChoice | None:
    """The chosen image, or None before the sidebar has set one."""
    choice = st.session_state.get(IMAGE_KEY)
    return choice if isinstance(choice, ImageChoice) else None


def set_image(choice: ImageChoice) -> None:
    st.session_state[IMAGE_KEY] = choice


def run_key(page: str) -> str:
    """Session key holding the last run a page was asked for (so reruns render it from the cache)."""
    return f"advexp_run_{page}"
