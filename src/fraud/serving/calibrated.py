"""The calibrated detector as ONNX: a detector's logit → the calibrator's polyline → the
float64 sigmoid, in one graph, so `predict`, Python, Java and Node users all read calibrated
probabilities from one file.

Every calibrated detector ends with the float64 sigmoid of sigmoid.py (as the peers'
detectors do). The calibrators themselves (fitting, JSON, the numpy formula these nodes
reproduce) live in src/fraud/evaluation/calibration.py.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..core.calibrator import LOGIT_RANGE, Calibrator
from ..errors import PipelineError
from .sigmoid import Graph, sigmoid_graph

ONNX_OUTPUTS = ("sigmoid", "logit")  # what the given model's single output is
CALIBRATION_METADATA = "calibration"  # metadata key: the calibrator's JSON
_PREFIX = "calibration/"


def _single_output(graph: onnx.GraphProto) -> onnx.ValueInfoProto:
    if len(graph.output) != 1:
        raise PipelineError(f"calibration: the ONNX model has {len(graph.output)} outputs; "
                            "expected one (the probability or the logit)")
    return graph.output[0]


def _final_sigmoid(graph: onnx.GraphProto, output: str) -> tuple[list[onnx.NodeProto], str]:
    """The nodes that turn the logit into `output` and the logit's name: one `Sigmoid` node
    (the networks) or `sigmoid_graph`'s Neg → Exp → Add(·, 1) → Reciprocal (the peers)."""
    producer = {name: node for node in graph.node for name in node.output}
    node = producer.get(output)
    if node is not None and node.op_type == "Sigmoid":
        return [node], node.input[0]
    chain: list[onnx.NodeProto] = []
    for op in ("Reciprocal", "Add", "Exp", "Neg"):
        if node is None or node.op_type != op:
            return [], ""
        chain.append(node)
        node = producer.get(node.input[0]) if op != "Neg" else None
    return chain, chain[-1].input[0]


def with_logit_output(model: onnx.ModelProto, output: str = "sigmoid") -> onnx.ModelProto:
    """A copy of `model` whose single output is its logit. For `sigmoid`, the final sigmoid
    (a `Sigmoid` node or `sigmoid_graph`'s four) is removed and its input becomes the output
    (as the model computed it: float32 for the networks, before a float32 sigmoid rounds
    it away; float64 for the peers)."""
    if output not in ONNX_OUTPUTS:
        raise PipelineError(f"calibration: output must be one of {ONNX_OUTPUTS}, got {output!r}")
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    final = _single_output(graph)
    if output == "logit":
        return result
    removed, logit_name = _final_sigmoid(graph, final.name)
    inner = {name for node in removed for name in node.output} - {final.name}
    consumers = [node for node in graph.node if node not in removed
                 and {final.name, *inner} & set(node.input)]
    if not removed or consumers:
        raise PipelineError(f"calibration: the output {final.name!r} is not computed by one "
                            "final sigmoid; pass output='logit' if it is a logit")
    for node in removed:
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    known = {info.name: info for info in graph.value_info}
    logit = onnx.ValueInfoProto()
    logit.CopyFrom(known.get(logit_name, final))
    logit.name = logit_name
    graph.output.pop()
    graph.output.append(logit)
    return result


def _initializer(name: str, values: np.ndarray | float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float64), _PREFIX + name)


def _polyline_graph(logit: str, calibrated: str, calibrator: Calibrator) -> Graph:
    """g(z) = y0 + (clip(z, lo, hi) - anchor) @ slopes, kept in LOGIT_RANGE, in float64:
    `Calibrator.calibrated_logit`, op for op."""
    y0, lo, hi, anchor, slopes = calibrator.segments()
    constants = [_initializer("lo", lo), _initializer("hi", hi),
                 _initializer("anchor", anchor), _initializer("slopes", slopes.reshape(-1, 1)),
                 _initializer("y0", y0), _initializer("logit_min", LOGIT_RANGE[0]),
                 _initializer("logit_max", LOGIT_RANGE[1])]
    steps = [("Cast", [logit], {"to": TensorProto.DOUBLE}),
             ("Max", [None, "lo"], {}), ("Min", [None, "hi"], {}),
             ("Sub", [None, "anchor"], {}), ("MatMul", [None, "slopes"], {}),
             ("Add", [None, "y0"], {}), ("Max", [None, "logit_min"], {}),
             ("Min", [None, "logit_max"], {})]
    nodes, previous = [], ""
    for index, (op, inputs, attributes) in enumerate(steps):
        names = [previous if given is None else
                 given if index == 0 else _PREFIX + given for given in inputs]
        previous = calibrated if index == len(steps) - 1 else f"{_PREFIX}{index}_{op.lower()}"
        nodes.append(helper.make_node(op, names, [previous], name=f"{_PREFIX}{index}_{op}",
                                      **attributes))
    return nodes, constants


def calibrated_onnx(model: onnx.ModelProto, calibrator: Calibrator, output: str = "sigmoid",
                    output_name: str | None = None) -> onnx.ModelProto:
    """`model` with `calibrator` appended: its output (a final sigmoid's probability or a
    logit) becomes the calibrated probability, float64, shape (rows, 1), computed from the
    logit in float64 with the same formula as `Calibrator.__call__`. The calibrator's JSON
    rides along as metadata `calibration`. `output_name` defaults to the original output's
    name. Only element-wise operators and one MatMul are added (the ONNX contract's short
    list): the logit must already be (rows, 1), so no Reshape is needed."""
    logit_model = with_logit_output(model, output)
    graph = logit_model.graph
    logit = graph.output[0]
    name = output_name or _single_output(model.graph).name
    if output == "logit" and name == logit.name:
        raise PipelineError("calibration: give the calibrated output another name than the "
                            f"logit {name!r}")
    dims = logit.type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value != 1:
        raise PipelineError(f"calibration: the logit {logit.name!r} must have the declared "
                            "shape (rows, 1), as the project's models' outputs do")
    line_nodes, line_constants = _polyline_graph(logit.name, _PREFIX + "logit", calibrator)
    sigmoid_nodes, sigmoid_constants = sigmoid_graph(_PREFIX + "logit", name,
                                                     _PREFIX + "sigmoid")
    graph.node.extend([*line_nodes, *sigmoid_nodes])
    graph.initializer.extend([*line_constants, *sigmoid_constants])
    graph.output.pop()
    graph.output.append(helper.make_tensor_value_info(
        name, TensorProto.DOUBLE, [dims[0].dim_param or dims[0].dim_value or "rows", 1]))
    del graph.value_info[:]  # shapes inferred before the change may now be wrong
    kept = [entry for entry in logit_model.metadata_props if entry.key != CALIBRATION_METADATA]
    del logit_model.metadata_props[:]
    logit_model.metadata_props.extend(kept)
    entry = logit_model.metadata_props.add()
    entry.key, entry.value = CALIBRATION_METADATA, json.dumps(calibrator.to_dict())
    onnx.checker.check_model(logit_model)
    return logit_model
