"""What to look at, one line under each result block, in the words of the class tour (docs/tour.md).

One place for every page's reading guide, so a reader who skipped the tour still reads each figure
the way it is meant, and tests can check that each caption appears under its result.
"""

from __future__ import annotations

CAPTIONS = {
    "home-predictions": (
        "The top-5 table: the network's five most probable classes and their probabilities. The network and image chosen in the sidebar stay on every page."
    ),
    "attack-decision": (
        "Left to right: clean image, attacked x+δ, δ amplified (grey = no change). The tables: top-5 classes of the clean image, of x+δ, and of x+δ read back from the 8-bit PNG."
    ),
    "attack-visibility": (
        "L∞ is the largest change of one colour value in 255 levels; RMS the typical one; PSNR and SSIM compare the two images (higher = closer, SSIM 1 = identical)."
    ),
    "attack-maps": (
        "Each pair shares one colour scale (brighter = more important). Rank correlation, SSIM and centre shift: how far the map moved; the |δ|² shares: how much of δ lies in a map's top 20 % (20 % = chance)."
    ),
    "manipulation": (
        "Top: the clean image, the manipulated one and δ amplified. Bottom: the map before, after, and the goal it was pushed toward. The table compares the maps by rank correlation, top-k overlap and SSIM."
    ),
    "explanations-grid": (
        'Read each x+δ as "the image pushed toward class t", and δ under it as what was added (grey = no change, one colour scale for all targets once every target is done).'
    ),
    "explanations-contrast": (
        "One row per network, the same image and targets, δ on one shared scale: compare what each network's δ draws."
    ),
    "explainers-maps": ("Each map explains the same decision; brighter = more important to that method."),
    "explainers-agreement": (
        "Each cell compares two methods' maps (1 = the same ranking of pixels, 0 = unrelated); the diagonal is each method with itself."
    ),
    "explainers-faithfulness": (
        "Deletion removes the pixels a map ranks first (a faithful map makes the probability fall fast: lower area is better); insertion adds them to a blurred image (rise fast: higher is better)."
    ),
    "own-model": (
        "Your network now serves every page, for your browser session only; its file was read without running any code it contains."
    ),
    "robustness-curves": (
        "Accuracy (vertical) against the size of the change each image tolerates (horizontal, RMS); ARA is the area under the curve: more area = more change survived."
    ),
    "robustness-live": (
        "ARA is the area under accuracy against tolerated change. A few images give a rough number; the paper uses 1000."
    ),
    "groundtruth-image": (
        "Green outlines what a dermatologist would look at (the lesion; on BlockDigits the digit's quadrant), magenta the ruler: a mark that says nothing about the lesion but came with most malignant training images."
    ),
    "groundtruth-reliance": (
        "The same image three ways, identical outside the ruler's strip: as drawn, ruler removed, ruler drawn on. The table: each network's decision on each; the lines: did it follow the ruler?"
    ),
    "groundtruth-maps": (
        "Heat inside the green outline is on the lesion, heat on the magenta ruler is on the shortcut. One row per network."
    ),
    "groundtruth-explanation": (
        "Read x+δ as \"what would make this image the other class\": δ is what was added; the share of δ's energy in the ruler, against the ruler's share of the image, says where it was painted."
    ),
    "groundtruth-scorecard": (
        "Evidence share: the share of a map's mass inside the lesion (chance = the lesion's area share); shortcut share: the share on the ruler; clean and attacked: before and after an invisible attack."
    ),
}
LEAD = "**What to look at:** "
