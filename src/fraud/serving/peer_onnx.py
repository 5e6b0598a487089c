"""The scikit-learn kinds as ONNX detectors: raw transactions in, fraud logit or probability out.

The same contract as the network's detector (export.py: one float64 input `transaction` of
shape (rows, 29), one output of shape (rows, 1)), so a peer can ship, and predict, Java and
Node users score it the same way. The graph is

    transaction → preprocess (float64, the pipeline's arithmetic op for op; then float32, as
    the scale stage stores the features the peers were trained and scored on) → float64 →
    logit (the model's raw decision value, float64) → [sigmoid in float64 → probability]

The logit is exposed (`output="logit"`) so that a calibration step can be appended after it.
The preprocessing and the sigmoid are shared; the logit's nodes are the kind's own
(`ModelKind.logit_graph`, written from the fitted attributes in src/fraud/kinds: the logistic
regression as MatMul + Add in float64, the trees as an ai.onnx.ml 5 TreeEnsemble in float64).
No TensorFlow and no converter package is needed to build or to run these files.
"""

from __future__ import annotations

import platform
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..core.declaration import shown_columns
from ..core.schema import PREPROCESS_NAME
from ..errors import PipelineError
from ..kinds.base import FEATURES, LOGIT, const
from ..kinds.gbdt import ML_OPSET  # recorded in every scikit-learn detector's versions
from ..kinds.registry import kind, kind_of_model
from .contract import MODEL_NAME, OUTPUT_NAME, ScalerStats, detector_metadata
from .preprocess_graph import OPSET, ROWS, detector_inputs, preprocess_graph, preprocess_opsets
from .sigmoid import sigmoid_graph

LOGIT_NAME = LOGIT
OUTPUTS = ("logit", "probability")
FEATURES32 = f"{PREPROCESS_NAME}/features32"   # the scaled features as the pipeline stores them
FEATURES64 = FEATURES                          # the same values, widened for the model
assert f"{PREPROCESS_NAME}/features" == FEATURES64

Graph = tuple[list[onnx.NodeProto], list[onnx.TensorProto]]


def _peer_features(stats: ScalerStats, eps: float, codes: bool = False) -> Graph:
    """`preprocess_graph`, then the float32 features widened to float64 (`FEATURES64`), as
    scikit-learn widens them before comparing them with its float64 thresholds. `codes`: the
    one-hot blocks then become one column of level codes each (`codes_graph`)."""
    nodes, constants = preprocess_graph(stats, eps, FEATURES32)
    wide = f"{PREPROCESS_NAME}/one_hot_features" if codes else FEATURES64
    nodes.append(helper.make_node("Cast", [FEATURES32], [wide],
                                  name=f"{PREPROCESS_NAME}/to_float64", to=TensorProto.DOUBLE))
    if codes:
        code_nodes, code_constants = codes_graph(stats, wide, FEATURES64)
        nodes += code_nodes
        constants += code_constants
    return nodes, constants


def codes_graph(stats: ScalerStats, source: str, target: str) -> Graph:
    """(rows, features) with one-hot blocks → (rows, numeric + categorical columns): each
    block as its level's code (block @ [0, 1, …]), NaN where the block is all zeros (missing
    or unseen: the trees' missing-value branch), as `declaration.codes_of_one_hot`."""
    p = f"{PREPROCESS_NAME}/codes/"
    start = len(stats.features) - sum(len(levels) for _, levels in stats.categories)
    constants = [const(p + "zero", [0], np.int64), const(p + "numeric_end", [start], np.int64),
                 const(p + "axis", [1], np.int64), const(p + "nan", np.nan, np.float64),
                 const(p + "none", 0.0, np.float64)]
    nodes = [helper.make_node("Slice", [source, p + "zero", p + "numeric_end", p + "axis"],
                              [p + "numeric"], name=p + "numeric")]
    columns = [p + "numeric"]
    for i, (_, levels) in enumerate(stats.categories):
        q, end = f"{p}{i}/", start + len(levels)
        constants += [const(q + "start", [start], np.int64), const(q + "end", [end], np.int64),
                      const(q + "levels", np.arange(len(levels))[:, None], np.float64)]
        nodes += [helper.make_node("Slice", [source, q + "start", q + "end", p + "axis"],
                                   [q + "block"], name=q + "block"),
                  helper.make_node("MatMul", [q + "block", q + "levels"], [q + "code"],
                                   name=q + "code"),
                  helper.make_node("ReduceSum", [q + "block", p + "axis"], [q + "sum"],
                                   name=q + "sum", keepdims=1),
                  helper.make_node("Equal", [q + "sum", p + "none"], [q + "none"],
                                   name=q + "none"),
                  helper.make_node("Where", [q + "none", p + "nan", q + "code"],
                                   [q + "code_or_nan"], name=q + "code_or_nan")]
        columns.append(q + "code_or_nan")
        start = end
    nodes.append(helper.make_node("Concat", columns, [target], name=p + "features", axis=1))
    return nodes, constants


