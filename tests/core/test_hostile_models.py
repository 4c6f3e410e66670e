"""Hostile user models: NaN outputs, absurd normalisation, files the libraries choke on, odd
weight types, and files that would make advexp allocate gigabytes. Each is refused with a clear
ModelError (exit code 2 on the command line) before it costs memory; files are made here, tiny."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torchvision
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file

from advexp_core.cli import main
from advexp_core.experiments.report import predictions
from advexp_core.networks import checkpoints, onnx_models, own_models
from advexp_core.networks.registry import MAX_CLASSES, load_user_model
from advexp_core.networks.zoo import ModelError
from tests.core.test_own_models import TINY_CNN, export_onnx, tiny_net

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "gallery" / "cat.jpg"
TWO = ("negative", "positive")


# --- files --------------------------------------------------------------------------------------


def onnx_file(
    path: Path,
    nodes: list[onnx.NodeProto],
    *,
    initializers: tuple[onnx.TensorProto, ...] = (),
    input_type: int = TensorProto.FLOAT,
    input_shape: tuple[int | str, ...] = (1, 3, 32, 32),
    output_type: int = TensorProto.FLOAT,
) -> Path:
    """A one-input graph ending in a tensor ``y``; `pooled` nodes make (1, 2) logits of an image."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", input_type, list(input_shape))],
        [helper.make_tensor_value_info("y", output_type, [1, 2])],
        initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


def pooled(source: str, out: str = "y") -> tuple[list[onnx.NodeProto], onnx.TensorProto]:
    """Nodes and weight for (1, 3, H, W) -> channel means -> (1, 2)."""
    weight = numpy_helper.from_array(np.array([[1, -1], [0.5, 0.5], [-1, 1]], np.float32), f"w_{out}")
    nodes = [
        helper.make_node("GlobalAveragePool", [source], [f"p_{out}"]),
        helper.make_node("Flatten", [f"p_{out}"], [f"f_{out}"]),
        helper.make_node("MatMul", [f"f_{out}", f"w_{out}"], [out]),
    ]
    return nodes, weight


def nan_onnx(path: Path) -> Path:
    """sqrt(-(|x| + 1)): NaN for every image."""
    head, weight = pooled("s")
    one = numpy_helper.from_array(np.array(1, np.float32), "one")
    nodes = [
        helper.make_node("Abs", ["x"], ["a"]),
        helper.make_node("Add", ["a", "one"], ["b"]),
        helper.make_node("Neg", ["b"], ["n"]),
        helper.make_node("Sqrt", ["n"], ["s"]),
        *head,
    ]
    return onnx_file(path, nodes, initializers=(weight, one))


def half_nan_onnx(path: Path) -> Path:
    """First logit finite (so is its gradient, which the conversion checks), second
    sqrt(-(|first| + 1)): NaN. A NaN difference once compared as no difference at all."""
    head, weight = pooled("x", "z")
    first = numpy_helper.from_array(np.array([[1.0], [0.0]], np.float32), "first")
    one = numpy_helper.from_array(np.array(1, np.float32), "one")
    nodes = [
        *head,
        helper.make_node("MatMul", ["z", "first"], ["z0"]),
        helper.make_node("Abs", ["z0"], ["a"]),
        helper.make_node("Add", ["a", "one"], ["b"]),
        helper.make_node("Neg", ["b"], ["n"]),
        helper.make_node("Sqrt", ["n"], ["s"]),
        helper.make_node("Concat", ["z0", "s"], ["y"], axis=1),
    ]
    return onnx_file(path, nodes, initializers=(weight, first, one))


def resize_onnx(path: Path, *, scales: list[float] | None = None, sizes: list[int] | None = None) -> Path:
    """A few hundred bytes that resize the image by constant scales or to constant sizes."""
    head, weight = pooled("r")
    constants = [weight]
    inputs = ["x", "", "scales" if scales else ""]
    if scales:
        constants.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
    if sizes:
        inputs.append("sizes")
        constants.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
    nodes = [helper.make_node("Resize", inputs, ["r"], mode="nearest", name="blow_up"), *head]
    return onnx_file(path, nodes, initializers=tuple(constants))


def classes_file(folder: Path, names: tuple[str, ...] = TWO) -> Path:
    path = folder / "classes.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path


def classify_cli(
    capsys: pytest.CaptureFixture[str], model: Path, classes: Path, *extra: str
) -> tuple[int, str, str]:
    code = main(
        ["classify", str(IMAGE), "--model-file", str(model), "--classes", str(classes), "--json", *extra]
    )
    out, err = capsys.readouterr()
    return code, out, err


