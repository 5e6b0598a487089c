"""What an ONNX model file may be, checked before ONNX Runtime sees it.

A model file is untrusted input: it may come from a registry, a colleague or an attacker.
ONNX Runtime will run whatever graph it holds, and a graph can do more than score:

- *external data*: an initializer stored as `location: params.yaml` is read from that path,
  relative to the working directory when the model is loaded from bytes, so a "model" can
  spell out any file under it in its scores;
- control flow (`Loop`, `Scan`, `If`) and shape-making operators (`ConstantOfShape`, `Expand`,
  `Tile`, `Range`) can run for ever or allocate without limit from a few bytes;
- a tensor's declared shape can claim far more elements than the file stores.

So a file is scored only if it is plainly a fraud model: every tensor stored inside the file
and as large as it says, operators from a short list of what the project's detectors use,
no sub-graphs or local functions, one float input of the expected name, dtype and width with a
free batch dimension, and one float output of shape (rows, 1). What a model file can do, then,
is arithmetic on the rows it is given; it cannot read files, loop, or grow its memory beyond
what its own bytes and the batch imply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from ..errors import PipelineError, printable
from ..schema import INPUT_COLUMNS, N_FEATURES
from .contract import INPUT_DTYPE, INPUT_NAME, NETWORK_INPUT

# The operators the exported models are made of, by domain (network: MatMul, Add, Relu,
# Sigmoid; detector preprocessing: Slice, Add, Log, Concat, Sub, Div, Clip, Cast; the trees:
# ai.onnx.ml's TreeEnsemble), and the few element-wise ones a calibration or a linear model
# needs. Nothing that loops, branches, makes a shape from data or reads anything but its
# inputs.
ALLOWED_OPS: dict[str, frozenset[str]] = {
    "": frozenset({"Add", "Cast", "Clip", "Concat", "Div", "Exp", "Gemm", "Identity", "Log",
                   "MatMul", "Max", "Min", "Mul", "Neg", "Reciprocal", "Relu", "Sigmoid", "Slice",
                   "Sub"}),
    "ai.onnx.ml": frozenset({"TreeEnsemble"}),
}
ALLOWED_OPS["ai.onnx"] = ALLOWED_OPS[""]  # the default domain's other name
ALLOWED_DOMAINS = frozenset(ALLOWED_OPS)
# A detector is ~7 KB; a gradient-boosted tree ensemble a few MB. Anything much larger is not
# one of ours, and reading it whole into memory is the first thing loading does.
MAX_MODEL_BYTES = 64 * 1024 * 1024
MAX_NODES = 100_000
# Elements of all stored tensors together: what a session may allocate for weights.
MAX_TENSOR_ELEMENTS = 16 * 1024 * 1024
_FLOATS = {TensorProto.FLOAT: np.dtype(np.float32), TensorProto.DOUBLE: np.dtype(np.float64)}
_TYPED_FIELDS = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data",
                 "string_data")


@dataclass(frozen=True)
class Contract:
    """The one input a model must take: its name, dtype and width (rows are free)."""
    what: str          # for messages: "a trained network", "an exported fraud detector"
    input_name: str
    input_dtype: np.dtype
    columns: int


NETWORK = Contract("a trained network (scaled float32 features in, such as "
                   "models/baseline.onnx)", NETWORK_INPUT, np.dtype(np.float32), N_FEATURES)
DETECTOR = Contract("an exported fraud model (raw transactions in: pass "
                    "models/fraud_detector.onnx)", INPUT_NAME, np.dtype(INPUT_DTYPE),
                    len(INPUT_COLUMNS))


def claimed_contract(content: bytes) -> Contract:
    """NETWORK if the model's input is named as a trained network's (scaled features), else
    DETECTOR (raw transactions): what a caller that takes either scores it with.
    `check_model_bytes` then holds the file to the whole contract (a file that does not
    parse is reported there)."""
    try:
        graph = onnx.load_model_from_string(content).graph
    except Exception:  # protobuf's DecodeError and friends: check_model_bytes says it
        return DETECTOR
    stored = {tensor.name for tensor in graph.initializer}
    names = [value.name for value in graph.input if value.name not in stored]
    return NETWORK if names == [NETWORK.input_name] else DETECTOR


def _fail(path: Path, problem: str, fix: str) -> PipelineError:
    return PipelineError(f"{path}: {problem}; {fix}")


def _stored_elements(tensor: TensorProto) -> int:
    """How many elements the tensor's bytes really hold (raw or typed fields)."""
    if tensor.HasField("raw_data"):
        try:
            size = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, ValueError, TypeError):  # an unknown or string type has no raw form
            return -1
        return len(tensor.raw_data) // size if len(tensor.raw_data) % size == 0 else -1
    return sum(len(getattr(tensor, name)) for name in _TYPED_FIELDS)


