"""Attacks and explainers on a network: PGD/FGSM, the adversarial explanation, gradient maps, LIME, the ARA algorithm."""