def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The default device of every network build from now on ('meta' costs no memory)."""
    seen: list[str] = []

    def spy(real: Callable[..., Any]) -> Callable[..., Any]:
        def build(*args: Any, **kwargs: Any) -> Any:
            seen.append(torch.get_default_device().type)
            return real(*args, **kwargs)

        return build

    monkeypatch.setattr(own_models, "create_timm", spy(own_models.create_timm))
    monkeypatch.setattr(torchvision.models, "get_model", spy(torchvision.models.get_model))
    return seen


# --- NaN and infinite outputs -------------------------------------------------------------------


@pytest.mark.parametrize("make", [nan_onnx, half_nan_onnx])
def test_onnx_with_nan_logits_is_refused(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    path = make(tmp_path / "nan.onnx")
    with pytest.raises(ModelError, match="nan.onnx gives NaN or infinite outputs"):
        load_user_model(None, path, TWO, device="cpu")


class Constant(torch.nn.Module):
    """A stand-in for a converted graph: the same (1, 2) logits for every image."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 2), self.value)


def test_onnxruntime_comparison_counts_nan_on_either_side_as_a_failure(tmp_path: Path) -> None:
    graph = onnx_models.read_onnx(nan_onnx(tmp_path / "nan.onnx"))
    with pytest.raises(ModelError, match="ONNX Runtime gives NaN or infinite outputs for nan.onnx"):
        onnx_models.onnxruntime_difference(graph, Constant(0.0), input_size=(32, 32), name="nan.onnx")
    nodes, weight = pooled("x")
    healthy = onnx_models.read_onnx(onnx_file(tmp_path / "ok.onnx", nodes, initializers=(weight,)))
    assert onnx_models.onnxruntime_difference(healthy, Constant(0.0), input_size=(32, 32)) > 0
    with pytest.raises(ModelError, match="The converted module gives NaN or infinite outputs"):
        onnx_models.onnxruntime_difference(healthy, Constant(float("nan")), input_size=(32, 32))


def test_weights_that_overflow_are_refused_naming_the_network(tmp_path: Path) -> None:
    state = {
        k: torch.full_like(v, 3e38) if v.is_floating_point() else v
        for k, v in tiny_net(TINY_CNN, 2).state_dict().items()
    }
    save_file(state, tmp_path / "huge.safetensors")
    with pytest.raises(ModelError, match="huge.safetensors gives NaN or infinite .* the network itself"):
        load_user_model(f"timm:{TINY_CNN}", tmp_path / "huge.safetensors", TWO, input_size=32, device="cpu")


def test_a_normalisation_the_network_overflows_on_is_named(tmp_path: Path) -> None:
    net = tiny_net(TINY_CNN, 2)
    with torch.no_grad():  # logits near 1e36 on normalised images: finite, but not 10^4 times more
        scale = 1e36 / net(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))).abs().max()
        net.fc.weight.mul_(scale)
        net.fc.bias.mul_(scale)
    save_file(net.state_dict(), tmp_path / "big.safetensors")
    path = tmp_path / "big.safetensors"
    load_user_model(f"timm:{TINY_CNN}", path, TWO, input_size=32, device="cpu")  # its own normalisation
    with pytest.raises(ModelError, match="gives NaN or infinite .* the normalisation \\(mean, std\\)"):
        load_user_model(
            f"timm:{TINY_CNN}", path, TWO, input_size=32, mean=(10, 10, 10), std=(1e-3,) * 3, device="cpu"
        )


def test_predictions_never_give_a_nan_probability() -> None:
    assert predictions(torch.tensor([0.0, 1.0]), TWO)[0]["label"] == "positive"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ModelError, match="NaN or infinite outputs for this image"):
            predictions(torch.tensor([0.0, bad]), TWO)


