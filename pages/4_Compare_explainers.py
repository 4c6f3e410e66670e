"""Compare explainers: one image, several saliency methods side by side, their agreement and faithfulness."""

import streamlit as st

from advexp_core.experiments import ExplainersConfig, SaliencyConfig
from advexp_core.saliency import METHODS
from advexp_ui import flow, render, setup
from advexp_ui.jobs import explainers as job
from advexp_ui.views import explainers as view

PAGE = "explainers"
DEFAULT = ExplainersConfig().saliency
sel = setup.page("Compare explainers", "🧪")
st.title("Compare explainers")
st.markdown(
    "Grad-CAM, Integrated Gradients, the plain gradient and SmoothGrad all claim to show what mattered. "
    "Here they explain the same decision side by side: how much do they agree with each other, and how "
    "faithful is each to what the network actually uses?"
)
if sel.model is None:
    render.need_model()
    st.stop()
model = sel.model

with st.form("explainers-form"):
    c1, c2 = st.columns([2, 1])
    methods = c1.multiselect("Methods", METHODS, default=list(DEFAULT.methods))
    target = c2.selectbox(
        "Class to explain",
        [None, *range(model.num_classes)],
        format_func=lambda i: "the predicted class" if i is None else f"{i}: {model.class_names[i]}",
    )
    c1, c2, c3, c4 = st.columns(4)
    ig_steps = c1.number_input("IG steps", min_value=4, max_value=256, value=DEFAULT.ig_steps)
    samples = c2.number_input(
        "SmoothGrad samples", min_value=1, max_value=128, value=DEFAULT.smoothgrad_samples
    )
    sigma = c3.number_input(
        "SmoothGrad noise σ ([0,1] units)",
        min_value=0.0,
        max_value=1.0,
        value=DEFAULT.smoothgrad_sigma,
        step=0.05,
    )
    seed = c4.number_input("Seed (SmoothGrad noise)", min_value=0, max_value=2**31 - 1, value=DEFAULT.seed)
    submitted = st.form_submit_button("Compare", type="primary")

saliency = SaliencyConfig(
    methods=tuple(methods),
    ig_steps=int(ig_steps),
    smoothgrad_samples=int(samples),
    smoothgrad_sigma=float(sigma),
    seed=int(seed),
)
config = ExplainersConfig(saliency=saliency, target=target)
if flow.requested(PAGE, submitted=submitted, key=(sel.image.digest, model.model_id, config)):
    flow.run(
        PAGE,
        "Explaining with every method",
        lambda on_step: job.explainers(sel.image.data, model.model_id, config, model, on_step),
        lambda outcome: view.show_explainers(outcome, sel.image),
    )
else:
    st.info("Choose the methods and press **Compare**.")
