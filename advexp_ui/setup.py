"""Every page starts here: page config and the shared sidebar (model and image choice, persisted
across pages). Weights come from $ADVEXP_WEIGHTS_DIR, the cache or a download (advexp_core.networks.zoo)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import streamlit as st
import torch

from advexp_core.data.imaging import (
    ACCEPTED_EXTENSIONS,
    FORMATS_TEXT,
    MAX_IMAGE_MB,
    ImageError,
    Preprocess,
    decode_image,
)
from advexp_core.data.windowing import PIXEL_RANGE, WINDOW_PRESETS, ImageDescription, PixelRange, Window
from advexp_core.networks.registry import DEFAULT_MODEL_ID, LoadedModel
from advexp_core.networks.zoo import ModelError
from advexp_core.readings import Reading
from advexp_ui import gallery, loaders, state

W_MODEL, W_GALLERY, W_UPLOAD = "_w_model", "_w_gallery", "_w_upload"
W_WINDOW, W_CENTRE, W_WIDTH, W_FRAME = "_w_window", "_w_window_centre", "_w_window_width", "_w_frame"
LAST_UPLOAD = "advexp_last_upload"
UPLOAD_ERROR = "advexp_upload_error"
UPLOADER_ROUND = "advexp_uploader_round"  # a new uploader after a DICOM upload: see _forget_upload
OWN_WINDOW, RANGE, CUSTOM = "The file's own window", "Lowest to highest value", "Custom…"
HEADER_NOTE = (
    "The DICOM header (patient, study and device details) is not kept: only the pixels and how to "
    "show them (modality, window, frame) are read, and nothing of the header is written anywhere."
)


@dataclass(frozen=True)
class Selection:
    """What the sidebar chose: the model (None when it cannot be loaded) and the image."""

    model_id: str
    model: LoadedModel | None
    image: state.ImageChoice


def page(title: str, icon: str) -> Selection:
    """Set up a page and draw the sidebar; returns the current model and image."""
    st.set_page_config(page_title=f"{title} · advexp", page_icon=icon, layout="wide")
    with st.sidebar:
        model_id, model = _model_chooser()
        image = _image_chooser()
        if model is not None:
            _input_note(image, model)
    return Selection(model_id, model, image)


# Outcomes of the input reading under which the network reads something other than the picture
# the user chose: then the sidebar shows what it does read.
ALTERED = ("upscaled", "cropped", "upscaled-cropped")


@st.cache_data(show_spinner=False, max_entries=64)
def network_view(
    data: bytes, crop: tuple[int, int], resize: int | None, interpolation: str
) -> tuple[Reading, bytes]:
    """`advexp_ui.images.network_view`, cached by (image bytes, the network's input policy)."""
    from advexp_ui.images import network_view as view

    return view(data, Preprocess(crop, resize, interpolation))


def view_of(image: state.ImageChoice, model: LoadedModel) -> tuple[Reading, bytes]:
    """The chosen image's input reading for the chosen network, and the picture the network reads."""
    policy = model.preprocess
    return network_view(image.data, policy.crop, policy.resize, policy.interpolation)


def _input_note(image: state.ImageChoice, model: LoadedModel) -> None:
    """One sentence on how the image becomes the network's input; the network's view when it
    invents or cuts much (`advexp_core.readings.inputs`)."""
    reading, png = view_of(image, model)
    if reading.outcome in ALTERED:
        st.warning(reading.text)
        h, w = model.preprocess.crop
        st.image(png, caption=f"What the network reads ({w}×{h} px)", width="stretch")
    else:
        st.caption(reading.text)


def _remember_model() -> None:
    state.set_model_id(st.session_state[W_MODEL])


def _model_chooser() -> tuple[str, LoadedModel | None]:
    st.header("Model")
    infos = {info.model_id: info for info in loaders.model_infos()}
    labels = loaders.titles(list(infos.values()))
    user = st.session_state.get(state.USER_MODEL_KEY)
    if isinstance(user, LoadedModel):
        labels[user.model_id] = user.title
    chosen = state.model_id() if state.model_id() in labels else DEFAULT_MODEL_ID
    state.set_model_id(chosen)
    st.session_state[W_MODEL] = chosen  # seed the widget from the persisted choice
    st.selectbox(
        "Network",
        list(labels),
        format_func=labels.__getitem__,
        key=W_MODEL,
        on_change=_remember_model,
        help="Offline ImageNet default first, then robust networks, the paper's CIFAR-10 networks, "
        "this project's digits networks and your own weights ('Your own model' page).",
    )
    info = infos.get(chosen)
    if info is not None:
        kind = "robust" if info.robust else "standard (not robust)"
        st.caption(f"{info.group} · {kind}. Weights: {info.source}. Found at: {info.where}.")
    elif isinstance(user, LoadedModel):
        st.caption(user.source)
    try:
        return chosen, loaders.get_model(chosen)
    except (ModelError, ValueError) as exc:
        st.error(str(exc))
        return chosen, None


def _image_chooser() -> state.ImageChoice:
    st.header("Image")
    entries = gallery.entries()
    current = state.image()
    if current is None:
        current = state.ImageChoice(state.DEFAULT_IMAGE, gallery.entry_bytes(state.DEFAULT_IMAGE), "gallery")
        state.set_image(current)
    on_gallery = current.source == "gallery" and current.name in entries
    st.session_state[W_GALLERY] = current.name if on_gallery else None
    st.selectbox(
        "From the gallery",
        list(entries),
        format_func=lambda key: entries[key].title,
        key=W_GALLERY,
        placeholder="Pick an image…",
        on_change=_pick_gallery,
    )
    round_ = int(st.session_state.get(UPLOADER_ROUND, 0))
    uploaded = st.file_uploader(
        "…or upload your own",
        type=list(ACCEPTED_EXTENSIONS),
        key=W_UPLOAD if not round_ else f"{W_UPLOAD}_{round_}",
        max_upload_size=MAX_IMAGE_MB,
        help=f"{FORMATS_TEXT} up to {MAX_IMAGE_MB} MB. DICOM and 16-bit grey files are read "
        "through a window you can change below.",
    )
    if uploaded is not None and st.session_state.get(LAST_UPLOAD) != uploaded.file_id:
        st.session_state[LAST_UPLOAD] = uploaded.file_id
        if accept_upload(uploaded.name, uploaded.size, uploaded.getvalue):
            taken = state.image()
            if taken is not None and taken.scan is not None and taken.scan.description.kind == "DICOM":
                _forget_upload(uploaded.file_id)
            st.rerun()  # draw the sidebar again for the new image (the gallery box, the window)
    if st.session_state.get(UPLOAD_ERROR):
        st.error(st.session_state[UPLOAD_ERROR])
    current = state.image() or current
    st.image(thumbnail(current.data), caption=f"{current.name} ({current.source})", width="stretch")
    if current.scan is not None:
        _scan_controls(current.scan)
    return current


def _forget_upload(file_id: str) -> None:
    """Drop an uploaded DICOM file's bytes (its header with them) from Streamlit's upload store,
    and give the next run a fresh uploader (the old one's value still holds the file), once the
    header-free copy is the session's image.

    Streamlit keeps an upload's bytes for the whole session otherwise.
    """
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is not None and isinstance(ctx.uploaded_file_mgr, MemoryUploadedFileManager):
        ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=file_id)
    st.session_state[UPLOADER_ROUND] = int(st.session_state.get(UPLOADER_ROUND, 0)) + 1
    st.session_state.pop(LAST_UPLOAD, None)  # the next run's uploader is another widget, empty


