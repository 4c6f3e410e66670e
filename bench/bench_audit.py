"""Shortcut audit speed: N images at 224 px with the default explainers and the adversarial
explanation, on the default ImageNet network (EfficientNet-Lite0), against the bare forward+backward
passes the audit needs, measured in the same run.

    ADVEXP_THREADS=1 .venv/bin/python -m bench.bench_audit [--n-images 50]

The images are the gallery photos (cycled), each with a "ruler" strip marked along its bottom edge;
half carry it, the other half receive it pasted. Progress goes to stderr. The reference counts, per
image, one forward+backward pass per gradient, Grad-CAM, IG step, SmoothGrad sample and
adversarial-explanation step (1 + 1 + 32 + 16 + 35), timed on a sample of passes and scaled up.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from advexp_core.base.runtime import use_compute_threads
from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.data.interventions import Artifact
from advexp_core.experiments.audit import AuditConfig, audit
from advexp_core.experiments.configs import SaliencyConfig
from advexp_core.networks.registry import load_model

ROOT = Path(__file__).resolve().parent.parent

SAMPLE_PASSES = 20


def passes_per_image(config: AuditConfig) -> int:
    saliency = SaliencyConfig()
    cost = {"gradient": 1, "gradcam": 1, "ig": saliency.ig_steps, "smoothgrad": saliency.smoothgrad_samples}
    return sum(cost.get(m, 0) for m in config.methods) + (config.steps if config.adversarial else 0)


def reference_seconds_per_pass(model_module: torch.nn.Module, image: torch.Tensor) -> float:
    x = image[None].clone().requires_grad_(True)
    model_module(x)[0, 0].backward()  # warm-up
    start = time.perf_counter()
    for _ in range(SAMPLE_PASSES):
        x = image[None].clone().requires_grad_(True)
        torch.autograd.grad(model_module(x)[0].max(), x)
    return (time.perf_counter() - start) / SAMPLE_PASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=50)
    args = parser.parse_args()
    threads = use_compute_threads()
    model = load_model("efficientnet-lite0-imagenet", device="cpu")
    photos = sorted(p for p in (ROOT / "gallery").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = [
        prepare_image(decode_image(photos[k % len(photos)].read_bytes()), model) for k in range(args.n_images)
    ]
    strip = torch.zeros(224, 224, dtype=torch.bool)
    strip[206:218, 40:184] = True  # a 144×12 px strip near the bottom edge
    masks = [strip if k % 2 == 0 else None for k in range(args.n_images)]
    marked = images[0].clone()
    marked[:, strip] = torch.tensor([0.95, 0.85, 0.2])[:, None]  # a yellow bar to paste
    config = AuditConfig()
    n = len(images)

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} ({time.perf_counter() - start:.0f} s)", end="", file=sys.stderr, flush=True)

    start = time.perf_counter()
    audit(model, images, masks, artifact=Artifact(marked, strip), config=config, on_step=progress)
    seconds = time.perf_counter() - start
    print(file=sys.stderr)
    per_pass = reference_seconds_per_pass(model.module, images[0])
    reference = per_pass * passes_per_image(config) * n
    print(
        f"audit of {n} images at 224 px (EfficientNet-Lite0, {', '.join(config.methods)} + adversarial "
        f"explanation, {threads} thread(s)): {seconds:.1f} s ({seconds / n:.2f} s per image); bare "
        f"forward+backward passes it needs ({passes_per_image(config)} per image at {per_pass * 1000:.0f} ms): "
        f"{reference:.1f} s; ratio {seconds / reference:.2f}"
    )


if __name__ == "__main__":
    main()
