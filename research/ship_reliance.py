"""Ship the lesions control network and every lesions network's measured reliance on the ruler.

1. The controls: ``lesions-standard``'s recorded training config with the dataset swapped for its
   shortcut-free twin (``lesions-clean`` on ``lesions-no-ruler``: it never sees a ruler) or for rulers
   in half of each class (``lesions-unbiased``: rulers it sees but that say nothing), each trained by
   ``advexp train`` when ``checkpoints/<id>.pt`` is missing (or with --retrain), then recorded in the manifest's
   ``groundtruth`` list like the other networks: file, sha256, recipe, config, arch, the training
   command and time, and its accuracy on the full test splits with and without rulers (each with its
   95 % Wilson interval, ``<name>_ci``).
2. For every lesions network in that list, ``advexp reliance`` on the first N test images; the
   summary (accuracy as drawn / rulers removed / rulers added, decisions changed, margin effects, each
   with its 95 % interval and the three-way outcome; docs/method.md §9) goes to the entry's
   ``reliance`` object with the command that measured it.

Only this script's fields are written; the manifest is re-read just before each write, so entries
added meanwhile are kept.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m research.ship_reliance [--only ID ...] [--retrain]
Options: --n-images N (default 200), --checkpoints DIR (default checkpoints/), --work DIR (the
         reliance output folders, default a temporary folder), --threads N (default 1).
Exit codes: 0 recorded, 2 a run failed or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from advexp_core.evaluation.reliance import shortcut_reliance
from advexp_core.networks.checkpoints import load_checkpoint, sha256_file
from advexp_core.networks.registry import load_model
from research.ship_groundtruth import train_argv

ROOT = Path(__file__).resolve().parent.parent

# control id -> (the network whose recorded config it repeats, training dataset, what it saw of the ruler)
CONTROLS = {
    "lesions-clean": ("lesions-standard", "lesions-no-ruler", "trained without the ruler"),
    "lesions-unbiased": (
        "lesions-standard",
        "lesions-unbiased",
        "trained with rulers independent of the class",
    ),
    "lesions-robust-unbiased": (
        "lesions-robust",
        "lesions-unbiased",
        "trained with rulers independent of the class",
    ),
}
ABOUT = (
    "reliance (lesions networks): the network's decisions on the first n_images test images as drawn, "
    "with every ruler removed and with a ruler drawn on every image (exact twins that differ only inside "
    "the ruler mask; docs/method.md, reliance). decisions_changed_when_removed: share of the images with a "
    "ruler whose class changes without it; decisions_changed_when_added: share of the images without one "
    "whose class changes with it; mean_margin_effect: mean change of the true class's logit margin when "
    "the ruler is removed, on the images with one. The controls: lesions-standard's config trained on "
    "lesions-no-ruler (lesions-clean: it never saw a ruler) and on lesions-unbiased (lesions-unbiased: "
    "rulers in half of each class, so they say nothing). Each share and accuracy has its 95 % Wilson interval "
    "in <name>_ci, the mean margin effect its paired bootstrap interval (seed 0), and outcome reads the removal's "
    "interval against a 5 % tolerance (relies / does-not-rely / inconclusive; docs/method.md §9). Written by "
    "research/ship_reliance.py."
)


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)


def _update(folder: Path, model_id: str, fields: dict[str, Any], *, create: bool = False) -> None:
    """Write ``fields`` into the ``groundtruth`` entry ``model_id`` (appended when ``create``)."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())  # re-read: another entry may have been added meanwhile
    entries = manifest.setdefault("groundtruth", [])
    entry = next((e for e in entries if e.get("id") == model_id), None)
    if entry is None:
        if not create:
            raise SystemExit(f"{model_id} is not in the manifest's groundtruth list")
        entry = {"id": model_id}
        entries.append(entry)
    entry.update(fields)
    manifest["reliance_about"] = ABOUT
    _write_manifest(path, manifest)


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def control_argv(template: dict[str, Any], dataset: str, out: str) -> list[str]:
    """``advexp train`` arguments: the template network's recorded config on another dataset."""
    return train_argv({**template["config"], "dataset": dataset}, out)


def _check_same_recipe(control: str, template: dict[str, Any], config: dict[str, Any]) -> None:
    """The control differs from its template in the training data alone."""
    differ = sorted(
        k
        for k in set(config) | set(template["config"])
        if k != "dataset" and config.get(k) != template["config"].get(k)
    )
    if differ:
        raise SystemExit(f"{control}'s config differs from {template['id']}'s in {', '.join(differ)}")


