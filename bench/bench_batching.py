"""Would batching the runs of one network from different sessions pay? Measured, not assumed.

A server that gets the same attack from B visitors at once could run one PGD on a batch of B
images instead of B single-image runs. This prints, for the default network on this machine's
device (CUDA when present, as the server), the seconds of B single-image PGD runs against one
PGD on the batch of B, and the bare forward+backward cost per image at each batch size, all in
one run. A ratio under 1 means batching is faster.

    .venv/bin/python -m bench.bench_batching [--batches 1,2,4,8] [--steps 20] [--repeats 3]

The server's thread setting is used (`advexp_ui.loaders.intra_op_threads`). Timings are the
fastest of ``--repeats`` (other load on a shared machine only ever adds time).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.experiments import AttackConfig
from advexp_core.methods.attacks import pgd
from advexp_core.networks.registry import DEFAULT_MODEL_ID, load_model
from advexp_ui.loaders import intra_op_threads
from bench.bench_compare import timed

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,2,4,8", help="batch sizes B, comma-separated")
    parser.add_argument(
        "--steps", type=int, default=AttackConfig().steps, help="PGD steps (the page's default)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(intra_op_threads())
    model = load_model(DEFAULT_MODEL_ID)
    device, module = model.device, model.module
    photos = sorted((ROOT / "gallery").glob("*.jpg"))
    images = torch.stack([prepare_image(decode_image(p.read_bytes()), model) for p in photos]).to(device)
    images = images.repeat(-(-max(batches) // len(images)), 1, 1, 1)
    with torch.no_grad():
        labels = module(images).argmax(1)
    eps = AttackConfig().eps(model.input_size)
    print(
        f"{model.model_id} on {device}, {torch.get_num_threads()} threads, PGD {args.steps} steps, ε {eps:.5f}"
    )
    print(
        f"{'B':>3} {'B runs of 1 (s)':>16} {'1 run of B (s)':>15} {'batched/single':>15} {'fwd+bwd ms/img':>15}"
    )

    def attack(x: torch.Tensor, y: torch.Tensor) -> None:
        pgd(module, x, y, eps=eps, steps=args.steps)

    def passes(x: torch.Tensor) -> None:
        xx = x.clone().requires_grad_(True)
        torch.autograd.grad(module(xx)[:, 0].sum(), xx)

    attack(images[:1], labels[:1])  # warm-up
    for b in batches:
        row = measure(attack, passes, images[:b], labels[:b], device, args.repeats)
        print(f"{b:3d} {row[0]:16.2f} {row[1]:15.2f} {row[1] / row[0]:15.2f} {1000 * row[2] / b:15.0f}")


def measure(attack, passes, x: torch.Tensor, y: torch.Tensor, device: torch.device, repeats: int):
    """Seconds of len(x) single-image attacks, of one batched attack, of one bare batched pass."""
    single = min(
        timed(lambda: [attack(x[i : i + 1], y[i : i + 1]) for i in range(len(x))], device)
        for _ in range(repeats)
    )
    batched = min(timed(lambda: attack(x, y), device) for _ in range(repeats))
    return single, batched, min(timed(lambda: passes(x), device) for _ in range(repeats))


if __name__ == "__main__":
    main()
