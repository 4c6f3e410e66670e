"""Two networks that both decide by the lesion: does the robust one explain itself better?

lesions-unbiased (the standard recipe) and lesions-robust-unbiased (the robust recipe) were trained on
lesions whose ruler says nothing about the class, and removing the ruler barely changes their
decisions (manifest ``reliance``). For them, where a dermatologist would look, the lesion, is also
what the network uses, so a map's share on the lesion grades it fairly. This script runs
``advexp scorecard`` on the first N test images for both and keeps, per explainer, the share of the
map on the lesion, the pointing game and the top-5 % evidence, clean and for the attacked images'
new class, each with its 95 % interval (``_ci``), the per-image shares on the lesion and pointing
(``images``: the two networks are compared image by image), and the attack's flips, in
``checkpoints/scorecard-lesion-users.json`` (the home page's second finding reads it);
``scripts/update_readme.py`` renders research/README.md's table from it.

Run: OMP_NUM_THREADS=1 .venv/bin/python -m research.lesion_users_scorecard [--n-images N]
Exit codes: 0 written, 2 a run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "checkpoints" / "scorecard-lesion-users.json"
NETWORKS = ("lesions-unbiased", "lesions-robust-unbiased")
METHODS = "gradient,smoothgrad,ig,gradcam,adversarial"
KEEP = ("evidence_share", "pointing_game")


def _scores(entry: dict[str, Any]) -> dict[str, Any]:
    """One explainer's kept numbers, each with its interval, and the per-image ones."""
    kept: dict[str, Any] = {}
    for k in KEEP:
        kept[k], kept[f"{k}_ci"] = entry.get(k), entry.get(f"{k}_ci")
    kept["top_5_evidence"] = (entry.get("top_k_evidence") or {}).get("5")
    kept["top_5_evidence_ci"] = (entry.get("top_k_evidence_ci") or {}).get("5")
    images = entry.get("images") or {}
    kept["images"] = {k: images.get(k, []) for k in KEEP}
    return kept


def run(model_id: str, n_images: int, work: Path) -> dict[str, Any]:
    argv = [
        "scorecard",
        "--model",
        model_id,
        "--dataset",
        "lesions",
        "--n-images",
        str(n_images),
        "--methods",
        METHODS,
    ]
    out = work / model_id
    done = subprocess.run(
        [sys.executable, "-m", "advexp_core", *argv, "--out", str(out), "--json"],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True, capture_output=True, text=True,
    )  # fmt: skip
    report = json.loads(done.stdout)
    return {
        "command": "OMP_NUM_THREADS=1 python -m advexp_core "
        + shlex.join([*argv, "--out", f"scorecard-{model_id}"]),
        "accuracy_first_n": report["accuracy_first_n"],
        "accuracy_first_n_ci": report["accuracy_first_n_ci"],
        "attack": {
            k: report["attack"][k]
            for k in (
                "method",
                "norm",
                "eps_255",
                "steps",
                "correct",
                "flipped",
                "flipped_ci",
                "flipped_indices",
            )
        },
        "explainers": {
            name: {"clean": _scores(e), "attacked": _scores(e.get("attacked") or {})}
            for name, e in report["explainers"].items()
        },
        "chance": report["chance"],
        "intervals": report["intervals"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=100, help="the first N test images (default 100)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lesion-users-") as work:
        try:
            networks = {m: run(m, args.n_images, Path(work)) for m in NETWORKS}
        except subprocess.CalledProcessError as exc:
            print(f"{shlex.join(map(str, exc.cmd[2:]))} failed: {exc.stderr}", file=sys.stderr)
            return 2
    record = {"split": "test", "n_images": args.n_images, "networks": networks}
    tmp = OUT.with_name(f".{OUT.name}.partial")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(OUT)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
