"""Explanations as they finish: on a CPU each target runs alone and is handed out as soon as it is
done, with the numbers of the whole result, which equals one batch of all targets up to float
rounding (eval-mode BatchNorm, per-example steps: docs/method.md §2)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from torch import nn

from advexp_core import experiments as ex
from advexp_core.data.imaging import Preprocess
from advexp_core.experiments import explanations as exp
from advexp_core.networks.registry import LoadedModel

SIZE = 16
CLASSES = ("ant", "bee", "cat", "dog", "eel")
CONFIG = ex.ExplanationConfig(targets=("all",), steps=6)


def small_model(seed: int = 0, model_id: str = "small") -> LoadedModel:
    """Two convolutions with eval-mode BatchNorm (running statistics not 0/1) and five classes."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, len(CLASSES)),
    )  # fmt: skip
    bn = net[1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    net.eval().requires_grad_(False)
    return LoadedModel(
        model_id, net, CLASSES, (SIZE, SIZE), net[3], False, "test", Preprocess((SIZE, SIZE)),
        title=model_id, lock=threading.RLock(),
    )  # fmt: skip


@pytest.fixture()
def image() -> torch.Tensor:
    return torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every target in one batch, as on a GPU."""
    monkeypatch.setattr(exp, "target_batches", lambda targets, device: [targets])


def assert_same_numbers(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two target entries: equal, floats up to float rounding."""
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, float):
            assert value == pytest.approx(b[key], abs=1e-5), key
        else:
            assert value == b[key], key


def test_a_cpu_runs_one_target_at_a_time_and_other_devices_one_batch() -> None:
    assert exp.target_batches((3, 1, 4), torch.device("cpu")) == [(3,), (1,), (4,)]
    assert exp.target_batches((3, 1, 4), torch.device("cuda", 0)) == [(3, 1, 4)]


def test_one_target_at_a_time_equals_one_batch(image: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_model()
    alone = ex.adversarial_explanations(model, image, CONFIG)
    one_batch(monkeypatch)
    batched = ex.adversarial_explanations(model, image, CONFIG)
    a, b = alone.explanations, batched.explanations
    assert len(a.targets) == len(CLASSES) and alone.files == batched.files
    assert torch.allclose(a.explanations, b.explanations, atol=1e-5)
    assert torch.allclose(a.deltas, b.deltas, atol=1e-5)
    assert torch.allclose(a.rms_history, b.rms_history, atol=1e-5) and a.rms_history.shape == (7, 5)
    assert torch.equal(a.probabilities, b.probabilities) and torch.equal(a.image, b.image)
    report, reference = alone.to_json(), batched.to_json()
    for x, y in zip(report.pop("targets"), reference.pop("targets"), strict=True):
        assert_same_numbers(x, y)
    assert report == reference


def test_each_target_is_handed_out_once_in_order_with_the_final_values(image: torch.Tensor) -> None:
    model = small_model()
    events: list[Any] = []
    result = ex.adversarial_explanations(
        model, image, CONFIG, on_step=lambda done, total: events.append((done, total)),
        on_partial=lambda value: events.append((value.model_id, value)),
    )  # fmt: skip
    parts = [e for e in events if isinstance(e[1], exp.ExplainedTarget)]
    steps = [e for e in events if isinstance(e[1], int)]
    assert [name for name, _ in parts] == ["small"] * len(CLASSES)
    assert [p.position for _, p in parts] == list(range(len(CLASSES))) and {p.model for _, p in parts} == {0}
    report = result.to_json()
    for (_, part), entry, target in zip(parts, report["targets"], result.explanations.targets, strict=True):
        assert part.entry == entry and part.predictions == report["predictions"]
        assert part.target is target and torch.equal(part.image, result.explanations.image)
    # one progress count 0..S across the targets, and target k is out once its share of it is done
    # (and maybe more: on a CPU the targets run side by side)
    assert {t for _, t in steps} == {CONFIG.steps} and steps[-1][0] == CONFIG.steps
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    for k in range(len(CLASSES)):
        before = [d for d, _ in events[: events.index(parts[k])] if isinstance(d, int)]
        assert before[-1] >= (k + 1) * CONFIG.steps // len(CLASSES)
    assert ex.adversarial_explanations(model, image, CONFIG).to_json() == report  # the same without parts


def test_one_batch_hands_out_every_target_at_its_end(
    image: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_batch(monkeypatch)
    events: list[Any] = []
    result = ex.adversarial_explanations(
        small_model(), image, CONFIG, on_step=lambda done, total: events.append(done),
        on_partial=events.append,
    )  # fmt: skip
    first = next(k for k, e in enumerate(events) if isinstance(e, exp.ExplainedTarget))
    assert events[first - 1] == CONFIG.steps and all(isinstance(e, int) for e in events[:first])
    assert [e.entry for e in events if isinstance(e, exp.ExplainedTarget)] == result.to_json()["targets"]


def test_the_contrast_hands_out_each_model_and_target_in_order(image: torch.Tensor) -> None:
    models = [small_model(0, "standard"), small_model(1, "robust")]
    config = ex.ExplanationConfig(targets=("predicted", "runner-up"), steps=4)
    parts: list[tuple[str, exp.ExplainedTarget]] = []
    calls: list[tuple[int, int]] = []
    result = ex.contrast_explanations(
        models, image, config, on_step=lambda d, t: calls.append((d, t)),
        on_partial=lambda value: parts.append((value.model_id, value)),
    )  # fmt: skip
    assert [(n, p.model, p.position) for n, p in parts] == [
        ("standard", 0, 0), ("standard", 0, 1), ("robust", 1, 0), ("robust", 1, 1),
    ]  # fmt: skip
    for name, part in parts:
        entry = result.to_json()["models"][part.model]
        assert entry["id"] == name and part.entry == entry["targets"][part.position]
        assert part.predictions == entry["predictions"]
    assert {t for _, t in calls} == {2 * 4} and calls[-1][0] == 8
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert result.to_json() == ex.contrast_explanations(models, image, config).to_json()
