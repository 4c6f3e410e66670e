"""Many sessions, one cached model: runs started at once from several threads on the same
``LoadedModel`` give exactly the results of running alone, and leave the model untouched."""

from __future__ import annotations

import threading

import torch

from advexp_core.experiments import AttackConfig, ExplainersConfig, ExplanationConfig, SaliencyConfig
from advexp_ui.jobs.attack import compute_attack
from advexp_ui.jobs.common import Outcome, file_bytes
from advexp_ui.jobs.explainers import compute_explainers
from advexp_ui.jobs.explanations import compute_explanations
from advexp_ui.loaders import cached_model
from tests.app.conftest import CIFAR_ROBUST, CIFAR_STANDARD

THREADS = 4


def _state(model) -> tuple:
    module = model.module
    hooks = sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules()
    )
    params = [p.detach().clone() for p in module.parameters()]
    grads = [p.grad for p in module.parameters()]
    return hooks, module.training, params, grads


def _same(a: Outcome, b: Outcome) -> None:
    assert a.report == b.report
    assert {k: file_bytes(v) for k, v in a.files.items()} == {k: file_bytes(v) for k, v in b.files.items()}
    assert a.panels == b.panels


def test_threads_share_cached_models_and_get_single_run_results(woods_dir) -> None:
    standard, robust = cached_model(CIFAR_STANDARD), cached_model(CIFAR_ROBUST)
    assert cached_model(CIFAR_STANDARD) is standard  # one shared object per model id
    images = {n: (woods_dir / f"{n}.png").read_bytes() for n in ("cifar10_test_0", "cifar10_test_9")}
    maps = SaliencyConfig(ig_steps=4)
    jobs = [
        lambda: compute_attack(images["cifar10_test_0"], AttackConfig(steps=2), maps, standard),
        lambda: compute_explainers(
            images["cifar10_test_9"],
            ExplainersConfig(saliency=SaliencyConfig(methods=("gradcam", "gradient"))),
            standard,
        ),
        lambda: compute_attack(
            images["cifar10_test_9"], AttackConfig(norm="rms", eps_255=3, steps=2), maps, robust
        ),
        lambda: compute_explanations(images["cifar10_test_0"], ExplanationConfig(steps=3), robust),
    ]
    assert len(jobs) == THREADS
    before = {m.model_id: _state(m) for m in (standard, robust)}
    alone = [job() for job in jobs]

    barrier = threading.Barrier(THREADS)
    together: list[Outcome | BaseException | None] = [None] * THREADS

    def worker(k: int) -> None:
        barrier.wait()  # all start at once
        try:
            together[k] = jobs[k]()
        except BaseException as exc:  # reported below
            together[k] = exc

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for single, shared in zip(alone, together, strict=True):
        assert isinstance(shared, Outcome), shared
        _same(single, shared)
    for m in (standard, robust):
        hooks, training, params, grads = before[m.model_id]
        now = _state(m)
        assert now[0] == hooks == 0 and now[1] is training is False
        assert all(torch.equal(a, b) for a, b in zip(params, now[2], strict=True))
        assert all(g is None for g in now[3])
