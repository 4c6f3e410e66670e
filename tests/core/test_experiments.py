"""The experiment layer on a tiny network: result fields, one monotone progress count that ends at
its total, the model's lock taken exactly once per run, JSON-able reports, settings checked early."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from advexp_core import experiments as ex
from advexp_core.data.imaging import Preprocess
from advexp_core.networks.registry import LoadedModel
from advexp_core.plots.figures import under_attack_figure

SIZE = 16
CLASSES = ("ant", "bee", "cat", "dog")


class CountingLock:
    """A re-entrant lock that counts how often it is taken (re-entries included)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.entered = 0

    def __enter__(self) -> CountingLock:
        self._lock.acquire()
        self.entered += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def tiny_model(seed: int = 0, model_id: str = "tiny") -> LoadedModel:
    """A two-conv network on 16-px RGB images with four classes, frozen and in eval mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.ReLU()),  # the Grad-CAM block
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, len(CLASSES)),
    )  # fmt: skip
    net.eval().requires_grad_(False)
    return LoadedModel(
        model_id, net, CLASSES, (SIZE, SIZE), net[1], False, "test", Preprocess((SIZE, SIZE)),
        title=model_id, lock=CountingLock(),  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture()
def model() -> LoadedModel:
    return tiny_model()


@pytest.fixture()
def image() -> torch.Tensor:
    return torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def counted(run: Callable[[Any], Any]) -> tuple[Any, list[tuple[int, int]]]:
    """Run ``run(on_step)`` and return its result with every progress call."""
    calls: list[tuple[int, int]] = []
    result = run(lambda done, total: calls.append((done, total)))
    return result, calls


def assert_progress(calls: list[tuple[int, int]], total: int) -> None:
    assert calls, "no progress reported"
    assert {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert done == sorted(done) and 0 <= done[0] and done[-1] == total


def assert_json(report: dict[str, Any]) -> None:
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_saliency_under_attack(model: LoadedModel, image: torch.Tensor) -> None:
    attack = ex.AttackConfig(eps_255=8, steps=3)
    saliency = ex.SaliencyConfig(
        methods=("gradcam", "ig", "gradient", "smoothgrad"), ig_steps=4, smoothgrad_samples=2
    )
    result, calls = counted(lambda cb: ex.saliency_under_attack(model, image, attack, saliency, on_step=cb))
    assert model.lock.entered == 1  # type: ignore[attr-defined]
    assert_progress(calls, attack.steps + len(saliency.methods))
    example = result.example
    assert example.image.shape == example.adversarial.shape == (3, SIZE, SIZE)
    assert torch.allclose(example.delta, example.adversarial - example.image)
    assert float(example.delta.abs().max()) <= 8 / 255 + 1e-6
    assert set(result.maps) == set(saliency.methods)
    assert all(a.shape == b.shape == (SIZE, SIZE) for a, b in result.maps.values())
    report = result.to_json()
    assert_json(report)
    assert report["maps"] == result.metrics and set(report["saliency"]) == set(saliency.methods)
    assert report["settings"]["eps"] == pytest.approx(8 / 255) and report["settings"]["steps"] == 3
    assert report["settings"]["saliency"]["methods"] == list(saliency.methods)
    assert set(report["readings"]["maps"]["ig"]) == set(report["maps"]["ig"]) | {"verdict", "outcome"}
    assert report["predictions_before"][0]["label"] in CLASSES
    assert under_attack_figure(result) is not None


def test_attack_runs_are_deterministic_and_fgsm_takes_one_step(
    model: LoadedModel, image: torch.Tensor
) -> None:
    config = ex.AttackConfig(method="fgsm", norm="rms", eps_255=4, target=2)
    first, calls = counted(lambda cb: ex.adversarial_example(model, image, config, on_step=cb))
    again = ex.adversarial_example(model, image, config)
    assert model.lock.entered == 2  # type: ignore[attr-defined]  # once per run
    assert_progress(calls, 1)
    assert first.to_json() == again.to_json() and torch.equal(first.adversarial, again.adversarial)
    assert first.settings["target"] == {"index": 2, "label": "cat"}
    assert first.attacked_class == 2 and first.settings["steps"] == 1
    assert_json(first.to_json())


def test_move_the_map(model: LoadedModel, image: torch.Tensor) -> None:
    config = ex.ManipulationConfig(method="gradcam", goal="centre", steps=3)
    result, calls = counted(lambda cb: ex.move_the_map(model, image, config, on_step=cb))
    assert model.lock.entered == 1  # type: ignore[attr-defined]
    assert_progress(calls, 3)
    assert result.adversarial.shape == (3, SIZE, SIZE)
    assert result.original_map.shape == result.manipulated_map.shape == result.goal_map.shape == (SIZE, SIZE)
    assert float(result.delta.abs().max()) <= 8 / 255 + 1e-6
    assert_json(result.to_json())
    assert set(result.similarity) == {"to_target_before", "to_target_after", "to_original_after"}
    copy_goal = ex.ManipulationConfig(goal="image:other", steps=2)
    other = ex.move_the_map(model, image, copy_goal, goal_image=torch.rand(3, 24, 20))
    assert other.goal_map.shape == (SIZE, SIZE)
    with pytest.raises(ValueError, match="Pick the image"):
        ex.move_the_map(model, image, copy_goal)


def test_compare_explainers(model: LoadedModel, image: torch.Tensor) -> None:
    saliency = ex.SaliencyConfig(methods=("gradcam", "gradient", "smoothgrad"), smoothgrad_samples=2)
    config = ex.ExplainersConfig(saliency=saliency, target=1, faithfulness_steps=4)
    result, calls = counted(lambda cb: ex.compare_explainers(model, image, config, on_step=cb))
    assert model.lock.entered == 1  # type: ignore[attr-defined]
    assert_progress(calls, 2 * len(saliency.methods))
    assert result.target == 1 and list(result.maps) == list(saliency.methods)
    assert result.curves["gradient"].fractions[0] == 0.0 and result.label == "bee"
    report = result.to_json()
    assert_json(report)
    assert report["explained_label"] == "bee"
    for matrix in report["agreement"].values():
        assert len(matrix) == 3 and all(matrix[i][i] == 1.0 for i in range(3))
    assert len(report["faithfulness"]["gradient"]["deletion"]) == 5
    with pytest.raises(ValueError, match="at least one"):
        ex.compare_explainers(model, image, ex.ExplainersConfig(saliency=ex.SaliencyConfig(methods=())))


def test_adversarial_explanations(model: LoadedModel, image: torch.Tensor) -> None:
    config = ex.ExplanationConfig(steps=4)
    result, calls = counted(lambda cb: ex.adversarial_explanations(model, image, config, on_step=cb))
    assert model.lock.entered == 1  # type: ignore[attr-defined]
    assert_progress(calls, 4)
    report = result.to_json()
    assert_json(report)
    assert report["model"] == "tiny" and report["rho"] == config.rho and len(report["targets"]) == 2
    assert [t["file"] for t in report["targets"]] == list(result.files)
    assert (
        result.files[0]
        == f"explanation_{report['predictions'][0]['index']}_{report['predictions'][0]['label']}.png"
    )
    assert all(0 <= t["probability_after_png"] <= 1 for t in report["targets"])
    with pytest.raises(ValueError, match="at most 1"):
        ex.adversarial_explanations(model, image, ex.ExplanationConfig(steps=2, max_targets=1))


def test_contrast_explanations_take_each_lock_once(image: torch.Tensor) -> None:
    models = [tiny_model(0, "a"), tiny_model(1, "b")]
    config = ex.ExplanationConfig(targets=("predicted",), steps=3)
    result, calls = counted(lambda cb: ex.contrast_explanations(models, image, config, on_step=cb))
    assert [m.lock.entered for m in models] == [1, 1]  # type: ignore[attr-defined]
    assert_progress(calls, 2 * 3)
    report = result.to_json()
    assert_json(report)
    assert [m["id"] for m in report["models"]] == ["a", "b"] and report["delta_scale"] > 0
    assert len(result.contrast.results) == 2


def test_classify_takes_the_lock(model: LoadedModel, image: torch.Tensor) -> None:
    top = ex.classify(model, image, top_k=3)
    assert model.lock.entered == 1  # type: ignore[attr-defined]
    assert len(top) == 3 and math.isclose(sum(p["probability"] for p in top), 1, rel_tol=0.5)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ex.AttackConfig(eps_255=-1), "eps"),
        (lambda: ex.AttackConfig(steps=0), "steps"),
        (lambda: ex.AttackConfig(method="cw"), "method"),
        (lambda: ex.SaliencyConfig(methods=("guided-backprop",)), "guided-backprop"),
        (lambda: ex.SaliencyConfig(topk=1.5), "topk"),
        (lambda: ex.ExplanationConfig(steps=1), "step"),
        (lambda: ex.ManipulationConfig(goal="somewhere"), "somewhere"),
    ],
)
def test_impossible_settings_fail_when_the_config_is_built(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_budgets_read_alike_for_the_three_norms() -> None:
    assert ex.AttackConfig(eps_255=2).eps((32, 32)) == pytest.approx(2 / 255)
    assert ex.AttackConfig(norm="l2", eps_255=2).eps((32, 32)) == pytest.approx(
        2 / 255 * math.sqrt(3 * 32 * 32)
    )
    assert ex.AttackConfig(steps=10).effective_step_size((8, 8)) == pytest.approx(2.5 * 2 / 255 / 10)


def test_saliency_under_attack_hands_out_parts_in_order_without_changing_the_result(
    model: LoadedModel, image: torch.Tensor
) -> None:
    attack = ex.AttackConfig(eps_255=8, steps=3)
    saliency = ex.SaliencyConfig(methods=("gradcam", "ig"), ig_steps=4)
    parts: list[tuple[str, Any]] = []
    events: list[str] = []

    def on_step(done: int, total: int) -> None:
        events.append(f"step {done}")

    def on_partial(value: ex.under_attack.UnderAttackPart) -> None:
        name = value.method if isinstance(value, ex.under_attack.MapPair) else "attack"
        parts.append((name, value))
        events.append(name)

    with_parts = ex.saliency_under_attack(
        model, image, attack, saliency, on_step=on_step, on_partial=on_partial
    )
    alone = ex.saliency_under_attack(model, image, attack, saliency)
    assert [name for name, _ in parts] == ["attack", "gradcam", "ig"]
    # the decision comes right after the last attack step, each map right after its own step
    assert events[events.index("attack") - 1] == f"step {attack.steps}"
    assert events.index("attack") < events.index("gradcam") < events.index("ig")
    example = parts[0][1]
    assert (
        isinstance(example, ex.AdversarialExampleResult) and example.to_json() == with_parts.example.to_json()
    )
    for name, pair in parts[1:]:
        assert torch.equal(pair.clean, with_parts.maps[name][0])
        assert pair.metrics == with_parts.metrics[name]
    assert with_parts.to_json() == alone.to_json()
    assert all(torch.equal(a, b) for a, b in zip(with_parts.maps["ig"], alone.maps["ig"], strict=True))


def test_integrated_gradients_on_a_cpu_is_sent_in_small_batches() -> None:
    saliency = ex.SaliencyConfig(ig_steps=32)
    cpu = ex.maps.method_kwargs("ig", saliency, None, (32, 32), device=torch.device("cpu"))
    photo = ex.maps.method_kwargs("ig", saliency, None, (224, 224), device=torch.device("cpu"))
    big = ex.maps.method_kwargs("ig", saliency, None, (1024, 1024), device=torch.device("cpu"))
    other = ex.maps.method_kwargs("ig", saliency, None, (224, 224))
    assert cpu["internal_batch_size"] == ex.maps.CPU_IG_IMAGES and other["internal_batch_size"] is None
    assert photo["internal_batch_size"] == 4 and big["internal_batch_size"] == 1  # the pixel budget
