"""The work behind each page: a plain ``compute_*`` function (bytes -> image -> one experiment call
of `advexp_core.experiments` -> panels and files) and its ``st.cache_data`` wrapper keyed by
(image bytes, model id, config).

The model is passed as ``_model`` so Streamlit does not hash it (the id stands for it), and the
progress callback as ``_on_step`` (not part of the key). Results are plain picklable data:
PNG bytes and a JSON-able report, ready to render and download.

Sharing: a cached ``LoadedModel`` serves every session; each experiment holds its ``lock`` for
the whole run (see `advexp_core.experiments`), so the jobs take no lock themselves. Runs on
different models proceed in parallel, and the long ARA search works on a private copy of the
network so it never holds the lock.
"""
