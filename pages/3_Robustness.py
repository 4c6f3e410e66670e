"""Robustness (docs/method.md §3): accuracy-vs-ρ curves and both ARAs for the shipped networks, and a live run."""

import streamlit as st

from advexp_ui import flow, render, setup
from advexp_ui.jobs import robustness as job
from advexp_ui.views import robustness as view

PAGE = "robustness"
sel = setup.page("Robustness", "🛡️")
st.title("Robustness: the accuracy–robustness area")
st.markdown(view.EXPLAINER)
st.header("The shipped networks")
with flow.guard():
    view.show_shipped()

st.header("Measure it live")
model = render.model_or_stop(sel.model)
small = model.input_size[0] <= 64
if not small:
    st.info(
        f"{model.title} takes {model.input_size[0]}-px images: a live ARA run on a laptop CPU takes "
        "several minutes even for 3 images. The paper's CIFAR-10 networks or this project's digits "
        "networks (sidebar) take seconds."
    )
with st.form("ara-form"):
    c1, c2 = st.columns([2, 1])
    names = list(job.DATASETS)
    dataset = c1.selectbox(
        "Images",
        names,
        index=names.index(job.default_dataset(model)),
        format_func=render.titles(job.DATASETS),
    )
    n_images = c2.number_input("How many images", min_value=1, max_value=1000, value=20 if small else 3)
    sample = c1.radio(
        "Which images",
        ["reference", "first"],
        format_func={"reference": "the authors' random subset (seed 1776)", "first": "the first N"}.get,
        horizontal=True,
    )
    c1, c2, c3 = st.columns(3)
    steps = c1.number_input(
        "Search steps S",
        min_value=10,
        max_value=2000,
        value=job.LiveAraConfig.steps if small else 100,
        help=f"The paper uses {job.LiveAraConfig.steps}. Fewer steps are faster but coarser (ρ* is "
        "over-estimated); too few and some images never cross, or cross only after half the steps, "
        "which you will be told.",
    )
    size = c2.number_input("Search size", min_value=0.1, max_value=100.0, value=job.LiveAraConfig.size)
    momentum = c3.number_input("Momentum", min_value=0.0, max_value=0.99, value=job.LiveAraConfig.momentum)
    submitted = st.form_submit_button("Measure ARA", type="primary")
st.caption(
    "The search costs S forward and backward passes per image and boundary: seconds for the 32-px "
    "networks, minutes for a 224-px network on a laptop CPU. Start with a few images."
)

config = job.LiveAraConfig(
    dataset=str(dataset),
    n_images=int(n_images),
    steps=int(steps),
    size=float(size),
    momentum=float(momentum),
    sample="reference" if sample == "reference" else "first",
)
if flow.requested(PAGE, submitted=submitted, key=(model.model_id, config)):
    flow.run(
        PAGE,
        f"Searching the smallest flips for {config.n_images} images",
        lambda on_step: job.ara(model.model_id, config, model, on_step),
        lambda outcome: view.show_live(outcome, sel.image),
    )
else:
    st.info(
        f"Press **Measure ARA** to score {model.title} on a few images (a progress bar shows the search)."
    )
