"""The lab: the runs that make this project's shipped networks, measurements and findings.

Each module is run from the repository root as ``python -m research.NAME`` (its docstring says how);
what it writes lands in ``checkpoints/`` and is rendered into research/README.md by
``scripts/update_readme.py``. Nothing here is installed with the package or imported by the app.
"""