def test_cli_refuses_a_nan_model_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = classify_cli(capsys, nan_onnx(tmp_path / "nan.onnx"), classes_file(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith("advexp classify: error: nan.onnx gives NaN") and "Traceback" not in err


# --- normalisation and input size ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"std": (1e-50,) * 3}, "std value must be a finite number between 0.001 and 10"),
        ({"std": (float("inf"),) * 3}, "std value must be a finite number"),
        ({"std": (0.2, 0.0, 0.2)}, "std value must be"),
        ({"std": (0.2, -0.2, 0.2)}, "std value must be"),
        ({"mean": (1e300,) * 3}, "mean value must be a finite number between -10 and 10"),
        ({"mean": (0.5, float("nan"), 0.5)}, "mean value must be"),
        ({"mean": (123.7, 116.3, 103.5)}, "divide 0-255 values by 255"),
        ({"mean": (0.5, 0.5)}, "mean must be three numbers"),
        ({"input_size": float("nan")}, "input size must be a whole number between 16 and 1024"),
        ({"input_size": 10**9}, "input size must be"),
    ],
)
def test_absurd_settings_are_refused_before_the_file_is_read(setting: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_user_model("resnet18", Path("never-read.safetensors"), TWO, **setting)


# --- errors of the libraries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("int64", "int64.onnx's input is of type int64; .* float32 input"),
        ("float64", "float64.onnx's input is of type double"),
        ("zero-height", r"zero-height.onnx's input shape \[1, 3, 0, 224\] has an empty dimension"),
        ("batch-4", "batch-4.onnx fixes the batch at 4 images"),
        ("output-type", "output-type.onnx could not be loaded: onnxruntime raised Fail: .*Type Error"),
    ],
)
def test_files_the_libraries_refuse_give_a_model_error_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    path = library_case(case, tmp_path)
    with pytest.raises(ModelError, match=message):
        load_user_model(None, path, TWO, device="cpu")
    code, out, err = classify_cli(capsys, path, classes_file(tmp_path))
    assert code == 2 and out == "" and path.name in err and "Traceback" not in err


def library_case(case: str, folder: Path) -> Path:
    nodes, weight = pooled("x")
    options: dict[str, Any] = {
        "int64": {"input_type": TensorProto.INT64},
        "float64": {"input_type": TensorProto.DOUBLE},
        "zero-height": {"input_shape": (1, 3, 0, 224)},
        "batch-4": {"input_shape": (4, 3, 32, 32)},
        # The declared output type disagrees with the graph: onnx2torch converts it, ONNX Runtime refuses.
        "output-type": {"output_type": TensorProto.INT64},
    }[case]
    return onnx_file(folder / f"{case}.onnx", nodes, initializers=(weight,), **options)


def test_a_fault_of_advexp_itself_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise KeyError("a bug")

    import advexp_core.networks.registry as models

    monkeypatch.setattr(models, "build_user_network", broken)
    with pytest.raises(KeyError):
        load_user_model("resnet18", tmp_path / "w.safetensors", TWO)


# --- weight types -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.bfloat16, torch.float16])
def test_low_precision_weights_load_as_float32(tmp_path: Path, dtype: torch.dtype) -> None:
    state = {
        k: v.to(dtype) if v.is_floating_point() else v for k, v in tiny_net(TINY_CNN).state_dict().items()
    }
    save_file(state, tmp_path / "w.safetensors")
    model = load_user_model(
        f"timm:{TINY_CNN}", tmp_path / "w.safetensors", ("a", "b", "c"), input_size=32, device="cpu"
    )
    params = list(model.module.parameters())
    assert all(p.dtype == torch.float32 for p in params)
    with torch.no_grad():
        assert torch.isfinite(model.module(torch.rand(2, 3, 32, 32))).all()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("float8-nan", "NaN or infinite values in 1 tensor"),
        ("float64-beyond-float32", "NaN or infinite values in 1 tensor"),
        ("complex", "stores 'fc.weight' as torch.complex64; expected real-valued weights"),
    ],
)
def test_weights_of_odd_types_are_refused_cleanly(tmp_path: Path, case: str, message: str) -> None:
    state = tiny_net(TINY_CNN).state_dict()
    weight = state["fc.weight"]
    if case == "float8-nan":
        state = {k: v.to(torch.float8_e4m3fn) if v.is_floating_point() else v for k, v in state.items()}
        state["fc.weight"] = torch.full_like(weight, float("nan")).to(torch.float8_e4m3fn)
        path = tmp_path / "w.safetensors"
        save_file(state, path)
    else:
        state["fc.weight"] = (
            weight.double() * 1e300 if case == "float64-beyond-float32" else weight.to(torch.complex64)
        )
        path = tmp_path / "w.pt"
        torch.save(state, path)
    with pytest.raises(ModelError, match=message):
        load_user_model(f"timm:{TINY_CNN}", path, ("a", "b", "c"), input_size=32, device="cpu")


# --- resources: refused before gigabytes are allocated ------------------------------------------


def test_a_tiny_file_for_a_huge_architecture_is_refused_before_building_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = builds(monkeypatch)
    bogus = tmp_path / "bogus.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    bogus.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    size = bogus.stat().st_size
    assert size < 100
    with pytest.raises(
        ModelError,
        match=f"bogus.safetensors holds {size} bytes, too few for the architecture.s 630,767,362 param",
    ):
        load_user_model("timm:vit_huge_patch14_224", bogus, TWO)
    with pytest.raises(ModelError, match="too few for the architecture's 25,557,032 parameters"):
        load_user_model("resnet50", bogus, [str(i) for i in range(1000)])
    assert seen == ["meta", "meta"]  # the 630-million-parameter network was never built


