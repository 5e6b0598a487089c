"""The scikit-learn peers as ONNX detectors: raw transactions in, fraud logit or probability out.

The same contract as the network's detector (export.py: one float64 input `transaction` of
shape (rows, 29), one output of shape (rows, 1)), so a peer can ship, and predict, Java and
Node users score it the same way. The graph is

    transaction → preprocess (float64, the pipeline's arithmetic op for op; then float32, as
    the scale stage stores the features the peers were trained and scored on) → float64 →
    logit (the model's raw decision value, float64) → [sigmoid in float64 → probability]

The logit is exposed (`output="logit"`) so that a calibration step can be appended after it.

Why the graph is written here from the fitted attributes and not by skl2onnx 1.20: its
HistGradientBoostingClassifier converter fails with protobuf 7 (it passes booleans to an
integer attribute), and when it runs it writes TreeEnsembleClassifier (ai.onnx.ml 1), whose
thresholds are float32 and whose output is float32. Here the trees are ai.onnx.ml 5
`TreeEnsemble` in float64 (thresholds, leaf values and sum), so every split compares what
scikit-learn compares (the float32 feature, widened, against the float64 threshold), and the
logistic regression is MatMul + Add in float64, as `decision_function` computes it.
No TensorFlow and no converter package is needed to build or to run these files.
"""

from __future__ import annotations

import platform
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from ..declaration import shown_columns
from ..errors import PipelineError
from ..schema import PREPROCESS_NAME
from .contract import INPUT_NAME, MODEL_NAME, OUTPUT_NAME, ScalerStats, detector_metadata
from .preprocess_graph import OPSET, ROWS, const, preprocess_graph
from .sigmoid import sigmoid_graph

# The operator sets: the default domain as the network's detector (src/fraud/serving/detector.py
# OPSET); ai.onnx.ml 5 is the first with a float64 tree ensemble (ONNX 1.16; its ONNX
# Runtime kernel came with microsoft/onnxruntime#22333, in the 2025 releases).
ML_OPSET = 5
ML_DOMAIN = "ai.onnx.ml"
LOGIT_NAME = "logit"
OUTPUTS = ("logit", "probability")
FEATURES32 = f"{PREPROCESS_NAME}/features32"   # the scaled features as the pipeline stores them
FEATURES64 = f"{PREPROCESS_NAME}/features"     # the same values, widened for the model
# TreeEnsemble's attribute codes (ONNX operator docs, ai.onnx.ml.TreeEnsemble-5).
_BRANCH_LEQ = 0
_AGGREGATE_SUM = 1
_POST_TRANSFORM_NONE = 0

PeerModel = LogisticRegression | HistGradientBoostingClassifier
Graph = tuple[list[onnx.NodeProto], list[onnx.TensorProto]]


def _peer_features(stats: ScalerStats, eps: float) -> Graph:
    """`preprocess_graph`, then the float32 features widened to float64 (`FEATURES64`), as
    scikit-learn widens them before comparing them with its float64 thresholds."""
    nodes, constants = preprocess_graph(stats, eps, FEATURES32)
    nodes.append(helper.make_node("Cast", [FEATURES32], [FEATURES64],
                                  name=f"{PREPROCESS_NAME}/to_float64", to=TensorProto.DOUBLE))
    return nodes, constants


def _logreg_graph(model: LogisticRegression, n_features: int) -> Graph:
    """`decision_function`: features @ coef.T + intercept, float64, shape (rows, 1)."""
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.shape != (1, n_features):
        raise PipelineError(f"logreg: expected a binary model of {n_features} features, got "
                            f"coefficients of shape {coef.shape}")
    constants = [const("logreg/coef", coef.T, np.float64),
                 const("logreg/intercept", np.reshape(model.intercept_, (1, 1)), np.float64)]
    nodes = [helper.make_node("MatMul", [FEATURES64, "logreg/coef"], ["logreg/product"],
                              name="logreg/product"),
             helper.make_node("Add", ["logreg/product", "logreg/intercept"], [LOGIT_NAME],
                              name="logreg/logit")]
    return nodes, constants


def _add_branch(arrays: dict[str, list[Any]], feature: int, split: float,
                true: tuple[int, bool], false: tuple[int, bool], missing_true: bool) -> None:
    """One interior node; `true`/`false`: (index, is it a leaf) of the child on that side."""
    arrays["features"].append(feature)
    arrays["splits"].append(split)
    for side, (index, is_leaf) in (("true", true), ("false", false)):
        arrays[f"{side}_ids"].append(index)
        arrays[f"{side}_leaf"].append(int(is_leaf))
    arrays["missing_true"].append(int(missing_true))


