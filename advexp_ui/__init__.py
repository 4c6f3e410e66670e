"""The browser demo's shared parts: the only non-page code that imports Streamlit.

* ``setup``     — page set-up, the environment the app expects, the shared sidebar.
* ``state``     — what persists across pages in ``st.session_state`` (model id, image).
* ``gallery``   — the bundled photos, the paper's CIFAR-10 images and a few digits.
* ``loaders``   — models cached by id (``st.cache_resource``), the session's own weights.
* ``progress``  — long work in ``st.status`` with a progress bar fed by the core's ``on_step``,
                  run in a worker thread so that the page stays responsive and can be cancelled.
* ``jobs``      — the cached results (``st.cache_data`` keyed by image bytes, model id and config).
* ``render``    — predictions, metrics with readings, heat maps, errors.
* ``downloads`` — PNG, figure, JSON report and a ZIP of all of them for every result.
"""
