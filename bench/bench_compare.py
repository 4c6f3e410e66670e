"""Speed of the `compare` pipeline, IG memory, and the saliency-under-attack figures.

Ratios measured in one run, medians over interleaved repeats:
  (c1) our compare pipeline (attack + Grad-CAM + IG on clean and attacked in one batched call +
       map metrics) against the bare forward+backward passes it needs, with the same batch shapes
       (target <= 1.25); the full CLI run (figure + files) is shown too;
  (c2) the same against a naive composition with the usual libraries' defaults: torchattacks PGD,
       captum LayerGradCam and IntegratedGradients (n_steps=50, one batch), clean and attacked
       explained separately (target >= 1.5x faster); also with IG at our 32 steps, for fairness;
  (c3) peak memory of IG at 224 px (EfficientNet-Lite0, clean + attacked), ours vs captum's default,
       each in a fresh process (CUDA: max_memory_allocated; CPU: growth of the peak RSS);
  (gallery) on gallery/*.jpg with the default model and compare's defaults (L∞ 2/255, 20-step PGD):
       flips, 8-bit PNG flips, median Spearman clean vs attacked for IG and Grad-CAM, and the share
       of |δ|² outside Grad-CAM's top 20 %.

    .venv/bin/python -m bench.bench_compare                    # c1, c2 on EfficientNet-Lite0 (224 px)
    .venv/bin/python -m bench.bench_compare --model woods2019-cifar10-standard
    .venv/bin/python -m bench.bench_compare --memory --gallery --skip-speed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

os.environ.setdefault("ADVEXP_OFFLINE", "1")

from advexp_core.data.imaging import decode_image, encode_png, prepare_image  # noqa: E402
from advexp_core.experiments import AttackConfig, SaliencyConfig, saliency_under_attack
from advexp_core.measures import metrics  # noqa: E402
from advexp_core.methods.gradient_maps import _PIXEL_BUDGET  # noqa: E402
from advexp_core.networks.registry import DEFAULT_MODEL_ID, LoadedModel, load_model  # noqa: E402
from advexp_core.plots.figures import (
    figure_png,  # noqa: E402
    under_attack_figure,
)

ROOT = Path(__file__).resolve().parent.parent

GALLERY = ROOT / "gallery"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


ATTACK, SALIENCY = AttackConfig(), SaliencyConfig()  # compare's defaults


def read_image_for_model(path: Path, model: LoadedModel) -> Tensor:
    """An image file fitted to the model's input, on its device."""
    return prepare_image(decode_image(path.read_bytes()), model).to(model.device)


def ours(model: LoadedModel, image: Tensor, attack: AttackConfig, saliency: SaliencyConfig) -> dict:
    """The compare experiment without the figure and files: attack, batched maps, metrics."""
    return saliency_under_attack(model, image, attack, saliency).metrics


def full_run(
    model: LoadedModel, image: Tensor, attack: AttackConfig, saliency: SaliencyConfig, out: Path
) -> dict:
    """The experiment plus what `advexp compare` adds: the figure and the three files."""
    result = saliency_under_attack(model, image, attack, saliency)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adversarial.png").write_bytes(encode_png(result.example.adversarial))
    (out / "figure.png").write_bytes(figure_png(under_attack_figure(result)))
    report = result.to_json()
    (out / "result.json").write_text(json.dumps(report))
    return report


