"""Benchmarks for training and ARA, as ratios measured in one run on this machine.

1. One training step of each recipe against one standard step (the robust step's double backprop
   should cost about 2–3×), for the digits network and the paper's ResNet-44.
2. ARA search throughput: batched against a per-image loop (target ≥ 5×).
3. DDP on gloo: one epoch with 2 processes against 1 process, same global batch.

Run: .venv/bin/python -m bench.bench_training [--quick]
Every measurement uses one intra-op thread per process (2 processes = the 2 cores here).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from advexp_core.data.datasets import load_dataset
from advexp_core.methods.ara import evaluate_ara, robustness_radii
from advexp_core.networks.architectures import WoodsResNet
from advexp_core.training.robust import (
    PsiState,
    adversarial_images,
    draw_penalty_choice,
    lipschitz_penalty,
    update_psi,
)

ROOT = Path(__file__).resolve().parent.parent


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Minimum wall time of ``repeats`` calls after one warm-up (the least-disturbed run on a shared CPU)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def step_costs(net: WoodsResNet, batch: int, repeats: int) -> dict[str, float]:
    """Seconds per optimiser step for each recipe on one random batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, generator=gen)
    y = torch.randint(10, (batch,), generator=gen)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    net.train()

    def step(images: torch.Tensor, robust: bool) -> None:
        images = images.detach().requires_grad_(robust)
        logits = net(images)
        loss = F.cross_entropy(logits, y)
        if robust:
            psi = update_psi(PsiState(), float(loss.detach()))
            choice = draw_penalty_choice(batch, 10, generator=gen)
            loss = loss + lipschitz_penalty(logits, images, y, choice, psi=psi.psi)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    half = torch.rand(batch, generator=gen) < 0.5
    return {
        "standard": best_of(lambda: step(x, False), repeats),
        "robust": best_of(lambda: step(x, True), repeats),
        "adv-train": best_of(lambda: step(adversarial_images(net, x, y, mode="l2"), False), repeats),
        "all": best_of(
            lambda: step(adversarial_images(net, x, y, mode="l2min", perturb=half), True), repeats
        ),
    }


def bench_steps(quick: bool) -> None:
    print("1. training step cost (batch 128, 32x32, 1 thread); ratio = recipe / standard")
    nets = {"digits net (1,1,1)x(8,16,32)": WoodsResNet((1, 1, 1), (8, 16, 32), activation="hhrelu")}
    if not quick:
        nets["ResNet-44 (7,7,7)x(16,32,64)"] = WoodsResNet((7, 7, 7), (16, 32, 64), activation="hhrelu")
    for name, net in nets.items():
        costs = step_costs(net, 128, repeats=2 if quick else 3)
        ratios = ", ".join(f"{k} {v:.3f} s ({v / costs['standard']:.2f}x)" for k, v in costs.items())
        print(f"   {name}: {ratios}")


def bench_ara(quick: bool) -> None:
    n, loop_n, steps = (32, 4, 20) if quick else (128, 16, 30)
    print(
        f"2. ARA search throughput, digits net (eval mode), {steps} steps x 2 boundaries: one batch of {n} "
        f"vs a per-image loop (timed on {loop_n} images; the per-image cost does not depend on N)"
    )
    net = WoodsResNet((1, 1, 1), (8, 16, 32), activation="hhrelu").eval().requires_grad_(False)
    data = load_dataset("digits", "test")

    def batched() -> None:
        evaluate_ara(net, data, n_images=n, steps=steps, size=20.0, batch_size=n)

    def per_image() -> None:
        for i in range(loop_n):
            for boundary in ("attack", "btr"):
                x, y = data.images[i : i + 1], data.labels[i : i + 1]
                robustness_radii(net, x, y, boundary=boundary, steps=steps)

    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        batch_rate = n * 2 * steps / best_of(batched, 1)
        loop_rate = loop_n * 2 * steps / best_of(per_image, 1)
        print(
            f"   {threads} thread(s): batched {batch_rate:.0f} image-steps/s, per-image loop {loop_rate:.0f} "
            f"image-steps/s: {batch_rate / loop_rate:.1f}x (target >= 5x)"
        )
    torch.set_num_threads(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train_seconds(launcher: list[str], out: Path, recipe: str, epochs: int) -> float:
    """Run ``launcher train …`` and return the training seconds it reports (start-up excluded)."""
    args = ["train", "--dataset", "digits", "--recipe", recipe, "--epochs", str(epochs), "--out", str(out)]
    args += ["--num-blocks", "1,1,1", "--widths", "8,16,32", "--batch-size", "128", "--quiet", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*launcher, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["train_seconds"])


def bench_ddp(quick: bool) -> None:
    recipe, epochs = ("standard", 1) if quick else ("robust", 2)
    print(
        f"3. DDP (gloo, CPU): recipe {recipe}, {epochs} epoch(s) of digits, global batch 128, 1 thread/process"
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
    torchrun += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    with tempfile.TemporaryDirectory() as tmp:
        one = _train_seconds([sys.executable, "-m", "advexp_core"], Path(tmp) / "one.pt", recipe, epochs)
        two = _train_seconds([*torchrun, "-m", "advexp_core"], Path(tmp) / "two.pt", recipe, epochs)
    print(
        f"   1 process {one:.1f} s, 2 processes {two:.1f} s: speed-up {one / two:.2f}x (ideal 2x on 2 idle cores)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    bench_steps(args.quick)
    bench_ara(args.quick)
    bench_ddp(args.quick)


if __name__ == "__main__":
    main()
