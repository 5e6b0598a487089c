"""Reason codes (src/fraud/serving/explain.py): attributions add up to the logit, and agree
with independent answers: per-feature differences for an additive network, a finite-
difference Riemann sum for a general one, the closed form for logistic regression, brute-force
Shapley values for trees."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from fraud.errors import PipelineError
from fraud.serving.contract import (
    INPUT_NAME,
    NETWORK_INPUT,
    OUTPUT_NAME,
    ScalerStats,
    detector_metadata,
)
from fraud.serving.explain import (
    NetworkExplainer,
    Preprocess,
    ReasonColumns,
    Tree,
    TreeExplainer,
    _tree_shap,
    explainer_from_onnx,
    global_importance,
    top_reasons,
)
from fraud.serving.peer_onnx import peer_detector, preprocess_graph
from tests.credit_card import INPUT_COLUMNS, N_FEATURES

CLIP, EPS, UNITS = 5.0, 0.001, 16


def stats(rng: np.random.Generator) -> ScalerStats:
    return ScalerStats(mean=rng.normal(0, 0.5, N_FEATURES), scale=rng.uniform(0.5, 2, N_FEATURES),
                       clip=CLIP)


def raw_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Raw transactions, a good share far outside the clip range (as flagged frauds are)."""
    v = rng.standard_t(2, size=(rows, N_FEATURES - 1)) * 3
    amount = rng.lognormal(3, 2, size=(rows, 1))
    return np.concatenate([v, amount], axis=1)


def network_onnx(rng: np.random.Generator, scaler: ScalerStats) -> onnx.ModelProto:
    """A detector shaped as detector.py writes it: preprocess → MatMul, Add, Relu, MatMul, Add,
    Sigmoid in float32, with the tf2onnx-style initializer names."""
    nodes, constants = preprocess_graph(scaler, EPS, NETWORK_INPUT)
    names = ["hidden/kernel", "hidden/bias", "output/kernel", "output/bias"]
    values = [rng.normal(0, 0.6, (N_FEATURES, UNITS)), rng.normal(0, 0.5, UNITS),
              rng.normal(0, 1.0, (UNITS, 1)), rng.normal(-3, 0.5, 1)]
    weights = [numpy_helper.from_array(v.astype(np.float32), n) for n, v in zip(names, values,
                                                                                 strict=True)]
    steps = [("MatMul", [NETWORK_INPUT, names[0]], "h1"), ("Add", ["h1", names[1]], "h2"),
             ("Relu", ["h2"], "h3"), ("MatMul", ["h3", names[2]], "o1"),
             ("Add", ["o1", names[3]], "logit"), ("Sigmoid", ["logit"], OUTPUT_NAME)]
    nodes += [helper.make_node(op, inputs, [out], name=out) for op, inputs, out in steps]
    graph = helper.make_graph(
        nodes, "fraud_detector",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, ["rows", N_FEATURES])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["rows", 1])],
        initializer=[*constants, *weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in detector_metadata("baseline", scaler, EPS, "", {}).items():
        model.metadata_props.add(key=key, value=value)
    return model


def onnx_probability(model: onnx.ModelProto, raw: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {INPUT_NAME: raw})[0], np.float64).reshape(-1)


@pytest.fixture(scope="module")
def network() -> tuple[onnx.ModelProto, np.ndarray]:
    rng = np.random.default_rng(0)
    return network_onnx(rng, stats(rng)), raw_rows(rng, 300)


def test_network_attributions_add_up_to_the_onnx_models_logit(network: Any) -> None:
    model, raw = network
    explainer = explainer_from_onnx(model, "toy")
    attributions = explainer(raw)
    assert attributions.contributions.shape == (len(raw), len(INPUT_COLUMNS))
    total = attributions.base + attributions.contributions.sum(axis=1)
    assert np.abs(total - attributions.logit).max() <= 1e-9
    probability = 1 / (1 + np.exp(-attributions.logit))  # float64 logit vs float32 file
    assert np.abs(probability - onnx_probability(model, raw)).max() <= 1e-6
    preprocess = explainer.preprocess
    clipped = np.abs(preprocess.standardise(raw)) > CLIP
    assert clipped.any(axis=1).mean() > 0.5  # the case the method is for
    # the base value is the logit at the training means (standardised 0)
    at_means = np.append(preprocess.mean[:-1], np.exp(preprocess.mean[-1]) - EPS)[None]
    np.testing.assert_allclose(preprocess.baseline_raw(), at_means)
    assert attributions.base == pytest.approx(float(explainer(at_means).logit[0]), abs=1e-9)


