"""Every page starts here: page config and the shared sidebar (model and image choice, persisted
across pages). Weights come from $ADVEXP_WEIGHTS_DIR, the cache or a download (advexp_core.networks.zoo)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
import torch

from advexp_core.data.imaging import ACCEPTED_EXTENSIONS, MAX_IMAGE_MB, ImageError, Preprocess, decode_image
from advexp_core.networks.registry import DEFAULT_MODEL_ID, LoadedModel
from advexp_core.networks.zoo import ModelError
from advexp_core.readings import Reading
from advexp_ui import gallery, loaders, state

W_MODEL, W_GALLERY, W_UPLOAD = "_w_model", "_w_gallery", "_w_upload"
LAST_UPLOAD = "advexp_last_upload"
UPLOAD_ERROR = "advexp_upload_error"


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
    uploaded = st.file_uploader(
        "…or upload your own",
        type=list(ACCEPTED_EXTENSIONS),
        key=W_UPLOAD,
        max_upload_size=MAX_IMAGE_MB,
        help=f"PNG, JPEG, WebP, BMP, TIFF or GIF up to {MAX_IMAGE_MB} MB.",
    )
    if uploaded is not None and st.session_state.get(LAST_UPLOAD) != uploaded.file_id:
        st.session_state[LAST_UPLOAD] = uploaded.file_id
        accept_upload(uploaded.name, uploaded.size, uploaded.getvalue)
    if st.session_state.get(UPLOAD_ERROR):
        st.error(st.session_state[UPLOAD_ERROR])
    current = state.image() or current
    st.image(thumbnail(current.data), caption=f"{current.name} ({current.source})", width="stretch")
    return current


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
    from advexp_ui.images import read_upload

    try:
        data, _ = read_upload(name, size, read)
    except ImageError as exc:
        st.session_state[UPLOAD_ERROR] = str(exc)
        return False
    st.session_state.pop(UPLOAD_ERROR, None)
    state.set_image(state.ImageChoice(name, data, "upload"))
    st.session_state.pop(W_GALLERY, None)
    return True
