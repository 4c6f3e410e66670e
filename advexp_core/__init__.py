"""advexp core: adversarial explanations (Woods, Chen & Teuscher 2019) in pure PyTorch.

The core never imports Streamlit and never prints; the UI lives in ``advexp_ui`` and ``pages/``.
"""

__version__ = "0.1.0"
