"""Ground truth: where the right explanation is known, which explainer points at it."""

import streamlit as st

from advexp_core.experiments.scorecard_results import ScorecardConfig
from advexp_core.networks.registry import LoadedModel
from advexp_ui import flow, setup
from advexp_ui.jobs import groundtruth as job
from advexp_ui.views import groundtruth as view

PAGE, SCORE_PAGE = "groundtruth", "groundtruth-scorecard"
setup.page("Ground truth", "🎯")
st.title("Ground truth: does the map point at the evidence?")
st.markdown(view.INTRO)
dataset = st.radio(
    "Networks", list(job.PAIRS), format_func=job.PAIR_TITLES.get, horizontal=True, key="gt-pair"
)
loaded = view.load_pair(dataset)
if loaded is None:
    st.stop()
models: tuple[LoadedModel, ...] = loaded  # st.stop() ends the script: never None below
names = models[0].class_names
c1, c2 = st.columns([2, 1])
index = c1.selectbox(
    "Test image",
    range(job.CHOICES),
    format_func=lambda i: job.image_label(dataset, i),
    key=f"gt-image-{dataset}",
)
toward = c2.selectbox(
    "Adversarial explanation toward",
    [None, *range(len(names))],
    format_func=lambda c: (
        ("the other class" if len(names) == 2 else "the runner-up") if c is None else names[c]
    ),
    key=f"gt-toward-{dataset}",
)

st.header("The image and what it should be explained by")
view.show_truth(dataset, index)
config = ScorecardConfig(dataset=dataset)
if toward is not None and toward == int(job.test_split(dataset).labels[index]):
    toward = None  # toward its own class is the map row's explanation already
reliance = None
if dataset == "lesions":
    st.header("Does each network read the ruler on this image?")
    with flow.guard():
        reliance = job.image_reliance(index, models)
        view.show_reliance(reliance)
st.header(
    "Would each explanation have told you?" if reliance is not None else "Every explainer, on each network"
)
examples = flow.run(
    PAGE,
    "Explaining the image on each network",
    lambda on_step: job.pair_examples(dataset, index, config, models, toward, on_step),
    lambda result: view.show_maps(result, reliance),
)
if examples is not None:
    st.header("The adversarial explanation toward another class")
    view.show_explanations(examples)

st.header("The scorecard")
with st.form("scorecard-form"):
    n_images = st.number_input("Test images (the first N)", min_value=2, max_value=200, value=12)
    st.caption(
        "Every explainer on N images, clean and after an L∞ 2/255 attack, on both networks: about "
        "2 s per image and network on a laptop CPU. research/README.md has the table for N = 100."
    )
    submitted = st.form_submit_button("Compute the scorecard", type="primary")
score_config = ScorecardConfig(dataset=dataset, n_images=int(n_images))
if flow.requested(SCORE_PAGE, submitted=submitted, key=(dataset, score_config)):
    flow.run(
        SCORE_PAGE,
        f"Scoring every explainer on {score_config.n_images} images",
        lambda on_step: job.pair_scorecard(score_config, models, on_step),
        view.show_scorecard,
        part="scorecard",
    )
else:
    st.info("Press **Compute the scorecard** to score every explainer on both networks (results are cached).")