def _tree_arrays(model: HistGradientBoostingClassifier) -> dict[str, list[Any]]:
    """The trees' interior nodes and leaves, numbered across the ensemble (TreeEnsemble-5).

    A node's true branch is scikit-learn's left child (`x <= threshold`, and missing values
    where `missing_go_to_left`). A tree that is one leaf gets a branch with that leaf on both
    sides, since every TreeEnsemble root is a branch.
    """
    arrays: dict[str, list[Any]] = {key: [] for key in (
        "roots", "features", "splits", "true_ids", "true_leaf", "false_ids", "false_leaf",
        "missing_true", "leaf_weights")}
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise PipelineError("gbdt: categorical splits are not supported in the detector")
        is_leaf = nodes["is_leaf"].astype(bool)
        leaves, branches = np.flatnonzero(is_leaf), np.flatnonzero(~is_leaf)
        # node index -> (its index among the ensemble's leaves or branches, is it a leaf)
        ids = {**{int(i): (len(arrays["leaf_weights"]) + k, True) for k, i in enumerate(leaves)},
               **{int(i): (len(arrays["features"]) + k, False) for k, i in enumerate(branches)}}
        arrays["leaf_weights"].extend(float(v) for v in nodes["value"][leaves])
        arrays["roots"].append(len(arrays["features"]))
        if not len(branches):
            _add_branch(arrays, 0, 0.0, ids[0], ids[0], False)
        for node in nodes[branches]:
            _add_branch(arrays, int(node["feature_idx"]), float(node["num_threshold"]),
                        ids[int(node["left"])], ids[int(node["right"])],
                        bool(node["missing_go_to_left"]))
    return arrays


def _gbdt_graph(model: HistGradientBoostingClassifier) -> Graph:
    """The trees' sum plus the baseline (`_raw_predict`), float64, shape (rows, 1)."""
    if model.n_trees_per_iteration_ != 1:
        raise PipelineError("gbdt: expected a binary model (one tree per iteration), got "
                            f"{model.n_trees_per_iteration_}")
    a = _tree_arrays(model)
    ensemble = helper.make_node(
        "TreeEnsemble", [FEATURES64], ["gbdt/trees"], name="gbdt/trees", domain=ML_DOMAIN,
        n_targets=1, aggregate_function=_AGGREGATE_SUM, post_transform=_POST_TRANSFORM_NONE,
        tree_roots=a["roots"], nodes_featureids=a["features"],
        nodes_splits=const("nodes_splits", a["splits"], np.float64),
        nodes_modes=const("nodes_modes", [_BRANCH_LEQ] * len(a["features"]), np.uint8),
        nodes_truenodeids=a["true_ids"], nodes_trueleafs=a["true_leaf"],
        nodes_falsenodeids=a["false_ids"], nodes_falseleafs=a["false_leaf"],
        nodes_missing_value_tracks_true=a["missing_true"],
        leaf_targetids=[0] * len(a["leaf_weights"]),
        leaf_weights=const("leaf_weights", a["leaf_weights"], np.float64))
    baseline = const("gbdt/baseline", np.reshape(model._baseline_prediction, (1, 1)),
                      np.float64)
    add = helper.make_node("Add", ["gbdt/trees", "gbdt/baseline"], [LOGIT_NAME],
                           name="gbdt/logit")
    return [ensemble, add], [baseline]


def peer_name(model: PeerModel) -> str:
    """The project's name of a fitted peer (params.PEERS)."""
    if isinstance(model, LogisticRegression):
        return "logreg"
    if isinstance(model, HistGradientBoostingClassifier):
        return "gbdt"
    raise PipelineError(f"no ONNX detector for a {type(model).__name__}: expected "
                        "LogisticRegression or HistGradientBoostingClassifier")


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


def peer_detector(model: PeerModel, stats: ScalerStats, eps: float,
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
    n_features = len(stats.inputs)
    if int(model.n_features_in_) != n_features:
        raise PipelineError(f"{name}: expected a model of {n_features} features, got "
                            f"{model.n_features_in_}")
    pre_nodes, pre_constants = _peer_features(stats, eps)
    nodes, constants = _logreg_graph(model, n_features) if name == "logreg" else _gbdt_graph(model)
    nodes = [*pre_nodes, *nodes]
    result = LOGIT_NAME
    if output == "probability":
        sigmoid_nodes, sigmoid_constants = sigmoid_graph(LOGIT_NAME, OUTPUT_NAME)
        nodes.extend(sigmoid_nodes)
        constants.extend(sigmoid_constants)
        result = OUTPUT_NAME
    graph = helper.make_graph(
        nodes, MODEL_NAME,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE,
                                       [ROWS, n_features])],
        [helper.make_tensor_value_info(result, TensorProto.DOUBLE, [ROWS, 1])],
        initializer=[*pre_constants, *constants])
    opsets = [helper.make_opsetid("", OPSET)]
    if name == "gbdt":
        opsets.append(helper.make_opsetid(ML_DOMAIN, ML_OPSET))
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