def pass_plan(model: LoadedModel, attack: AttackConfig, saliency: SaliencyConfig) -> list[tuple[int, bool]]:
    """(batch size, with backward) of every pass the pipeline needs, in our batch shapes."""
    h, w = model.input_size
    plan = [(1, False)]  # the clean top-1 (the label to move away from)
    plan += [(1, True)] * attack.steps + [(1, False), (1, False)]  # PGD steps; final and 8-bit PNG check
    methods = saliency.methods
    if "gradcam" in methods:
        plan.append((2, True))
    if "ig" in methods:
        per_chunk = 2 * max(1, min(saliency.ig_steps, _PIXEL_BUDGET // (h * w * 2)))
        total = 2 * saliency.ig_steps
        plan += [(min(per_chunk, total - i), True) for i in range(0, total, per_chunk)]
        plan += [(2, False), (2, False)]  # f(x) and f(baseline) for the completeness check
    if "gradient" in methods:
        plan.append((2, True))
    return plan


def bare_passes(model: LoadedModel, image: Tensor, plan: list[tuple[int, bool]]) -> None:
    """Only the network work: forward (+ input-gradient backward) at each planned batch size."""
    for batch, backward in plan:
        x = image[None].expand(batch, -1, -1, -1).clone().requires_grad_(backward)
        if backward:
            out = model.module(x)
            torch.autograd.grad(F.cross_entropy(out, out.argmax(1)), x)
        else:
            with torch.no_grad():
                model.module(x)


def naive(model: LoadedModel, image: Tensor, ig_steps: int = 50) -> dict:
    """torchattacks + captum with their defaults, clean and attacked explained separately."""
    import torchattacks
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam

    module, x = model.module, image[None]
    eps, steps = ATTACK.eps(model.input_size), ATTACK.steps
    with torch.no_grad():
        label = module(x).argmax(1)
    adv = torchattacks.PGD(module, eps=eps, alpha=2.5 * eps / steps, steps=steps)(x, label)
    with torch.no_grad():
        after = module(adv).argmax(1)
    maps = {}
    for name in SALIENCY.methods:
        pair = []
        for img, target in ((x, label), (adv, after)):
            if name == "gradcam":
                a = LayerGradCam(module, model.gradcam_layer).attribute(
                    img, target=target, relu_attributions=True
                )
                pair.append(
                    LayerAttribution.interpolate(a, tuple(x.shape[-2:]), interpolate_mode="bilinear")[0, 0]
                )
            else:
                a = IntegratedGradients(module).attribute(img, target=target, n_steps=ig_steps)
                pair.append(a[0].abs().sum(0))
        maps[name] = metrics.compare_maps(pair[0], pair[1], (adv - x)[0])
    return maps


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def speed(model_id: str, repeats: int) -> None:
    model = load_model(model_id)
    device = model.device
    image = read_image_for_model(GALLERY / "cat.jpg", model)
    out = Path(tempfile.mkdtemp()) / "out"
    plan = pass_plan(model, ATTACK, SALIENCY)
    variants: dict[str, Callable[[], object]] = {
        "bare fwd+bwd passes": lambda: bare_passes(model, image, plan),
        "ours (attack+maps+metrics)": lambda: ours(model, image, ATTACK, SALIENCY),
        "ours, full CLI (+figure, files)": lambda: full_run(model, image, ATTACK, SALIENCY, out),
        "naive torchattacks+captum (IG 50)": lambda: naive(model, image),
        "naive, IG at 32 steps": lambda: naive(model, image, ig_steps=SALIENCY.ig_steps),
    }
    for fn in variants.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    n_img = sum(b for b, _ in plan)
    print(f"model {model_id} on {device}, threads {torch.get_num_threads()}, repeats {repeats}")
    print(
        f"methods {','.join(SALIENCY.methods)}, PGD {ATTACK.steps} steps, IG {SALIENCY.ig_steps} steps; "
        f"plan: {len(plan)} passes, {n_img} images"
    )
    for name, t in med.items():
        print(f"  {name:36s} {t:8.3f} s")
    base, mine = med["bare fwd+bwd passes"], med["ours (attack+maps+metrics)"]
    print(f"(c1) ours / bare passes             = {mine / base:.3f}   (target <= 1.25)")
    print(f"     full CLI / bare passes         = {med['ours, full CLI (+figure, files)'] / base:.3f}")
    print(
        f"(c2) naive (defaults) / ours        = {med['naive torchattacks+captum (IG 50)'] / mine:.2f}x  (target >= 1.5)"
    )
    print(f"     naive (IG 32 steps) / ours     = {med['naive, IG at 32 steps'] / mine:.2f}x")


def memory_worker(variant: str) -> None:
    """Run one IG variant on clean + attacked-sized input in this fresh process; print peak bytes."""
    from captum.attr import IntegratedGradients

    from advexp_core.methods.gradient_maps import integrated_gradients

    model = load_model(DEFAULT_MODEL_ID)
    device = model.device
    x = read_image_for_model(GALLERY / "cat.jpg", model)[None].expand(2, -1, -1, -1).clone()
    with torch.no_grad():
        model.module(x)  # allocator and weights warm
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if variant == "ours":
        integrated_gradients(model.module, x, 0, n_steps=SALIENCY.ig_steps)
    else:
        IntegratedGradients(model.module).attribute(x, target=0, n_steps=50)  # captum defaults
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    print(json.dumps({"variant": variant, "peak_bytes": peak, "device": str(device)}))


def memory() -> None:
    for variant in ("ours", "captum-default"):
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_compare", "--_memory-worker", variant],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        label = (
            "ours (IG 32 steps, bounded batches)"
            if variant == "ours"
            else "captum default (IG 50 steps, one batch)"
        )
        print(
            f"(c3) IG peak memory at 224 px, 2 images, {label}: {row['peak_bytes'] / 2**20:.0f} MiB on {row['device']}"
        )


def gallery() -> None:
    model = load_model(DEFAULT_MODEL_ID)
    rows = []
    for path in sorted(GALLERY.glob("*.jpg")):
        image = read_image_for_model(path, model)
        result = saliency_under_attack(model, image, ATTACK, SALIENCY)
        report, numbers = result.to_json(), result.metrics
        rows.append((path.name, report["success"], report["png_success"], numbers))
        n = numbers
        print(
            f"  {path.name:16s} flipped {rows[-1][1]!s:5s} png {rows[-1][2]!s:5s} "
            f"Spearman IG {n['ig']['spearman']:.3f} Grad-CAM {n['gradcam']['spearman']:.3f} "
            f"|δ|² outside Grad-CAM top-20% {1 - n['gradcam']['delta_energy_in_topk']:.3f}"
        )
    med = statistics.median
    print(f"gallery: {len(rows)} photos, {DEFAULT_MODEL_ID}, PGD L∞ 2/255 20 steps (compare defaults)")
    print(
        f"  flipped {sum(r[1] for r in rows)}/{len(rows)}, still flipped as 8-bit PNG {sum(r[2] for r in rows)}/{len(rows)}"
    )
    print(
        f"  median Spearman clean vs attacked: IG {med(r[3]['ig']['spearman'] for r in rows):.3f}, "
        f"Grad-CAM {med(r[3]['gradcam']['spearman'] for r in rows):.3f}"
    )
    print(
        f"  median share of |δ|² outside Grad-CAM's top 20 %: "
        f"{med(1 - r[3]['gradcam']['delta_energy_in_topk'] for r in rows):.3f} (0.80 if spread evenly)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL_ID)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--memory", action="store_true", help="(c3) IG peak memory at 224 px")
    parser.add_argument(
        "--gallery", action="store_true", help="saliency-under-attack figures on gallery/*.jpg"
    )
    parser.add_argument("--_memory-worker", dest="memory_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        memory_worker(args.memory_worker)
        return
    if not args.skip_speed:
        speed(args.model, args.repeats)
    if args.memory:
        memory()
    if args.gallery:
        gallery()


if __name__ == "__main__":
    main()