def window_choices(description: ImageDescription) -> dict[str, Window | PixelRange | None]:
    """The sidebar's window options for a file: its own, its pixel range, the CT presets (CT in
    Hounsfield units only), and a custom window (None here: read from the two number inputs)."""
    choices: dict[str, Window | PixelRange | None] = {OWN_WINDOW: None, RANGE: PIXEL_RANGE}
    if description.modality == "CT" and description.unit == "HU":
        choices.update({f"{name} ({w.text} HU)": w for name, w in WINDOW_PRESETS.items()})
    choices[CUSTOM] = None
    return choices


def _scan_controls(scan: state.Scan) -> None:
    """What the file is and how it is shown; a window and a frame to choose. The choices live in
    the session's `state.Scan` (widgets are seeded from it), so every page shows the same."""
    described = scan.description
    st.caption(described.summary)
    if described.kind == "DICOM":
        st.caption(HEADER_NOTE)
    if described.windowed:
        choices = window_choices(described)
        st.session_state[W_WINDOW] = scan.choice if scan.choice in choices else OWN_WINDOW
        st.selectbox("Window", list(choices), key=W_WINDOW, on_change=_rewindow)
        if scan.choice == CUSTOM:
            shown = described.window or Window(0.5, 1.0)
            st.session_state[W_CENTRE] = float(shown.centre)
            st.session_state[W_WIDTH] = float(max(shown.width, 1.0))
            unit = f" ({described.unit})" if described.unit else ""
            left, right = st.columns(2)
            left.number_input(f"Centre{unit}", key=W_CENTRE, step=10.0, format="%g", on_change=_rewindow)
            right.number_input(
                f"Width{unit}", key=W_WIDTH, min_value=1.0, step=10.0, format="%g", on_change=_rewindow
            )
    if described.frames > 1:
        st.session_state[W_FRAME] = scan.frame
        st.number_input(
            f"Frame (1 to {described.frames})",
            min_value=1,
            max_value=described.frames,
            step=1,
            key=W_FRAME,
            on_change=_rewindow,
        )


