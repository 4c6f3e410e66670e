"""How stable are the attack page's numbers and verdicts? Thread counts and seeds, on the gallery photos.

For each gallery photo this runs the default `advexp compare` experiment (the attack page's
defaults: PGD L∞ 2/255, 20 steps, Grad-CAM and Integrated Gradients) under each thread count of
``--threads`` and each start of ``--seeds`` ("none": PGD from x itself, the page's default; a
number: a random start drawn with that seed), and prints:

- per number, how far it moves when only the thread count changes (max and median |Δ| over photos
  and starts), and how far it moves between starts at one thread count (max range over photos);
- per reading (`readings` in the report: decision, visibility, each map, overall), how many
  (photo, start) runs read a different outcome at another thread count, how many photos read a
  different outcome at another start, and how many runs flag a number near its threshold.

    .venv/bin/python -m bench.bench_verdicts [--threads 1,2] [--seeds none,0,1] [--images cat,coffee]

Run on demand (minutes on a CPU), never in tests. The first thread count is also the reference
that the app and the CLI use (`advexp_core.base.runtime.DEFAULT_THREADS` unless $ADVEXP_THREADS).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from advexp_core.data.imaging import decode_image
from advexp_core.experiments import AttackConfig, SaliencyConfig, saliency_under_attack
from advexp_core.networks.registry import DEFAULT_MODEL_ID, load_model

ROOT = Path(__file__).resolve().parent.parent

Run = dict[str, Any]  # flat: "numbers" name -> value, "outcomes" reading -> (outcome, near)


def _flatten(report: dict[str, Any]) -> Run:
    """The report's numbers and reading outcomes, flat, by a dotted name."""
    numbers: dict[str, float | None] = {f"perturbation.{k}": v for k, v in report["perturbation"].items()}
    for method, values in report["maps"].items():
        numbers.update({f"{method}.{k}": v for k, v in values.items()})
    numbers["top1_after_probability"] = report["predictions_after"][0]["probability"]
    readings = report["readings"]
    outcomes: dict[str, tuple[str, bool]] = {}
    for name in ("decision", "visibility", "overall"):
        if isinstance(readings.get(name), dict) and "outcome" in readings[name]:
            outcomes[name] = (readings[name]["outcome"], bool(readings[name].get("near_threshold")))
    for method, entry in readings.get("maps", {}).items():
        if "outcome" in entry:
            near = bool(entry.get("near_threshold", False))
            outcomes[f"map.{method}"] = (entry["outcome"], near)
    outcomes["top1_after"] = (report["predictions_after"][0]["label"], False)
    return {"numbers": numbers, "outcomes": outcomes}


def _runs(args: argparse.Namespace) -> tuple[dict[tuple[str, str, int], Run], dict[int, float]]:
    """(photo, start, threads) -> its run; and the seconds per run at each thread count."""
    model = load_model(DEFAULT_MODEL_ID)
    paths = sorted((ROOT / "gallery").glob("*.jpg"))
    if args.images:
        paths = [p for p in paths if p.stem in args.images.split(",")]
    runs: dict[tuple[str, str, int], Run] = {}
    seconds: dict[int, list[float]] = defaultdict(list)
    saliency = SaliencyConfig()
    for path in paths:
        image = decode_image(path.read_bytes())
        for start in args.seeds.split(","):
            attack = AttackConfig() if start == "none" else AttackConfig(random_start=True, seed=int(start))
            for threads in args.thread_counts:
                torch.set_num_threads(threads)
                began = time.perf_counter()
                result = saliency_under_attack(model, image, attack, saliency)
                seconds[threads].append(time.perf_counter() - began)
                runs[(path.stem, start, threads)] = _flatten(result.to_json())
            sys.stderr.write(f"{path.stem} start={start} done\n")
    return runs, {t: statistics.median(s) for t, s in seconds.items()}


def _number_table(runs: dict[tuple[str, str, int], Run], threads: list[int]) -> list[str]:
    keys = sorted({(p, s) for p, s, _ in runs})
    names = list(next(iter(runs.values()))["numbers"])
    lines = [f"{'number':38} {'threads: max |Δ|':>17} {'median |Δ|':>11} {'starts: max range':>18}"]
    for name in names:
        moved = []
        for photo, start in keys:
            values = [runs[(photo, start, t)]["numbers"][name] for t in threads]
            if all(v is not None for v in values):
                moved.append(max(values) - min(values))  # type: ignore[type-var, operator]
        spread = []
        for photo in sorted({p for p, _ in keys}):
            values = [runs[(photo, s, threads[0])]["numbers"][name] for p, s in keys if p == photo]
            values = [v for v in values if v is not None]
            if len(values) > 1:
                spread.append(max(values) - min(values))
        lines.append(
            f"{name:38} {max(moved, default=0.0):17.4g} {statistics.median(moved) if moved else 0.0:11.3g}"
            f" {max(spread, default=0.0):18.4g}"
        )
    return lines


def _outcome_table(runs: dict[tuple[str, str, int], Run], threads: list[int]) -> list[str]:
    keys = sorted({(p, s) for p, s, _ in runs})
    photos = sorted({p for p, _ in keys})
    names = sorted({n for run in runs.values() for n in run["outcomes"]})
    lines = [
        f"{'reading':22} {'runs':>5} {'differs by threads':>19} {'photos differ by start':>23} {'near':>5}"
    ]
    for name in names:
        by_threads = sum(
            len({runs[(p, s, t)]["outcomes"].get(name, ("-",))[0] for t in threads}) > 1 for p, s in keys
        )
        by_start = sum(
            len({runs[(p, s, threads[0])]["outcomes"].get(name, ("-",))[0] for q, s in keys if q == p}) > 1
            for p in photos
        )
        near = sum(run["outcomes"].get(name, ("-", False))[1] for run in runs.values())
        lines.append(f"{name:22} {len(keys):5d} {by_threads:19d} {by_start:23d} {near:5d}")
    return lines


def _differences(runs: dict[tuple[str, str, int], Run], threads: list[int]) -> list[str]:
    """Each run whose outcome changed with the thread count, with the outcomes it read."""
    lines = []
    for photo, start in sorted({(p, s) for p, s, _ in runs}):
        for name in sorted(runs[(photo, start, threads[0])]["outcomes"]):
            read = [runs[(photo, start, t)]["outcomes"].get(name, ("-", False)) for t in threads]
            if len({o for o, _ in read}) > 1:
                shown = ", ".join(
                    f"{t} thr: {o}{' (near)' if n else ''}" for t, (o, n) in zip(threads, read, strict=True)
                )
                lines.append(f"  {photo} start={start} {name}: {shown}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (first: reference)")
    parser.add_argument("--seeds", default="none,0,1", help="PGD starts: none (from x) or random-start seeds")
    parser.add_argument("--images", default="", help="gallery photos by name (default: all)")
    args = parser.parse_args()
    args.thread_counts = [int(t) for t in args.threads.split(",")]
    runs, seconds = _runs(args)
    threads = args.thread_counts
    print(f"{DEFAULT_MODEL_ID}, default compare settings, {len(runs)} runs; CPU threads {threads}")
    print("median seconds per run: " + ", ".join(f"{t} thr {s:.1f} s" for t, s in seconds.items()))
    print("\n".join(["", *_number_table(runs, threads), "", *_outcome_table(runs, threads)]))
    changed = _differences(runs, threads)
    print("\noutcomes that changed with the thread count:" + ("" if changed else " none"))
    print("\n".join(changed))


if __name__ == "__main__":
    main()
