"""How much memory a hostile own-model file costs before it is refused: peak RSS above the idle process.

Each case runs in a fresh interpreter (so one case's peak does not hide another's) that imports the
libraries, measures its resident memory, then asks `load_user_model` to load the file and reads its
peak resident memory after the refusal. The cases are the three resource risks of a hostile upload:
a 10 kB safetensors file for a 632-million-parameter ViT-Huge, 200,000 class names for a ResNet-50,
and a 300-byte ONNX graph that resizes its input ×400. The goal is under 1 GB above idle each.

Run: python -m bench.hostile_memory
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = ("vit-huge-tiny-file", "200000-classes", "onnx-resize-x400")


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return int(status.read().split("VmRSS:")[1].split()[0]) * 1024


def _resize_onnx(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.array([[1, -1], [0.5, 0.5], [-1, 1]], np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 400, 400], np.float32), "scales")
    nodes = [
        helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="nearest", name="blow_up"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        initializer=[weight, scales],
    )  # fmt: skip
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )
    onnx.checker.check_model(str(path))
    return path


def run_case(case: str) -> str:
    """One case in this process: the line to print."""
    import torch
    from safetensors.torch import save_file

    from advexp_core.networks.registry import load_user_model
    from advexp_core.networks.zoo import ModelError

    folder = Path(tempfile.mkdtemp())
    if case == "vit-huge-tiny-file":
        weights = folder / "w.safetensors"
        save_file({"head.weight": torch.zeros(2, 1280), "head.bias": torch.zeros(2)}, str(weights))
        args: tuple = ("timm:vit_huge_patch14_224", weights, ["a", "b"])
    elif case == "200000-classes":
        weights = folder / "w.safetensors"
        save_file({"fc.weight": torch.zeros(2, 2)}, str(weights))
        args = ("resnet50", weights, [f"c{i}" for i in range(200_000)])
    else:
        args = (None, _resize_onnx(folder / "r.onnx"), ["a", "b"])
    idle = _rss()
    try:
        load_user_model(*args, device="cpu")
        outcome = "LOADED (expected a refusal)"
    except ModelError as exc:
        outcome = f"refused: {str(exc)[:90]}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return f"{case:20s} {max(0, peak - idle) / 1e6:7.0f} MB above idle ({idle / 1e6:.0f} MB)  {outcome}"


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(run_case(sys.argv[2]))
        return 0
    print(f"{'case':20s} {'peak RSS':>7s}")
    for case in CASES:
        done = subprocess.run(
            [sys.executable, "-m", "bench.hostile_memory", "--case", case],
            capture_output=True,
            text=True,
            check=False,
        )
        print(done.stdout.strip() or f"{case}: failed\n{done.stderr[-2000:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
