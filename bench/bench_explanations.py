"""Adversarial-explanation speed, as ratios measured in one run: speed and figures.

(a) all 10 classes of one CIFAR-10 image in one batch vs one target at a time (target: >= 2x);
(b) the batched call vs the same number of bare forward+backward passes on the same batch
    (S passes plus the one forward that evaluates the result; target <= 1.10);
(c) seconds per explanation on the default ImageNet model (EfficientNet-Lite0, 224 px), top-5.

    ADVEXP_WEIGHTS_DIR=<folder of the published networks> .venv/bin/python -m bench.bench_explanations
    .venv/bin/python -m bench.bench_explanations --skip-imagenet --repeats 7
    .venv/bin/python -m bench.bench_explanations --table    # probabilities + structure, 4 paper nets
    .venv/bin/python -m bench.bench_explanations --contrast /tmp/contrast   # standard vs robust figures

Timings are medians over ``--repeats`` runs, interleaved so that machine load hits every variant.
The whole call of ``adversarial_explanation`` is timed: it also classifies the clean image to
resolve the targets, evaluates the final δ, and computes the per-target report.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.methods.explanations import TargetExplanation, adversarial_explanation
from advexp_core.networks.registry import LoadedModel, load_model

ROOT = Path(__file__).resolve().parent.parent

STEPS = 35


def bare_passes(model: nn.Module, image: Tensor, labels: Tensor, steps: int) -> None:
    """What the explanation cannot avoid: S forward+backward passes on the batch, one final forward."""
    x = image[None].repeat(len(labels), 1, 1, 1).requires_grad_(True)
    for _ in range(steps):
        torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)
    with torch.no_grad():
        model(x)


def _medians(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        fn()
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_cifar(model_id: str, repeats: int) -> None:
    model = load_model(model_id, device="cpu")
    image = decode_image((Path(os.environ["ADVEXP_WEIGHTS_DIR"]) / "cifar10_test_2.png").read_bytes())
    labels = torch.arange(10)
    t = _medians(
        {
            "batched": lambda: adversarial_explanation(
                model.module, image, "all", steps=STEPS, class_names=model.class_names
            ),
            "one_at_a_time": lambda: [
                adversarial_explanation(model.module, image, k, steps=STEPS, class_names=model.class_names)
                for k in range(10)
            ],
            "bare": lambda: bare_passes(model.module, image, labels, STEPS),
        },
        repeats,
    )
    print(f"{model_id}: 10 classes, S={STEPS}, 32 px, median of {repeats}")
    print(f"  batched all-classes       {t['batched']:.3f} s")
    print(f"  one target at a time      {t['one_at_a_time']:.3f} s")
    print(f"  bare fwd+bwd x{STEPS} + fwd   {t['bare']:.3f} s")
    print(f"  (a) speed-up batched vs one at a time: {t['one_at_a_time'] / t['batched']:.2f}x (target >= 2)")
    print(f"  (b) overhead over bare passes:         {t['batched'] / t['bare']:.3f} (target <= 1.10)")


def _imagenet_image(model: LoadedModel) -> Tensor:
    return prepare_image(decode_image((ROOT / "gallery" / "cat.jpg").read_bytes()), model)


def bench_imagenet(repeats: int) -> None:
    model = load_model("efficientnet-lite0-imagenet", device="cpu")
    image = _imagenet_image(model)
    with torch.no_grad():
        labels = model.module(image[None])[0].topk(5).indices
    t = _medians(
        {
            "top5": lambda: adversarial_explanation(
                model.module, image, "top-5", steps=STEPS, class_names=model.class_names
            ),
            "bare": lambda: bare_passes(model.module, image, labels, STEPS),
        },
        repeats,
    )
    print(f"efficientnet-lite0-imagenet: top-5 targets, S={STEPS}, 224 px, median of {repeats}")
    print(f"  top-5 batched             {t['top5']:.2f} s  ->  {t['top5'] / 5:.2f} s per explanation")
    print(f"  bare fwd+bwd x{STEPS} + fwd   {t['bare']:.2f} s;  overhead {t['top5'] / t['bare']:.3f}")


CIFAR_IMAGES = {0: 3, 2: 8, 5: 6, 8: 3, 9: 1}  # test index -> label (woods2019/README.md)


def paper_table() -> None:
    """Markdown table: true-class and runner-up probabilities before/after, ρ=0.1, S=35, all 4 nets.

    Also the structure measure (low-frequency share of δ; white noise ≈ 0.19 at 32 px) for the
    true-class δ and averaged over all ten classes. A '†' marks a failed explanation (budget not
    reached by step S/2).
    """
    from advexp_core.methods.explanations import noise_low_frequency_share

    folder = Path(os.environ["ADVEXP_WEIGHTS_DIR"])
    print(
        "| network | image (label) | true class p before → after | RMS | runner-up p before → after "
        "| structure true / mean of 10 |"
    )
    print("|---|---|---|---|---|---|")
    for variant in ("standard", "adv-train", "all", "robust"):
        model = load_model(f"woods2019-cifar10-{variant}", device="cpu")
        for index, label in CIFAR_IMAGES.items():
            image = decode_image((folder / f"cifar10_test_{index}.png").read_bytes())
            runner = _runner_up(model, image, label)
            result = adversarial_explanation(
                model.module, image, [label, runner, "all"], steps=STEPS, class_names=model.class_names
            )
            true, second = result.targets[0], result.targets[1]
            mean = statistics.fmean(t.structure for t in result.targets)
            print(
                f"| {variant} | {index} ({model.class_names[label]}) | {_pp(true)} | {true.rms:.4f} "
                f"| {second.label}: {_pp(second)} | {true.structure:.2f} / {mean:.2f} |"
            )
    print(f"white-noise structure baseline at 32 px: {noise_low_frequency_share(32, 32):.3f}")


def _runner_up(model: LoadedModel, image: Tensor, label: int) -> int:
    """The paper's "second" class: the most likely class other than the true one."""
    with torch.no_grad():
        logits = model.module(image[None])[0].clone()
    logits[label] = -float("inf")
    return int(logits.argmax())


