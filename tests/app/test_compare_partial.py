"""Results as they come on the Compare-explainers page: each method's map is drawn as soon as it is
computed, then with its deletion/insertion areas; the early blocks are the final result's own
values and pictures, and nothing is recomputed when the rest arrives or on a rerun."""

from __future__ import annotations

from typing import Any

import torch

import advexp_ui.jobs.explainers as explainers_job
from advexp_core import experiments as ex
from advexp_core.experiments.explainers import MethodCurves, MethodMap
from advexp_ui import gallery, loaders
from advexp_ui.jobs.common import Later, file_bytes
from advexp_ui.views import explainers as explainers_view
from tests.app.conftest import CIFAR_STANDARD, assert_clean, by_label, downloads, submit
from tests.app.test_attack_page import counting
from tests.core.test_experiments import SIZE, tiny_model

PAGE = "pages/4_Compare_explainers.py"
METHODS = ("gradient", "gradcam", "smoothgrad")


def test_the_core_hands_out_each_map_then_each_curve_in_order() -> None:
    model, image = tiny_model(), torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    saliency = ex.SaliencyConfig(methods=METHODS, smoothgrad_samples=2)
    config = ex.ExplainersConfig(saliency=saliency, faithfulness_steps=4)
    seen: list[tuple[str, Any]] = []
    result = ex.compare_explainers(
        model, image, config, on_partial=lambda part: seen.append((part.method, part))
    )
    maps = [(n, v) for n, v in seen if isinstance(v, MethodMap)]
    curves = [(n, v) for n, v in seen if isinstance(v, MethodCurves)]
    assert len(maps) + len(curves) == len(seen)
    assert [n for n, _ in seen] == [*METHODS, *METHODS]  # every map, then every method's curves
    for name, part in maps:
        assert part.method == name and part.target == result.target
        assert torch.equal(part.map, result.maps[name])
        assert part.details == result.details[name]
    for name, part in curves:
        assert part.method == name and part.curves == result.curves[name]
    alone = ex.compare_explainers(tiny_model(), image, config)
    assert alone.to_json() == result.to_json() and alone.target == result.target
    assert all(torch.equal(alone.maps[m], result.maps[m]) for m in METHODS)


def test_the_parts_are_the_final_result(woods_dir) -> None:
    """The blocks drawn early hold the same numbers and pictures as the whole result."""
    image = gallery.entry_bytes("cifar10_test_0")
    model = loaders.cached_model(CIFAR_STANDARD)
    config = ex.ExplainersConfig(saliency=ex.SaliencyConfig(methods=METHODS, smoothgrad_samples=2))
    got: list[explainers_job.ExplainerPart] = []
    outcome = explainers_job.compute_explainers(image, config, model, on_part=got.append)
    assert [p.block for p in got] == [*METHODS, *METHODS]
    assert "input" in got[0].panels and not any("input" in p.panels for p in got[1:])
    report = outcome.report
    explained = explainers_job.ExplainedClass(report["explained_class"], report["explained_label"])
    assert got[0].explained == explained and not any(p.explained for p in got[1:])
    assert [p.curves is None for p in got] == [True] * len(METHODS) + [False] * len(METHODS)
    for part in got:
        assert all(outcome.panels[k] == v for k, v in part.panels.items())
        if part.curves is not None:
            assert part.curves is outcome.result.curves[part.block]
            assert part.curves.to_json() == report["faithfulness"][part.block]
    assert {k: r.to_json() for k, r in outcome.readings.items()} == report["readings"]
    assert set(outcome.panels) == {"input", *METHODS}
    assert isinstance(outcome.files["explainers.png"], Later)  # drawn when asked for
    assert file_bytes(outcome.files["explainers.png"]).startswith(b"\x89PNG")
    alone = explainers_job.compute_explainers(image, config, model)
    assert alone.report == outcome.report and alone.panels == outcome.panels


def test_the_page_draws_each_map_as_it_comes_and_still_shows_everything(open_page, monkeypatch) -> None:
    parts: list[explainers_job.ExplainerPart] = []
    real = explainers_view.ExplainerSlots.show_part

    def record(self, part):
        parts.append(part)
        return real(self, part)

    monkeypatch.setattr(explainers_view.ExplainerSlots, "show_part", record)
    runs = counting(monkeypatch, explainers_job, "compute_explainers")
    at = open_page(PAGE, image="cifar10_test_9")
    by_label(at.multiselect, "Methods").set_value(list(METHODS))
    by_label(at.number_input, "SmoothGrad samples").set_value(3)
    submit(at, "explainers-form", "Compare")
    assert_clean(at)
    assert [p.block for p in parts] == [*METHODS, *METHODS]
    assert any(s.label.startswith("Explaining with every method: done in") for s in at.status)
    explained = [m.value for m in at.markdown if m.value.startswith("Explaining class")]
    assert len(explained) == 1  # drawn early, then again in the same place: once on screen
    captions = [c for i in at.image for c in i.captions]
    assert ["image", "Gradient", "Grad-CAM", "SmoothGrad"] == captions[:4]
    areas = [c.value for c in at.caption if c.value.startswith("deletion area")]
    assert len(areas) == len(METHODS)
    assert list(at.dataframe[0].value.columns)[1:] == ["Gradient", "Grad-CAM", "SmoothGrad"]
    assert any("Deletion" in md.value for md in at.markdown)
    assert downloads(at) == ["explainers.png", "agreement.csv", "report.json", "compare-explainers.zip"]
    at.run()  # a rerun shows the whole result from the cache, without parts or new work
    assert_clean(at)
    assert len(parts) == 2 * len(METHODS) and runs == [1]
    assert len([m for m in at.markdown if m.value.startswith("Explaining class")]) == 1
