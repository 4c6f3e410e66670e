"""Does the adversarial explanation draw the ruler? Train and validate the ruler probe, read the four
lesions networks' explanations toward "malignant" of ruler-free benign images, and ship the probe.

1. The ruler probe (``advexp_core.experiments.shortcut_probe``), trained with ``ProbeConfig()`` and the seed given,
   validated on fresh twins: accuracy, P(ruler) under white noise of RMS ρ, under the ruler's own
   change scaled to RMS ρ (what a δ that draws the ruler gives) and under that change phase-scrambled.
2. For lesions-unbiased (the control: rulers in half of each class, so a ruler says nothing to it),
   lesions-clean (never saw a ruler, but one sways it), lesions-standard and lesions-robust: the AE of
   the first N benign images of the ruler-free test split, read by the probe, by its band and edge
   energy, and by the causal band/centre split, each against δ's phase-scrambled null; then each
   reading's separation of each ruler network from the control (paired bootstrap).
3. The same probe reading with probes trained on other seeds, and with a probe trained without the
   nuisances (no noise, no tints), on the same δ: does the answer depend on the probe?

Writes checkpoints/ruler-probe.pt (the main probe's weights and config) and checkpoints/ruler-probe.json
(its sha256, validation, the table, the separations, the probe-seed checks and this command); prints
the table. checkpoints/manifest.json is left alone.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m research.shortcut_probe_study
Options: --n-images N (default 200), --seed S (main probe, default 3001), --other-seeds S,S (default
         3002,3003), --validation-pairs N (default 500), --out DIR (default checkpoints/).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from advexp_core.base.runtime import use_compute_threads
from advexp_core.experiments.configs import ExplanationConfig
from advexp_core.experiments.report import versions
from advexp_core.experiments.shortcut_probe import (
    Explained,
    ProbeConfig,
    RulerProbe,
    Separation,
    ShortcutProbeResult,
    explain_toward_malignant,
    read_explained,
    separation,
    train_ruler_probe,
    validate_probe,
)
from advexp_core.networks.checkpoints import save_checkpoint, sha256_file
from advexp_core.networks.registry import load_model

ROOT = Path(__file__).resolve().parent.parent

CONTROL = "lesions-unbiased"
RULER_NETS = (
    "lesions-clean",
    "lesions-standard",
    "lesions-robust",
)  # each reacts to a ruler (docs/method.md §7)
NETWORKS = (CONTROL, *RULER_NETS)
VALIDATION_SEED = 4001  # fresh twins, never seen in training (training uses the probe's seed)
READ_SEED = 5001  # the null δ and white-noise draws
BOOTSTRAP_SEED = 6001
ROWS = (
    ("P(ruler | x)", "p_x"), ("P(ruler | x+δ)", "p_delta"), ("P(ruler | x+null δ)", "p_null"),
    ("P(ruler | x+white noise)", "p_white"), ("band energy / area", "band_ratio"),
    ("  null δ", "band_ratio_null"), ("best edge energy / area", "edge_ratio"), ("  null δ", "edge_ratio_null"),
    ("malignant on x", "malignant_x"), ("malignant on x+δ", "malignant_delta"),
    ("malignant on x+δ·band", "malignant_band"), ("malignant on x+δ·(1−band)", "malignant_centre"),
    ("malignant on x+null·band", "malignant_band_null"), ("malignant on x+null·(1−band)", "malignant_centre_null"),
)  # fmt: skip


def _probe_separates(separations: tuple[Separation, ...]) -> bool:
    return next(s for s in separations if s.reading == "probe").separates


def _probe_reading(
    probe: torch.nn.Module, explained: dict[str, Explained], modules: dict[str, torch.nn.Module]
) -> dict[str, Any]:
    """One probe on every network's δ: mean P on x+δ and on its null, and the probe's separations."""
    results = {m: read_explained(modules[m], explained[m], probe, seed=READ_SEED) for m in NETWORKS}
    return {
        "mean_p_delta": {m: r.to_json()["mean"]["p_delta"] for m, r in results.items()},
        "mean_p_null": {m: r.to_json()["mean"]["p_null"] for m, r in results.items()},
        "probe_separates": {
            m: _probe_separates(separation(results[CONTROL], results[m], seed=BOOTSTRAP_SEED))
            for m in RULER_NETS
        },
    }


def _summary(
    separations: dict[str, tuple[Separation, ...]], checks: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Per ruler network: the readings that separate it from the control with the main probe, and the
    probes (main and others) whose reading does."""
    return {
        m: {
            "separating_readings": [s.reading for s in separations[m] if s.separates],
            "probes_that_separate": (["main"] if _probe_separates(separations[m]) else [])
            + [name for name, c in checks.items() if c["probe_separates"][m]],
            "probes_tried": 1 + len(checks),
        }
        for m in RULER_NETS
    }