def _pp(t: TargetExplanation) -> str:
    mark = "" if t.valid else " †"
    return f"{t.probability_before:.3f} → {t.probability_after:.3f}{mark}"


def contrast_sheets(model_ids: list[str], out_dir: Path) -> None:
    """Write contrast_<image>.png: each CIFAR test image's true-class and runner-up explanations
    on every network in `model_ids`, δ on one shared scale (docs/method.md §2's contrast)."""
    from advexp_core.experiments import ExplanationConfig, contrast_explanations
    from advexp_core.plots.explanations import contrast_figure
    from advexp_core.plots.figures import figure_png

    folder = Path(os.environ["ADVEXP_WEIGHTS_DIR"])
    models = [load_model(m, device="cpu") for m in model_ids]
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, label in CIFAR_IMAGES.items():
        image = decode_image((folder / f"cifar10_test_{index}.png").read_bytes())
        config = ExplanationConfig(targets=(label, _runner_up(models[-1], image, label)), steps=STEPS)
        result = contrast_explanations(models, image, config).contrast
        path = out_dir / f"contrast_{index}.png"
        path.write_bytes(figure_png(contrast_figure(result)))
        print(f"wrote {path} (δ scale {result.delta_scale:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="woods2019-cifar10-robust", help="a 10-class model id")
    parser.add_argument("--skip-imagenet", action="store_true")
    parser.add_argument("--table", action="store_true", help="print the paper-network table and stop")
    parser.add_argument("--contrast", type=Path, metavar="DIR", help="write contrast figures to DIR and stop")
    parser.add_argument(
        "--contrast-models",
        nargs="+",
        default=["woods2019-cifar10-standard", "woods2019-cifar10-robust"],
        help="CIFAR-10 models for --contrast (they explain the five woods2019 test images)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.table:
        paper_table()
        return
    if args.contrast:
        contrast_sheets(args.contrast_models, args.contrast)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    bench_cifar(args.model, args.repeats)
    if not args.skip_imagenet:
        bench_imagenet(max(1, args.repeats // 2))


if __name__ == "__main__":
    main()