def ship_control(folder: Path, control: str, threads: int, retrain: bool) -> None:
    """Train one control when asked or missing, and record its manifest entry."""
    manifest = json.loads((folder / "manifest.json").read_text())
    template_id, dataset, how = CONTROLS[control]
    template = next(e for e in manifest["groundtruth"] if e["id"] == template_id)
    path = folder / f"{control}.pt"
    shown = f"checkpoints/{path.name}"
    argv = control_argv(template, dataset, shown)
    if retrain or not path.is_file():
        path.unlink(missing_ok=True)
        run_argv = [a if a != shown else str(path) for a in argv]
        subprocess.run(
            [sys.executable, "-m", "advexp_core", *run_argv, "--quiet"],
            cwd=ROOT,
            env=_env(threads),
            check=True,
        )
    payload = load_checkpoint(path)
    _check_same_recipe(control, template, payload["config"])
    model = load_model(control, device="cpu")
    measured = shortcut_reliance(model, split="test", n_images=1000)
    measured_unbiased = shortcut_reliance(model, split="test-unbiased", n_images=1000)
    test, test_ci = measured.accuracy(), measured.accuracy_ci()
    unbiased, unbiased_ci = measured_unbiased.accuracy(), measured_unbiased.accuracy_ci()
    fields = {
        "dataset": dataset, "role": f"control for {template_id}: its config {how}",
        "file": shown, "sha256": sha256_file(path), "recipe": payload["recipe"], "robust_additions": payload["robust"],
        "seed": payload["seed"], "epochs": payload["config"]["epochs"], "config": payload["config"],
        "arch": payload["arch"], "command": f"OMP_NUM_THREADS={threads} python -m advexp_core " + shlex.join(argv),
        "test_no_shortcut_accuracy": test["shortcut_removed"], "test_no_shortcut_accuracy_ci": test_ci["shortcut_removed"],
        "test_accuracy": test["as_is"], "test_accuracy_ci": test_ci["as_is"],
        "test_all_rulers_accuracy": test["shortcut_added"], "test_all_rulers_accuracy_ci": test_ci["shortcut_added"],
        "test_unbiased_accuracy": unbiased["as_is"], "test_unbiased_accuracy_ci": unbiased_ci["as_is"],
        "n_test_images": 1000, "psi": payload["psi_state"]["psi"], "l_target": payload["psi_state"]["l_target"],
        "train_seconds": round(payload["metrics"]["train_seconds"], 1),
    }  # fmt: skip
    _update(folder, control, fields, create=True)
    print(
        f"{control}: sha256 {fields['sha256'][:12]}…; test accuracy without rulers {test['shortcut_removed']:.3f}, "
        f"as drawn {test['as_is']:.3f}, rulers on all {test['shortcut_added']:.3f}, unbiased {unbiased['as_is']:.3f}",
        flush=True,
    )


def ship_reliance(folder: Path, model_id: str, n_images: int, work: Path, threads: int) -> None:
    """Run ``advexp reliance`` for one network and record its summary in the manifest."""
    out = work / f"reliance-{model_id}"
    argv = ["reliance", "--model", model_id, "--dataset", "lesions", "--split", "test", "--n-images", str(n_images), "--out", str(out), "--json"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "advexp_core", *argv], cwd=ROOT, env=_env(threads), check=True, capture_output=True, text=True
    )  # fmt: skip
    seconds = time.perf_counter() - start
    report = json.loads(done.stdout)
    shown = [a if a != str(out) else f"reliance-{model_id}" for a in argv if a != "--json"]
    fields = {
        "split": report["split"], "n_images": report["n_images"], "accuracy": report["accuracy"],
        "accuracy_ci": report["accuracy_ci"], "shortcut": report["shortcut"], "command": f"OMP_NUM_THREADS={threads} python -m advexp_core " + shlex.join(shown),
        "seconds": round(seconds, 1),
    }  # fmt: skip
    _update(folder, model_id, {"reliance": fields})
    s = report["shortcut"]
    print(
        f"{model_id}: removing the ruler changed {s['n_changed_when_removed']}/{s['images_with']} decisions, "
        f"adding one {s['n_changed_when_added']}/{s['images_without']}; mean margin effect {s['mean_margin_effect']:.3f}",
        flush=True,
    )


def lesions_networks(folder: Path) -> list[str]:
    """The ids of the manifest's lesions networks (trained on lesions or its shortcut-free twin)."""
    entries = json.loads((folder / "manifest.json").read_text()).get("groundtruth", [])
    datasets = {"lesions", *(d for _, d, _ in CONTROLS.values())}
    return [e["id"] for e in entries if e.get("dataset") in datasets]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", default=None, help="measure these network ids (default all lesions ones)"
    )
    parser.add_argument(
        "--retrain", action="store_true", help="train the controls again even when their files are there"
    )
    parser.add_argument("--n-images", type=int, default=200, help="the first N test images (default 200)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the reliance runs (default temporary)"
    )
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ship-reliance-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for control in CONTROLS:
            if args.only is None or control in args.only:
                ship_control(args.checkpoints, control, args.threads, args.retrain)
        ids = lesions_networks(args.checkpoints)
        unknown = sorted(set(args.only or []) - set(ids))
        if unknown:
            print(
                f"not lesions networks of the manifest: {', '.join(unknown)} (have {', '.join(ids)})",
                file=sys.stderr,
            )
            return 2
        for model_id in [i for i in ids if args.only is None or i in args.only]:
            ship_reliance(args.checkpoints, model_id, args.n_images, work, args.threads)
    except subprocess.CalledProcessError as exc:
        print(
            f"{shlex.join(map(str, exc.cmd[2:]))} failed (exit {exc.returncode}): {exc.stderr or ''}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
