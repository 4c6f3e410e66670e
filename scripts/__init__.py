"""Product tooling: install, prime and screenshot the app, build the gallery, regenerate the docs'
generated blocks. Run from the repository root as ``python -m scripts.NAME``."""
