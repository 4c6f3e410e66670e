"""Numbers computed from images and maps: perturbation size, map similarity, shares inside masks."""
