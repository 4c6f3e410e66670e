"""bench/profile_app.py's reading of py-spy's raw output: each stack goes to the first category any
of its frames matches, and its samples become seconds at the sampling rate."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def profile_app():
    spec = importlib.util.spec_from_file_location("profile_app", ROOT / "bench" / "profile_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["profile_app"] = module
    spec.loader.exec_module(module)
    return module


RAW = """\
thread (101): advexp-pass_0;Thread.run (threading.py:982);one_pass (advexp_core/methods/gradient_maps.py:256);_ig_in_passes.<locals>.one_pass (advexp_core/methods/gradient_maps.py:256);forward (advexp_core/networks/registry.py:40);conv2d (torch/nn/functional.py:10) 150
thread (102): advexp-pass_1;Thread.run (threading.py:982);deletion_insertion (advexp_core/evaluation/faithfulness.py:90);forward (advexp_core/networks/registry.py:40) 50
thread (103): advexp-cancel-attack-main;run (advexp_ui/progress.py:150);pgd (advexp_core/methods/attacks.py:200);forward (advexp_core/networks/registry.py:40) 40
thread (103): advexp-cancel-attack-main;run (advexp_ui/progress.py:150);step_schedule (advexp_core/methods/attacks.py:90);_explain (advexp_core/methods/explanations.py:270) 20
thread (104): ScriptRunner.scriptThread;<module> (pages/1_attack.py:3);_find_and_load (<frozen importlib._bootstrap>:1176);<module> (advexp_core/data/imaging.py:22) 30
thread (104): ScriptRunner.scriptThread;show (advexp_ui/render.py:10);encode_png (advexp_core/data/imaging.py:153);Image.save (PIL/Image.py:2712) 10
thread (105): MainThread;run_forever (asyncio/base_events.py:607);handle (streamlit/runtime/app_session.py:300) 8
thread (106): Thread-7;select (selectors.py:468) 2

"""


def test_categories_and_seconds(profile_app, tmp_path: Path) -> None:
    raw = tmp_path / "attack.txt"
    raw.write_text(RAW)
    by_category, by_thread = profile_app.read_raw(raw, rate=100)
    assert dict(by_category) == {
        "Integrated Gradients": 1.5,  # above a forward pass in models.py: the method's
        "deletion/insertion curves": 0.5,
        "PGD attack": 0.4,
        "adversarial explanation": 0.2,  # the explanation's steps, though they run in attacks.py
        "imports": 0.3,  # an import of our module counts as an import
        "PNG encode": 0.1,
        "Streamlit messages and reruns": 0.08,
        "other": 0.02,
    }
    assert by_thread == {
        "passes side by side": 2.0,
        "the run's job": 0.6,
        "page script": 0.4,
        "event loop": 0.08,
        "other threads": 0.02,
    }