def test_clipped_features_get_credit_where_plain_gradients_are_zero(network: Any) -> None:
    model, raw = network
    explainer = explainer_from_onnx(model, "toy")
    row = raw[:1].copy()
    row[0, 3] = explainer.preprocess.mean[3] + 40 * explainer.preprocess.scale[3]  # V4 at +40 sd
    contribution = explainer(row).contributions[0, 3]
    assert contribution != 0.0


def test_an_additive_network_gets_each_features_own_change() -> None:
    """Each hidden unit reads one feature, so the logit is a sum of per-feature functions and
    the exact attribution of feature j is f_j(x_j) - f_j(0) (Shapley and IG agree)."""
    rng = np.random.default_rng(1)
    scaler = stats(rng)
    hidden = np.zeros((N_FEATURES, 2 * N_FEATURES))
    for j in range(N_FEATURES):
        hidden[j, 2 * j:2 * j + 2] = rng.normal(0, 1, 2)
    bias, out = rng.normal(0, 1, 2 * N_FEATURES), rng.normal(0, 1, 2 * N_FEATURES)
    explainer = NetworkExplainer(Preprocess(scaler.mean, scaler.scale, CLIP, EPS, True), hidden,
                                 bias, out, -2.0)
    raw = raw_rows(rng, 50)
    z = np.clip(explainer.preprocess.standardise(raw), -CLIP, CLIP)
    per_unit = np.maximum(z @ hidden + bias, 0) * out - np.maximum(bias, 0) * out
    expected = per_unit.reshape(len(raw), N_FEATURES, 2).sum(axis=2)
    assert np.abs(explainer(raw).contributions - expected).max() <= 1e-9


def test_network_attributions_match_a_finite_difference_riemann_sum(network: Any) -> None:
    """An independent computation of the same integral: 20,000 midpoints along the path,
    central differences of the logit instead of the analytic gradient."""
    model, raw = network
    explainer = explainer_from_onnx(model, "toy")
    u = explainer.preprocess.standardise(raw[:3])
    steps, h = 20_000, 1e-6
    t = (np.arange(steps) + 0.5) / steps
    expected = np.zeros_like(u)
    for j in range(N_FEATURES):
        step = np.zeros(N_FEATURES)
        step[j] = h
        points = t[None, :, None] * u[:, None, :]
        slope = (explainer.logit_of_standardised(points + step)
                 - explainer.logit_of_standardised(points - step)) / (2 * h)
        expected[:, j] = u[:, j] * slope.mean(axis=1)
    assert np.abs(explainer.integrated_gradients(u) - expected).max() <= 3e-3  # 1e-2 at 4,000


def test_a_network_that_is_a_logistic_regression_gets_the_closed_form() -> None:
    rng = np.random.default_rng(2)
    scaler = stats(rng)
    coef, intercept = rng.normal(0, 1, N_FEATURES), -4.0
    always_on = 1e3  # the one hidden unit never switches off
    explainer = NetworkExplainer(Preprocess(scaler.mean, scaler.scale, CLIP, EPS, True),
                                 coef[:, None], np.array([always_on]), np.array([1.0]),
                                 intercept - always_on)
    raw = raw_rows(rng, 100)
    z = np.clip(explainer.preprocess.standardise(raw), -CLIP, CLIP)
    attributions = explainer(raw)
    assert np.abs(attributions.contributions - coef * z).max() <= 1e-6
    assert attributions.base == pytest.approx(intercept, abs=1e-9)


@pytest.fixture(scope="module")
def fitted() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    scaler = stats(rng)
    raw = raw_rows(rng, 3000)
    features = Preprocess(scaler.mean, scaler.scale, CLIP, EPS, True).features(raw)
    labels = (features[:, 0] + features[:, 3] * features[:, 5] + rng.normal(0, 1, len(raw))
              > 2.5).astype(int)
    return {"stats": scaler, "raw": raw, "features": features, "labels": labels,
            "logreg": LogisticRegression(max_iter=1000).fit(features, labels),
            "gbdt": HistGradientBoostingClassifier(max_iter=15, max_leaf_nodes=8,
                                                   random_state=0).fit(features, labels)}


