"""What to look at, one line under each result block, in the words of the class tour (docs/tour.md).

One place for every page's reading guide, so a reader who skipped the tour still reads each figure
the way it is meant, and tests can check that each caption appears under its result.
"""

from __future__ import annotations

CAPTIONS = {
    "home-predictions": (
        "The top-5 table: how confident the network is. The network and image chosen in the sidebar "
        "stay on every page."
    ),
    "attack-decision": (
        "The decision flips while *clean* and *attacked* look identical, and δ (amplified) is noise. "
        "The last table: does the downloaded PNG still fool the network?"
    ),
    "attack-visibility": (
        "A change of a few /255 with SSIM near 1 is invisible to the eye: nothing a person would notice "
        "explains the new decision."
    ),
    "attack-maps": (
        "The maps barely move (high rank correlation), and most of δ lies *outside* the region the map "
        "calls important: the heat map did not notice what changed the decision."
    ),
    "manipulation": (
        "The decision stays, but the map now points at the goal (an empty corner, say): a heat map can "
        "be made to say anything."
    ),
    "explanations-grid": (
        'Read each x+δ as "the image pushed towards class t": on a robust network δ draws the target; '
        "on a standard one δ is noise, and some explanations are marked failed."
    ),
    "explanations-contrast": (
        "On the robust network δ draws the target (ship hulls, horses' heads); on the standard one δ is "
        "noise and some explanations are marked failed. That contrast is the paper's point."
    ),
    "explainers-maps": "Popular explainers on the same decision: do they point at the same pixels?",
    "explainers-agreement": (
        "The explainers disagree with each other on the same decision (low values off the diagonal). "
        "Which one would you trust for a diagnosis?"
    ),
    "explainers-faithfulness": (
        "A map faithful to the network makes the deletion curve fall fast and the insertion curve rise "
        "fast; agreeing with the eye is not the same as being faithful."
    ),
    "own-model": (
        "Your network now serves every page, for your browser session only; its file was read without "
        "running any code it contains."
    ),
    "robustness-curves": (
        "ARA sums how much change accuracy survives: the paper's robust networks score about 10–30× "
        "the standard one."
    ),
    "robustness-live": (
        "ARA sums how much change accuracy survives. A few images give a rough number; the paper uses 1000."
    ),
    "groundtruth-image": (
        "Green outlines what a dermatologist would look at (the lesion; on BlockDigits the digit's quadrant), "
        "magenta the ruler: a shortcut that says nothing about the lesion but came with most malignant "
        "training images."
    ),
    "groundtruth-maps": (
        "A map that shows the real evidence keeps its heat inside the green outline; heat on the magenta "
        "ruler means the network (or the explainer) looks at the shortcut. Compare the two rows."
    ),
    "groundtruth-explanation": (
        'Read x+δ as "what would make this image malignant (or the other class)": does δ redraw the lesion, '
        "or paint over the ruler? The share of δ's energy in the ruler answers it in one number."
    ),
    "groundtruth-scorecard": (
        "Evidence share above its chance level means the maps find the lesion; compare standard with robust, "
        "and clean with attacked: a map that did not move after an invisible attack did not notice it."
    ),
}
LEAD = "**What to look at:** "
