"""Your own model: load your weights into a standard architecture and use them on every page."""

import streamlit as st

from advexp_core.checkpoints import MAX_CHECKPOINT_BYTES
from advexp_core.models import DEFAULT_MODEL_ID, IMAGENET_MEAN, IMAGENET_STD, USER_ARCHS, LoadedModel
from advexp_ui import flow, loaders, render, setup, state
from advexp_ui.jobs.common import classify

sel = setup.page("Your own model", "📦")
st.title("Your own model")
st.markdown(
    "Load weights you trained yourself — for example a chest X-ray or skin-lesion classifier — into "
    "one of the standard torchvision architectures. Files are read safely: `.safetensors`, or a "
    "PyTorch `state_dict` saved as `.pt`/`.pth` and opened with `weights_only=True`, so a file can "
    "never run code. The model stays in **your browser session only** and then appears in the "
    "sidebar's network list for every page."
)
UPLOAD_MB = min(200, MAX_CHECKPOINT_BYTES >> 20)

with st.form("own-model-form"):
    weights = st.file_uploader(
        "Weights (.safetensors, .pt or .pth)", type=["safetensors", "pt", "pth"], max_upload_size=UPLOAD_MB
    )
    c1, c2 = st.columns(2)
    arch = c1.selectbox("Architecture", USER_ARCHS)
    size = c2.number_input("Input size (pixels, square)", min_value=16, max_value=1024, value=224)
    names = st.text_area(
        "Class names, one per line (in the order of the network's outputs)",
        placeholder="normal\npneumonia",
        height=120,
    )
    c1, c2, c3 = st.columns(3)
    mean = c1.text_input("Normalisation mean (R, G, B)", ", ".join(map(str, IMAGENET_MEAN)))
    std = c2.text_input("Normalisation std (R, G, B)", ", ".join(map(str, IMAGENET_STD)))
    single = c3.checkbox(
        "Single-logit binary model", help="The network returns one number z; it is read as (0, z)."
    )
    submitted = st.form_submit_button("Load my model", type="primary")

if submitted:
    with flow.guard():
        if weights is None:
            raise ValueError("Choose a weights file first.")
        spec = loaders.UserModelSpec(
            arch=arch,
            class_names=loaders.parse_class_names(names),
            mean=loaders.parse_triplet(mean, "mean"),
            std=loaders.parse_triplet(std, "std"),
            input_size=int(size),
            single_logit=single,
        )
        with st.spinner("Checking and loading the weights…"):
            loaded = loaders.load_user_weights(weights.name, weights.getvalue(), spec)
        st.session_state[state.USER_MODEL_KEY] = loaded
        state.set_model_id(loaded.model_id)
        st.rerun()  # redraw the sidebar with the new model chosen

user = st.session_state.get(state.USER_MODEL_KEY)
if isinstance(user, LoadedModel):
    st.success(
        f"Loaded **{user.title}**: {user.num_classes} classes, {user.input_size[0]}×{user.input_size[1]} px, "
        f"on {user.device}. It is now the network in the sidebar; every page uses it."
    )
    st.caption(f"Classes: {', '.join(user.class_names[:20])}{' …' if user.num_classes > 20 else ''}")
    with flow.guard():
        render.predictions(f"On {sel.image.name}", classify(sel.image.data, user.model_id, user))
        render.look_at("own-model")
    if st.button("Forget my model"):
        del st.session_state[state.USER_MODEL_KEY]
        state.set_model_id(DEFAULT_MODEL_ID)
        st.rerun()