def test_weights_of_another_network_are_refused_before_building_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_file(tiny_net(TINY_CNN, num_classes=3).state_dict(), tmp_path / "three.safetensors")
    seen = builds(monkeypatch)
    with pytest.raises(ModelError, match=r"fc.weight is \(3, 16\) in the file but \(5, 16\)"):
        load_user_model(f"timm:{TINY_CNN}", tmp_path / "three.safetensors", tuple("abcde"))
    assert seen == ["meta"]


def test_too_many_class_names_are_refused_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = builds(monkeypatch)
    with pytest.raises(ModelError, match=f"200,000 class names given; .* at most {MAX_CLASSES:,}"):
        load_user_model("resnet50", Path("w.safetensors"), [f"c{i}" for i in range(200_000)])
    assert seen == [] and MAX_CLASSES >= 21_843  # ImageNet-21k still fits


def no_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything converts or runs a graph."""
    import onnxruntime

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the graph was run before its sizes were checked")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    monkeypatch.setattr(onnx_models, "convert_onnx", refuse)
    monkeypatch.setattr(own_models, "convert_onnx", refuse)


@pytest.mark.parametrize("inferred", [True, False])
@pytest.mark.parametrize("how", ["scales", "sizes"])
def test_an_onnx_that_resizes_its_input_400x_is_refused_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inferred: bool, how: str
) -> None:
    if how == "scales":
        path = resize_onnx(tmp_path / "bomb.onnx", scales=[1, 1, 400, 400])
    else:
        path = resize_onnx(tmp_path / "bomb.onnx", sizes=[1, 3, 12800, 12800])
    assert path.stat().st_size < 400
    no_running(monkeypatch)
    if not inferred:  # shape inference that leaves the Resize open: its constants still size it
        monkeypatch.setattr(onnx.shape_inference, "infer_shapes", lambda proto, **_: proto)
    with pytest.raises(
        ModelError, match=r"Resize 'blow_up' would make a tensor of shape \[1, 3, 12800, 12800\]"
    ):
        load_user_model(None, path, TWO)


def test_an_onnx_that_expands_to_a_huge_tensor_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head, weight = pooled("e")
    shape = numpy_helper.from_array(np.array([1, 3, 20000, 20000], np.int64), "shape")
    nodes = [helper.make_node("Expand", ["x", "shape"], ["e"]), *head]
    path = onnx_file(tmp_path / "expand.onnx", nodes, initializers=(weight, shape), input_shape=(1, 3, 1, 1))
    no_running(monkeypatch)
    with pytest.raises(
        ModelError, match=r"operator Expand would make a tensor of shape \[1, 3, 20000, 20000\]"
    ):
        load_user_model(None, path, TWO)


@pytest.mark.filterwarnings("ignore:Pytorch's nearest neighbor")  # onnx2torch's note on modes
def test_a_modest_resize_still_loads(tmp_path: Path) -> None:
    path = resize_onnx(tmp_path / "up.onnx", scales=[1, 1, 2, 2])
    model = load_user_model(None, path, TWO, device="cpu")
    assert model.card is not None and model.card.onnx_max_difference is not None


def test_files_over_the_size_limits_are_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = resize_onnx(tmp_path / "up.onnx", scales=[1, 1, 2, 2])
    monkeypatch.setattr(onnx_models, "MAX_ONNX_BYTES", 100)
    with pytest.raises(ModelError, match="up.onnx is larger than"):
        load_user_model(None, path, TWO)
    save_file(tiny_net(TINY_CNN).state_dict(), tmp_path / "w.safetensors")
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", 1000)
    with pytest.raises(ModelError, match="w.safetensors is larger than"):
        load_user_model(f"timm:{TINY_CNN}", tmp_path / "w.safetensors", ("a", "b", "c"))


# --- a fixed ONNX input size --------------------------------------------------------------------


def test_an_onnx_fixed_input_size_is_kept_when_asked(tmp_path: Path) -> None:
    path = export_onnx(tiny_net(TINY_CNN), tmp_path / "net.onnx", dynamic=False)
    with pytest.raises(ModelError, match="fixes its input at 32×32 px"):
        load_user_model(None, path, ("a", "b", "c"), input_size=64)
    model = load_user_model(None, path, ("a", "b", "c"), input_size=64, file_size_first=True, device="cpu")
    assert model.input_size == (32, 32) and model.card is not None
    assert "the file fixes 32×32 px, so your 64 px was not used" in model.card.input_from
