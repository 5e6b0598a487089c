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
free batch dimension, and one float output of shape (rows, 1).

Allowed operators can still bomb: eleven chained `Concat`s of a row with itself (608 bytes)
made 1.57 GB of values for 2,000 rows, 27 of a stored scalar 2 GB while loading (ONNX Runtime
folds what depends on weights alone), and 100,000 chained `MatMul`s took 6 s to load. So
the file is also held to budgets measured against the real detectors (see MAX_NODES): onnx's
own strict shape inference works out, from the input's shape alone (the file's declared
intermediate shapes are ignored), the shape of every node's output; their bytes per row, the
multiply-adds per row and the bytes that do not depend on the batch must stay within budget,
and the output must really be (rows, 1). A shape that inference cannot pin down (a dimension
other than the batch left free, the batch twice, an unknown rank) is refused rather than
bounded by a guess: every dimension of the real detectors but the batch is fixed, so only a
file made to evade the budget has one. Scoring then sizes its batches by the bytes per row
(onnx_scoring.py). What a model file can do is arithmetic on the rows it is given, in memory
and time bounded by the budgets and the batch; it cannot read files or loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from ..core.declaration import MAX_INPUTS
from ..errors import PipelineError, first_line, printable
from .contract import CATEGORY_INPUT, INPUT_DTYPE, INPUT_NAME, NETWORK_INPUT

# The operators the exported models are made of, by domain (network: MatMul, Add, Relu,
# Sigmoid; detector preprocessing: Slice, Add, Log, Concat, Sub, Div, Clip, Cast; the trees:
# ai.onnx.ml's TreeEnsemble), and the few element-wise ones a calibration or a linear model
# needs. Nothing that loops, branches, makes a shape from data or reads anything but its
# inputs.
ALLOWED_OPS: dict[str, frozenset[str]] = {
    "": frozenset({"Add", "Cast", "Clip", "Concat", "Div", "Exp", "Gemm", "Identity", "Log",
                   "MatMul", "Max", "Min", "Mul", "Neg", "Reciprocal", "Relu", "Sigmoid", "Slice",
                   "Sub",
                   # categorical columns: one-hot blocks to (rows, levels), back to codes
                   "Equal", "ReduceSum", "Squeeze", "Where"}),
    "ai.onnx.ml": frozenset({"OneHotEncoder", "TreeEnsemble"}),
}
ALLOWED_OPS["ai.onnx"] = ALLOWED_OPS[""]  # the default domain's other name
ALLOWED_DOMAINS = frozenset(ALLOWED_OPS)
# A detector is ~7 KB; a gradient-boosted tree ensemble a few MB. Anything much larger is not
# one of ours, and reading it whole into memory is the first thing loading does.
MAX_MODEL_BYTES = 64 * 1024 * 1024
# Elements of all stored tensors together: what a session may allocate for weights.
MAX_TENSOR_ELEMENTS = 16 * 1024 * 1024
# The budgets, against the detectors the pipeline writes (measured with onnx 1.23, tf2onnx
# and ONNX Runtime 1.32 on generated data, by `footprint`): the default network (16 hidden
# units) 6 nodes, its detector 15, logreg and gbdt (1,000 trees of 31 leaves) 16, each
# calibrated 24-26; per row, all their node outputs take 204-1,708 bytes (largest 232: the
# float64 features) and 211-713 multiply-adds. The largest models valid params allow: a
# network of model.hidden_units 4,096 takes 34,072 bytes (largest 16,384) and 127,154
# multiply-adds per row, 58,164 bytes and 131,165 with a 1,000-knot calibrator. None computes
# anything from its weights alone (0 bytes).
# Nodes: ONNX Runtime's load time grows with them (1,000 chained MatMuls 0.2 s, 100,000 six to
# twelve seconds); 1,000 is ~40x the largest detector.
MAX_NODES = 1_000
# All node outputs of one row: a bound on scoring's memory per row, whatever ONNX Runtime
# frees or reuses (~2.2x the largest valid model, 77x the default detector).
MAX_ROW_BYTES = 128 * 1024
# Multiply-adds (MatMul, Gemm) plus other elements computed per row: scoring's time per row
# (~7.6x the largest valid model). A tree ensemble counts one per output element: its walk is
# at most its node count, which MAX_MODEL_BYTES bounds.
MAX_ROW_WORK = 1_000_000
# Values computed from weights alone: ONNX Runtime folds them while loading, before any row;
# room for a float64 copy of the largest weights allowed.
MAX_FIXED_BYTES = 8 * MAX_TENSOR_ELEMENTS
ROWS = "rows"  # the batch dimension's name during shape inference
_FLOATS = {TensorProto.FLOAT: np.dtype(np.float32), TensorProto.DOUBLE: np.dtype(np.float64)}
# A text element's bytes as a budget counts them (a std::string; its characters are the
# caller's input, bounded by the CSV reader, not by the model file).
STRING_BYTES = 32
_TYPED_FIELDS = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data",
                 "string_data")