def _stored_tensors(graph: onnx.GraphProto) -> list[tuple[str, TensorProto]]:
    """Every tensor the file stores: initializers, and tensor attributes (TreeEnsemble keeps
    its thresholds and leaf weights there)."""
    found = [(tensor.name, tensor) for tensor in graph.initializer]
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                found.append((f"{node.name}.{attribute.name}", attribute.t))
            found += [(f"{node.name}.{attribute.name}", t) for t in attribute.tensors]
    return found


def _check_tensors(graph: onnx.GraphProto, path: Path, fix: str) -> None:
    total = 0
    for name, tensor in _stored_tensors(graph):
        if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
            where = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
            raise _fail(path, f"tensor {printable(name)} is stored outside the file "
                              f"(external data {printable(where)}); a model file must hold "
                              "all its weights itself", fix)
        declared = int(np.prod([int(d) for d in tensor.dims], dtype=object)) if tensor.dims \
            else 1
        if any(int(d) < 0 for d in tensor.dims) or declared != _stored_elements(tensor):
            raise _fail(path, f"tensor {printable(name)} declares shape "
                              f"{printable(list(tensor.dims))} but stores "
                              f"{_stored_elements(tensor):,} elements", fix)
        total += declared
        if total > MAX_TENSOR_ELEMENTS:
            raise _fail(path, f"its weights hold over {MAX_TENSOR_ELEMENTS:,} elements, far "
                              "more than a fraud model needs", fix)
    if graph.sparse_initializer:
        raise _fail(path, "it holds sparse initializers, which no fraud model uses", fix)


def _check_nodes(model: onnx.ModelProto, path: Path, fix: str) -> None:
    graph = model.graph
    domains = {entry.domain for entry in model.opset_import} - ALLOWED_DOMAINS
    if domains or model.functions:
        extra = sorted(domains) or [f.name for f in model.functions]
        raise _fail(path, f"it defines or imports custom operators {printable(extra)}", fix)
    if len(graph.node) > MAX_NODES:
        raise _fail(path, f"{len(graph.node):,} operators, over the {MAX_NODES:,} allowed", fix)
    for node in graph.node:
        if node.op_type not in ALLOWED_OPS.get(node.domain, ()):
            allowed = sorted(f"{domain + '.' if domain else ''}{op}"
                             for domain, ops in ALLOWED_OPS.items() if domain != "ai.onnx"
                             for op in ops)
            raise _fail(path, f"operator {printable(node.op_type)} (node "
                              f"{printable(node.name)}) is not one a fraud model uses "
                              f"(allowed: {', '.join(allowed)})", fix)
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute):
            raise _fail(path, f"node {printable(node.name)} holds a sub-graph", fix)


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    """A value's dims: an int where fixed, None where free (named or unknown)."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _check_signature(graph: onnx.GraphProto, contract: Contract, path: Path, fix: str) -> None:
    stored = {t.name for t in graph.initializer}
    inputs = [value for value in graph.input if value.name not in stored]
    expected = (f"one {contract.input_dtype} input {contract.input_name!r} of shape "
                f"(rows, {contract.columns}) and one float output of shape (rows, 1)")
    if len(inputs) != 1 or len(graph.output) != 1:
        raise _fail(path, f"expected {expected}, got {len(inputs)} input(s) and "
                          f"{len(graph.output)} output(s); it is not {contract.what}", fix)
    (given,), (output,) = inputs, graph.output
    dtype = _FLOATS.get(given.type.tensor_type.elem_type)
    if given.name != contract.input_name or dtype != contract.input_dtype \
            or _dims(given) != [None, contract.columns]:
        shown = ["rows" if d is None else d for d in _dims(given)]
        raise _fail(path, f"expected {expected}, but its input is {printable(given.name)} "
                          f"({dtype or 'not float'}, shape {shown}); it is not "
                          f"{contract.what}", fix)
    if output.type.tensor_type.elem_type not in _FLOATS or _dims(output) != [None, 1]:
        shown = ["rows" if d is None else d for d in _dims(output)]
        raise _fail(path, f"expected {expected}, but its output has shape {shown}; it is "
                          f"not {contract.what}", fix)


def check_model_bytes(content: bytes, path: Path, contract: Contract, fix: str) -> None:
    """Raises a one-line PipelineError unless `content` is a self-contained model of the
    contract's shape built only from ALLOWED_OPS (see the module docstring for why)."""
    try:
        model = onnx.load_model_from_string(content)
    except Exception as error:  # protobuf's DecodeError and friends
        raise _fail(path, f"not a loadable ONNX model ({type(error).__name__})", fix) from None
    if not model.HasField("graph"):
        raise _fail(path, "not a loadable ONNX model (no graph)", fix)
    _check_nodes(model, path, fix)
    _check_tensors(model.graph, path, fix)
    _check_signature(model.graph, contract, path, fix)
