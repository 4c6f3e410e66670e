"""Images and datasets: decoding uploads, the synthetic ground-truth sets, interventions on images."""
