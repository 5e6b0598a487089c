"""Gradient-boosted trees (HistGradientBoostingClassifier), a scikit-learn peer of the
networks: early-stopped on the pipeline's validation split, the best iteration kept (as Keras
restores its best epoch). Its logit is an ai.onnx.ml 5 TreeEnsemble in float64, explained by
exact baseline TreeSHAP.

Why the graph is written here from the fitted attributes and not by skl2onnx 1.20: its
HistGradientBoostingClassifier converter fails with protobuf 7 (it passes booleans to an
integer attribute), and when it runs it writes TreeEnsembleClassifier (ai.onnx.ml 1), whose
thresholds are float32 and whose output is float32. Here thresholds, leaf values and sum are
float64, so every split compares what scikit-learn compares (the float32 feature, widened,
against the float64 threshold).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PipelineError
from .base import FEATURES, LOGIT, SCIKIT, Checks, Fit, LogitGraph, ModelKind, Split, const

log = logging.getLogger(__name__)

# What HistGradientBoostingClassifier's early stopping reads on the validation split.
SCORINGS = ("average_precision", "loss")
# ai.onnx.ml 5 is the first with a float64 tree ensemble (ONNX 1.16; its ONNX Runtime kernel
# came with microsoft/onnxruntime#22333, in the 2025 releases).
ML_OPSET = 5
ML_DOMAIN = "ai.onnx.ml"
# TreeEnsemble's attribute codes (ONNX operator docs, ai.onnx.ml.TreeEnsemble-5).
_BRANCH_LEQ = 0
_BRANCH_MEMBER = 6  # the feature's value is one of the node's membership_values
_AGGREGATE_SUM = 1
_POST_TRANSFORM_NONE = 0


@dataclass(frozen=True)
class GbdtParams:
    learning_rate: float
    l2_regularization: float
    max_iter: int              # upper bound; early stopping on validation decides
    max_leaf_nodes: int
    min_samples_leaf: int
    n_iter_no_change: int      # patience, in boosting iterations
    scoring: str               # the early-stopping score on validation: one of SCORINGS


def parse_gbdt(raw: dict[str, Any], p: Checks) -> GbdtParams:
    """Section `gbdt`: HistGradientBoostingClassifier, early-stopped on the validation split."""
    g = p.section(raw, "gbdt", GbdtParams)
    scoring = p.as_choice("gbdt.scoring", g["scoring"], SCORINGS)
    result = GbdtParams(
        learning_rate=p.as_float("gbdt.learning_rate", g["learning_rate"]),
        l2_regularization=p.as_float("gbdt.l2_regularization", g["l2_regularization"]),
        max_iter=p.as_int("gbdt.max_iter", g["max_iter"]),
        max_leaf_nodes=p.as_int("gbdt.max_leaf_nodes", g["max_leaf_nodes"]),
        min_samples_leaf=p.as_int("gbdt.min_samples_leaf", g["min_samples_leaf"]),
        n_iter_no_change=p.as_int("gbdt.n_iter_no_change", g["n_iter_no_change"]),
        scoring=scoring,
    )
    p.require("gbdt.learning_rate", g["learning_rate"], 0 < result.learning_rate <= 1,
              "a number in (0, 1]")
    p.require("gbdt.l2_regularization", g["l2_regularization"], result.l2_regularization >= 0,
              "a number >= 0")
    p.require("gbdt.max_iter", g["max_iter"], result.max_iter >= 1, "a whole number >= 1")
    p.require("gbdt.max_leaf_nodes", g["max_leaf_nodes"], result.max_leaf_nodes >= 2,
              "a whole number >= 2")
    p.require("gbdt.min_samples_leaf", g["min_samples_leaf"], result.min_samples_leaf >= 1,
              "a whole number >= 1")
    p.require("gbdt.n_iter_no_change", g["n_iter_no_change"], result.n_iter_no_change >= 1,
              "a whole number >= 1 (boosting iterations without improvement before stopping)")
    return result


def _gbdt(params: GbdtParams, seed: int, max_iter: int, early_stopping: bool,
          categorical_features: Any = None) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Without categorical columns, scikit-learn's default stays (the saved model unchanged).
    categorical = {} if categorical_features is None else \
        {"categorical_features": categorical_features}
    return HistGradientBoostingClassifier(
        **categorical,
        learning_rate=params.learning_rate, l2_regularization=params.l2_regularization,
        max_iter=max_iter, max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf, early_stopping=early_stopping,
        validation_fraction=None, n_iter_no_change=params.n_iter_no_change,
        scoring=params.scoring, random_state=seed)


def fit_gbdt(train: Split, val: Split, params: GbdtParams, seed: int,
             categorical: int = 0) -> Fit:
    """HistGradientBoostingClassifier, early-stopped on OUR validation split, best kept.

    `categorical`: the last columns are that many categorical columns' level codes (NaN:
    missing or unseen), split natively (a subset of levels to each side).

    scikit-learn stops `n_iter_no_change` iterations after the best validation score and keeps
    those extra trees; Keras restores its best epoch. Boosting is sequential and the fit
    deterministic given `seed`, so the first `best` trees of the early-stopped fit are the
    trees a fit with `max_iter = best` grows (a test checks it tree by tree): the model keeps
    those, as if refitted without early stopping (a model skops can save: the early-stopping
    scorer cannot be), without growing them a second time (~40 % of the stage's time).
    """
    from . import _scikit

    if not categorical:
        train, val = _scikit.check_pair(train, val)
    width = train[0].shape[1]
    mask = [i >= width - categorical for i in range(width)] if categorical else None
    start = time.perf_counter()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(_scikit.THREADS, user_api="openmp"):
        search = _gbdt(params, seed, params.max_iter, early_stopping=True,
                       categorical_features=mask)
        search.fit(*train, X_val=val[0], y_val=val[1])
    # validation_score_[i]: the score after i iterations (higher is better, loss negated).
    best_iter = max(1, int(np.argmax(search.validation_score_)))
    iterations_run = int(search.n_iter_)
    model = first_iterations(search, best_iter)
    seconds = time.perf_counter() - start
    score = _scikit.val_ap(model, val)
    log.info("gbdt: %d iterations run, best %d by validation %s; val AP %.4f (%.1f s)",
             iterations_run, best_iter, params.scoring, score, seconds)
    return Fit(model, {
        "model": "gbdt", "scoring": params.scoring, "iterations_run": iterations_run,
        "n_iter": best_iter, "max_iter": params.max_iter,
        "stopped_early": bool(iterations_run < params.max_iter), "val_ap": score,
        "fit_seconds": round(seconds, 3)})


def first_iterations(search: Any, iterations: int) -> Any:
    """The early-stopped `search` cut to its first `iterations` trees and left as a fit with
    `max_iter = iterations` and no early stopping leaves a model: same params, no scorer,
    no per-iteration scores. Changes `search` in place and returns it."""
    if not 1 <= iterations <= search.n_iter_:
        raise PipelineError(f"gbdt: cannot keep {iterations} of {search.n_iter_} iterations")
    search.set_params(max_iter=iterations, early_stopping=False)
    search._predictors = search._predictors[:iterations]
    search._scorer = None
    search._use_validation_data = False
    search.do_early_stopping_ = False
    search.train_score_ = np.asarray([])
    search.validation_score_ = np.asarray([])
    # A bound method scikit-learn's scoring left on the instance (_patch_raw_predict).
    search.__dict__.pop("_raw_predict", None)
    return search


def _fitted_problem(model: Any) -> str | None:
    """Trees whose child indices point backwards would make scoring never end."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    from ._scikit import finite_floats

    features = model.n_features_in_
    problem = finite_floats("the baseline prediction", model._baseline_prediction, None)
    for number, (predictor,) in enumerate(model._predictors):
        nodes = predictor.nodes
        if problem or nodes.dtype != PREDICTOR_RECORD_DTYPE or not len(nodes):
            return problem or f"tree {number}: its nodes are not scikit-learn's tree records"
        inner = np.flatnonzero(nodes["is_leaf"] == 0)
        order = np.arange(len(nodes))[inner]
        if ((nodes["left"][inner] <= order) | (nodes["right"][inner] <= order)
                | (nodes["left"][inner] >= len(nodes)) | (nodes["right"][inner] >= len(nodes))
                | (nodes["feature_idx"][inner] < 0)
                | (nodes["feature_idx"][inner] >= features)).any() \
                or not np.isfinite(nodes["value"]).all() \
                or not np.isfinite(nodes["num_threshold"][inner]).all():
            return f"tree {number}: child or feature indices out of range, or values not finite"
    return problem


def _add_branch(arrays: dict[str, list[Any]], feature: int, split: float,
                true: tuple[int, bool], false: tuple[int, bool], missing_true: bool,
                members: list[float] | None = None) -> None:
    """One interior node; `true`/`false`: (index, is it a leaf) of the child on that side;
    `members`: a categorical split's left levels (codes)."""
    arrays["features"].append(feature)
    arrays["splits"].append(split)
    arrays["modes"].append(_BRANCH_LEQ if members is None else _BRANCH_MEMBER)
    if members is not None:  # each node's members, NaN-delimited (TreeEnsemble-5)
        arrays["members"].extend([*members, math.nan])
    for side, (index, is_leaf) in (("true", true), ("false", false)):
        arrays[f"{side}_ids"].append(index)
        arrays[f"{side}_leaf"].append(int(is_leaf))
    arrays["missing_true"].append(int(missing_true))


def _tree_arrays(model: Any) -> dict[str, list[Any]]:
    """The trees' interior nodes and leaves, numbered across the ensemble (TreeEnsemble-5).

    A node's true branch is scikit-learn's left child (`x <= threshold`, and missing values
    where `missing_go_to_left`). A tree that is one leaf gets a branch with that leaf on both
    sides, since every TreeEnsemble root is a branch.
    """
    arrays: dict[str, list[Any]] = {key: [] for key in (
        "roots", "features", "splits", "true_ids", "true_leaf", "false_ids", "false_leaf",
        "missing_true", "leaf_weights", "modes", "members")}
    columns, raw_levels = _column_order(model)
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
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
            feature = int(node["feature_idx"])
            members = _left_levels(predictor.raw_left_cat_bitsets[node["bitset_idx"]],
                                   raw_levels[feature]) if node["is_categorical"] else None
            _add_branch(arrays, int(columns[feature]), float(node["num_threshold"]),
                        ids[int(node["left"])], ids[int(node["right"])],
                        bool(node["missing_go_to_left"]), members)
    return arrays


def _column_order(model: Any) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """scikit-learn (1.4+) puts categorical columns first and ordinal-encodes them before the
    trees see them: per tree feature, its column of the model's input, and for a categorical
    one the input values its ordinal codes stand for."""
    if getattr(model, "_preprocessor", None) is None:
        return np.arange(model.n_features_in_), {}
    categorical = np.asarray(model.is_categorical_, dtype=bool)
    columns = np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])
    encoder = model._preprocessor.named_transformers_["encoder"]
    return columns, {i: np.asarray(values, dtype=np.float64)
                     for i, values in enumerate(encoder.categories_)}


