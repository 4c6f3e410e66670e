"""Training recipe math (docs/method.md §1) on hand-checkable models, recipes end to end on digits,
interrupt-and-resume, and a 2-process DDP run against one process."""

from __future__ import annotations

import functools
import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from advexp_core.data.datasets import TensorImageDataset, load_dataset
from advexp_core.networks.checkpoints import load_checkpoint, sha256_file
from advexp_core.networks.layers import HHReLU, hhrelu
from advexp_core.training.loop import TrainConfig, augment, train
from advexp_core.training.robust import (
    EPS_BETTER,
    EPS_WORSE,
    K_PSI,
    K_PSI0,
    RECIPES,
    PenaltyChoice,
    PsiState,
    TrainingError,
    adversarial_images,
    default_l_target,
    draw_penalty_choice,
    lipschitz_penalty,
    smoothed_outputs,
    update_psi,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = {"num_blocks": (1, 1, 1), "widths": (4, 4, 4)}


@functools.cache
def _digits(split: str) -> TensorImageDataset:
    full = load_dataset("digits", split)
    assert isinstance(full, TensorImageDataset)
    return full


def tiny_digits(n: int, split: str = "train") -> TensorImageDataset:
    full = _digits(split)
    assert isinstance(full, TensorImageDataset)
    return TensorImageDataset("digits", split, full.class_names, full.images[:n], full.labels[:n])


# --------------------------------------------------------------------------- HHReLU (§1.3)


def _hhrelu_formula(x: float, d: float) -> tuple[float, float]:
    if x <= 0:
        return 0.0, 0.0
    if x <= d:
        return x * x / (2 * d), x / d
    return x - d / 2, 1.0


@pytest.mark.parametrize("delta", [0.5, 0.25, 1.3])
def test_hhrelu_values_and_derivative_follow_the_formula(delta: float) -> None:
    xs = torch.tensor(
        [-2.0, -1e-3, 0.0, 0.3 * delta, 0.9 * delta, delta, 1.01 * delta, 3.0], dtype=torch.float64
    )
    x = xs.clone().requires_grad_(True)
    y = HHReLU(delta).double()(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    for xi, yi, gi in zip(xs.tolist(), y.tolist(), grad.tolist(), strict=True):
        want_y, want_g = _hhrelu_formula(xi, float(torch.tensor(delta)))  # the buffer is float32
        assert yi == pytest.approx(want_y, abs=1e-12)
        assert gi == pytest.approx(want_g, abs=1e-12)
    # f' = clamp(x, 0, δ)/δ is continuous, so the function is C¹ and twice differentiable a.e.
    z = torch.linspace(-1, 2 * delta + 1, 37, dtype=torch.float64).add(1e-3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: hhrelu(t, delta), (z,))
    assert torch.autograd.gradgradcheck(lambda t: hhrelu(t, delta), (z,))


# --------------------------------------------------------------------------- penalty (§1.1)


class Linear(nn.Module):
    """f(x) = W·flatten(x) + b: the input gradient of logit k is exactly W_k."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def test_penalty_equals_the_hand_computed_value_and_its_double_backprop() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    model = Linear(w)
    x = torch.rand(3, 1, 2, 2, generator=gen, dtype=torch.float64).requires_grad_(True)
    y = torch.tensor([0, 1, 2])
    choice = PenaltyChoice(torch.tensor([2, 0, 1]), torch.tensor([False, False, True]))
    logits = model(x)
    psi = 7.0
    penalty = lipschitz_penalty(logits, x, y, choice, psi=psi)

    runner_up = int(logits[2, :2].argmax())  # example 2 has y = 2: max over j ≠ 2
    grads = [w[2], w[0], w[2] - w[runner_up]]
    want = psi * sum(float(g.pow(2).sum()) for g in grads) / (3 * 4)
    assert float(penalty.detach()) == pytest.approx(want, rel=1e-12)

    # d/dW of ψ/(B·D)·Σ|g_b|²: the penalty's gradient must reach the weights (double backprop).
    (dw,) = torch.autograd.grad(penalty, model.weight)
    want_dw = torch.zeros_like(w)
    scale = 2 * psi / 12
    want_dw[2] += scale * w[2]
    want_dw[0] += scale * w[0]
    want_dw[2] += scale * (w[2] - w[runner_up])
    want_dw[runner_up] -= scale * (w[2] - w[runner_up])
    torch.testing.assert_close(dw, want_dw)


def test_smoothed_outputs_margin_excludes_the_true_class() -> None:
    logits = torch.tensor([[5.0, 1.0, 3.0], [0.0, 9.0, 2.0]])
    labels = torch.tensor([0, 2])
    tandem = PenaltyChoice(torch.tensor([1, 1]), torch.tensor([True, True]))
    torch.testing.assert_close(smoothed_outputs(logits, labels, tandem), torch.tensor([2.0, -7.0]))
    single = PenaltyChoice(torch.tensor([1, 0]), torch.tensor([False, False]))
    torch.testing.assert_close(smoothed_outputs(logits, labels, single), torch.tensor([1.0, 0.0]))


def test_penalty_choice_is_seeded_uniform_with_tandem_rate_zeta() -> None:
    a = draw_penalty_choice(20000, 10, generator=torch.Generator().manual_seed(3))
    b = draw_penalty_choice(20000, 10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.classes, b.classes) and torch.equal(a.tandem, b.tandem)
    assert set(a.classes.tolist()) == set(range(10))  # k may equal y: all classes drawn
    assert abs(a.tandem.double().mean().item() - 0.2) < 0.01
    assert (torch.bincount(a.classes, minlength=10).double() / 20000 - 0.1).abs().max() < 0.01


# --------------------------------------------------------------------------- ψ controller (§1.2)


def test_psi_controller_follows_a_scripted_series_exactly() -> None:
    losses = [1.5, 0.5, 0.1, 3.0, 100.0, 1.5 * math.exp(-0.3), 2.0] + [50.0] * 300
    state = PsiState()
    expected = 0.0
    for ce in losses:
        step = min(1.0, max(-0.01, -math.log(ce / 1.5)))
        expected = max(0.0, expected + step)
        state = update_psi(state, ce)
        assert state.integral == pytest.approx(expected, abs=1e-12)
        assert state.psi == pytest.approx(K_PSI0 * math.exp(K_PSI * expected), rel=1e-12)
    # spot values: 0 → +1 (clipped) → +1 (clipped) → −0.01 → −0.01 → +0.3 → −0.01·… floored at 0
    trace = []
    state = PsiState()
    for ce in losses[:7]:
        state = update_psi(state, ce)
        trace.append(round(state.integral, 10))
    assert trace == [0.0, 1.0, 2.0, 1.99, 1.98, 2.28, 2.27]
    assert expected == 0.0 and PsiState().psi == 220.0


# --------------------------------------------------------------------------- adversarial training (§1.4)


def test_l2_and_l2min_adversarial_images_and_half_and_half() -> None:
    gen = torch.Generator().manual_seed(1)
    model = Linear(torch.randn(3, 12, generator=gen))
    x = torch.rand(6, 3, 2, 2, generator=gen)
    y = model(x).argmax(1)
    l2 = adversarial_images(model, x, y, mode="l2")
    rms = (l2 - x).pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert bool((rms > 0.005).all()) and bool((rms < 0.0102).all())  # spent ≈ the 0.01 budget, no more
    half = torch.tensor([True, False, True, False, False, True])
    mixed = adversarial_images(model, x, y, mode="l2", perturb=half)
    assert torch.equal(mixed[~half], x[~half])
    torch.testing.assert_close(mixed[half], l2[half])
    l2min = adversarial_images(model, x, y, mode="l2min")
    crossed = model(l2min).argmax(1) != y
    moved = (l2min - x).flatten(1).abs().amax(1) > 0
    assert torch.equal(crossed, moved)  # δ = 0 unless the example was pushed across


def test_augment_centre_crop_is_identity_and_flip_flips() -> None:
    x = torch.rand(2, 3, 8, 8)
    centre = torch.full((2, 2), 4)
    assert torch.equal(augment(x, centre, None, 4), x)
    flipped = augment(x, centre, torch.tensor([True, False]), 4)
    assert torch.equal(flipped[0], x[0].flip(-1)) and torch.equal(flipped[1], x[1])
    shifted = augment(x, torch.tensor([[0, 4], [8, 4]]), None, 4)  # down by 4 px: top rows replicate row 0
    assert torch.equal(shifted[0, :, 4:], x[0, :, :4]) and torch.equal(shifted[0, :, 0], x[0, :, 0])


# --------------------------------------------------------------------------- recipes end to end


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_each_recipe_trains_a_few_steps_on_digits(recipe: str, tmp_path: Path) -> None:
    config = TrainConfig(recipe=recipe, epochs=1, batch_size=16, **TINY)
    path = tmp_path / "net.pt"
    result = train(config, tiny_digits(48), tiny_digits(16, "test"), checkpoint_path=path, release=True)
    log = result.history[-1]
    assert math.isfinite(log.loss) and 0.0 <= log.test_accuracy <= 1.0
    assert (log.penalty > 0) == RECIPES[recipe].robust_additions
    payload = load_checkpoint(path)  # weights_only=True: only tensors and plain data
    assert payload["format"] == "advexp-checkpoint-1" and payload["recipe"] == recipe
    assert payload["arch"]["activation"] == ("hhrelu" if RECIPES[recipe].robust_additions else "relu")
    assert payload["psi_state"]["psi"] == pytest.approx(
        K_PSI0 * math.exp(K_PSI * payload["psi_state"]["integral"])
    )
    assert "optimizer" not in payload and payload["epoch"] == 1 and payload["input_size"] == [32, 32]
    assert not any(p.requires_grad for p in result.model.parameters()) and not result.model.training

    from advexp_core.networks.registry import load_model

    loaded = load_model(str(path), device="cpu")
    x = tiny_digits(4, "test").images
    torch.testing.assert_close(loaded.module(x), result.model(x))
    assert loaded.robust == RECIPES[recipe].robust_additions and loaded.class_names[3] == "3"


def test_interrupted_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    config = TrainConfig(recipe="all", epochs=2, batch_size=16, **TINY)
    data, test = tiny_digits(32), tiny_digits(8, "test")
    straight = train(config, data, test, checkpoint_path=tmp_path / "a.pt")

    path = tmp_path / "b.pt"

    def stop(step: int, total: int) -> None:
        if len(calls) == total + 1:  # during the second epoch
            raise KeyboardInterrupt
        calls.append(step)

    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        train(config, data, test, checkpoint_path=path, on_step=stop)
    saved = load_checkpoint(path)  # the epoch-1 checkpoint is intact
    assert saved["epoch"] == 1 and "optimizer" in saved
    with pytest.raises(TrainingError, match="exists"):
        train(config, data, test, checkpoint_path=path)
    resumed = train(config, data, test, checkpoint_path=path, resume=True)

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert straight.payload["psi_state"] == resumed.payload["psi_state"]
    assert [h.loss for h in straight.history] == pytest.approx([h.loss for h in resumed.history], abs=1e-6)

    other = TrainConfig(recipe="all", epochs=2, batch_size=16, num_blocks=(1, 1, 1), widths=(4, 4, 8))
    with pytest.raises(TrainingError, match="other settings"):
        train(other, data, test, checkpoint_path=path, resume=True)


def test_warm_start_continues_from_the_earlier_stage(tmp_path: Path) -> None:
    """A curriculum's second stage starts from the first stage's weights, normalisation and ψ."""
    # A target above any cross-entropy here: the integral grows at every step, so that a second stage
    # started afresh (integral 0, at most EPS_BETTER a step) could not reach where stage 1 ended.
    first = TrainConfig(recipe="robust", epochs=2, batch_size=16, l_target=50.0, **TINY)
    stage1 = tmp_path / "stage1.pt"
    train(first, tiny_digits(32), tiny_digits(8, "test"), checkpoint_path=stage1, release=True)
    saved = load_checkpoint(stage1)
    # lr 0 and no weight decay: the second stage cannot move the weights, so they must be stage 1's.
    second = TrainConfig(
        recipe="robust", epochs=1, batch_size=16, lr=0.0, weight_decay=0.0, seed=1, l_target=50.0, **TINY
    )
    other_data = TensorImageDataset(
        "digits",
        "train",
        _digits("train").class_names,
        _digits("train").images[64:96],
        _digits("train").labels[64:96],
    )
    result = train(second, other_data, tiny_digits(8, "test"), warm_start=stage1)
    weights = dict(result.model.named_parameters())
    for name, value in saved["state_dict"].items():
        if name in weights:
            torch.testing.assert_close(weights[name], value, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(result.model.state_dict()["input_offset"], saved["state_dict"]["input_offset"])
    assert result.payload["arch"] == saved["arch"]
    start, end, steps = saved["psi_state"]["integral"], result.payload["psi_state"]["integral"], 2
    assert start > steps * EPS_BETTER and start - steps * EPS_WORSE <= end <= start + steps * EPS_BETTER
    assert result.payload["warm_start"]["sha256"] == sha256_file(stage1)
    assert result.payload["warm_start"]["recipe"] == "robust" and result.payload["epoch"] == 1

    with pytest.raises(TrainingError, match="recipe 'robust', not 'standard'"):
        train(
            TrainConfig(recipe="standard", epochs=1, batch_size=16, **TINY),
            other_data,
            tiny_digits(8, "test"),
            warm_start=stage1,
        )
    with pytest.raises(TrainingError, match="another architecture"):
        train(
            TrainConfig(recipe="robust", epochs=1, batch_size=16, num_blocks=(1, 1, 1), widths=(4, 4, 8)),
            other_data,
            tiny_digits(8, "test"),
            warm_start=stage1,
        )


def test_bad_recipe_and_indivisible_data_are_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="unknown recipe"):
        train(TrainConfig(recipe="magic"), tiny_digits(8), tiny_digits(8, "test"))
    with pytest.raises(TrainingError, match="smaller than one batch"):
        train(TrainConfig(recipe="standard", batch_size=64, **TINY), tiny_digits(8), tiny_digits(8, "test"))


# --------------------------------------------------------------------------- DDP (gloo, CPU)

_WORKER = textwrap.dedent(
    """
    import json, os, sys, torch
    import torch.distributed as dist
    sys.path.insert(0, {root!r})
    torch.set_num_threads(1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")  # kept open after train() so that ARA is sharded too
    from torch import nn
    from advexp_core.methods.ara import evaluate_ara
    from advexp_core.networks.checkpoints import load_checkpoint
    from advexp_core.data.datasets import TensorImageDataset, load_dataset
    from advexp_core.base.distributed import init_distributed
    from advexp_core.networks.layers import HHReLU
    from advexp_core.training.loop import TrainConfig, train

    full = load_dataset("digits", "train")
    data = TensorImageDataset("digits", "train", full.class_names, full.images[:128], full.labels[:128])
    test = TensorImageDataset("digits", "test", full.class_names, full.images[64:76], full.labels[64:76])
    # No BatchNorm: per-process batch statistics are the one thing DDP does not reproduce.
    model = nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(192, 32), HHReLU(0.5), nn.Linear(32, 10))
    config = TrainConfig(recipe="all", epochs=8, batch_size=16, seed=5)  # long enough for ψ to move
    result = train(config, data, test, model=model, checkpoint_path=sys.argv[1] + ".pt")
    # ARA on the one-process weights in both runs: the search is sensitive to 1e-7 weight changes,
    # so the sharding is checked on identical weights.
    scored = result.model
    if len(sys.argv) > 2:
        scored.load_state_dict(load_checkpoint(sys.argv[2])["state_dict"])
    ara = evaluate_ara(scored, test, steps=60, size=5.0, batch_size=4, ctx=init_distributed("cpu"))
    if int(os.environ.get("RANK", "0")) == 0:
        state = {{k: v.tolist() for k, v in result.model.state_dict().items()}}
        json.dump({{"state": state, "psi": result.payload["psi_state"], "rho": ara.rho_star_attack.tolist(),
                   "btr": ara.rho_star_btr.tolist()}}, open(sys.argv[1], "w"))
    if dist.is_initialized():  # both ranks leave together: a rank that exits first can abort gloo's other
        dist.barrier()
        dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(root=str(ROOT)))
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, str(script), str(one)], check=True, env=env, timeout=300)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
    port = ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    subprocess.run([*torchrun, *port, str(script), str(two), f"{one}.pt"], check=True, env=env, timeout=300)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["psi"]["integral"] > 0  # the controller acted (on the all-reduced cross-entropy)
    # float32 CE averaging over 64 batches (4e-5 seen with torch 2.14 on CPU, a gap older than this tolerance)
    assert a["psi"]["integral"] == pytest.approx(b["psi"]["integral"], rel=2e-4)
    for key in a["state"]:
        torch.testing.assert_close(
            torch.tensor(b["state"][key]), torch.tensor(a["state"][key]), rtol=1e-4, atol=1e-5
        )
    assert sum(r > 0 for r in a["rho"]) >= 6
    # ARA sharded over the two processes (batches 0, 2 on rank 0; 1 on rank 1) = one process.
    assert b["rho"] == a["rho"] and b["btr"] == a["btr"]


# --------------------------------------------------------------------------- shipped checkpoints


def test_shipped_digits_checkpoints_match_the_manifest() -> None:
    manifest_path = ROOT / "checkpoints" / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip("checkpoints/manifest.json not written yet")
    from advexp_core.networks.registry import load_model
    from advexp_core.training.loop import evaluate_accuracy

    manifest = json.loads(manifest_path.read_text())
    test = load_dataset("digits", "test")
    for entry in manifest["networks"]:
        path = ROOT / entry["file"]
        assert sha256_file(path) == entry["sha256"], entry["id"]
        loaded = load_model(entry["id"], device="cpu")
        assert evaluate_accuracy(loaded.module, test) == pytest.approx(entry["test_accuracy"], abs=1e-9)
        assert "optimizer" not in load_checkpoint(path)
        assert entry["l_target"] == default_l_target(entry["arch"]["num_classes"]) == 1.5
