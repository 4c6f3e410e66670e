"""The explanations page draws each target as it finishes, in its place, and the whole result in
the same places at the end; the pictures drawn early are the final ones (δ only where its own
scale is the shared one); figures are drawn on request; nothing is recomputed on a rerun."""

from __future__ import annotations

import advexp_ui.jobs.explanations as explain_job
from advexp_core.experiments import ExplanationConfig
from advexp_ui import loaders
from advexp_ui.jobs.common import Later, file_bytes
from advexp_ui.views import explanations as explain_view
from tests.app.conftest import CIFAR_ROBUST, CIFAR_STANDARD, assert_clean, by_label, downloads, submit
from tests.app.test_attack_page import counting
from tests.app.test_progressive import recorder

PAGE = "pages/2_Adversarial_explanations.py"


def assert_parts_are_final(
    parts: list[explain_job.ExplainPart], outcome: explain_job.ExplanationsOutcome, prefixes: list[str]
) -> None:
    """Each part's pictures and numbers are the final ones; δ too where its scale is the shared one;
    the rows' readings are the report's."""
    report = outcome.report
    entries = report["models"] if "models" in report else [report]
    scale = max(p.scale for p in parts)  # the shared scale: the largest |δ| of all
    assert report.get("delta_scale", scale) == scale
    for row, entry in zip(outcome.rows, entries, strict=True):
        assert row.success.to_json() == entry["readings"]["success"]
        assert row.structure.to_json() == entry["readings"]["structure"]
    shared = 0
    for part in parts:
        prefix, k = prefixes[part.model], part.position
        row = outcome.rows[part.model]
        assert part.target is row.result.explanations.targets[k]
        assert part.target.label == entries[part.model]["targets"][k]["label"]
        assert part.network == row.network and part.network.predictions == entries[part.model]["predictions"]
        assert part.steps == entries[part.model]["steps"]
        assert part.panels["x"] == outcome.panels[f"{prefix}x-{k}"]
        assert ("input" in part.panels) == (k == 0)
        if k == 0:
            assert part.panels["input"] == outcome.panels[f"{prefix}input"]
        if part.scale == scale:
            shared += 1
            assert part.panels["d"] == outcome.panels[f"{prefix}d-{k}"]
    assert shared >= 1  # the largest δ sets the shared scale: its picture is kept as it was drawn


def test_the_parts_are_the_final_result_and_figures_are_drawn_on_request(woods_dir) -> None:
    image = (woods_dir / "cifar10_test_5.png").read_bytes()
    model = loaders.cached_model(CIFAR_ROBUST)
    config = ExplanationConfig(targets=("predicted", "runner-up", 3), steps=3)
    got: list[explain_job.ExplainPart] = []
    outcome = explain_job.compute_explanations(image, config, model, on_part=got.append)
    assert [(p.model, p.position) for p in got] == [(0, 0), (0, 1), (0, 2)]
    assert_parts_are_final(got, outcome, [""])
    figure = outcome.files["figure.png"]
    assert isinstance(figure, Later) and file_bytes(figure).startswith(b"\x89PNG")

    models = [loaders.cached_model(CIFAR_STANDARD), model]
    got.clear()
    both = explain_job.compute_contrast(image, config, models, on_part=got.append)
    assert [(p.model, p.position) for p in got] == [(m, k) for m in (0, 1) for k in range(3)]
    assert [p.network.title for p in got[::3]] == [m.title for m in models]
    assert_parts_are_final(got, both, ["m0-", "m1-"])
    assert both.reading.to_json() == both.report["reading"] and both.delta_scale == both.report["delta_scale"]
    contrast = both.files["contrast.png"]
    assert isinstance(contrast, Later) and file_bytes(contrast).startswith(b"\x89PNG")


def test_each_target_is_drawn_as_it_finishes_then_the_whole_result_in_place(open_page, monkeypatch) -> None:
    parts = recorder(monkeypatch, explain_view.ExplainSlots, "show_part")
    runs = counting(monkeypatch, explain_job, "compute_explanations")
    pairs = counting(monkeypatch, explain_job, "compute_contrast")
    at = open_page(PAGE, model=CIFAR_ROBUST, image="cifar10_test_8")
    by_label(at.number_input, "Steps S").set_value(3)
    submit(at, "explain-form", "Explain")
    assert_clean(at)
    assert [(p.model, p.position) for p in parts] == [(0, 0), (0, 1), (0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(runs) == 1 and len(pairs) == 1
    # input, 2 targets x (x+δ, δ), and as much per network of the contrast: each drawn once, in place
    assert len(at.main.image) == 1 + 2 * 2 + 2 * 2 * 2
    captions = [c for image in at.main.image for c in image.captions]
    assert captions.count("the image as the network sees it") == 1
    assert captions.count("δ (grey = no change)") == 2 + 2 * 2 and explain_view.OWN_SCALE not in captions
    labels = [s.label for s in at.status]
    assert any(
        label.startswith(f"Explaining on {loaders.cached_model(CIFAR_ROBUST).title}: done in")
        for label in labels
    )
    assert any(label.startswith("Explaining on both networks: done in") for label in labels)
    files = downloads(at)
    assert {"figure.png", "adversarial-explanations.zip", "contrast.png", "standard-vs-robust.zip"} <= set(
        files
    )
    at.run()  # a rerun shows the whole result from the cache, without parts or new work
    assert_clean(at)
    assert len(parts) == 6 and len(runs) == 1 and len(pairs) == 1
    assert len(at.main.image) == 1 + 2 * 2 + 2 * 2 * 2
