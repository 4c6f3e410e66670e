"""Your own model: a torchvision or timm network with your weights, or an ONNX file, on every page."""

import re

import streamlit as st

from advexp_core.networks.checkpoints import MAX_CHECKPOINT_BYTES
from advexp_core.networks.own_models import TIMM_PREFIX, USER_ARCHS, ModelCard, timm_default_config
from advexp_core.networks.registry import DEFAULT_MODEL_ID, LoadedModel
from advexp_core.networks.zoo import IMAGENET_MEAN, IMAGENET_STD
from advexp_ui import flow, loaders, render, setup, state
from advexp_ui.jobs.common import classify

SOURCES = {
    "torchvision": "torchvision architecture + your weights",
    "timm": "timm architecture + your weights (CNNs and vision transformers)",
    "onnx": "ONNX file (architecture and weights in one)",
}
UPLOAD_MB = min(200, MAX_CHECKPOINT_BYTES >> 20)


CHANNELS = {
    1: "1 (grey), recognised from the file: a grey image reaches it as it is; a colour image as the "
    "mean of its red, green and blue",
    3: "3 (RGB): a grey image (a DICOM or 16-bit file, say) reaches it as three equal channels",
}


def triplet_text(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def code_or_text(name: str) -> str:
    """A module name as inline code when it is a plain dotted name, else as escaped text (an ONNX
    file names its operators, and a backtick or a pipe would end the code span or the table cell)."""
    return f"`{name}`" if re.fullmatch(r"[\w./\-]+", name) else render.escape_markdown(name)


def model_card(user: LoadedModel, card: ModelCard) -> None:
    """What was loaded and where each setting came from. Class names and what was read from the
    file are the user's text: escaped, so Markdown in them (an image link) is shown, not run."""
    h, w = card.input_size
    resize = f"short side to {card.resize} px, then" if card.resize else "scaled to"
    classes = ", ".join(render.escape_markdown(name) for name in user.class_names[:20])
    rows = {
        "Architecture": f"{card.architecture} ({card.framework})",
        "Parameters": f"{card.parameters:,}",
        "Input": f"{resize} a {w}×{h} px centre crop, {card.interpolation} — from {card.input_from}",
        "Channels": CHANNELS[1 if card.channels == 1 else 3],
        "Normalisation": f"mean ({triplet_text(card.mean)}), std ({triplet_text(card.std)}) — "
        f"from {card.normalisation_from}",
        "Classes": f"{user.num_classes}: {classes}" + (" …" if user.num_classes > 20 else ""),
        "Grad-CAM layer": f"{code_or_text(card.gradcam_layer)}: {card.gradcam_how}",
    }
    if card.onnx_max_difference is not None:
        rows["Check against ONNX Runtime"] = f"largest relative difference {card.onnx_max_difference:.1e}"
    st.markdown("\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows.items())]))
    for note in card.notes:
        st.caption(f"Reading the file: {render.escape_markdown(note)}.")


sel = setup.page("Your own model", "📦")
st.title("Your own model")
st.markdown(
    "Load a network you trained yourself — for example a chest X-ray or skin-lesion classifier: "
    "your weights for a **torchvision** or **timm** architecture (CNNs and vision transformers), or "
    "an **ONNX** export, for colour images or grey ones (a network whose first layer takes one "
    "channel, such as timm's `in_chans=1`, is recognised from its weights). Files are read safely: `.safetensors`, or a PyTorch `state_dict` saved as "
    "`.pt`/`.pth` and opened with `weights_only=True`, so a file can never run code; an `.onnx` file "
    "may not point at other files. The model stays in **your browser session only** and then appears "
    "in the sidebar's network list for every page."
)
source = st.radio(
    "Where the model comes from", list(SOURCES), format_func=SOURCES.__getitem__, key="own-source"
)
arch: str | None = None
defaults = None
if source == "torchvision":
    arch = st.selectbox("Architecture", USER_ARCHS, key="own-tv-arch")
    st.caption("Preprocessing unless you set it: 224 px (resize 256), bilinear, ImageNet mean and std.")
elif source == "timm":
    query = st.text_input("Search timm's architectures", placeholder="e.g. convnext, vit_small, efficientnet")
    names = loaders.timm_names(query)
    if names:
        name = st.selectbox(f"timm architecture ({len(names)} match)", names, key="own-timm-arch")
        arch = f"{TIMM_PREFIX}{name}"
        defaults = timm_default_config(name)
    else:
        st.warning("No timm architecture matches this search.")
    if defaults is not None:
        side = defaults.input_size[0]
        st.caption(
            f"timm's data config: {side} px"
            + (f" (resize {defaults.resize})" if defaults.resize else "")
            + f", {defaults.interpolation}, mean ({triplet_text(defaults.mean)}), "
            f"std ({triplet_text(defaults.std)}). Used unless you set your own below."
        )
    elif arch is not None:
        st.caption(
            "timm records no preprocessing under this name; it is read from the network when it loads."
        )
else:
    st.caption(
        "The input size comes from the file; ONNX does not record the normalisation, so set it "
        "below if your export expects other than ImageNet's. A file that fixes its input size keeps "
        "it: your input size applies only to a file that leaves it open."
    )

with st.form("own-model-form"):
    kinds = ["onnx"] if source == "onnx" else ["safetensors", "pt", "pth"]
    weights = st.file_uploader(
        f"{'Model' if source == 'onnx' else 'Weights'} (.{', .'.join(kinds)})",
        type=kinds,
        max_upload_size=UPLOAD_MB,
    )
    names_text = st.text_area(
        "Class names, one per line (in the order of the network's outputs)",
        placeholder="normal\npneumonia",
        height=120,
    )
    own = st.checkbox(
        "Set the input size and normalisation myself",
        help="Otherwise they come from the architecture (timm's data config) or the ONNX file.",
    )
    c1, c2, c3 = st.columns(3)
    size = c1.number_input(
        "Input size (pixels, square)",
        min_value=16,
        max_value=1024,
        value=defaults.input_size[0] if defaults else 224,
    )
    mean = c2.text_input(
        "Normalisation mean (R, G, B, or one value)",
        triplet_text(defaults.mean if defaults else IMAGENET_MEAN),
        help="A grey network (one input channel) takes one value; three given are averaged.",
    )
    std = c3.text_input(
        "Normalisation std (R, G, B, or one value)",
        triplet_text(defaults.std if defaults else IMAGENET_STD),
        help="A grey network (one input channel) takes one value; three given are averaged.",
    )
    single = st.checkbox(
        "Single-logit binary model", help="The network returns one number z; it is read as (0, z)."
    )
    submitted = st.form_submit_button("Load my model", type="primary")


def load(file_name: str, data: bytes) -> LoadedModel:
    """The uploaded model with the form's settings (ModelError, a ValueError, on any problem)."""
    if source != "onnx" and arch is None:
        raise ValueError("Choose an architecture first.")
    spec = loaders.UserModelSpec(
        arch=arch,
        class_names=loaders.parse_class_names(names_text),
        mean=loaders.parse_triplet(mean, "mean") if own else None,
        std=loaders.parse_triplet(std, "std") if own else None,
        input_size=int(size) if own else None,
        single_logit=single,
        file_size_first=True,  # the checkbox sets the normalisation too: it must not refuse a fixed ONNX
    )
    with st.spinner("Checking and loading the model…"):
        return loaders.load_user_weights(file_name, data, spec)


if submitted:
    with flow.guard():
        if weights is None:
            raise ValueError("Choose a file first.")
        try:
            loaded = load(weights.name, weights.getvalue())
        except ValueError as exc:  # messages quote the file's tensor names: shown as text, not Markdown
            st.error(render.escape_markdown(str(exc)))
        else:
            st.session_state[state.USER_MODEL_KEY] = loaded
            state.set_model_id(loaded.model_id)
            st.rerun()  # redraw the sidebar with the new model chosen

user = st.session_state.get(state.USER_MODEL_KEY)
if isinstance(user, LoadedModel):
    h, w = user.input_size
    st.success(
        f"Loaded **{render.escape_markdown(user.title)}**: {user.num_classes} classes, {h}×{w} px, "
        f"on {user.device}. It is now the network in the sidebar; every page uses it."
    )
    if user.card is not None:
        model_card(user, user.card)
    with flow.guard():
        top = classify(sel.image.data, user.model_id, user)[:5]
        render.predictions(f"Top 5 on {render.escape_markdown(sel.image.name)}", top)
        render.look_at("own-model")
    if st.button("Forget my model"):
        del st.session_state[state.USER_MODEL_KEY]
        state.set_model_id(DEFAULT_MODEL_ID)
        st.rerun()
