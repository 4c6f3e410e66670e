"""LIME and occlusion speed against bare forward passes, measured in one run.

Both explainers only run the model forward, so their floor is the forward passes themselves.
For each explainer this times the whole call and the same number of images pushed through the
model in the same number of batched, gradient-free forward calls, and prints the ratio
(target: <= 1.2) and the seconds (target for LIME: about 10 s per 224-px image on 2 CPU cores).

    .venv/bin/python -m bench.bench_perturbation
    .venv/bin/python -m bench.bench_perturbation --repeats 5 --n-samples 64 --device cuda

Timings are medians over ``--repeats`` runs, interleaved so that machine load hits every variant.
CPU seconds (this process, all threads) are printed beside wall seconds: on a shared machine the
wall time mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.methods.maps import SaliencyMap
from advexp_core.methods.perturbation import BATCH_SIZE, LIME_SAMPLES, lime, occlusion
from advexp_core.networks.registry import load_model

ROOT = Path(__file__).resolve().parent.parent


def bare_forwards(module: nn.Module, image: Tensor, passes: int, images: int) -> None:
    """`images` copies of the image through the module in `passes` near-equal no-grad batches."""
    sizes = [images // passes + (1 if k < images % passes else 0) for k in range(passes)]
    with torch.no_grad():
        for size in sizes:
            module(image[None].expand(size, -1, -1, -1).contiguous())


def _medians(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (median wall seconds, median CPU seconds of this process, all threads)."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0-imagenet")
    parser.add_argument("--image", default=str(ROOT / "gallery" / "cat.jpg"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=LIME_SAMPLES)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    args = parser.parse_args()

    model = load_model(args.model, device=args.device)
    image = prepare_image(decode_image(Path(args.image).read_bytes()), model).to(model.device)
    with torch.no_grad():
        target = int(model.module(image[None]).argmax())
    explainers: dict[str, Callable[[], SaliencyMap]] = {
        "lime": lambda: lime(
            model.module, image[None], target, n_samples=args.n_samples, batch_size=args.batch_size
        ),
        "occlusion": lambda: occlusion(model.module, image[None], target, batch_size=args.batch_size),
    }
    print(
        f"{args.model} on {Path(args.image).name} ({tuple(image.shape[-2:])} px), device {args.device}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}, class {model.class_names[target]!r}"
    )
    for name, explain in explainers.items():
        extra = explain().extra  # warm-up, and the forward counts to match
        passes, images = extra["forward_passes"], extra["forward_images"]
        t = _medians(
            {name: explain, "bare": lambda p=passes, n=images: bare_forwards(model.module, image, p, n)},
            args.repeats,
        )
        details = ", ".join(
            f"{k}={extra[k]}" for k in ("n_samples", "n_segments", "window", "stride") if k in extra
        )
        print(f"  {name:<9} {details}")
        print(f"    {images} images in {passes} forward calls")
        for kind, k in (("wall", 0), ("CPU ", 1)):
            ours, bare = t[name][k], t["bare"][k]
            print(
                f"    {kind}: explainer {ours:7.2f} s   bare forwards {bare:7.2f} s   ratio {ours / bare:.2f}"
            )


if __name__ == "__main__":
    main()
