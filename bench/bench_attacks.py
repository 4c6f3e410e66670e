"""Attack-engine speed, as ratios measured in one run: (a) and (b) below.

(a) our ``pgd`` against torchattacks' ``PGD`` on the same model, images and steps (target <= 1.0);
(b) our ``pgd`` against the same number of bare forward+backward passes (target <= 1.10).

Our ``pgd`` call is timed whole: it also evaluates the final images, writes and reads them back as
8-bit PNGs for the decision check, and computes PSNR/SSIM; torchattacks returns images only.
The "loop" rows time the same call minus that report (``_projected_attack`` internals are not
exposed, so the report cost is measured separately and subtracted).

    ADVEXP_WEIGHTS_DIR=<folder of the published networks> .venv/bin/python -m bench.bench_attacks
    .venv/bin/python -m bench.bench_attacks --imagenet          # also EfficientNet-Lite0 at 224 px
    .venv/bin/python -m bench.bench_attacks --gallery           # does L∞ 2/255 PGD flip every photo?

Timings: the fastest of ``--repeats`` interleaved runs (other load on the machine only ever adds
time, so the minimum is the least noisy estimate; timeit's advice); medians are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.data.imaging import decode_image, png_roundtrip, prepare_image
from advexp_core.measures.metrics import psnr, ssim
from advexp_core.methods.attacks import pgd
from advexp_core.networks.registry import LoadedModel, load_model
from bench.bench_compare import timed  # one timer for the benchmarks

ROOT = Path(__file__).resolve().parent.parent


def bare_passes(model: nn.Module, images: Tensor, labels: Tensor, steps: int) -> None:
    """``steps`` forward + backward passes with respect to the input, nothing else."""
    x = images.clone().requires_grad_(True)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), labels, reduction="sum")
        torch.autograd.grad(loss, x)


def report_only(model: nn.Module, images: Tensor, adversarial: Tensor) -> None:
    """What ``pgd`` adds after its loop for the result: PNG check, PSNR, SSIM."""
    with torch.no_grad():
        model(png_roundtrip(adversarial))
    psnr(images, adversarial)
    ssim(images, adversarial)


def measure(name: str, model: nn.Module, images: Tensor, labels: Tensor, steps: int, repeats: int) -> None:
    import torchattacks

    device = images.device
    eps = 2 / 255
    alpha = 2.5 * eps / steps
    attack = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    variants: dict[str, Callable[[], object]] = {
        "ours pgd()": lambda: pgd(model, images, labels, eps=eps, steps=steps, step_size=alpha),
        "torchattacks PGD": lambda: attack(images, labels),
        "bare fwd+bwd": lambda: bare_passes(model, images, labels, steps),
        "report only": lambda: report_only(model, images, images),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up (cudnn autotune, allocator, lazy imports)
        fn()
    for _ in range(repeats):
        for key, fn in variants.items():
            times[key].append(timed(fn, device))
    best = {k: min(v) for k, v in times.items()}
    loop = best["ours pgd()"] - best["report only"]
    print(f"\n== {name}: batch {images.shape[0]}, {tuple(images.shape[2:])} px, {steps} steps, {device} ==")
    for key, value in best.items():
        print(f"  {key:<18} {value * 1000:9.1f} ms  (median {statistics.median(times[key]) * 1000:9.1f} ms)")
    print(
        f"  (a) ours / torchattacks           {best['ours pgd()'] / best['torchattacks PGD']:.3f}  (target <= 1.0)"
    )
    print(f"      loop only / torchattacks      {loop / best['torchattacks PGD']:.3f}")
    print(
        f"  (b) ours / bare fwd+bwd           {best['ours pgd()'] / best['bare fwd+bwd']:.3f}  (target <= 1.10)"
    )
    print(f"      loop only / bare fwd+bwd      {loop / best['bare fwd+bwd']:.3f}")


def batch_of(model: LoadedModel, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` images at the model's input size (gallery photos or CIFAR test images, tiled, with
    a little fixed noise so that no two are identical) and the model's own labels."""
    h, w = model.input_size
    if h == 32:
        files = sorted(Path(os.environ["ADVEXP_WEIGHTS_DIR"]).glob("cifar10_test_*.png"))
    else:
        files = sorted((ROOT / "gallery").glob("*.jpg"))
    pool = [prepare_image(decode_image(f.read_bytes()), model) for f in files] or [torch.rand(3, h, w)]
    gen = torch.Generator().manual_seed(seed)
    images = torch.stack([pool[i % len(pool)] for i in range(n)])
    images = (images + 0.01 * torch.randn(images.shape, generator=gen)).clamp(0, 1).to(model.device)
    with torch.no_grad():
        labels = model.module(images).argmax(1)
    return images, labels


def gallery(steps: int) -> None:
    """L∞ 2/255, ``steps``-step PGD on every gallery photo with the default model."""
    model = load_model("efficientnet-lite0-imagenet")
    files = sorted((ROOT / "gallery").glob("*.jpg"))
    images = torch.stack([prepare_image(decode_image(f.read_bytes()), model) for f in files]).to(model.device)
    with torch.no_grad():
        labels = model.module(images).argmax(1)
    out = pgd(model.module, images, labels, eps=2 / 255, steps=steps)
    names = model.class_names
    print(f"\n== gallery, {model.model_id}, L∞ 2/255, {steps} steps, untargeted ==")
    for i, f in enumerate(files):
        before, after, png = labels[i], out.logits_after[i].argmax(), out.png_logits_after[i].argmax()
        p_after = out.logits_after[i].softmax(0)[after]
        print(
            f"  {f.name:<15} {names[before]:<22} -> {names[after]:<22} ({p_after:.2f})  "
            f"png: {names[png]:<22} flipped={bool(out.success[i])} png_flipped={bool(out.png_success[i])}  "
            f"L∞ {float(out.linf_255[i]):.2f}/255 PSNR {float(out.psnr[i]):.1f} dB SSIM {float(out.ssim[i]):.4f}"
        )
    print(
        f"  every top-1 flipped: {bool(out.success.all())}; also after 8-bit PNG: {bool(out.png_success.all())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=32, help="CIFAR batch size (default 32)")
    parser.add_argument("--imagenet-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--imagenet", action="store_true", help="also EfficientNet-Lite0 at 224 px")
    parser.add_argument("--gallery", action="store_true", help="PGD flips on the gallery photos")
    parser.add_argument("--skip-cifar", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}")
    if not args.skip_cifar:
        model = load_model("woods2019-cifar10-standard")
        images, labels = batch_of(model, args.batch)
        measure("woods2019-cifar10-standard", model.module, images, labels, args.steps, args.repeats)
    if args.imagenet:
        model = load_model("efficientnet-lite0-imagenet")
        images, labels = batch_of(model, args.imagenet_batch)
        measure("efficientnet-lite0-imagenet", model.module, images, labels, args.steps, args.repeats)
    if args.gallery:
        gallery(args.steps)


if __name__ == "__main__":
    main()
