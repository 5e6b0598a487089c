"""What every kind of model tells the pipeline: one `ModelKind` per model, built in its own
module of this package (registry.py finds them).

Why a record of functions rather than `if name == ...` across the library: training,
evaluation, export, explanations and the charts ask the kind, so a new model is one module,
its params section and its stage lines in dvc.yaml. Nothing here imports TensorFlow,
scikit-learn or ONNX at import time: params.py reads the registry in every stage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Split = tuple[np.ndarray, np.ndarray]  # (scaled features, 0/1 labels)
# The scaled features (float64, the float32 the scale stage stores, widened) that a kind's
# ONNX logit reads, and the name its graph must give the logit (serving/peer_onnx.py).
FEATURES = "preprocess/features"
LOGIT = "logit"
# How serving/explain.py explains a kind's ONNX graph: exact integrated gradients of the
# Dense network, the closed form of a linear logit (constants `<name>/coef`, `<name>/intercept`),
# or exact baseline TreeSHAP of a TreeEnsemble plus `<name>/baseline`.
EXPLANATIONS = ("network", "linear", "trees")
NETWORK = "network"  # family: the Keras strategies, trained by src/stages/train.py
SCIKIT = "scikit"    # family: a scikit-learn model, trained by src/stages/train_peer.py


@dataclass(frozen=True)
class Fit:
    """A fitted model and what its training chose, for metrics/val/<model>.json."""
    model: Any
    summary: dict[str, Any]


@dataclass(frozen=True)
class LogitGraph:
    """ONNX nodes from FEATURES (rows, inputs) float64 to LOGIT (rows, 1) float64, their
    constants, and operator sets beyond the default domain (domain: version)."""
    nodes: list[Any]
    constants: list[Any]
    opsets: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Checks:
    """params.py's checks, handed to a kind's parser (a kind imports no shared module above
    errors and declaration): the same casts, bounds and one-line messages everywhere."""
    section: Callable[[dict[str, Any], str, type], dict[str, Any]]  # raw, name, dataclass
    fail: Callable[[str, Any, str], Exception]                      # name, value, allowed
    require: Callable[[str, Any, bool, str], None]                  # name, value, ok, allowed
    as_float: Callable[[str, Any], float]
    as_int: Callable[[str, Any], int]
    as_choice: Callable[..., str]                                   # name, value, choices


@dataclass(frozen=True)
class ModelKind:
    """One model: its names, its colour and, for a scikit-learn kind, how to fit it, check
    a loaded one and write its logit as ONNX. A network kind's training lives in train.py."""
    name: str                 # params.yaml, --models lists, file names (models/<name>.*)
    train_stage: str          # the dvc.yaml stage that trains it
    color: str                # the same in every chart (evaluation/colors.py)
    order: int                # its place in lists and charts (smaller first)
    family: str               # NETWORK or SCIKIT
    explanation: str          # one of EXPLANATIONS
    section: str | None = None                        # its params.yaml section, if any
    # params.yaml's content -> its typed section, with params.py's checks (one-line errors)
    parse: Callable[[dict[str, Any], Checks], Any] | None = None
    upper_bounds: Mapping[str, float] = field(default_factory=dict)  # params.UPPER_BOUNDS'
    overflow_bounds: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    fit: Callable[[Split, Split, Any, int], Fit] | None = None  # train, val, section, seed
    # The scikit-learn class a saved model must be, as (module, class): a class would
    # import scikit-learn in every stage.
    estimator: tuple[str, str] | None = None
    # skops nodes (module, class, loader) its saved file holds beyond kinds/_scikit.py's
    trusted: frozenset[tuple[str, str, str]] = frozenset()
    fitted_problem: Callable[[Any], str | None] | None = None  # what is wrong in a loaded one
    logit_graph: Callable[[Any, int], LogitGraph] | None = None  # model, inputs -> ONNX
    # Whether its params section trains it with balanced class weights (prior correction).
    balanced: Callable[[Any], bool] = lambda section: False
    # Whether it splits categorical columns natively: it then reads each one-hot block as one
    # column of level codes (NaN: missing or unseen), the last columns of its features, and
    # its `fit` takes `categorical=` their number (serving/peer_onnx.py: `codes_graph`).
    native_categorical: bool = False


def const(name: str, value: Any, dtype: Any) -> Any:
    """A named constant tensor of `dtype` (an ONNX initializer)."""
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def linear_graph(name: str, coef: Any, intercept: Any, n_features: int) -> LogitGraph:
    """A binary linear logit, features @ coef.T + intercept in float64: the graph of any
    kind whose `decision_function` is linear (explained by the `linear` explanation)."""
    from onnx import helper

    from ..errors import PipelineError

    coef = np.asarray(coef, dtype=np.float64)
    if coef.shape != (1, n_features):
        raise PipelineError(f"{name}: expected a binary model of {n_features} features, got "
                            f"coefficients of shape {coef.shape}")
    constants = [const(f"{name}/coef", coef.T, np.float64),
                 const(f"{name}/intercept", np.reshape(intercept, (1, 1)), np.float64)]
    nodes = [helper.make_node("MatMul", [FEATURES, f"{name}/coef"], [f"{name}/product"],
                              name=f"{name}/product"),
             helper.make_node("Add", [f"{name}/product", f"{name}/intercept"], [LOGIT],
                              name=f"{name}/logit")]
    return LogitGraph(nodes, constants)
