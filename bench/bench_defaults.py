"""Could the pages' saliency defaults be cheaper and still as good? Measured on the gallery photos.

Integrated Gradients' cost is its steps, SmoothGrad's its noisy copies. For each gallery photo and
its attacked copy (the attack page's default PGD), as the attack page explains them (each image for
its own top-1 class), this prints per setting:

- IG: the completeness error |Σ attributions − (f(x) − f(baseline))| / |f(x) − f(baseline)|
  (captum's convergence delta, relative), and the Spearman rank correlation of the map with the
  map at ``--ig-reference`` steps;
- SmoothGrad: the map's stability, the Spearman correlation between two maps from different noise
  seeds, and its correlation with the map of ``--sg-reference`` copies.

A default may only get cheaper where these say the map stays as good (docs/method.md §4 step 1).

    .venv/bin/python -m bench.bench_defaults [--ig-steps 8,16,32,64] [--sg-samples 4,8,16,32]

The server's thread setting is used (`advexp_ui.loaders.intra_op_threads`); seconds are per call
on clean + attacked together.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

import torch

logging.getLogger("streamlit").setLevel(logging.ERROR)  # its caches warn that no app runs here
from advexp_core.data.imaging import decode_image  # noqa: E402
from advexp_core.experiments import AttackConfig, SaliencyConfig  # noqa: E402
from advexp_core.experiments.maps import method_kwargs  # noqa: E402
from advexp_core.experiments.under_attack import adversarial_example  # noqa: E402
from advexp_core.measures import metrics  # noqa: E402
from advexp_core.methods.saliency import explain  # noqa: E402
from advexp_core.networks.registry import DEFAULT_MODEL_ID, load_model  # noqa: E402
from advexp_ui.loaders import intra_op_threads  # noqa: E402 - after the logging setting above

ROOT = Path(__file__).resolve().parent.parent


def _pairs(model) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(photo name, clean + attacked images (2, 3, h, w), their top-1 classes) per gallery photo."""
    out = []
    for path in sorted((ROOT / "gallery").glob("*.jpg")):
        example = adversarial_example(model, decode_image(path.read_bytes()), AttackConfig())
        both = torch.stack([example.image, example.adversarial]).to(model.device)
        attack = example.attack
        targets = torch.cat([attack.logits_before.argmax(1), attack.logits_after.argmax(1)])
        out.append((path.stem, both, targets.to(model.device)))
    return out


def _maps(model, method: str, images: torch.Tensor, targets: torch.Tensor, config: SaliencyConfig):
    """One method's maps of both images as the attack page makes them, and the call's seconds."""
    start = time.perf_counter()
    result = explain(
        model.module,
        images,
        targets,
        method=method,
        **method_kwargs(method, config, None, images.shape[-2:], device=model.device),
    )
    return result, time.perf_counter() - start


def _row(
    label: str, seconds: list[float], first: list[float], second: list[float], names: tuple[str, str]
) -> str:
    return (
        f"{label:>14} {statistics.median(seconds):8.2f}   {names[0]} median {statistics.median(first):.3f} "
        f"max {max(first):.3f}   {names[1]} median {statistics.median(second):.3f} min {min(second):.3f}"
    )


def ig_table(model, pairs, steps: list[int], reference: int) -> None:
    """Completeness error and agreement with the reference map, per IG step count."""
    print(f"Integrated Gradients ({len(pairs)} photos, clean + attacked; reference {reference} steps)")
    refs, ref_seconds = zip(
        *(_maps(model, "ig", x, t, SaliencyConfig(ig_steps=reference)) for _, x, t in pairs), strict=True
    )
    with torch.no_grad():
        gaps = [
            (model.module(x) - model.module(torch.zeros_like(x))).gather(1, t[:, None])[:, 0].abs()
            for _, x, t in pairs
        ]
    for n in [*steps, reference]:
        seconds, errors, agreement = [], [], []
        for (_, x, t), ref, ref_s, gap in zip(pairs, refs, ref_seconds, gaps, strict=True):
            result, s = (
                _maps(model, "ig", x, t, SaliencyConfig(ig_steps=n)) if n != reference else (ref, ref_s)
            )
            seconds.append(s)
            errors += (result.extra["convergence_delta"].abs() / gap).tolist()
            agreement += [metrics.spearman(result.maps[i], ref.maps[i]) for i in range(len(x))]
        print(_row(f"{n} steps", seconds, errors, agreement, ("completeness error", "Spearman vs reference")))


def smoothgrad_table(model, pairs, samples: list[int], reference: int) -> None:
    """Stability across noise seeds and agreement with the reference map, per SmoothGrad sample count."""
    print(f"SmoothGrad ({len(pairs)} photos, clean + attacked; reference {reference} copies)")
    refs = [
        _maps(model, "smoothgrad", x, t, SaliencyConfig(smoothgrad_samples=reference))[0] for _, x, t in pairs
    ]
    for n in samples:
        seconds, stability, agreement = [], [], []
        for (_, x, t), ref in zip(pairs, refs, strict=True):
            a, s = _maps(model, "smoothgrad", x, t, SaliencyConfig(smoothgrad_samples=n, seed=1))
            b, _ = _maps(model, "smoothgrad", x, t, SaliencyConfig(smoothgrad_samples=n, seed=2))
            seconds.append(s)
            stability += [metrics.spearman(a.maps[i], b.maps[i]) for i in range(len(x))]
            agreement += [metrics.spearman(a.maps[i], ref.maps[i]) for i in range(len(x))]
        print(
            f"{n:>7} copies {statistics.median(seconds):8.2f}   seed-to-seed Spearman median "
            f"{statistics.median(stability):.3f} min {min(stability):.3f}   Spearman vs reference median "
            f"{statistics.median(agreement):.3f} min {min(agreement):.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ig-steps", default="8,16,32,64", help="IG step counts, comma-separated")
    parser.add_argument("--ig-reference", type=int, default=128)
    parser.add_argument("--sg-samples", default="4,8,16,32", help="SmoothGrad copies, comma-separated")
    parser.add_argument("--sg-reference", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(intra_op_threads())
    model = load_model(DEFAULT_MODEL_ID)
    defaults = SaliencyConfig()
    print(
        f"{model.model_id} on {model.device}, {torch.get_num_threads()} threads; page defaults: "
        f"IG {defaults.ig_steps} steps, SmoothGrad {defaults.smoothgrad_samples} copies"
    )
    print(f"{'setting':>14} {'s/call':>8}")
    pairs = _pairs(model)
    ig_table(model, pairs, [int(n) for n in args.ig_steps.split(",")], args.ig_reference)
    smoothgrad_table(model, pairs, [int(n) for n in args.sg_samples.split(",")], args.sg_reference)


if __name__ == "__main__":
    main()
