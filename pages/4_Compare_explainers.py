"""Compare explainers: one image, several saliency methods side by side, their agreement and faithfulness."""

import streamlit as st

from advexp_core.experiments import ExplainersConfig, SaliencyConfig, SanityConfig, sanity_plan
from advexp_core.methods.saliency import METHOD_TITLES, METHODS
from advexp_ui import flow, render, setup
from advexp_ui.jobs import explainers as job
from advexp_ui.jobs import sanity as sanity_job
from advexp_ui.views import explainers as view

PAGE, SANITY_PAGE = "explainers", "explainers-sanity"
DEFAULT, SANITY = ExplainersConfig().saliency, SanityConfig()
sel = setup.page("Compare explainers", "🧪")
st.title("Compare explainers")
st.markdown(
    "Grad-CAM, Integrated Gradients, the plain gradient, SmoothGrad, LIME and occlusion all claim to show "
    "what mattered. Here they explain the same decision side by side: how much do they agree with each "
    "other, how faithful is each to what the network actually uses, and does each map change at all when "
    "the network's weights are destroyed?"
)
model = render.model_or_stop(sel.model)

with st.form("explainers-form"):
    c1, c2 = st.columns([2, 1])
    methods = c1.multiselect(
        "Methods", METHODS, default=list(DEFAULT.methods), format_func=render.titles(METHOD_TITLES)
    )
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
    st.caption(view.perturbation_cost_text(model))
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
    # Each method's map shows as soon as it is computed, its deletion/insertion areas as soon as
    # they are measured; the status box sits above the blocks, whose places are laid out beforehand.
    where, slots = st.container(), view.ExplainerSlots(saliency.methods)
    flow.run(
        PAGE,
        "Explaining with every method",
        lambda on_step, emit: job.explainers(sel.image.data, model.model_id, config, model, on_step, emit),
        lambda outcome: view.show_explainers(outcome, sel.image, slots),
        show_partial=slots.show_part,
        where=where,
    )
else:
    st.info("Choose the methods and press **Compare**.")

st.header("Can the maps be trusted? Sanity checks")
st.markdown(
    "A map that explains the network must change when the network is destroyed (Adebayo et al. 2018). "
    "A copy of the network is re-initialised layer by layer from the output down, and each map is compared "
    "with the trained network's after every step. For **digits-standard** its maps are also compared with "
    "those of the same network trained on shuffled labels (**digits-random-labels**)."
)
with st.form("sanity-form"):
    c1, c2, c3 = st.columns([2, 1, 1])
    sanity_methods = c1.multiselect(
        "Methods to check", METHODS, default=list(SANITY.methods), format_func=render.titles(METHOD_TITLES)
    )
    max_layers = c2.number_input(
        "Layers to measure at", min_value=1, max_value=64, value=SANITY.max_layers or 64,
        help="Every layer is randomised; the maps are measured after this many steps, spread evenly.",
    )  # fmt: skip
    sanity_seed = c3.number_input(
        "Seed (re-initialisation)", min_value=0, max_value=2**31 - 1, value=SANITY.seed
    )
    sanity_submitted = st.form_submit_button("Run the sanity check", type="primary")
with flow.guard():  # a config or a model that cannot run says so in place
    sanity_config = SanityConfig(
        methods=tuple(sanity_methods), seed=int(sanity_seed), max_layers=int(max_layers), target=target
    )
    st.caption(view.sanity_cost_text(sanity_plan(model, sanity_config), sanity_config))
    key = (sel.image.digest, model.model_id, sanity_config)
    if flow.requested(SANITY_PAGE, submitted=sanity_submitted, key=key):
        flow.run(
            SANITY_PAGE,
            "Randomising the network layer by layer",
            lambda on_step: sanity_job.sanity(sel.image.data, model.model_id, sanity_config, model, on_step),
            lambda outcome: view.show_sanity(outcome, sel.image),
            part="sanity",
        )
