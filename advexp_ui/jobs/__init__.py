"""The work behind each page: a plain ``compute_*`` function (tested on its own, also from many
threads at once) and its ``st.cache_data`` wrapper keyed by (image bytes, model id, config).

The model is passed as ``_model`` so Streamlit does not hash it (the id stands for it), and the
progress callback as ``_on_step`` (not part of the key). Results are plain picklable data:
PNG bytes and a JSON-able report, ready to render and download.

Sharing: a cached ``LoadedModel`` serves every session. Its ``lock`` is held for a whole run:
hook-based explainers (Grad-CAM) register hooks on the shared module, and a forward pass of
another thread through a hooked layer could reach them; one run at a time per model also gives
first-come-first-served latency on a small CPU. Runs on different models proceed in parallel,
and the long ARA search works on a private copy of the network so it never holds the lock.
"""
