"""Adversarial explanations (docs/method.md §2): the smallest change that makes the image look like class t,
on the chosen network, and the same image on a standard and a robust network side by side."""

import streamlit as st

from advexp_core.experiments import ExplanationConfig
from advexp_core.networks.zoo import offline
from advexp_ui import flow, loaders, render, setup
from advexp_ui.jobs import explanations as job
from advexp_ui.views import explanations as view

PAGE = "explain"
DEFAULT = ExplanationConfig()
loaders.warm_start()  # once per server, whichever page a visitor opens first
sel = setup.page("Adversarial explanations", "🧭")
st.title("Adversarial explanations")
st.markdown(
    "Instead of a heat map, ask the network a question it must answer honestly: *within a small budget ρ, "
    "what would this image look like if it were as much of class t as possible?* The answer x+δ is an "
    "**adversarial explanation** (Woods et al. 2019). The paper's claim is about the network: on a robust "
    "one x+δ should look like *t*, on a standard one δ should not; the readings under each result say "
    "what this run shows."
)
model = render.model_or_stop(sel.model)
every = {i.model_id: i for i in loaders.model_infos()}
ready = {k for k, i in every.items() if i.available_offline}
choice = job.pair_choice(sel.image, model.model_id, ready, can_download=not offline())
pair = choice.pair or (model.model_id, model.model_id)
infos = {k: i for k, i in every.items() if k in ready or k in pair}  # a pair may download once
view.show_pair_choice(choice)

with st.form("explain-form"):
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect(
        "Targets",
        ["predicted", "runner-up", *range(model.num_classes)],
        default=list(DEFAULT.targets),
        format_func=lambda t: t if isinstance(t, str) else f"{t}: {model.class_names[t]}",
    )
    top_k = c2.number_input(
        "…or the top-K classes",
        min_value=0,
        max_value=min(model.num_classes, job.MAX_TARGETS),
        value=0,
        help="0 = use the targets on the left.",
    )
    c1, c2, c3 = st.columns(3)
    rho = c1.number_input(
        "Budget ρ (RMS, [0,1] units)",
        min_value=0.005,
        max_value=1.0,
        value=DEFAULT.rho,
        step=0.005,
        format="%.3f",
    )
    steps = c2.number_input("Steps S", min_value=2, max_value=500, value=DEFAULT.steps)
    overshoot = c3.number_input(
        "Overshoot (total step length / ρ)", min_value=0.5, max_value=50.0, value=DEFAULT.overshoot
    )
    compare = st.checkbox(
        "Also: the same image on a standard and a robust network, side by side",
        value=choice.pair is not None,
        disabled=choice.pair is None,
    )
    standard, robust = pair
    if choice.pair is not None:
        c1, c2 = st.columns(2)
        ids = list(infos)
        standard = c1.selectbox(
            "Standard network", ids, index=ids.index(pair[0]), format_func=lambda i: infos[i].title
        )
        robust = c2.selectbox(
            "Robust network", ids, index=ids.index(pair[1]), format_func=lambda i: infos[i].title
        )
    submitted = st.form_submit_button("Explain", type="primary")

targets = (f"top-{int(top_k)}",) if top_k else tuple(chosen)
room = int(top_k) or len(chosen)  # at least as many as the targets resolve to (duplicates are dropped)
config = ExplanationConfig(
    targets=targets, rho=float(rho), steps=int(steps), overshoot=float(overshoot), max_targets=job.MAX_TARGETS
)
key = (sel.image.digest, model.model_id, config, compare and (standard, robust))
if not targets:
    st.warning("Choose at least one target.")
elif flow.requested(PAGE, submitted=submitted, key=key):
    # Each target shows as soon as it and those before it are done (on a CPU they run side by side,
    # each alone); the status box sits above the blocks, whose places are laid out beforehand.
    where, slots = st.container(), view.ExplainSlots(room)
    outcome = flow.run(
        PAGE,
        f"Explaining on {model.title}",
        lambda on_step, emit: job.explanations(sel.image.data, model.model_id, config, model, on_step, emit),
        lambda outcome: view.show_explanations(outcome, sel.image, slots),
        show_partial=slots.show_part,
        where=where,
    )
    if outcome is not None and compare and choice.pair is not None:
        st.header("Standard vs robust")
        with flow.guard():
            models = [loaders.get_model(standard), loaders.get_model(robust)]
            where, pairs = st.container(), view.ExplainSlots(room, networks=len(models), contrast=True)
            flow.run(
                PAGE,
                "Explaining on both networks",
                lambda on_step, emit: job.contrast_run(
                    sel.image.data, (standard, robust), config, models, on_step, emit
                ),
                lambda both: view.show_contrast(both, sel.image, pairs),
                part="contrast",
                show_partial=pairs.show_part,
                where=where,
            )
else:
    st.info("Choose the targets and press **Explain**.")
