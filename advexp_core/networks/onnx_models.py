"""ONNX files as differentiable PyTorch modules, checked before and after conversion.

An ``.onnx`` file crosses a trust boundary: it may name files on the server as "external data",
use operators that only a custom runtime defines, or be big enough to exhaust memory. `read_onnx`
refuses each with a message before anything else reads the graph (ONNX Runtime would follow an
external-data path); `convert_onnx` turns the checked graph into a ``torch.fx`` module with
onnx2torch, and `onnxruntime_difference` compares that module with ONNX Runtime's own answer on a
few random images, so a silent conversion error cannot pass for the user's network.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from advexp_core.networks.checkpoints import MAX_CHECKPOINT_BYTES
from advexp_core.networks.zoo import ModelError

MAX_ONNX_BYTES = MAX_CHECKPOINT_BYTES
MAX_ONNX_NODES = 20_000
MAX_RELATIVE_DIFFERENCE = 1e-3
# Values of one tensor for one image: 256 MB in float32, 4x a ResNet stem's output at 1024 px. A
# 300-byte graph can otherwise ask for gigabytes (a Resize by 400x) before any output is checked.
MAX_TENSOR_ELEMENTS = 1 << 26
CONVERTIBLE_OPSET = 17  # the newest opset at which onnx2torch 1.5.15 converts the common operators
STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class OnnxGraph:
    """A checked ONNX model and what its signature says: the image input's fixed size, outputs."""

    proto: Any  # onnx.ModelProto (onnx stays an import of this module only)
    input_name: str
    input_size: tuple[int, int] | None
    batch_fixed: bool
    outputs: int | None
    nodes: int
    channels: int = 3  # 1 for a network of grey images


