"""advexp demo — the entry point (`streamlit run app.py`): the navigation, Home first, then one page
per script in pages/ (their titles and URLs come from the file names, as before), and the Home page:
what the demo shows, each claim with this project's own measured figure, the networks, and the
chosen network on the chosen image."""

from pathlib import Path

import streamlit as st

from advexp_core.experiments.headline import read_headlines
from advexp_ui import flow, loaders, render, setup
from advexp_ui.jobs.common import classify

PAGES_DIR = Path(__file__).resolve().parent / "pages"
# Where each claim's figure is shown: the page that lets a visitor measure it on their own image,
# then the page with the shipped table it comes from.
CLAIM_PAGES = {
    "fooled": ("pages/1_Saliency_under_attack.py", "pages/6_Ground_truth.py"),
    "robust-explains": ("pages/2_Adversarial_explanations.py", "pages/6_Ground_truth.py"),
    "measured": ("pages/3_Robustness.py",),
}
CLAIM_ICONS = {
    "supported": "✅",
    "mixed": "⚖️",
    "not-supported": "⚠️",
    "inconclusive": "❔",
    "measured-shortcut": "⚠️",
}


def home() -> None:
    """The Home page."""
    sel = setup.page("Adversarial explanations", "🔍")
    st.title("When explanations fail, and what to show instead")
    st.markdown(
        """
A network that reads an X-ray or a photo gives an answer. *Explanations* try to say why, usually as a
heat map of the pixels that mattered. This demo, built on Woods, Chen & Teuscher, *Adversarial
explanations for understanding image classification decisions and improved neural network
robustness* (Nature Machine Intelligence, 2019), puts three of the paper's claims to the test. Under
each, the figure this project measured on its own networks (read from its shipped tables), with its
95 % interval in brackets and the number of images it rests on, and where that measurement does not
support the claim:
"""
    )
    claims()
    st.markdown(
        """
Pick a network and an image in the sidebar (they stay chosen on every page), then open a page on
the left. *Compare explainers* puts several heat maps side by side; *Your own model* loads your
weights. Nothing leaves this computer.
"""
    )
    networks()
    if sel.model is not None:
        st.subheader("The chosen network on the chosen image")
        with flow.guard():
            preds = classify(sel.image.data, sel.model.model_id, sel.model)
            reading, seen = setup.view_of(sel.image, sel.model)
            c1, c2 = st.columns([1, 2])
            c1.image(seen, caption=f"{sel.image.name}, as the network reads it", width="stretch")
            c1.caption(reading.text)
            with c2:
                render.predictions(sel.model.title, preds)
            render.look_at("home-predictions")


def claims() -> None:
    """The three claims, each with its measured reading and links to the pages that show it."""
    for number, headline in enumerate(read_headlines(), start=1):
        icon = CLAIM_ICONS.get(headline.reading.outcome, "📏")
        st.markdown(f"{number}. **{headline.claim}** {icon} {headline.reading.text}")
        sources = ", ".join(f"`{s}`" for s in headline.sources)
        links = st.columns(len(CLAIM_PAGES[headline.key]) + 1)
        for column, page in zip(links, CLAIM_PAGES[headline.key], strict=False):
            column.page_link(page, icon="➡️")
        links[-1].caption(f"From {sources}.")


def networks() -> None:
    """The registry as a table."""
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
    render.table(rows, hide_index=True, width="stretch")
    st.caption(
        "'Your own weights' appear in the list once loaded on the *Your own model* page (kept in your browser session only)."
    )


loaders.warm_start()  # once per server, whichever page a visitor opens first
navigation = st.navigation(
    [
        st.Page(home, title="Home", icon="🔍", default=True),
        *(st.Page(f"pages/{path.name}") for path in sorted(PAGES_DIR.glob("*.py"))),
    ]
)
navigation.run()
