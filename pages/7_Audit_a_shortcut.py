"""Audit a shortcut: does the network decide by an artifact the user marks on their own images?

The audit runs on the server as a background job: the page may be closed or reloaded, and its link
(``?job=ID``) finds the job again, with its progress, partial results, Cancel and the final report.
"""

import streamlit as st

from advexp_core.data.imaging import ACCEPTED_EXTENSIONS, MAX_IMAGE_MB
from advexp_core.data.interventions import BORDERS
from advexp_core.experiments.audit_records import DEFAULT_METHODS, AuditConfig
from advexp_core.methods.saliency import METHODS
from advexp_ui import background, flow, loaders, render, setup
from advexp_ui.jobs import audit as job
from advexp_ui.views import audit as view

MAX_DRAWN = 24  # images marked by hand on this page (a ZIP takes up to job.MAX_IMAGES)
JOB_KEY = "advexp_audit_job"
sel = setup.page("Audit a shortcut", "🩺")
st.title("Audit a shortcut")
st.markdown(view.INTRO)

jobs, owner = background.registry(), background.session_owner()
job_id = st.query_params.get("job") or st.session_state.get(JOB_KEY)
running = jobs.get(job_id)
if job_id and running is None:
    st.warning(
        "That audit is no longer on the server (a finished audit is kept for "
        f"{background.KEEP_S // 3600} hours, and none survives a restart of the app). Start a new one below."
    )
    st.session_state.pop(JOB_KEY, None)
    st.query_params.pop("job", None)
if running is not None:
    jobs.adopt(running, owner)
    st.session_state[JOB_KEY] = running.id
    st.query_params["job"] = running.id
    if not running.running and st.button("Start a new audit", type="primary"):
        st.session_state.pop(JOB_KEY, None)
        st.query_params.pop("job", None)
        st.rerun()
    view.show_job(running)
    st.stop()

source = st.radio(
    "Images",
    ["upload", "archive", "lesions"],
    format_func={
        "upload": f"My own images (up to {MAX_DRAWN}, marked here)",
        "archive": f"A ZIP of images with masks or boxes (up to {job.MAX_IMAGES})",
        "lesions": "Lesion test images (rulers pre-marked)",
    }.get,
    horizontal=True,
    key="audit-source",
)
marked: tuple[job.Item, ...] = ()
archive = None
if source == "lesions":
    model_id = st.selectbox("Network", job.LESION_MODELS, key="audit-lesion-model")
    lesion_model = None
    with flow.guard():
        lesion_model = loaders.get_model(str(model_id))
    if lesion_model is None:
        st.stop()
    model = lesion_model
    n_lesions = st.select_slider(
        "How many lesion test images", job.LESION_IMAGES, value=job.LESION_DEFAULT, key="audit-lesion-n",
        help="About half carry a ruler. More images narrow the intervals; the note under Settings says what "
        "this many can settle.",
    )  # fmt: skip
    items = job.lesion_items(int(n_lesions))
else:
    if sel.model is None:
        render.need_model()
        st.stop()
    model = sel.model
    st.caption(f"Network: **{model.title or model.model_id}** (choose another in the sidebar).")
    if source == "archive":
        upload = st.file_uploader(
            "A ZIP of your images", type=["zip"], key="audit-archive", max_upload_size=view.MAX_ARCHIVE_MB,
            help=view.ARCHIVE_HELP,
        )  # fmt: skip
        st.caption(view.ARCHIVE_HELP)
        if upload is None:
            st.info("Upload a ZIP of images, or choose another source above.")
            st.stop()
        archive = view.take_archive(upload)
        if archive is None:
            st.stop()
        items = ()
    else:
        files = st.file_uploader(
            "Your images (any sizes)",
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
            st.info("Upload a few images, or a ZIP of many, or choose the lesion test images above.")
            st.stop()
        if len(files) > MAX_DRAWN:
            st.error(
                f"{len(files)} images: at most {MAX_DRAWN} to mark on this page; put more (up to "
                f"{job.MAX_IMAGES}) in a ZIP with their masks or boxes (the CLI `advexp audit` takes more)."
            )
            st.stop()
        items = view.take_uploads(files, mask_files or [])
        if not items:
            st.info("None of these files can be audited (see why above): upload others.")
            st.stop()

if source == "lesions" and len(items) > MAX_DRAWN:
    marked = items  # the generator's exact ruler masks: nothing to draw by hand
    st.caption(
        f"{len(items)} lesion test images, {sum(bool(i.mask) for i in items)} with a ruler marked by the "
        f"generator's exact mask (at most {MAX_DRAWN} are shown for marking by hand)."
    )
elif archive is None:
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
n_marked = sum(bool(i.mask) for i in marked) if archive is None else archive.n_masks + archive.n_boxed
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
    st.caption(view.sample_size_note(n_marked, tolerance / 100))
    submitted = st.form_submit_button("Run the audit", type="primary")

if submitted:
    config = AuditConfig(
        methods=tuple(methods), where=str(where), border=str(border), toward=toward, adversarial=adversarial,
        tolerance=float(tolerance) / 100,
    )  # fmt: skip
    started = None
    with flow.guard():
        request = job.AuditRequest(
            tuple(i.audit_item() for i in marked) if archive is None else archive.items,
            config,
            job.artifact_of(artifact, model),
            None if paste in (None, "upload") else str(paste),
            () if archive is None else archive.left_out,
        )
        started = job.start(request, model, owner)
    if started is not None:
        st.session_state[JOB_KEY] = started.id
        st.query_params["job"] = started.id
        st.rerun()
else:
    st.info("Mark the artifacts and press **Run the audit**.")
