"""The Robustness page draws the shipped networks' curves A(ρ) from their stored ρ* files, and
refuses a file whose sha256 is not the manifest's with a clear message while the rest still works."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import advexp_core.networks.zoo as zoo
import advexp_ui.jobs.robustness as job
from advexp_ui.captions import CAPTIONS, LEAD
from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label

PAGE = "pages/3_Robustness.py"
CHECKPOINTS = ROOT / "checkpoints"


def _ids(stored_only: bool = True) -> list[str]:
    """The manifest's network ids (those with a stored rho file, or all)."""
    manifest = json.loads((CHECKPOINTS / "manifest.json").read_text())
    return [n["id"] for n in manifest["networks"] if n.get("rho_file") or not stored_only]


@pytest.fixture()
def checkpoints_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of checkpoints/ that the app reads instead (zoo.CHECKPOINTS_DIR, read at call time)."""
    if not _ids():
        pytest.skip("no shipped network has a stored rho file yet (research/ship_robustness.py)")
    folder = tmp_path / "checkpoints"
    shutil.copytree(CHECKPOINTS, folder)
    monkeypatch.setattr(zoo, "CHECKPOINTS_DIR", folder)
    return folder


@pytest.fixture()
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each call of the curves figure drew: the names of its curves and the one shaded."""
    calls: list[dict[str, Any]] = []
    real = job.robustness_curves_figure

    def spy(curves: Any, **kwargs: Any) -> Any:
        figure = real(curves, **kwargs)
        gids = [
            line.get_gid() for line in figure.axes[0].lines if (line.get_gid() or "").startswith("curve:")
        ]
        calls.append(
            {"curves": [g.removeprefix("curve:") for g in gids], "highlight": kwargs.get("highlight")}
        )
        return figure

    monkeypatch.setattr(job, "robustness_curves_figure", spy)
    job._curves_png.clear()  # the PNG is cached by the ρ* themselves: draw afresh for the spy
    return calls


def _open() -> AppTest:
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=TIMEOUT_S)
    at.session_state["advexp_model_id"] = "digits-robust"
    return at.run()


def test_page_draws_one_curve_per_shipped_network_from_the_stored_files(checkpoints_copy, drawn) -> None:
    at = _open()
    assert_clean(at)
    ids = _ids()
    assert drawn and drawn[-1]["curves"] == ids
    table = at.dataframe[0].value
    assert list(table["network"]) == _ids(stored_only=False)  # the table, first
    # Each area and ratio with its stored 95 % interval, "0.05590 [0.05325, 0.05845]".
    assert all("[" in str(cell) for cell in table["Attack ARA"])
    assert all("× [" in str(cell) for cell in table["Attack ARA ÷ standard"])
    assert len(at.main.image) == 1  # the curves, before any live run
    assert LEAD + CAPTIONS["robustness-curves"] in [c.value for c in at.caption]
    # Shading another network's area redraws with that one highlighted.
    by_label(at.selectbox, "Shade the area of").set_value(ids[0]).run()
    assert_clean(at)
    assert drawn[-1]["highlight"] == ids[0] and drawn[-1]["curves"] == ids


def test_a_rho_file_not_matching_the_manifest_is_refused_and_the_rest_still_works(
    checkpoints_copy, drawn
) -> None:
    ids = _ids()
    tampered = checkpoints_copy / f"{ids[0]}.rho.json"
    data = json.loads(tampered.read_text())
    data["rho_attack"][0] += 0.5  # a more robust-looking network than the one measured
    tampered.write_text(json.dumps(data))
    at = _open()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and ids[0] in errors[0] and "differs from the one in the manifest" in errors[0]
    assert drawn[-1]["curves"] == ids[1:]  # the other networks are still drawn
    assert list(at.dataframe[0].value["network"]) == _ids(stored_only=False) and len(at.main.image) == 1
    assert at.button(key="FormSubmitter:ara-form-Measure ARA")  # the live run is still offered


def test_a_network_not_measured_yet_is_named_not_refused(checkpoints_copy, drawn) -> None:
    path = checkpoints_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["networks"].append({**manifest["networks"][0], "id": "digits-later"})
    for key in ("rho_file", "rho_sha256"):
        manifest["networks"][-1].pop(key)
    path.write_text(json.dumps(manifest))
    at = _open()
    assert_clean(at)
    assert any("digits-later" in i.value for i in at.info)
    assert drawn[-1]["curves"] == _ids()
