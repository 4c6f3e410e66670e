"""advexp demo — entry page: what the demo shows, and the model and image every page uses."""

import streamlit as st

from advexp_ui import flow, loaders, render, setup
from advexp_ui.jobs.common import classify

loaders.warm_start()  # once per server: the default network and its top-5 of the default image
sel = setup.page("Adversarial explanations", "🔍")
st.title("When explanations fail, and what to show instead")
st.markdown(
    """
A network that reads an X-ray or a photo gives an answer. *Explanations* try to say why, usually as a
heat map of the pixels that mattered. This demo, built on Woods, Chen & Teuscher, *Adversarial
explanations for understanding image classification decisions and improved neural network
robustness* (Nature Machine Intelligence, 2019), shows three things in plain pictures:

1. **Heat maps can be fooled.** A change too small to see flips the decision, and Grad-CAM or
   Integrated Gradients hardly notice — or the map is moved while the decision stays
   (*Saliency under attack*).
2. **A robust network explains itself better.** Ask it: "what is the smallest change that makes
   this image look like class *t*?" On a robust network the answer looks like *t*; on a standard
   one it looks like noise (*Adversarial explanations*).
3. **Robustness can be measured.** The accuracy–robustness area (ARA) sums how much change a
   network's accuracy survives (*Robustness*).

Pick a network and an image in the sidebar (they stay chosen on every page), then open a page on
the left. *Compare explainers* puts several heat maps side by side; *Your own model* loads your
weights. Nothing leaves this computer.
"""
)

st.subheader("The networks")
rows = [
    {
        "network": info.title,
        "group": info.group,
        "robust": "yes" if info.robust else "no",
        "ready offline": "yes" if info.available_offline else "no (downloads when online)",
        "weights come from": info.source,
    }
    for info in loaders.model_infos()
]
st.dataframe(rows, hide_index=True, width="stretch")
st.caption(
    "'Your own weights' appear in the list once loaded on the *Your own model* page (kept in your browser session only)."
)

if sel.model is not None:
    st.subheader("The chosen network on the chosen image")
    with flow.guard():
        preds = classify(sel.image.data, sel.model.model_id, sel.model)
        c1, c2 = st.columns([1, 2])
        c1.image(setup.thumbnail(sel.image.data), caption=sel.image.name, width="stretch")
        with c2:
            render.predictions(sel.model.title, preds)
        render.look_at("home-predictions")
