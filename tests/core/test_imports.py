"""Import hygiene of the core: no Streamlit, no import cycles (each check in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_importing_the_core_does_not_import_streamlit() -> None:
    _run(
        "import sys, importlib, pkgutil, advexp_core\n"
        "names = [m.name for m in pkgutil.walk_packages(advexp_core.__path__, 'advexp_core.')]\n"
        "[importlib.import_module(n) for n in names if not n.endswith('__main__')]\n"
        "assert 'streamlit' not in sys.modules, 'streamlit imported'"
    )


def test_metrics_does_not_import_ara() -> None:
    _run(
        "import sys, advexp_core.measures.metrics\n"
        "assert 'advexp_core.methods.ara' not in sys.modules, 'metrics imports ara'\n"
        "assert 'advexp_core.methods.attacks' not in sys.modules, 'metrics imports attacks'"
    )


@pytest.mark.parametrize(
    "module",
    ["measures.metrics", "methods.attacks", "methods.ara", "methods.manipulation", "networks.registry"],
)
def test_each_algorithm_module_imports_first(module: str) -> None:
    """A cycle shows up as an ImportError when one of its modules is imported before the others."""
    _run(f"import advexp_core.{module}")