def _left_levels(bitset: np.ndarray, raw_levels: np.ndarray) -> list[float]:
    """The input values a categorical split sends left: the set bits of its 256-bit set,
    ordinal codes, mapped back to the values they encode. A split that sends only missing
    values left has none: ONNX Runtime wants at least one member, so it gets -1, a code no
    row has (missing and unseen are NaN)."""
    bits = np.unpackbits(np.asarray(bitset, dtype="<u4").view(np.uint8), bitorder="little")
    return [float(raw_levels[code]) for code in np.flatnonzero(bits)] or [-1.0]


def gbdt_graph(model: Any, n_features: int = 0) -> LogitGraph:
    """The trees' sum plus the baseline (`_raw_predict`), float64, shape (rows, 1)."""
    if model.n_trees_per_iteration_ != 1:
        raise PipelineError("gbdt: expected a binary model (one tree per iteration), got "
                            f"{model.n_trees_per_iteration_}")
    from onnx import helper

    a = _tree_arrays(model)
    ensemble = helper.make_node(
        "TreeEnsemble", [FEATURES], ["gbdt/trees"], name="gbdt/trees", domain=ML_DOMAIN,
        n_targets=1, aggregate_function=_AGGREGATE_SUM, post_transform=_POST_TRANSFORM_NONE,
        tree_roots=a["roots"], nodes_featureids=a["features"],
        nodes_splits=const("nodes_splits", a["splits"], np.float64),
        nodes_modes=const("nodes_modes", a["modes"], np.uint8),
        **({"membership_values": const("membership_values", a["members"], np.float64)}
           if a["members"] else {}),
        nodes_truenodeids=a["true_ids"], nodes_trueleafs=a["true_leaf"],
        nodes_falsenodeids=a["false_ids"], nodes_falseleafs=a["false_leaf"],
        nodes_missing_value_tracks_true=a["missing_true"],
        leaf_targetids=[0] * len(a["leaf_weights"]),
        leaf_weights=const("leaf_weights", a["leaf_weights"], np.float64))
    baseline = const("gbdt/baseline", np.reshape(model._baseline_prediction, (1, 1)),
                      np.float64)
    add = helper.make_node("Add", ["gbdt/trees", "gbdt/baseline"], [LOGIT],
                           name="gbdt/logit")
    return LogitGraph([ensemble, add], [baseline], {ML_DOMAIN: ML_OPSET})


