"""Saliency under attack (docs/method.md §4): a small change flips the decision, and the page measures
whether the classic explanations notice — or moves the map while the decision stays."""

import streamlit as st

from advexp_core.experiments import ATTACK_METHODS, MAP_METHODS
from advexp_core.methods.geometry import NORMS
from advexp_core.methods.saliency import METHODS
from advexp_ui import flow, gallery, loaders, render, setup
from advexp_ui.jobs import attack as job
from advexp_ui.views import attack as view

PAGE = "attack"
ATTACK, SALIENCY, MOVE = job.AttackConfig(), job.SaliencyConfig(), job.ManipulationConfig()  # the defaults
loaders.warm_start()  # once per server, whichever page a visitor opens first
sel = setup.page("Saliency under attack", "🎯")
st.title("Saliency under attack")
st.markdown(
    "A heat map such as **Grad-CAM** or **Integrated Gradients** claims to show *where* the network "
    "looked. Here an imperceptible perturbation changes the network's decision, and we check whether "
    "the heat map notices. In the second mode the map is moved while the decision stays the same."
)
model = render.model_or_stop(sel.model)
mode = st.radio(
    "Mode", ["Flip the decision", "Keep the label, move the map"], horizontal=True, key="attack_mode"
)

if mode == "Flip the decision":
    with st.form("attack-form"):
        c1, c2, c3 = st.columns(3)
        method = c1.selectbox(
            "Attack",
            ATTACK_METHODS,
            format_func=render.titles({"pgd": "PGD (iterative)", "fgsm": "FGSM (one step)"}),
        )
        norm = c2.selectbox(
            "Norm",
            NORMS,
            format_func=render.titles(
                {"linf": "L∞ (max change per value)", "l2": "L2", "rms": "RMS (as in the paper)"}
            ),
        )
        eps_255 = c3.number_input(
            "Budget ε in 1/255 steps",
            min_value=0.0,
            max_value=64.0,
            value=ATTACK.eps_255,
            step=0.5,
            help="L∞ and RMS: ε/255 in [0,1] pixel units; L2: the L2 size of an L∞ pattern of that size.",
        )
        steps = c1.number_input("Steps (PGD)", min_value=1, max_value=500, value=ATTACK.steps)
        target = c2.selectbox(
            "Goal",
            [None, *range(model.num_classes)],
            format_func=lambda i: (
                "untargeted: any other class" if i is None else f"reach {i}: {model.class_names[i]}"
            ),
        )
        seed = c3.number_input("Seed (random start)", min_value=0, max_value=2**31 - 1, value=ATTACK.seed)
        random_start = c1.checkbox("Random start (PGD)")
        methods = c2.multiselect(
            "Heat maps",
            METHODS,
            default=list(SALIENCY.methods),
            help="LIME and occlusion are forward-only and cost one forward pass per sample or window "
            "position, for the clean and the attacked image each.",
        )
        ig_steps = c3.number_input(
            "Integrated Gradients steps", min_value=4, max_value=256, value=SALIENCY.ig_steps
        )
        submitted = st.form_submit_button("Run the attack", type="primary")
    config = job.AttackConfig(
        method=str(method),
        norm=str(norm),
        eps_255=float(eps_255),
        steps=int(steps),
        target=target,
        random_start=random_start,
        seed=int(seed),
    )
    # One seed on the page: the random start and the SmoothGrad noise.
    saliency = job.SaliencyConfig(methods=tuple(methods), ig_steps=int(ig_steps), seed=int(seed))
    st.caption(view.budget_text(config, model))
    key = (sel.image.digest, model.model_id, config, saliency)
    if flow.requested(PAGE, submitted=submitted, key=key):
        # The decision shows as soon as the attack is done, each map as soon as it is computed;
        # the status box sits above the blocks, whose places are laid out beforehand.
        where, slots = st.container(), view.AttackSlots(saliency.methods)
        flow.run(
            PAGE,
            "Attacking and explaining",
            lambda on_step, emit: job.attack(
                sel.image.data, model.model_id, config, saliency, model, on_step, emit
            ),
            lambda outcome: view.show_attack(outcome, sel.image, slots),
            show_partial=slots.show_part,
            where=where,
        )
    else:
        st.info("Choose the settings and press **Run the attack**.")
else:
    entries = gallery.entries()
    with st.form("manipulation-form"):
        c1, c2, c3 = st.columns(3)
        method = c1.selectbox(
            "Map to move",
            MAP_METHODS,
            format_func=render.titles({"gradient": "Gradient", "gradcam": "Grad-CAM"}),
        )
        goal = c2.selectbox(
            "Move it to",
            [*job.REGIONS, *(f"image:{k}" for k in entries)],
            format_func=lambda g: f"the map of {g[6:]}" if g.startswith("image:") else f"the {g} region",
        )
        eps_255 = c3.number_input(
            "Budget ε (L∞) in 1/255 steps", min_value=0.5, max_value=32.0, value=MOVE.eps_255, step=0.5
        )
        steps = c1.number_input("Steps", min_value=1, max_value=1000, value=MOVE.steps)
        beta = c2.number_input(
            "Softplus β",
            min_value=0.5,
            max_value=100.0,
            value=MOVE.beta,
            help="Smoothness of the ReLU stand-in while optimising.",
        )
        gamma = c3.number_input(
            "Weight of keeping the logits γ", min_value=0.0, max_value=100.0, value=MOVE.gamma
        )
        submitted = st.form_submit_button("Move the map", type="primary")
    move = job.ManipulationConfig(
        method="gradcam" if method == "gradcam" else "gradient",
        goal=goal,
        eps_255=float(eps_255),
        steps=int(steps),
        beta=float(beta),
        gamma=float(gamma),
    )
    goal_bytes = gallery.entry_bytes(goal[6:]) if goal.startswith("image:") else None
    move_key = (sel.image.digest, model.model_id, move)
    if flow.requested("manipulation", submitted=submitted, key=move_key):
        flow.run(
            "manipulation",
            "Moving the map",
            lambda on_step: job.manipulate(sel.image.data, model.model_id, move, goal_bytes, model, on_step),
            lambda outcome: view.show_manipulation(outcome, sel.image),
        )
    else:
        st.info("Choose where the map should go and press **Move the map**.")
