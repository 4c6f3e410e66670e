"""Long-run stability: many attack + saliency + adversarial-explanation cycles in one process.

Reports resident memory at the start (after warm-up), middle and end (target: growth < 5 %), and
checks that no hooks, threads or temporary files are left behind.

Run: TMPDIR=$(mktemp -d) ADVEXP_WEIGHTS_DIR=../shared/woods2019 .venv/bin/python -m bench.bench_soak [--cycles 200]
(a private TMPDIR, so other programs' temporary files are not counted as ours)
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import threading
from pathlib import Path

import torch

from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.methods.attacks import pgd
from advexp_core.methods.explanations import adversarial_explanation
from advexp_core.methods.saliency import explain
from advexp_core.networks.registry import load_model

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def hook_count(module: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules()
    )


def cycle(model, image: torch.Tensor, label: int) -> None:
    result = pgd(model.module, image[None], [label], eps=2 / 255, steps=10)
    both = torch.cat([image[None].to(result.adversarial.device), result.adversarial])
    for method in ("gradcam", "ig"):
        explain(model.module, both, [label, label], method=method, layer=model.gradcam_layer).split(1)
    adversarial_explanation(model.module, image, "runner-up", class_names=model.class_names, steps=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=200)
    default = "woods2019-cifar10-robust" if os.environ.get("ADVEXP_WEIGHTS_DIR") else "digits-robust"
    parser.add_argument("--model", default=default)
    parser.add_argument("--image", default=str(ROOT / "gallery" / "cat.jpg"))
    args = parser.parse_args()
    torch.manual_seed(0)
    model = load_model(args.model, device="cpu")
    image = prepare_image(decode_image(Path(args.image).read_bytes()), model)
    with torch.no_grad():
        label = int(model.module(image[None]).argmax())
    temp_before = set(os.listdir(tempfile.gettempdir()))
    threads_before = threading.active_count()
    for _ in range(5):  # warm-up: allocator pools and lazy imports settle
        cycle(model, image, label)
    gc.collect()
    readings = {"start": rss_mb()}
    for i in range(args.cycles):
        cycle(model, image, label)
        if i == args.cycles // 2:
            gc.collect()
            readings["middle"] = rss_mb()
    gc.collect()
    readings["end"] = rss_mb()
    growth = (readings["end"] - readings["start"]) / readings["start"]
    leaked_files = set(os.listdir(tempfile.gettempdir())) - temp_before
    print(f"model {args.model}, {args.cycles} cycles of PGD(10) + Grad-CAM/IG pair + AE(runner-up)")
    print("RSS MB  " + "  ".join(f"{k}={v:.1f}" for k, v in readings.items()))
    print(f"growth start->end: {growth:+.2%} (target < 5 %)")
    print(f"hooks left on the model: {hook_count(model.module)}")
    print(f"threads: {threads_before} before, {threading.active_count()} after")
    print(f"new temporary files: {len(leaked_files)}")


if __name__ == "__main__":
    main()