KINDS = (ModelKind(
    name="gbdt", train_stage="train_gbdt",
    # Black, not vermillion: vermillion and weighted's orange were the closest pair (CIEDE2000
    # 22 in normal vision, 12.5 for a deuteranope); with black the closest pair is 38 and 16
    # (test_colors.py measures it).
    color="#000000", order=50, family=SCIKIT, explanation="trees", section="gbdt",
    parse=parse_gbdt,
    upper_bounds={"gbdt.max_iter": 100_000, "gbdt.max_leaf_nodes": 65_536,
                  "gbdt.min_samples_leaf": 10_000_000, "gbdt.n_iter_no_change": 10_000},
    overflow_bounds={"gbdt.l2_regularization": (1e6, "the leaves' values underflow to 0")},
    fit=fit_gbdt,
    estimator=("sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
               "HistGradientBoostingClassifier"),
    trusted=frozenset({
        ("builtins", "tuple", "TupleNode"),
        ("numpy", "uint64", "NdArrayNode"),
        ("numpy.random._generator", "Generator", "RandomGeneratorNode"),
        ("sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
         "HistGradientBoostingClassifier", "ObjectNode"),
        ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper", "ObjectNode"),
        ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor", "ObjectNode"),
        ("sklearn.preprocessing._label", "LabelEncoder", "ObjectNode"),
        ("sklearn._loss.loss", "HalfBinomialLoss", "ObjectNode"),
        ("sklearn._loss._loss", "CyHalfBinomialLoss", "LossNode"),
        ("sklearn._loss.link", "LogitLink", "ObjectNode"),
        ("sklearn._loss.link", "Interval", "ObjectNode"),
        # With categorical columns, scikit-learn's own ordinal encoding of them (named
        # functions and types only: no arbitrary callable is trusted).
        ("sklearn.compose._column_transformer", "ColumnTransformer", "ObjectNode"),
        ("sklearn.preprocessing._encoders", "OrdinalEncoder", "ObjectNode"),
        ("sklearn.preprocessing._function_transformer", "FunctionTransformer", "ObjectNode"),
        ("sklearn.utils.validation", "check_array", "FunctionNode"),
        ("functools", "partial", "PartialNode"),
        ("builtins", "int", "TypeNode"),
        ("builtins", "slice", "SliceNode"),
        ("numpy", "float64", "TypeNode"),
    }),
    fitted_problem=_fitted_problem, logit_graph=gbdt_graph, native_categorical=True),)