def read_onnx(path: str | Path) -> OnnxGraph:
    """Read and check an ``.onnx`` file without following anything it points at.

    Raises:
        ModelError: too large, unreadable or truncated, external data, non-standard operator
            domains, too many nodes, a graph the ONNX checker rejects, or not one float32 image
            input of shape (N, 3, H, W) or (N, 1, H, W) with no empty dimension and a batch of 1
            or open.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ModelError(f"ONNX file not found: {path}")
    if path.stat().st_size > MAX_ONNX_BYTES:
        raise ModelError(f"{name} is larger than {MAX_ONNX_BYTES >> 20} MB; refusing to load it.")
    try:
        proto = onnx.load_model_from_string(path.read_bytes())  # bytes: no folder to resolve paths in
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{name} is not a readable ONNX file (it may be truncated): {exc}") from exc
    _refuse_external_data(proto, name)
    domains = sorted({op.domain for op in proto.opset_import} - set(STANDARD_DOMAINS))
    custom = [f"{n.op_type} ({n.domain})" for n in _nodes(proto.graph) if n.domain not in STANDARD_DOMAINS]
    if custom or domains or len(proto.functions):
        what = custom[0] if custom else (domains[0] if domains else "model-local functions")
        raise ModelError(
            f"{name} uses operators outside the standard ONNX set, e.g. {what}; only standard "
            "operators can be converted. Export with standard operators only."
        )
    nodes = sum(1 for _ in _nodes(proto.graph))
    if nodes > MAX_ONNX_NODES:
        raise ModelError(f"{name} has {nodes} operators; the limit is {MAX_ONNX_NODES}.")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "invalid graph"
        raise ModelError(f"{name} fails the ONNX checker: {first}") from exc
    return _signature(proto, name, nodes)


def _nodes(graph: Any) -> Iterator[Any]:
    """Every node of a graph and of its subgraphs (If, Loop, Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from _nodes(sub)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto a graph holds: initializers, sparse ones, and constants in attributes."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from _tensors(sub)


def _refuse_external_data(proto: Any, name: str) -> None:
    import onnx

    for tensor in _tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            where = next((e.value for e in tensor.external_data if e.key == "location"), "another file")
            raise ModelError(
                f"{name} keeps the weights of '{tensor.name}' outside the file (in {where!r}); "
                "such files are refused, since they could read files on the server. Export one "
                "self-contained .onnx (onnx.save(model, path, save_as_external_data=False))."
            )


def _signature(proto: Any, name: str, nodes: int) -> OnnxGraph:
    import onnx

    weights = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise ModelError(f"{name} has {len(inputs)} inputs; advexp needs exactly one image input.")
    tensor_type = inputs[0].type.tensor_type
    dims = list(tensor_type.shape.dim)
    if len(dims) != 4:
        raise ModelError(f"{name}'s input has {len(dims)} dimensions; expected (N, 3, H, W) or (N, 1, H, W).")
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:  # ONNX Runtime refuses float32 images otherwise
        kinds = onnx.TensorProto.DataType
        kind = kinds.Name(tensor_type.elem_type) if tensor_type.elem_type in kinds.values() else "unknown"
        raise ModelError(
            f"{name}'s input is of type {kind.lower()}; advexp gives networks float32 images, so export "
            "the model with a float32 input."
        )
    fixed = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if any(v is not None and v <= 0 for v in fixed):
        raise ModelError(f"{name}'s input shape {_shape_text(fixed)} has an empty dimension; refused.")
    if fixed[0] not in (None, 1):
        raise ModelError(
            f"{name} fixes the batch at {fixed[0]} images; export with a batch of 1 or a dynamic batch."
        )
    if fixed[1] not in (None, 1, 3):
        raise ModelError(
            f"{name}'s input has {fixed[1]} channels; expected 3 (RGB, N×3×H×W) or 1 (grey, N×1×H×W)."
        )
    size = (fixed[2], fixed[3]) if fixed[2] and fixed[3] else None
    out_dims = list(proto.graph.output[0].type.tensor_type.shape.dim) if proto.graph.output else []
    # (N, C) logits name their class count; other shapes are checked on the converted module's output
    outputs = out_dims[1].dim_value if len(out_dims) == 2 and out_dims[1].HasField("dim_value") else None
    return OnnxGraph(proto, inputs[0].name, size, fixed[0] == 1, outputs, nodes, 1 if fixed[1] == 1 else 3)


def _shape_text(dims: list[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def check_tensor_sizes(graph: OnnxGraph, *, input_size: tuple[int, int], name: str) -> None:
    """Refuse a graph that would make a tensor of more than `MAX_TENSOR_ELEMENTS` values for one
    image, before anything runs it.

    Shapes come from ONNX shape inference on the graph with its input fixed at (1, C, H, W); a
    Resize or Upsample whose output shape inference leaves open is sized from its constant scales
    or sizes. Only the top-level graph is checked (loop bodies may still grow at run time).

    Raises:
        ModelError: naming the operator and the shape it would make.
    """
    import onnx

    proto = _shapes_only(graph, input_size)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # onnx's inference errors: the checks below use whatever shapes are known
        pass
    shapes = {
        info.name: [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
        for info in (*proto.graph.input, *proto.graph.value_info, *proto.graph.output)
        if info.type.tensor_type.HasField("shape")
    }
    constants = _constants(proto.graph)
    for node in proto.graph.node:
        for out in node.output:
            dims = shapes.get(out)
            if node.op_type in ("Resize", "Upsample") and (dims is None or None in dims):
                dims = _resized_shape(node, shapes, constants) or dims
            known = [d for d in dims or () if d is not None]  # known dims bound the size from below
            if known and int(np.prod(known, dtype=np.float64)) > MAX_TENSOR_ELEMENTS:
                what = f"{node.op_type} '{node.name}'" if node.name else node.op_type
                raise ModelError(
                    f"{name}'s operator {what} would make a tensor of shape {_shape_text(dims or [])} "
                    f"for one {input_size[0]}×{input_size[1]} px image, over {MAX_TENSOR_ELEMENTS:,} "
                    "values; refused before running it."
                )


SMALL_CONSTANT = 64  # values: shape vectors, Resize scales and sizes; weights are larger


def _shapes_only(graph: OnnxGraph, input_size: tuple[int, int]) -> Any:
    """A copy of the graph for shape inference: its input fixed at (1, C, H, W), and initializers
    reduced to their shapes unless small (a 1 GB file is not copied twice for a few shape vectors)."""
    import onnx

    source = graph.proto
    proto = onnx.ModelProto(ir_version=source.ir_version, opset_import=source.opset_import)
    proto.graph.node.extend(source.graph.node)
    proto.graph.input.extend(source.graph.input)
    proto.graph.output.extend(source.graph.output)
    for tensor in source.graph.initializer:
        if int(np.prod(tensor.dims)) <= SMALL_CONSTANT:
            proto.graph.initializer.append(tensor)
        else:
            proto.graph.initializer.add(name=tensor.name, dims=tensor.dims, data_type=tensor.data_type)
    image = next(i for i in proto.graph.input if i.name == graph.input_name)
    for dim, value in zip(image.type.tensor_type.shape.dim, (1, graph.channels, *input_size), strict=True):
        dim.Clear()
        dim.dim_value = value
    return proto


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """The graph's small initializers and Constant nodes' values, by name."""
    from onnx import numpy_helper

    tensors = [(t.name, t) for t in graph.initializer]
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensors.append((node.output[0], node.attribute[0].t))
    return {name: numpy_helper.to_array(t) for name, t in tensors if int(np.prod(t.dims)) <= SMALL_CONSTANT}


def _resized_shape(
    node: Any, shapes: dict[str, list[int | None]], constants: dict[str, np.ndarray]
) -> list[int | None] | None:
    """A Resize's (or Upsample's) output shape from its constant sizes, or its input's shape times
    its constant scales; None when neither is known."""
    inputs = list(node.input)
    sizes_at, scales_at = (3, 2) if node.op_type == "Resize" and len(inputs) > 2 else (None, 1)
    if sizes_at is not None and len(inputs) > sizes_at and inputs[sizes_at] in constants:
        sizes = constants[inputs[sizes_at]].reshape(-1)
        if sizes.size:
            return [int(v) for v in sizes]
    scales = constants.get(inputs[scales_at]) if len(inputs) > scales_at else None
    source = shapes.get(inputs[0])
    if scales is None or source is None or scales.size != len(source):
        return None
    return [None if d is None else int(d * float(f)) for d, f in zip(source, scales.reshape(-1), strict=True)]


class FirstOutput(nn.Module):
    """A converted graph's first output (logits), one image at a time when the file fixes the batch at 1.

    Shapes: (N, 3, H, W) -> (N, C); (N, 1, H, W) for a graph of one input channel.
    """

    def __init__(self, graph: nn.Module, *, one_at_a_time: bool) -> None:
        super().__init__()
        self.graph = graph
        self.one_at_a_time = one_at_a_time

    def _run(self, x: Tensor) -> Tensor:
        out = self.graph(x)
        return out[0] if isinstance(out, tuple | list) else out

    def forward(self, x: Tensor) -> Tensor:
        if self.one_at_a_time:
            return torch.cat([self._run(x[i : i + 1]) for i in range(x.shape[0])])
        return self._run(x)


def convert_onnx(
    graph: OnnxGraph, *, input_size: tuple[int, int], name: str
) -> tuple[FirstOutput, tuple[str, ...]]:
    """The checked graph as a differentiable module (onnx2torch), taking normalised images.

    A graph of a newer opset than onnx2torch converts is first rewritten to `CONVERTIBLE_OPSET`
    with ONNX's version converter when that helps.

    Returns:
        (the module, notes saying what was done to the graph).

    Raises:
        ModelError: operators onnx2torch cannot convert (all named), a failed conversion, or outputs
            that do not depend differentiably on the input.
    """
    from onnx2torch import convert

    notes: list[str] = []
    proto, missing = graph.proto, _unconvertible(graph.proto)
    version = _opset(proto)
    if missing and version > CONVERTIBLE_OPSET:
        proto = _down_to_convertible_opset(proto)
        if proto is not None and not _unconvertible(proto):
            missing = set()
            notes.append(
                f"the graph was rewritten from opset {version} to {CONVERTIBLE_OPSET} for the conversion "
                "(checked against ONNX Runtime on your file as it is)"
            )
    if missing or proto is None:
        raise ModelError(
            f"{name} uses operators that do not convert to PyTorch: {', '.join(sorted(missing))}. "
            f"Export with opset_version={CONVERTIBLE_OPSET}; docs/own_models.md lists the known ones."
        )
    try:
        module = convert(_constants_as_initializers(proto))
    except Exception as exc:  # onnx2torch raises many types; each means "this graph did not convert"
        raise ModelError(f"{name} could not be converted to PyTorch: {type(exc).__name__}: {exc}") from exc
    module.eval()
    one = _needs_one_at_a_time(module, input_size, graph.channels)
    wrapped = FirstOutput(module, one_at_a_time=one)
    x = torch.rand(1, graph.channels, *input_size, requires_grad=True)
    try:
        out = wrapped(x)
        if not torch.isfinite(out).all():
            raise ModelError(
                f"{name} gives NaN or infinite outputs on a random image: its graph or weights "
                "compute them (a square root or logarithm of a negative number, an overflow), so "
                "no probability it gives could be trusted."
            )
        (grad,) = torch.autograd.grad(out.reshape(out.shape[0], -1)[:, 0].sum(), x, allow_unused=True)
    except ModelError:
        raise
    except Exception as exc:  # a graph that runs in ONNX Runtime but not here is a conversion error
        raise ModelError(
            f"{name} converted, but the PyTorch module fails: {type(exc).__name__}: {exc}"
        ) from exc
    if grad is None or not torch.isfinite(grad).all():
        raise ModelError(
            f"{name}'s outputs do not depend differentiably on its input (gradients are missing or "
            "not finite), so attacks and gradient explanations cannot run on it."
        )
    return wrapped, tuple(notes)


def _opset(proto: Any) -> int:
    return int(next((o.version for o in proto.opset_import if o.domain in STANDARD_DOMAINS), 0))


def _unconvertible(proto: Any) -> set[str]:
    """'Op (opset N)' for every operator onnx2torch has no converter for at the graph's opset."""
    from onnx2torch.node_converters.registry import get_converter

    version, missing = _opset(proto), set()
    for node in _nodes(proto.graph):
        try:
            get_converter(node.op_type, version, "")
        except NotImplementedError:
            missing.add(f"{node.op_type} (opset {version})")
    return missing


def _down_to_convertible_opset(proto: Any) -> Any | None:
    """The graph rewritten to `CONVERTIBLE_OPSET` by ONNX's version converter; None when it cannot."""
    import onnx

    try:
        return onnx.version_converter.convert_version(proto, CONVERTIBLE_OPSET)
    except Exception:  # the converter asserts on operators it has no adapter for
        return None


def _constants_as_initializers(proto: Any) -> Any:
    """A copy whose top-level weights are all initializers, as onnx2torch's converters expect.

    PyTorch's exporter shares equal weights through Identity nodes and may write constants as
    Constant nodes; a Conv whose bias comes from such a node does not convert otherwise.
    """
    import onnx
    from onnx import numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    known = {t.name: t for t in copy.graph.initializer}
    keep = []
    for node in copy.graph.node:
        source = None
        if node.op_type == "Identity" and node.input[0] in known:
            source = known[node.input[0]]
        elif node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            source = node.attribute[0].t
        if source is None or node.output[0] in known:
            keep.append(node)
            continue
        tensor = numpy_helper.from_array(numpy_helper.to_array(source), name=node.output[0])
        copy.graph.initializer.append(tensor)
        known[tensor.name] = tensor
    del copy.graph.node[:]
    copy.graph.node.extend(keep)
    return copy


def last_spatial_operator(
    module: FirstOutput, *, input_size: tuple[int, int], channels: int = 3
) -> nn.Module | None:
    """The converted operator that last outputs a spatial (N, C, h, w) map, h·w > 1: Grad-CAM's layer.

    In a converted graph every operator is its own module, so the end of the last block is its last
    activation (a ReLU after the residual Add, say), not the last convolution, which may sit on a
    shortcut branch. None when no operator has a spatial output.
    """
    found: list[nn.Module] = []
    calls: dict[int, int] = {}

    def hook(m: nn.Module, _inp: Any, out: Any) -> None:
        calls[id(m)] = calls.get(id(m), 0) + 1
        if isinstance(out, Tensor) and out.ndim == 4 and out.shape[2] * out.shape[3] > 1:
            found.append(m)

    leaves = [m for m in module.graph.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            module(torch.zeros(1, channels, *input_size))
    finally:
        for h in handles:
            h.remove()
    return next((m for m in reversed(found) if calls[id(m)] == 1), None)


def _needs_one_at_a_time(module: nn.Module, input_size: tuple[int, int], channels: int) -> bool:
    """True when a batch of two does not give the two single-image answers (a fixed batch in a Reshape)."""
    x = torch.rand(2, channels, *input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        try:
            both = module(x)
            both = both[0] if isinstance(both, tuple | list) else both
            first = module(x[:1])
            first = first[0] if isinstance(first, tuple | list) else first
        except Exception:  # the graph refuses a batch of two
            return True
    return both.shape[0] != 2 or not torch.allclose(both[:1], first, rtol=1e-4, atol=1e-5)


def onnxruntime_difference(
    graph: OnnxGraph,
    module: nn.Module,
    *,
    input_size: tuple[int, int],
    samples: int = 3,
    seed: int = 0,
    name: str = "The ONNX file",
) -> float:
    """Largest |torch − ONNX Runtime| over a few random images, relative to the largest |output|.

    Args:
        graph: the checked file.
        module: its conversion (normalised images -> outputs).
        input_size: (H, W) in pixels.
        samples: random images, one at a time (a file may fix the batch at 1).
        seed: of the images' generator.
        name: the file's name, for messages.

    Raises:
        ModelError: either side gives NaN or infinite values (a difference of NaN would compare as
            no difference at all), or the two shapes differ.

    Shapes: the images are (1, C, H, W) (C the graph's input channels), standard-normal (a
    normalised image's scale).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.log_severity_level = 3
    session = ort.InferenceSession(
        graph.proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    generator = torch.Generator().manual_seed(seed)
    worst, scale = 0.0, 0.0
    for _ in range(samples):
        x = torch.randn(1, graph.channels, *input_size, generator=generator)
        expected = np.asarray(session.run(None, {graph.input_name: x.numpy()})[0], dtype=np.float64)
        with torch.no_grad():
            got = module(x).double().numpy()  # before the module moves to its device
        if got.shape != expected.shape:
            raise ModelError(
                f"The converted module returns {got.shape}, ONNX Runtime {expected.shape}; refused."
            )
        for side, values in (("ONNX Runtime", expected), ("The converted module", got)):
            if not np.isfinite(values).all():
                raise ModelError(
                    f"{side} gives NaN or infinite outputs for {name} on a random normalised image: "
                    "its graph or weights compute them, so no probability it gives could be trusted."
                )
        worst = max(worst, float(np.abs(got - expected).max()))
        scale = max(scale, float(np.abs(expected).max()))
    return worst / max(scale, 1e-12)
