"""Measure and ship each network's per-image ρ* beside checkpoints/manifest.json (docs/method.md §3).

For every network in the manifest (or those named with --only), run ``advexp ara`` with the
manifest's recorded ``ara_settings``, copy the run's ``rho.json`` to ``checkpoints/<id>.rho.json``,
record its name, sha256 and the command in the manifest entry (``rho_file``, ``rho_sha256``,
``rho_command``, ``rho_seconds``), and check that the areas recomputed from the stored ρ* are the
manifest's ARAs. When they are not, the manifest is updated with the new numbers (both ARAs, the
accuracy on the ARA images and the ratios to the standard network) and the difference is printed.
Only this script's fields of an entry are written; the manifest is re-read just before each write,
so entries added meanwhile are kept. Every entry with a stored ρ* also gets its areas' 95 % intervals
(``attack_ara_ci``, ``btr_ara_ci``: a bootstrap over the images, seed 0) and its ratios' to the standard
twin measured on the same images (``attack_ara_ratio_to_standard_ci``, ``btr_...``: a paired bootstrap);
``--intervals`` computes only these, from the stored ρ*, without running any search.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m research.ship_robustness [--only ID ...] [--missing] [--intervals]
Options: --threads N (torch threads of each run, default 1), --work DIR (the ara output folders,
         default a temporary folder), --checkpoints DIR (default checkpoints/).
Exit codes: 0 every area matched, 1 some area was updated, 2 a run failed or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from advexp_core.experiments.shipped import RhoFileError, ShippedRobustness, load_rho
from advexp_core.networks.checkpoints import sha256_file

ROOT = Path(__file__).resolve().parent.parent

RTOL = 1e-9  # same settings, same search: the areas agree to rounding
ABOUT = (
    "rho_file: the per-image minimal perturbations rho* (Attack and BTR boundaries) of the ARA, beside this "
    "manifest, with its sha256 (rho_sha256; the app refuses a file that does not match) and the command "
    "that measured it (rho_command); rho_seconds: that command alone with one thread on the shared 2-core "
    "CPU. Written by research/ship_robustness.py, which sets attack_ara and btr_ara to the areas of the "
    "stored rho* whenever a re-measurement differs. attack_ara_ci, btr_ara_ci: their 95 % intervals, a BCa "
    "bootstrap over the images (9999 resamples, seed 0); *_ratio_to_standard_ci: the ratio's to the standard "
    "network of the same dataset, a paired bootstrap over the images both were measured on (docs/method.md §9)."
)


def _entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The digits networks, then the ground-truth ones that record their own dataset and ARA settings."""
    return [*manifest["networks"], *(g for g in manifest.get("groundtruth", []) if "ara_settings" in g)]


def ara_argv(model_id: str, manifest: dict[str, Any], out: Path) -> list[str]:
    """The ``advexp ara`` arguments that reproduce the recorded ARA settings (the entry's own, if any)."""
    entry = next((e for e in _entries(manifest) if e["id"] == model_id), {})
    s = entry.get("ara_settings", manifest["ara_settings"])
    return [
        "ara", "--model", model_id, "--dataset", str(entry.get("dataset", manifest.get("dataset", "digits"))),
        "--split", str(s.get("split", "test")), "--n-images", str(s["n_images"]),
        "--sample", str(s.get("sample", "reference")), "--steps", str(s["steps"]), "--size", str(s["size"]),
        "--momentum", str(s["momentum"]), "--batch-size", str(s.get("batch_size", 128)),
        "--out", str(out), "--quiet",
    ]  # fmt: skip


def measure(model_id: str, manifest: dict[str, Any], work: Path, threads: int) -> tuple[Path, float, str]:
    """Run ``advexp ara`` for one network; returns (its rho.json, seconds, the command as recorded)."""
    out = work / f"ara-{model_id}"
    argv = ara_argv(model_id, manifest, out)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "advexp_core", *argv], cwd=ROOT, env=env, check=True)
    seconds = time.perf_counter() - start
    shown = [a if a != str(out) else f"ara-{model_id}" for a in argv]
    command = f"OMP_NUM_THREADS={threads} python -m advexp_core " + shlex.join(shown)
    return out / "rho.json", seconds, command


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)


def _ratios(networks: list[dict[str, Any]]) -> None:
    standard = next((n for n in networks if n.get("recipe") == "standard"), None)
    for n in networks:
        for b in ("attack", "btr"):
            ref = standard.get(f"{b}_ara") if standard else None
            if ref and f"{b}_ara" in n:
                n[f"{b}_ara_ratio_to_standard"] = n[f"{b}_ara"] / ref