def _table(results: dict[str, ShortcutProbeResult]) -> list[str]:
    means = {m: r.to_json()["mean"] for m, r in results.items()}
    lines = [f"{'':32}" + "".join(f"{m:>18}" for m in NETWORKS)]
    for label, key in ROWS:
        lines.append(f"{label:32}" + "".join(f"{means[m][key]:>18.3f}" for m in NETWORKS))
    shares = {m: r.to_json()["share_p_above_half"]["p_delta"] for m, r in results.items()}
    lines.append(f"{'share P(ruler | x+δ) > 0.5':32}" + "".join(f"{shares[m]:>18.3f}" for m in NETWORKS))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=ProbeConfig().seed)
    parser.add_argument("--other-seeds", default="3002,3003")
    parser.add_argument("--validation-pairs", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints")
    args = parser.parse_args(argv)
    use_compute_threads()  # $ADVEXP_THREADS, else 1: the numbers depend on it
    rho = ExplanationConfig().rho

    config = ProbeConfig(seed=args.seed)
    probe = train_ruler_probe(config)
    validation = validate_probe(probe, n_pairs=args.validation_pairs, rms=rho, seed=VALIDATION_SEED)

    models = {m: load_model(m, device="cpu") for m in NETWORKS}
    modules = {m: loaded.module for m, loaded in models.items()}
    explained = {m: explain_toward_malignant(models[m], n_images=args.n_images) for m in NETWORKS}
    results = {m: read_explained(modules[m], explained[m], probe, seed=READ_SEED) for m in NETWORKS}
    separations = {m: separation(results[CONTROL], results[m], seed=BOOTSTRAP_SEED) for m in RULER_NETS}

    checks: dict[str, dict[str, Any]] = {}
    variants = [ProbeConfig(seed=int(s)) for s in args.other_seeds.split(",") if s.strip()]
    variants.append(dataclasses.replace(config, noise_rms=0.0, tint=0.0))  # the nuisances' ablation
    for variant in variants:
        other = train_ruler_probe(variant)
        other_validation = validate_probe(other, n_pairs=args.validation_pairs, rms=rho, seed=VALIDATION_SEED)
        name = f"seed {variant.seed}" + ("" if variant.noise_rms else ", no noise or tints")
        checks[name] = {"config": variant.to_json(), "validation": other_validation.to_json()}
        checks[name].update(_probe_reading(other, explained, modules))

    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / "ruler-probe.pt"
    save_checkpoint(weights, {"state_dict": probe.state_dict(), "config": config.to_json()})
    command = "OMP_NUM_THREADS=1 .venv/bin/python -m research.shortcut_probe_study " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    record = {
        "file": weights.name,
        "sha256": sha256_file(weights),
        "probe": {
            "class": RulerProbe.__name__,
            "config": config.to_json(),
            "validation": validation.to_json(),
        },
        "study": {
            "n_images": args.n_images,
            "networks": {m: r.to_json() for m, r in results.items()},
            "separation_from_control": {m: [s.to_json() for s in seps] for m, seps in separations.items()},
            "other_probes": checks,
            "summary": _summary(separations, checks),
        },
        "command": command.strip(),
        "versions": versions(),
    }
    (args.out / "ruler-probe.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")

    print(json.dumps(record["probe"]["validation"], indent=1))
    print("\n".join(_table(results)))
    for m, seps in separations.items():
        for s in seps:
            d = s.difference
            print(
                f"{m} vs {CONTROL}, {s.reading}: {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] "
                f"({'separates' if s.separates else 'does not separate'})"
            )
    for name, entry in checks.items():
        print(name, json.dumps({k: v for k, v in entry.items() if k != "config"}))
    print(json.dumps(record["study"]["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