def peer_name(model: Any) -> str:
    """The project's name of a fitted scikit-learn model (its kind's)."""
    try:
        return kind_of_model(model).name
    except PipelineError:
        raise PipelineError(f"no ONNX detector for a {type(model).__name__}: no model kind "
                            "fits it (src/fraud/kinds)") from None


def versions() -> dict[str, str]:
    """The libraries that wrote a peer detector (recorded in it, as the network's records its)."""
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "onnx": onnx.__version__, "numpy": np.__version__, "onnx_opset": str(OPSET),
            "onnx_ml_opset": str(ML_OPSET)}


def peer_metadata(name: str, stats: ScalerStats, eps: float) -> dict[str, str]:
    """What the detector says about itself: export.detector_metadata's keys, with no
    `.keras` twin (its sha256 is empty) and the scikit-learn versions."""
    return detector_metadata(name, stats, eps, "", versions())


def peer_detector(model: Any, stats: ScalerStats, eps: float,
                  output: Literal["logit", "probability"] = "probability",
                  metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """transaction (rows, inputs) float64 → preprocess → the peer → `output` (rows, 1) float64.

    `output="logit"` ends at the raw decision value (named `logit`), for a calibration to be
    appended; `"probability"` adds the float64 sigmoid (`sigmoid_graph`; named `probability`,
    as the network's detector's output), which is what `predict_proba` computes from it.
    """
    if output not in OUTPUTS:
        raise PipelineError(f"peer detector: output must be one of {', '.join(OUTPUTS)}, "
                            f"got {output!r}")
    name = peer_name(model)
    codes = bool(stats.categories) and kind(name).native_categorical
    n_features = len(stats.features) if not codes else \
        len(stats.features) - sum(len(levels) for _, levels in stats.categories) \
        + len(stats.categories)
    if int(model.n_features_in_) != n_features:
        raise PipelineError(f"{name}: expected a model of {n_features} features, got "
                            f"{model.n_features_in_}")
    pre_nodes, pre_constants = _peer_features(stats, eps, codes)
    logit = kind(name).logit_graph(model, n_features)  # type: ignore[misc]
    nodes, constants = [*pre_nodes, *logit.nodes], list(logit.constants)
    result = LOGIT_NAME
    if output == "probability":
        sigmoid_nodes, sigmoid_constants = sigmoid_graph(LOGIT_NAME, OUTPUT_NAME)
        nodes.extend(sigmoid_nodes)
        constants.extend(sigmoid_constants)
        result = OUTPUT_NAME
    graph = helper.make_graph(
        nodes, MODEL_NAME, detector_inputs(stats),
        [helper.make_tensor_value_info(result, TensorProto.DOUBLE, [ROWS, 1])],
        initializer=[*pre_constants, *constants])
    extra = {**preprocess_opsets(stats), **logit.opsets}
    opsets = [helper.make_opsetid("", OPSET),
              *(helper.make_opsetid(domain, version) for domain, version in extra.items())]
    # The oldest IR version that has these operator sets (8 for logreg, as the network's
    # detector; 10 with ai.onnx.ml 5), not the onnx package's newest (14), which older
    # runtimes in other languages refuse.
    detector = helper.make_model(graph, opset_imports=opsets, producer_name="fraud.peer_onnx",
                                 ir_version=helper.find_min_ir_version_for(opsets),
                                 doc_string=f"fraud detector ({name}): raw "
                                            f"{shown_columns(stats.inputs)} (float64) in, "
                                            f"fraud {output} out; see the model card")
    for key, value in sorted((metadata or peer_metadata(name, stats, eps)).items()):
        detector.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(detector, full_check=True)
    return detector
