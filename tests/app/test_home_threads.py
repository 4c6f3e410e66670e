"""The page's job and `advexp compare` give the same numbers for the same settings: both run with
the core's one thread policy (`advexp_core.base.runtime`), whatever the shell set, and every report's
header says which thread count it ran with."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from advexp_core.base import runtime
from advexp_core.cli import main
from advexp_core.data.datasets import load_dataset
from advexp_core.data.imaging import encode_png
from advexp_core.experiments import AttackConfig, SaliencyConfig
from advexp_ui import loaders
from advexp_ui.jobs.attack import compute_attack

MODEL = "digits-standard"  # shipped in checkpoints/, 32 px
SHELL_THREADS = 2  # what PyTorch takes by itself on a 2-core machine


@pytest.fixture()
def digit_png(tmp_path: Path) -> Path:
    image, _ = load_dataset("digits", "test")[3]
    path = tmp_path / "digit.png"
    path.write_bytes(encode_png(image))
    return path


@pytest.fixture()
def restore_threads() -> Any:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _cli(image: Path, out: Path) -> dict[str, Any]:
    torch.set_num_threads(SHELL_THREADS)  # a shell's default, which the CLI must not keep
    argv = ["compare", str(image), "--model", MODEL, "--steps", "5", "--seed", "3"]
    assert main([*argv, "--methods", "gradcam,ig", "--ig-steps", "8", "--out", str(out), "--json"]) == 0
    return json.loads((out / "result.json").read_text())  # type: ignore[no-any-return]


def _page(image: Path) -> dict[str, Any]:
    """The attack page's job, run the way the server runs it: the server's thread setting made
    once (`loaders.warm_start` calls the same policy), then the job in a script thread."""
    torch.set_num_threads(SHELL_THREADS)
    runtime.use_compute_threads()
    box: dict[str, Any] = {}

    def job() -> None:
        model = loaders.cached_model(MODEL)
        config, saliency = AttackConfig(steps=5, seed=3), SaliencyConfig(ig_steps=8, seed=3)
        box["report"] = compute_attack(image.read_bytes(), config, saliency, model).report

    worker = threading.Thread(target=job)
    worker.start()
    worker.join()
    return box["report"]  # type: ignore[no-any-return]


@pytest.mark.usefixtures("restore_threads")
def test_page_and_cli_give_the_same_numbers(
    digit_png: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    cli = _cli(digit_png, tmp_path / "cli")
    page = _page(digit_png)
    for report in (cli, page):
        assert report["versions"]["torch_threads"] == str(runtime.DEFAULT_THREADS)
        assert report["versions"]["thread_policy"] == runtime.thread_policy()
        assert "not set" in report["versions"]["thread_policy"]
    for key in ("predictions_before", "predictions_after", "perturbation", "maps", "success"):
        assert cli[key] == page[key], key
    assert cli["readings"]["maps"] == page["readings"]["maps"]


@pytest.mark.usefixtures("restore_threads")
def test_the_environment_sets_both_and_the_header_says_so(
    digit_png: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(runtime.THREADS_ENV, "3")
    assert loaders.intra_op_threads() == 3 == runtime.compute_threads()
    cli = _cli(digit_png, tmp_path / "cli")
    assert cli["versions"]["torch_threads"] == "3"
    assert cli["versions"]["thread_policy"] == f"${runtime.THREADS_ENV}=3"
    monkeypatch.setenv(runtime.THREADS_ENV, "none")  # not a count: the fixed default
    assert runtime.compute_threads() == runtime.DEFAULT_THREADS