def _standard_of(manifest: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """The standard twin whose areas ``entry``'s ratios are taken to (as `_ratios` pairs them)."""
    digits = manifest["networks"]
    group = (
        digits
        if entry in digits
        else [g for g in _entries(manifest)[len(digits) :] if g["dataset"] == entry.get("dataset")]
    )
    return next((n for n in group if n.get("recipe") == "standard"), None)


def _ci(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


def add_intervals(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Write every stored entry's area and ratio intervals into ``manifest``; returns the ids done."""
    stored: dict[str, ShippedRobustness] = {}
    for entry in _entries(manifest):
        try:
            stored[entry["id"]] = load_rho(entry, folder)
        except RhoFileError:
            continue
    for entry in _entries(manifest):
        rho = stored.get(entry["id"])
        standard = _standard_of(manifest, entry)
        twin = None if standard is None else stored.get(standard["id"])
        for b in ("attack", "btr"):
            if rho is not None:
                entry[f"{b}_ara_ci"] = _ci(rho.area_interval(b))
            if f"{b}_ara_ratio_to_standard" in entry:  # None where either ρ* is not at hand: never stale
                pair = None if rho is None or twin is None else rho.ratio_interval(twin, b)
                entry[f"{b}_ara_ratio_to_standard_ci"] = _ci(pair)
    return list(stored)


def record(folder: Path, model_id: str, fields: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Write ``fields`` into the entry, check its areas against the stored ρ*; returns (entry, changes)."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())  # re-read: another entry may have been added meanwhile
    entry = next(n for n in _entries(manifest) if n["id"] == model_id)
    entry.update(fields)
    manifest["rho_about"] = ABOUT
    stored = load_rho(entry, folder)  # checks the sha256 just recorded
    changes = []
    for b in ("attack", "btr"):
        new, old = stored.area(b), entry.get(f"{b}_ara")
        if old is None or abs(new - float(old)) > RTOL * max(abs(new), 1e-12):
            changes.append(f"{model_id}: {b}_ara {old} -> {new} (recomputed from the stored rho*)")
            entry[f"{b}_ara"] = new
    if changes:
        entry["ara_accuracy"] = json.loads((folder / entry["rho_file"]).read_text())["accuracy"]
        same = [
            g for g in _entries(manifest)[len(manifest["networks"]) :] if g["dataset"] == entry.get("dataset")
        ]
        _ratios(same if entry in same else manifest["networks"])
    add_intervals(folder, manifest)
    _write_manifest(path, manifest)
    return entry, changes


def ship(model_id: str, folder: Path, work: Path, threads: int) -> list[str]:
    """Measure one network, store its rho file beside the manifest and record it; returns the changes."""
    manifest = json.loads((folder / "manifest.json").read_text())
    rho_path, seconds, command = measure(model_id, manifest, work, threads)
    name = f"{model_id}.rho.json"
    shutil.copyfile(rho_path, folder / name)
    fields = {"rho_file": name, "rho_sha256": sha256_file(folder / name), "rho_command": command,
              "rho_seconds": round(seconds, 1)}  # fmt: skip
    entry, changes = record(folder, model_id, fields)
    print(
        f"{model_id}: {seconds:.1f} s; Attack ARA {entry['attack_ara']:.6g}, BTR ARA {entry['btr_ara']:.6g}; "
        + ("UPDATED: " + "; ".join(changes) if changes else "the areas match the manifest"),
        flush=True,
    )
    return changes


def _chosen(folder: Path, only: list[str] | None, missing: bool) -> list[str]:
    networks = _entries(json.loads((folder / "manifest.json").read_text()))
    ids = [n["id"] for n in networks]
    unknown = sorted(set(only or []) - set(ids))
    if unknown:
        raise SystemExit(f"not in the manifest: {', '.join(unknown)} (have {', '.join(ids)})")
    chosen = [n for n in networks if only is None or n["id"] in only]
    if missing:
        chosen = [n for n in chosen if not n.get("rho_file") or not (folder / n["rho_file"]).is_file()]
    return [n["id"] for n in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=None, help="these network ids (default all)")
    parser.add_argument("--missing", action="store_true", help="only networks without a stored rho file")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the ara runs (default temporary)")
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument(
        "--intervals", action="store_true", help="only the areas' and ratios' intervals, from the stored rho*"
    )
    args = parser.parse_args(argv)
    if args.intervals:
        path = args.checkpoints / "manifest.json"
        manifest = json.loads(path.read_text())
        done = add_intervals(args.checkpoints, manifest)
        manifest["rho_about"] = ABOUT
        _write_manifest(path, manifest)
        print(f"intervals of {', '.join(done)} written to {path}")
        return 0
    ids = _chosen(args.checkpoints, args.only, args.missing)
    work = args.work or Path(tempfile.mkdtemp(prefix="ship-robustness-"))
    work.mkdir(parents=True, exist_ok=True)
    changes: list[str] = []
    for model_id in ids:
        try:
            changes += ship(model_id, args.checkpoints, work, args.threads)
        except subprocess.CalledProcessError as exc:
            print(f"{model_id}: advexp ara failed (exit {exc.returncode}); nothing recorded", file=sys.stderr)
            return 2
    if changes:
        print("The manifest's ARAs were updated:\n  " + "\n  ".join(changes))
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main())
