"""Validate the shortcut audit's removal against an exact answer (docs/audit.md): on the lesion test
images, removing the ruler by inpainting its mask must change the same decisions as the generator's
exact ruler-free twin. Also measures inpainting's own trace: on images without a ruler, the place a
ruler would have had is inpainted, and any decision that changes has reacted to the fill.

    python -m research.audit_validation [--n-images 1000] [--out checkpoints/audit-validation.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from advexp_core.base.runtime import use_compute_threads
from advexp_core.data.datasets import load_lesions
from advexp_core.data.interventions import INPAINTING, remove_artifact
from advexp_core.evaluation.reliance import LesionTwins, lesion_twins
from advexp_core.experiments.audit import validate_inpainting
from advexp_core.experiments.report import versions
from advexp_core.networks.registry import LoadedModel, load_model

ROOT = Path(__file__).resolve().parents[1]

NETWORKS = ("lesions-standard", "lesions-robust")


def disagreements(model: LoadedModel, twins: LesionTwins, indices: tuple[int, ...]) -> list[dict[str, float]]:
    """p(malignant) as drawn, inpainted and as the exact twin, on the images where the two removals disagree."""
    if not indices:
        return []
    idx = torch.tensor(indices)
    batches = (
        twins.images[idx],
        remove_artifact(twins.images[idx], twins.ruler_masks[idx]),
        twins.removed[idx],
    )
    with torch.no_grad():
        p = [torch.softmax(model.module(b).float(), 1)[:, 1].tolist() for b in batches]
    return [
        {"index": i, "as_drawn": round(a, 4), "inpainted": round(b, 4), "twin": round(c, 4)}
        for i, a, b, c in zip(indices, *p, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=1000, help="the first N lesion test images")
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "audit-validation.json")
    args = parser.parse_args()
    threads = use_compute_threads()
    twins = lesion_twins("test", args.n_images)
    would_be = load_lesions("test", force_ruler=True, with_masks=True).masks["shortcut"][: args.n_images]
    networks = {}
    for model_id in NETWORKS:
        start = time.perf_counter()
        model = load_model(model_id, device="cpu")
        result = validate_inpainting(model, twins.images, twins.ruler_masks, twins.removed, would_be)
        networks[model_id] = {
            **result.to_json(),
            "disagreeing_malignant_probability": disagreements(model, twins, result.disagreeing),
            "seconds": round(time.perf_counter() - start, 2),
        }
        print(json.dumps(networks[model_id]), file=sys.stderr)
    report = {
        "what": "removing the ruler by inpainting its mask vs the exact ruler-free twin (lesions test split)",
        "inpainting": INPAINTING,
        "split": "test",
        "n_images": args.n_images,
        "networks": networks,
        "threads": threads,
        "versions": versions(),
    }
    tmp = args.out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(args.out)  # never a half-written file


if __name__ == "__main__":
    main()
