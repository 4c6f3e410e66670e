"""Shortcut audit speed against its floor: the streamed audit (`audit_stream.audit_batches`, the default
explainers and the adversarial explanation) on three networks, each against the bare forward and
backward passes it must do, timed in the same run at the same batch size.

    ADVEXP_THREADS=1 .venv/bin/python -m bench.bench_audit [--lesions 200] [--photos 40]

* ``lesions-standard`` on the first N lesion test images (64 px): the rulers marked with their exact
  masks, a ruler cut from one image pasted onto the others;
* ``timm:efficientnet_b0`` and ``timm:vit_small_patch16_224`` (random weights, 2 classes, loaded as a
  user's own network) on N gallery photos at 224 px (cycled), a yellow strip marked along the
  bottom edge of every other one and pasted onto the rest.

The floor counts per image two forward passes without gradients (the decision before and after)
and one forward and backward pass per gradient, Grad-CAM, IG step, SmoothGrad sample and
adversarial-explanation step (1 + 1 + 32 + 16 + 35), at the audit's batch size with its passes side
by side on the cores as the audit runs them; each kind is timed on a few batches and scaled up.
Prints images/s of the audit and of the floor, and their ratio. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from advexp_core.base.runtime import in_order, pass_workers, use_compute_threads
from advexp_core.data.datasets import load_lesions
from advexp_core.data.imaging import decode_image, prepare_image
from advexp_core.data.interventions import Artifact
from advexp_core.experiments.audit_inputs import AuditItem
from advexp_core.experiments.audit_records import AuditConfig
from advexp_core.experiments.audit_stream import audit_batches, batch_size_for
from advexp_core.experiments.configs import SaliencyConfig
from advexp_core.networks.own_models import create_timm
from advexp_core.networks.registry import LoadedModel, load_model, load_user_model

ROOT = Path(__file__).resolve().parent.parent
TIMM = ("efficientnet_b0", "vit_small_patch16_224")
SAMPLES = 3  # batches timed per kind of pass for the floor


def passes_per_image(config: AuditConfig) -> int:
    """Forward and backward passes an image costs (the forward passes without gradients aside)."""
    saliency = SaliencyConfig()
    cost = {"gradient": 1, "gradcam": 1, "ig": saliency.ig_steps, "smoothgrad": saliency.smoothgrad_samples}
    return sum(cost.get(m, 0) for m in config.methods) + (config.steps if config.adversarial else 0)


def timm_model(arch: str, folder: Path) -> LoadedModel:
    """An untrained timm network with 2 classes, saved and loaded as a user's own weights."""
    net = create_timm(arch, num_classes=2)
    path = folder / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return load_user_model(f"timm:{arch}", path, ("benign", "malignant"), device="cpu")


def lesion_case(n: int) -> tuple[list[AuditItem], Artifact]:
    data = load_lesions("test", with_masks=True)
    rulers = data.masks["shortcut"][:n]

    def reader(k: int) -> Callable[[], tuple[torch.Tensor, torch.Tensor | None]]:
        def load() -> tuple[torch.Tensor, torch.Tensor | None]:
            return data.images[k], rulers[k] if bool(rulers[k].any()) else None

        return load

    items = [AuditItem(f"lesion{k}.png", reader(k)) for k in range(n)]
    source = int(torch.nonzero(rulers.flatten(1).any(1)).flatten()[0])
    return items, Artifact(data.images[source], rulers[source])


def photo_case(n: int, model: LoadedModel) -> tuple[list[AuditItem], Artifact]:
    photos = sorted(p for p in (ROOT / "gallery").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = [prepare_image(decode_image(photos[k % len(photos)].read_bytes()), model) for k in range(n)]
    strip = torch.zeros(224, 224, dtype=torch.bool)
    strip[206:218, 40:184] = True  # a 144×12 px strip near the bottom edge
    marked = images[0].clone()
    marked[:, strip] = torch.tensor([0.95, 0.85, 0.2])[:, None]  # a yellow bar to paste

    def reader(k: int) -> Callable[[], tuple[torch.Tensor, torch.Tensor | None]]:
        return lambda: (images[k], strip if k % 2 == 0 else None)

    items = [AuditItem(f"photo{k}.png", reader(k)) for k in range(n)]
    return items, Artifact(marked, strip)


def _timed(work: Callable[[], None]) -> float:
    work()  # warm-up
    times = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor_seconds(module: nn.Module, image: torch.Tensor, n: int, batch: int, config: AuditConfig) -> float:
    """The bare passes of an audit of n images in batches of ``batch``: the batch cut in one part per
    worker, the parts side by side (as the audit runs its passes), each kind timed and scaled up."""
    x = image[None].expand(batch, -1, -1, -1).contiguous()
    parts = [x[k :: pass_workers()] for k in range(min(batch, pass_workers()))]

    def backward() -> None:
        def one(part: torch.Tensor) -> None:
            part = part.clone().requires_grad_(True)
            torch.autograd.grad(module(part)[:, 0].sum(), part)

        list(in_order(one, parts))

    def forward() -> None:
        with torch.no_grad():
            module(x)

    batches = n / batch
    return batches * (passes_per_image(config) * _timed(backward) + 2 * _timed(forward))


def bench(name: str, model: LoadedModel, items: list[AuditItem], artifact: Artifact) -> str:
    config = AuditConfig()
    size = batch_size_for(model, config)
    n = len(items)
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(
            f"\r{name}: {done}/{total} ({time.perf_counter() - start:.0f} s)",
            end="",
            file=sys.stderr,
            flush=True,
        )

    rows = 0
    for batch in audit_batches(
        model, items, artifact=artifact, config=config, batch_size=size, on_step=progress
    ):
        rows += len(batch.images)
    seconds = time.perf_counter() - start
    print(file=sys.stderr)
    image = items[0].load()[0]
    floor = floor_seconds(model.module, prepare_image(image, model), n, min(size, n), config)
    return (
        f"{name}: {n} images at {model.input_size[0]} px in batches of {size}: {seconds:.1f} s, "
        f"{n / seconds:.3f} images/s; floor ({passes_per_image(config)} forward+backward and 2 forward passes "
        f"an image): {floor:.1f} s, {n / floor:.3f} images/s; ratio {seconds / floor:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesions", type=int, default=200, help="lesion test images (64 px)")
    parser.add_argument("--photos", type=int, default=40, help="gallery photos at 224 px, per timm network")
    parser.add_argument("--models", nargs="*", default=["lesions-standard", *(f"timm:{a}" for a in TIMM)])
    args = parser.parse_args()
    threads = use_compute_threads()
    lines = [f"{threads} thread(s) per operation, {pass_workers()} passes side by side; default explainers"]
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            if name.startswith("timm:"):
                model = timm_model(name.removeprefix("timm:"), Path(folder))
                items, artifact = photo_case(args.photos, model)
            else:
                model = load_model(name, device="cpu")
                items, artifact = lesion_case(args.lesions)
            lines.append(bench(name, model, items, artifact))
            print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
