"""Audit a shortcut: does the network decide by an artifact the user marks on their own images?"""

import streamlit as st

from advexp_core.data.imaging import ACCEPTED_EXTENSIONS, MAX_IMAGE_MB
from advexp_core.data.interventions import BORDERS
from advexp_core.experiments.audit import DEFAULT_METHODS, AuditConfig
from advexp_core.methods.saliency import METHODS
from advexp_ui import flow, loaders, render, setup
from advexp_ui.jobs import audit as job
from advexp_ui.views import audit as view

PAGE = "audit"
MAX_IMAGES = 24  # a page run stays within a few minutes on a laptop CPU
sel = setup.page("Audit a shortcut", "🩺")
st.title("Audit a shortcut")
st.markdown(view.INTRO)

source = st.radio(
    "Images",
    ["upload", "lesions"],
    format_func={"upload": "My own images", "lesions": "Lesion test images (rulers pre-marked)"}.get,
    horizontal=True,
    key="audit-source",
)
if source == "lesions":
    model_id = st.selectbox("Network", job.LESION_MODELS, key="audit-lesion-model")
    lesion_model = None
    with flow.guard():
        lesion_model = loaders.get_model(str(model_id))
    if lesion_model is None:
        st.stop()
    model = lesion_model
    items = job.lesion_items()
else:
    if sel.model is None:
        render.need_model()
        st.stop()
    model = sel.model
    st.caption(f"Network: **{model.title or model.model_id}** (choose another in the sidebar).")
    files = st.file_uploader(
        "Your images (one size for all)",
        type=list(ACCEPTED_EXTENSIONS),
        accept_multiple_files=True,
        key="audit-files",
        max_upload_size=MAX_IMAGE_MB,
    )
    mask_files = st.file_uploader(
        "Mask PNGs instead of drawing (optional; named like the images, non-zero = artifact)",
        type=["png"], accept_multiple_files=True, key="audit-mask-files", max_upload_size=MAX_IMAGE_MB,
    )  # fmt: skip
    if not files:
        st.info("Upload a few images, or choose the lesion test images above.")
        st.stop()
    if len(files) > MAX_IMAGES:
        st.error(
            f"{len(files)} images: at most {MAX_IMAGES} on this page (the CLI `advexp audit` takes more)."
        )
        st.stop()
    items = view.take_uploads(files, mask_files or [])
    if not items:
        st.info("None of these files can be audited (see why above): upload others.")
        st.stop()

st.header("Mark the artifact")
st.caption(
    "Drag a box over the artifact on each image that has one; leave an image unmarked when it has none."
)
marked = view.mark_all(items)

st.header("Settings")
with_mask = [i.name for i in marked if i.mask]
with st.expander("An artifact to paste onto the images without one (optional)"):
    paste = st.selectbox(
        "Artifact", [None, *with_mask, "upload"], key="audit-paste",
        format_func=lambda n: "none" if n is None else ("an uploaded image and mask" if n == "upload" else f"cut from {n}"),
    )  # fmt: skip
    art_image = st.file_uploader(
        "Artifact image", type=list(ACCEPTED_EXTENSIONS), key="audit-art-image", max_upload_size=MAX_IMAGE_MB
    )
    art_mask = st.file_uploader(
        "Its mask (PNG)", type=["png"], key="audit-art-mask", max_upload_size=MAX_IMAGE_MB
    )
    where = st.radio("Where", ["same", "border"], horizontal=True, key="audit-where",
                     format_func={"same": "at the same place", "border": "along a border"}.get)  # fmt: skip
    border = st.selectbox("Border", BORDERS, key="audit-border")
    artifact = view.take_artifact(art_image, art_mask) if paste == "upload" else None
if paste not in (None, "upload"):
    cut = next(i for i in marked if i.name == paste)
    artifact = (cut.data, cut.mask)
with st.form("audit-form"):
    c1, c2 = st.columns(2)
    methods = c1.multiselect("Explainers", METHODS, default=list(DEFAULT_METHODS))
    toward = c2.selectbox(
        "Adversarial explanation toward", [None, *range(model.num_classes)],
        format_func=lambda c: "the other class (runner-up)" if c is None else model.class_names[c],
    )  # fmt: skip
    adversarial = c2.checkbox("Adversarial explanation of each image", value=True)
    tolerance = c1.number_input(
        "Tolerance (% of decisions)", min_value=0.5, max_value=50.0, value=100 * AuditConfig.tolerance, step=0.5,
        help="Reliance below this share counts as none. The verdict says 'relies' only when the 95 % interval "
        "lies above it, 'does not rely' only when it lies below, and 'cannot tell' otherwise.",
    )  # fmt: skip
    st.caption(view.sample_size_note(sum(i.mask is not None for i in marked), tolerance / 100))
    submitted = st.form_submit_button("Run the audit", type="primary")

config = AuditConfig(
    methods=tuple(methods), where=str(where), border=str(border), toward=toward, adversarial=adversarial,
    tolerance=float(tolerance) / 100,
)  # fmt: skip
key = (marked, artifact, model.model_id, config)
if flow.requested(PAGE, submitted=submitted, key=key):
    where_box, slots = st.container(), view.AuditSlots(tuple(i.name for i in marked))
    flow.run(
        PAGE,
        f"Auditing {len(marked)} images",
        lambda on_step, emit: job.run(
            marked,
            artifact,
            None if paste in (None, "upload") else str(paste),
            model.model_id,
            config,
            model,
            on_step,
            emit,
        ),
        lambda outcome: view.show_audit(outcome, slots),
        show_partial=slots.show_part,
        where=where_box,
    )
else:
    st.info("Mark the artifacts and press **Run the audit**.")