def _rewindow() -> None:
    """Read the session's radiology file again with the window and frame the widgets now say."""
    from advexp_ui.images import read_scan

    current = state.image()
    if current is None or current.scan is None:
        return
    scan = current.scan
    choice = str(st.session_state.get(W_WINDOW, scan.choice))
    window = window_choices(scan.description).get(choice)
    if choice == CUSTOM:
        centre, width = st.session_state.get(W_CENTRE), st.session_state.get(W_WIDTH)
        if scan.choice != CUSTOM or centre is None or width is None:  # start from the window shown
            shown = scan.description.window or Window(0.5, 1.0)
            centre, width = shown.centre, shown.width
        window = Window(float(centre), max(float(width), 1.0))
    frame = int(st.session_state.get(W_FRAME, scan.frame))
    try:
        read = read_scan(scan.source, window=window, frame=frame)
    except (ImageError, ValueError) as exc:
        st.session_state[UPLOAD_ERROR] = f"{current.name}: {exc}"
        return
    st.session_state.pop(UPLOAD_ERROR, None)
    chosen = replace(scan, window=window, choice=choice, frame=frame, description=read.description)
    state.set_image(replace(current, data=read.data, scan=chosen))


@st.cache_data(show_spinner=False, max_entries=256)
def thumbnail(data: bytes) -> bytes:
    """The image as the browser should get it: decoded (any accepted format), at most 320 px, PNG."""
    from advexp_ui.images import display_png

    image = decode_image(data)
    scale = 320 / max(image.shape[1:])
    if scale < 1:
        size = [max(1, round(image.shape[1] * scale)), max(1, round(image.shape[2] * scale))]
        image = torch.nn.functional.interpolate(image[None], size=size, mode="area")[0]
    return display_png(image)


def _pick_gallery() -> None:
    key = st.session_state.get(W_GALLERY)
    if key is not None:
        state.set_image(state.ImageChoice(key, gallery.entry_bytes(key), "gallery"))
        st.session_state.pop(UPLOAD_ERROR, None)


def accept_upload(name: str, size: int, read: Callable[[], bytes]) -> bool:
    """Check an uploaded image and make it the session's image; on a problem keep the old image.

    The size is checked before the bytes are read or decoded (`advexp_ui.images.read_upload`).
    """
    from advexp_ui.images import take_upload

    try:
        taken = take_upload(name, size, read)
    except ImageError as exc:
        st.session_state[UPLOAD_ERROR] = str(exc)
        return False
    st.session_state.pop(UPLOAD_ERROR, None)
    scan = None
    if taken.source is not None:
        scan = state.Scan(taken.source, None, OWN_WINDOW, 1, taken.description)
        for key in (W_CENTRE, W_WIDTH):
            st.session_state.pop(key, None)
    state.set_image(state.ImageChoice(name, taken.data, "upload", scan))
    st.session_state.pop(W_GALLERY, None)
    return True