def test_logistic_regression_is_the_closed_form(fitted: dict[str, Any]) -> None:
    model = fitted["logreg"]
    detector = peer_detector(model, fitted["stats"], EPS)
    attributions = explainer_from_onnx(detector, "logreg")(fitted["raw"])
    features = fitted["features"]
    expected = model.coef_[0] * (features - 0.0)  # the baseline: the features' mean, 0
    assert np.abs(attributions.contributions - expected).max() <= 1e-6
    assert attributions.base == pytest.approx(model.intercept_[0], abs=1e-12)
    total = attributions.base + attributions.contributions.sum(axis=1)
    assert np.abs(total - model.decision_function(features)).max() <= 1e-9


def test_an_onnx_gbdt_gets_exact_baseline_shapley_values(fitted: dict[str, Any]) -> None:
    """From the ONNX file alone: brute-force Shapley values of v(S) = the file's logit with
    the columns outside S at the reference (the training means), over the features the trees
    use (the others are dummies: their value is 0 and they change no one else's)."""
    model, scaler = fitted["gbdt"], fitted["stats"]
    detector = peer_detector(model, scaler, EPS, output="logit")
    explainer = explainer_from_onnx(detector, "gbdt.onnx")
    raw = fitted["raw"][:4]
    attributions = explainer(raw)
    features = fitted["features"][:4]
    assert np.abs(attributions.logit - model.decision_function(features)).max() <= 1e-9
    total = attributions.base + attributions.contributions.sum(axis=1)
    assert np.abs(total - attributions.logit).max() <= 1e-9
    used = sorted({int(f) for (p,) in model._predictors for f, leaf in
                   zip(p.nodes["feature_idx"], p.nodes["is_leaf"], strict=True) if not leaf})
    reference = np.append(scaler.mean[:-1], np.exp(scaler.mean[-1]) - EPS)
    masks = np.array(list(itertools.product([0, 1], repeat=len(used))), dtype=bool)
    n = len(used)
    for row in range(len(raw)):
        hybrids = np.repeat(reference[None], len(masks), axis=0)
        for k, feature in enumerate(used):
            hybrids[masks[:, k], feature] = raw[row, feature]
        session = ort.InferenceSession(detector.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        value = dict(zip(map(tuple, masks), session.run(None, {INPUT_NAME: hybrids})[0][:, 0],
                         strict=True))
        expected = np.zeros(N_FEATURES)
        for k, feature in enumerate(used):
            for mask in masks[~masks[:, k]]:
                size = int(mask.sum())
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                with_k = mask.copy()
                with_k[k] = True
                expected[feature] += weight * (value[tuple(with_k)] - value[tuple(mask)])
        assert np.abs(attributions.contributions[row] - expected).max() <= 1e-9


def path_dependent_value(tree: Tree, x: np.ndarray, known: set[int], node: int = 0) -> float:
    """E[tree | x_S] as TreeSHAP defines it: follow x on splits of known features, else
    average both sides by their training counts."""
    if tree.is_leaf[node]:
        return float(tree.value[node])
    left, right = int(tree.left[node]), int(tree.right[node])
    if int(tree.feature[node]) in known:
        goes_left = x[tree.feature[node]] <= tree.threshold[node]
        return path_dependent_value(tree, x, known, left if goes_left else right)
    return float((tree.count[left] * path_dependent_value(tree, x, known, left)
                  + tree.count[right] * path_dependent_value(tree, x, known, right))
                 / tree.count[node])


def brute_force_shapley(tree: Tree, x: np.ndarray, features: list[int]) -> np.ndarray:
    phi = np.zeros(len(x))
    n = len(features)
    for j in features:
        others = [f for f in features if f != j]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                phi[j] += weight * (path_dependent_value(tree, x, {*subset, j})
                                    - path_dependent_value(tree, x, set(subset)))
    return phi


def test_tree_shap_equals_brute_force_shapley(fitted: dict[str, Any]) -> None:
    model = fitted["gbdt"]
    x = fitted["features"][:6]
    for (predictor,) in model._predictors[:4]:
        tree = Tree.from_nodes(predictor.nodes)
        used = sorted({int(f) for f, leaf in zip(tree.feature, tree.is_leaf, strict=True)
                       if not leaf})
        phi = np.zeros(x.shape)
        _tree_shap(tree, x, phi)
        for row in range(len(x)):
            assert np.abs(phi[row] - brute_force_shapley(tree, x[row], used)).max() <= 1e-9


def test_tree_shap_adds_up_to_the_models_logit(fitted: dict[str, Any]) -> None:
    model = fitted["gbdt"]
    explainer = TreeExplainer.from_hist_gbdt(model, Preprocess.of(fitted["stats"], EPS))
    attributions = explainer(fitted["raw"][:200])
    expected = model.decision_function(fitted["features"][:200])
    assert np.abs(attributions.logit - expected).max() <= 1e-9
    total = attributions.base + attributions.contributions.sum(axis=1)
    assert np.abs(total - expected).max() <= 1e-9


def test_reason_columns_rank_the_selected_rows_and_leave_the_rest_blank(network: Any) -> None:
    model, raw = network
    explainer = explainer_from_onnx(model, "toy")
    selected = np.zeros(len(raw[:20]), dtype=bool)
    selected[[2, 7]] = True
    reasons = ReasonColumns(explainer, 3)
    columns = reasons(raw[:20], selected)
    assert reasons.names == ["reason_1", "contribution_1", "reason_2", "contribution_2",
                             "reason_3", "contribution_3"]
    assert all(column[0] == "" for column in columns)
    order, values = top_reasons(explainer(raw[[2]]).contributions, 3)
    assert [columns[0][2], columns[2][2], columns[4][2]] == [INPUT_COLUMNS[i] for i in order[0]]
    assert float(columns[1][2]) == pytest.approx(values[0, 0], rel=1e-5)
    assert values[0, 0] >= values[0, 1] >= values[0, 2]


def test_global_importance_is_the_mean_absolute_contribution() -> None:
    contributions = np.zeros((4, len(INPUT_COLUMNS)))
    contributions[:, 0] = [1.0, -3.0, 2.0, 0.0]
    importance = global_importance(contributions, np.array([0, 1, 1, 0]))
    assert importance["all"]["V1"] == pytest.approx(1.5)
    assert importance["frauds"]["V1"] == pytest.approx(2.5)
    assert importance["frauds"]["Amount"] == 0.0
    assert global_importance(contributions, np.zeros(4))["frauds"] == {}


def test_predict_explains_the_flagged_rows_in_order(network: Any, tmp_path: Any) -> None:
    import pandas as pd

    from fraud.commands.predict import main

    model, raw = network
    path = tmp_path / "detector.onnx"
    path.write_bytes(model.SerializeToString())
    source = tmp_path / "batch.csv"
    pd.DataFrame(raw[:40], columns=INPUT_COLUMNS).to_csv(source, index=False)
    out = tmp_path / "scores.csv"
    probability = onnx_probability(model, raw[:40])
    threshold = float(np.quantile(probability, 0.8))
    main([str(path), str(source), "-o", str(out), "--threshold", str(threshold),
          "--explain", "2", "--chunk-size", "7", "-q"])
    scores = pd.read_csv(out, keep_default_na=False)
    assert list(scores.columns) == ["probability", "flagged", "reason_1", "contribution_1",
                                    "reason_2", "contribution_2"]
    flagged = scores["flagged"].to_numpy() == 1
    assert flagged.sum() == 8
    assert (scores.loc[~flagged, "reason_1"] == "").all()
    order, values = top_reasons(explainer_from_onnx(model, "toy")(raw[:40][flagged])
                                .contributions, 2)
    assert list(scores.loc[flagged, "reason_2"]) == [INPUT_COLUMNS[i] for i in order[:, 1]]
    assert np.allclose(scores.loc[flagged, "contribution_1"].astype(float), values[:, 0],
                       rtol=1e-5)


def test_predict_explain_needs_the_onnx_model(tmp_path: Any) -> None:
    from fraud.commands.predict import reason_columns

    with pytest.raises(PipelineError, match=r"pass detector\.onnx"):
        reason_columns(tmp_path / "detector.keras", 3, False, ["V1", "V2", "V3"])


# --- categorical columns: one reason per column ------------------------------------------------

def categorical_fits() -> dict[str, Any]:
    from fraud.core.params import _CHECKS
    from fraud.kinds.gbdt import fit_gbdt, parse_gbdt
    from tests.unit.test_peer_onnx import categorical_data

    train, val = categorical_data(4000, 1), categorical_data(300, 2)
    stats = train["stats"]
    logreg = LogisticRegression(max_iter=1000).fit(train["features"], train["labels"])
    section = {"learning_rate": 0.1, "l2_regularization": 1.0, "max_iter": 30,
               "max_leaf_nodes": 8, "min_samples_leaf": 20, "n_iter_no_change": 10,
               "scoring": "loss"}
    gbdt = fit_gbdt((stats.codes(train["features"]), train["labels"]),
                    (stats.codes(val["features"]), val["labels"]),
                    parse_gbdt({"gbdt": section}, _CHECKS), 0, categorical=2).model
    rows = np.empty((len(val["raw"]), 4), dtype=object)
    rows[:, :2], rows[:, 2:] = val["raw"], val["text"]
    return {"stats": stats, "logreg": logreg, "gbdt": gbdt, "rows": rows, "val": val}


def onnx_logit(detector: onnx.ModelProto, rows: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(detector.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {INPUT_NAME: np.asarray(rows[:, :2], dtype=np.float64),
                              "category": rows[:, 2:]})[0][:, 0]


def test_a_categorical_column_is_one_reason_and_the_reasons_add_up() -> None:
    """logreg (one-hot) and gbdt (native splits) explained from their ONNX files: one
    contribution per raw column (x, amount, mcc, channel), adding up to the file's logit;
    for logreg a category's contribution is its level's coefficient (unseen: 0)."""
    fits = categorical_fits()
    rows, stats = fits["rows"], fits["stats"]
    for name in ("logreg", "gbdt"):
        detector = peer_detector(fits[name], stats, EPS, output="logit")
        attributions = explainer_from_onnx(detector, name)(rows)
        assert attributions.contributions.shape == (len(rows), 4)
        total = attributions.base + attributions.contributions.sum(axis=1)
        np.testing.assert_allclose(total, onnx_logit(detector, rows), atol=1e-6)
    coef = fits["logreg"].coef_[0]
    attributions = explainer_from_onnx(peer_detector(fits["logreg"], stats, EPS, "logit"),
                                       "logreg")(rows)
    levels = list(stats.categories[0][1])
    for row in range(len(rows)):
        text = rows[row, 2]
        expected = coef[2 + levels.index(text)] if text in levels else 0.0
        assert attributions.contributions[row, 2] == pytest.approx(expected, abs=1e-6)


def test_gbdt_with_categorical_splits_gets_exact_baseline_shapley_values() -> None:
    """Brute force over the 4 raw columns: the baseline row is the numeric means and no
    known level (empty text) of each categorical column."""
    fits = categorical_fits()
    detector = peer_detector(fits["gbdt"], fits["stats"], EPS, output="logit")
    explainer = explainer_from_onnx(detector, "gbdt")
    rows = fits["rows"][:6]
    attributions = explainer(rows)
    reference = explainer.preprocess.baseline_raw()[0]
    masks = np.array(list(itertools.product([0, 1], repeat=4)), dtype=bool)
    for row in range(len(rows)):
        hybrids = np.repeat(reference[None], len(masks), axis=0)
        hybrids[masks] = np.repeat(rows[row][None], len(masks), axis=0)[masks]
        value = dict(zip(map(tuple, masks), onnx_logit(detector, hybrids), strict=True))
        expected = np.zeros(4)
        for k in range(4):
            for mask in masks[~masks[:, k]]:
                size = int(mask.sum())
                weight = math.factorial(size) * math.factorial(3 - size) / math.factorial(4)
                with_k = mask.copy()
                with_k[k] = True
                expected[k] += weight * (value[tuple(with_k)] - value[tuple(mask)])
        np.testing.assert_allclose(attributions.contributions[row], expected, atol=1e-9)