@dataclass(frozen=True)
class Footprint:
    """What scoring costs per row, from the inferred shapes of every node's output."""
    nodes: int
    row_bytes: int      # all node outputs of one row together: a bound on scoring's memory
    largest_bytes: int  # the largest of them, per row
    largest: str        # its name and shape, for messages
    row_work: int       # elements computed per row, MatMul/Gemm counted in multiply-adds
    fixed_bytes: int    # outputs that do not grow with the batch (computed from weights)
    output: list[int | str]


@dataclass(frozen=True)
class Contract:
    """The one input a model must take: its name, dtype and width (rows are free)."""
    what: str          # for messages: "a trained network", "an exported fraud detector"
    input_name: str
    input_dtype: np.dtype
    columns: int | None  # None: any fixed width up to MAX_INPUTS (the declared inputs)


NETWORK = Contract("a trained network (scaled float32 features in, such as "
                   "models/baseline.onnx)", NETWORK_INPUT, np.dtype(np.float32), None)
DETECTOR = Contract("an exported fraud model (raw transactions in: pass "
                    "models/fraud_detector.onnx)", INPUT_NAME, np.dtype(INPUT_DTYPE), None)


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
        raise _fail(path, f"{len(graph.node):,} operators, over the {MAX_NODES:,} allowed (a "
                          "fraud model has a few dozen)", fix)
    for node in graph.node:
        if node.op_type not in ALLOWED_OPS.get(node.domain, ()):
            # The ops by name alone (ai.onnx.ml's two are unambiguous): the line stays short.
            allowed = sorted(op for domain, ops in ALLOWED_OPS.items() if domain != "ai.onnx"
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
    width = contract.columns or "columns"
    expected = (f"one {contract.input_dtype} input {contract.input_name!r} of shape "
                f"(rows, {width}) and one float output of shape (rows, 1)")
    if contract is DETECTOR and len(inputs) == 2 and inputs[1].name == CATEGORY_INPUT:
        _check_text_input(inputs.pop(), path, fix)
    if len(inputs) != 1 or len(graph.output) != 1:
        raise _fail(path, f"expected {expected}, got {len(inputs)} input(s) and "
                          f"{len(graph.output)} output(s); it is not {contract.what}", fix)
    (given,), (output,) = inputs, graph.output
    dtype = _FLOATS.get(given.type.tensor_type.elem_type)
    dims = _dims(given)
    fixed_width = len(dims) == 2 and dims[0] is None and (
        dims[1] == contract.columns if contract.columns is not None
        else dims[1] is not None and 1 <= dims[1] <= MAX_INPUTS)
    if given.name != contract.input_name or dtype != contract.input_dtype or not fixed_width:
        shown = ["rows" if d is None else d for d in _dims(given)]
        raise _fail(path, f"expected {expected}, but its input is {printable(given.name)} "
                          f"({dtype or 'not float'}, shape {shown}); it is not "
                          f"{contract.what}", fix)
    if output.type.tensor_type.elem_type not in _FLOATS or _dims(output) != [None, 1]:
        shown = ["rows" if d is None else d for d in _dims(output)]
        raise _fail(path, f"expected {expected}, but its output has shape {shown}; it is "
                          f"not {contract.what}", fix)


def _check_text_input(value: onnx.ValueInfoProto, path: Path, fix: str) -> None:
    """A detector's categorical columns: (rows, columns) string, after its float input."""
    dims = _dims(value)
    if value.type.tensor_type.elem_type != TensorProto.STRING or len(dims) != 2 \
            or dims[0] is not None or dims[1] is None or not 1 <= dims[1] <= MAX_INPUTS:
        raise _fail(path, f"its second input {CATEGORY_INPUT!r} must be (rows, categorical "
                          "columns) string", fix)


def _inferred(model: onnx.ModelProto, path: Path, fix: str) -> onnx.GraphProto:
    """The graph with every value's shape worked out by onnx's own (strict) inference, from
    the input's shape alone: the file's declared intermediate and output shapes are dropped
    (a hostile file may declare what it likes), and the batch is named ROWS."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    graph = probe.graph
    del graph.value_info[:]
    for output in graph.output:
        output.type.tensor_type.ClearField("shape")
    stored = {tensor.name: tensor for tensor in graph.initializer}
    for value in graph.input:  # an input backed by a weight has the weight's shape
        if value.name in stored:
            value.type.CopyFrom(onnx.helper.make_tensor_type_proto(
                stored[value.name].data_type, list(stored[value.name].dims)))
    for given in [value for value in graph.input if value.name not in stored]:
        given.type.tensor_type.shape.dim[0].dim_param = ROWS
    try:
        onnx.checker.check_model(model)  # one definition per value, nodes in order
        return onnx.shape_inference.infer_shapes(probe, check_type=True, strict_mode=True,
                                                 data_prop=True).graph
    except Exception as error:  # onnx's ValidationError, InferenceError and friends
        raise _fail(path, f"its operators do not fit together ({first_line(error, 160)})",
                    fix) from None


def _shape(value: onnx.ValueInfoProto) -> tuple[list[int | str], int] | None:
    """Inferred dims (ints, ROWS, or "?" for anything else) and the item size; None if not a
    numeric tensor of known rank."""
    if not value.type.tensor_type.HasField("shape"):
        return None
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    except (KeyError, ValueError, TypeError):
        return None
    if dtype.kind not in "fiubO":
        return None
    return [d.dim_value if d.HasField("dim_value") else ROWS if d.dim_param == ROWS else "?"
            for d in value.type.tensor_type.shape.dim], \
        STRING_BYTES if dtype.kind == "O" else dtype.itemsize


def _inner(node: onnx.NodeProto, shapes: dict[str, tuple[list[int | str], int] | None]) -> int:
    """Multiply-adds per output element: the shared dimension of MatMul or Gemm, else 1."""
    known = shapes.get(node.input[0]) if node.input else None
    first = known[0] if known else None
    if node.op_type not in ("MatMul", "Gemm") or not first or not isinstance(first[-1], int):
        return 1
    transposed = any(a.name == "transA" and a.i for a in node.attribute)
    return int(first[0] if transposed and isinstance(first[0], int) else first[-1])


def footprint(model: onnx.ModelProto, path: Path, fix: str) -> Footprint:
    """What scoring the model costs per row, from its inferred shapes; a one-line
    PipelineError for a value whose size cannot be known before it runs (the budgets are
    checked by the caller; see MAX_NODES)."""
    graph = _inferred(model, path, fix)
    shapes = {v.name: _shape(v) for v in [*graph.input, *graph.value_info, *graph.output]}
    shapes |= {t.name: ([int(d) for d in t.dims], 0) for t in graph.initializer}
    row_bytes = fixed_bytes = work = largest_bytes = 0
    largest = ""
    for node in graph.node:
        for name in filter(None, node.output):
            dims, itemsize = shapes.get(name) or (None, 0)
            if dims is None or "?" in dims or dims.count(ROWS) > 1:
                shown = "unknown" if dims is None else printable(dims)
                raise _fail(path, f"the size of {printable(name)} (node {printable(node.name)}"
                                  f", shape {shown}) cannot be bounded before it runs: only "
                                  "the batch may be free", fix)
            size = int(np.prod([d for d in dims if d != ROWS], dtype=object)) * itemsize
            if ROWS not in dims:
                fixed_bytes += size
                continue
            row_bytes += size
            work += size // itemsize * _inner(node, shapes)
            if size > largest_bytes:
                largest, largest_bytes = f"{printable(name)} {printable(dims)}", size
    output = shapes.get(graph.output[0].name)
    return Footprint(len(graph.node), row_bytes, largest_bytes, largest, work, fixed_bytes,
                     output[0] if output else [])


def _check_footprint(model: onnx.ModelProto, path: Path, fix: str) -> Footprint:
    found = footprint(model, path, fix)
    if found.output != [ROWS, 1]:
        raise _fail(path, f"its output declares shape (rows, 1) but computes "
                          f"{printable(found.output)}", fix)
    if found.row_bytes > MAX_ROW_BYTES:
        raise _fail(path, f"its intermediate values take {found.row_bytes:,} bytes per row "
                          f"(largest: {found.largest}), over the {MAX_ROW_BYTES:,} a fraud "
                          "model may use", fix)
    if found.row_work > MAX_ROW_WORK:
        raise _fail(path, f"it computes {found.row_work:,} multiply-adds per row, over the "
                          f"{MAX_ROW_WORK:,} a fraud model may", fix)
    if found.fixed_bytes > MAX_FIXED_BYTES:
        raise _fail(path, f"the values it computes from its weights alone take "
                          f"{found.fixed_bytes:,} bytes, over the {MAX_FIXED_BYTES:,} a fraud "
                          "model may use", fix)
    return found


def check_model_bytes(content: bytes, path: Path, contract: Contract, fix: str) -> Footprint:
    """Raises a one-line PipelineError unless `content` is a self-contained model of the
    contract's shape built only from ALLOWED_OPS, within the budgets (see the module
    docstring for why); returns what a row costs it."""
    try:
        model = onnx.load_model_from_string(content)
    except Exception as error:  # protobuf's DecodeError and friends
        raise _fail(path, f"not a loadable ONNX model ({type(error).__name__})", fix) from None
    if not model.HasField("graph"):
        raise _fail(path, "not a loadable ONNX model (no graph)", fix)
    _check_nodes(model, path, fix)
    _check_tensors(model.graph, path, fix)
    _check_signature(model.graph, contract, path, fix)
    return _check_footprint(model, path, fix)
