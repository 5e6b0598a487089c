"""The peers' ONNX detectors (src/fraud/serving/peer_onnx.py): raw columns in, the pipeline's
preprocessing and the fitted model as ONNX ops, and the same scores as scikit-learn.

Small models on synthetic data through the pipeline's own clean/split/scale, so that the
detector is checked against what evaluate scores: scikit-learn on the scaled float32 arrays.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from fraud.core.params import SplitParams
from fraud.data.prepare import clean, features_and_labels, fit_scaler, scale, split
from fraud.data.synthetic import generate_creditcard
from fraud.errors import PipelineError
from fraud.kinds._scikit import scores as peer_scores
from fraud.kinds.gbdt import ML_DOMAIN, ML_OPSET, gbdt_graph
from fraud.serving.contract import INPUT_NAME, OUTPUT_NAME, ScalerStats, read_detector_metadata
from fraud.serving.onnx_contract import DETECTOR
from fraud.serving.onnx_scoring import load_onnx
from fraud.serving.peer_onnx import (
    FEATURES32,
    FEATURES64,
    LOGIT_NAME,
    peer_detector,
)
from fraud.serving.sigmoid import sigmoid_graph
from tests.conftest import run_predict
from tests.credit_card import INPUT_COLUMNS

EPS = 0.001
CLIP = 5.0
# Tolerances reached (and why): the trees are float64 throughout, so only the order of the
# sum differs from scikit-learn; scikit-learn's logistic regression fitted on float32
# features keeps float32 coefficients and computes its decision in float32, the detector in
# float64, so they differ by float32 rounding (the float64 reference is matched to 1e-12).
TREE_TOLERANCE = 1e-12
LOGREG_SKLEARN_TOLERANCE = 1e-5   # logit; the probability differs by less
FLOAT64_TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    """Raw rows and the scaled float32 features the pipeline makes of them, per split."""
    parts = split(clean(generate_creditcard(6000, 0.03, 5), EPS),
                  SplitParams("stratified", True, 0.2, 0.2), 5)
    tables = {name: getattr(parts, name) for name in ("train", "val", "test")}
    arrays = {name: features_and_labels(table) for name, table in tables.items()}
    scaler = fit_scaler(arrays["train"][0])
    return {"stats": ScalerStats(mean=scaler.mean_, scale=scaler.scale_, clip=CLIP),
            "raw": {name: t[INPUT_COLUMNS].to_numpy(np.float64) for name, t in tables.items()},
            "features": {name: scale(x, scaler, CLIP) for name, (x, _) in arrays.items()},
            "labels": {name: y for name, (_, y) in arrays.items()}}


@pytest.fixture(scope="module")
def models(data: dict[str, Any]) -> dict[str, Any]:
    x, y = data["features"]["train"], data["labels"]["train"]
    with threadpool_limits(1, user_api="openmp"):
        gbdt = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15,
                                              early_stopping=False, random_state=0).fit(x, y)
    return {"logreg": LogisticRegression(C=1.0, max_iter=1000).fit(x, y), "gbdt": gbdt}


def run(model: onnx.ModelProto, raw: np.ndarray, outputs: list[str] | None = None
        ) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(outputs, {INPUT_NAME: raw})


@pytest.mark.parametrize("name", ["logreg", "gbdt"])
def test_structure_is_the_detector_contract(name: str, models: dict[str, Any],
                                            data: dict[str, Any], tmp_path: Any) -> None:
    """One float64 (rows, 29) input, one float64 (rows, 1) output, everything in one file;
    it loads as predict loads a detector and carries the detector metadata."""
    for output, output_name in (("probability", OUTPUT_NAME), ("logit", LOGIT_NAME)):
        detector = peer_detector(models[name], data["stats"], EPS, output)
        onnx.checker.check_model(detector, full_check=True)
        (given,), (out,) = detector.graph.input, detector.graph.output
        assert given.name == INPUT_NAME and out.name == output_name
        for value, width in ((given, len(INPUT_COLUMNS)), (out, 1)):
            assert value.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_param == "rows" and dims[1].dim_value == width
        assert not any(onnx.external_data_helper.uses_external_data(t)
                       for t in detector.graph.initializer)
        assert detector.ir_version == (8 if name == "logreg" else 10)
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(peer_detector(models[name], data["stats"], EPS, "probability")
                     .SerializeToString())
    loaded = load_onnx(path, "export", DETECTOR)
    assert loaded(data["raw"]["test"]).shape == (len(data["raw"]["test"]),)
    info = read_detector_metadata(loaded.metadata, str(path), "export")
    assert info.strategy == name and info.eps == EPS and info.clip == CLIP
    np.testing.assert_array_equal(info.mean, data["stats"].mean)


def test_predict_scores_with_a_peer_detector(models: dict[str, Any], data: dict[str, Any],
                                             tmp_path: Any, capsys: Any) -> None:
    """`python -m src.predict gbdt.onnx rows.csv`: the command line ships a peer as it ships
    the network (probabilities printed in float32, as for the network)."""
    path, rows = tmp_path / "gbdt.onnx", tmp_path / "rows.csv"
    path.write_bytes(peer_detector(models["gbdt"], data["stats"], EPS).SerializeToString())
    pd.DataFrame(data["raw"]["test"], columns=INPUT_COLUMNS).to_csv(rows, index=False)
    result = run_predict([path, rows, "--threshold", "0.5", "-q"], capsys)
    assert result.code == 0, result.stderr
    scores = pd.read_csv(io.StringIO(result.stdout))
    expected = peer_scores(models["gbdt"], data["features"]["test"])
    np.testing.assert_allclose(scores["probability"], expected, rtol=1e-6, atol=1e-12)
    assert np.array_equal(scores["flagged"], (expected >= 0.5).astype(int))


def test_preprocessing_gives_the_pipelines_features_exactly(models: dict[str, Any],
                                                           data: dict[str, Any]) -> None:
    """log, standardise, clip in float64, then float32: bit for bit the scale stage's arrays
    (the float32 rounding is kept in the graph, not optimised away by ONNX Runtime)."""
    detector = peer_detector(models["logreg"], data["stats"], EPS)
    detector.graph.output.append(onnx.helper.make_tensor_value_info(
        FEATURES32, onnx.TensorProto.FLOAT, ["rows", 29]))
    for name in ("train", "test"):
        (features,) = run(detector, data["raw"][name], [FEATURES32])
        np.testing.assert_array_equal(features, data["features"][name])


@pytest.mark.parametrize("split_name", ["train", "val", "test"])
def test_gbdt_matches_scikit_learn(split_name: str, models: dict[str, Any],
                                   data: dict[str, Any]) -> None:
    """Float64 thresholds: every split goes the way scikit-learn's goes, training rows (which
    sit next to the thresholds) included."""
    model, raw = models["gbdt"], data["raw"][split_name]
    features = data["features"][split_name]
    (probability,) = run(peer_detector(model, data["stats"], EPS), raw)
    (logit,) = run(peer_detector(model, data["stats"], EPS, "logit"), raw)
    assert probability.dtype == logit.dtype == np.float64
    expected = peer_scores(model, features)
    np.testing.assert_allclose(probability[:, 0], expected, rtol=0, atol=TREE_TOLERANCE)
    np.testing.assert_allclose(logit[:, 0], model.decision_function(features), rtol=0,
                               atol=TREE_TOLERANCE)
    assert np.array_equal(probability[:, 0] >= 0.5, expected >= 0.5)


def test_logreg_matches_scikit_learn(models: dict[str, Any], data: dict[str, Any]) -> None:
    model, raw, features = models["logreg"], data["raw"]["test"], data["features"]["test"]
    (probability,) = run(peer_detector(model, data["stats"], EPS), raw)
    (logit,) = run(peer_detector(model, data["stats"], EPS, "logit"), raw)
    np.testing.assert_allclose(logit[:, 0], model.decision_function(features), rtol=0,
                               atol=LOGREG_SKLEARN_TOLERANCE)
    np.testing.assert_allclose(probability[:, 0], peer_scores(model, features), rtol=0,
                               atol=LOGREG_SKLEARN_TOLERANCE)
    reference = (features.astype(np.float64) @ model.coef_.astype(np.float64).T
                 + np.float64(model.intercept_[0]))
    np.testing.assert_allclose(logit, reference, rtol=0, atol=FLOAT64_TOLERANCE)
    np.testing.assert_allclose(probability, expit(reference), rtol=1e-10, atol=0)


def test_sigmoid_is_float64_accurate_where_probabilities_are_tiny() -> None:
    """Relative error near scipy's expit (scikit-learn's) from logit -745 to 40; 0 only where
    expit is 0 (ONNX Runtime's own float64 Sigmoid gives 0 below about -36.7)."""
    nodes, constants = sigmoid_graph("z", "p")
    z, p = (onnx.helper.make_tensor_value_info(name, onnx.TensorProto.DOUBLE, [None])
            for name in ("z", "p"))
    graph = onnx.helper.make_graph(nodes, "sigmoid", [z], [p], initializer=constants)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = np.concatenate([np.linspace(-745, 40, 20_001), [-800.0, 0.0, 800.0]])
    (got,) = session.run(None, {"z": logits})
    expected = expit(logits)
    np.testing.assert_array_equal(got == 0, expected == 0)
    np.testing.assert_allclose(got, expected, rtol=4e-15, atol=0)
    assert got[logits > -700].min() > 0


def test_a_split_between_adjacent_float32_values() -> None:
    """scikit-learn splits at the float64 midpoint of two neighbouring float32 values; as a
    float32 that midpoint rounds (to even) onto the upper value, which would then go left.
    The detector keeps float64 thresholds, so it goes right, as in scikit-learn."""
    low = np.float32(1 + 2**-23)
    high = np.nextafter(low, np.float32(2))  # even last bit: the midpoint rounds up to it
    assert np.float32((np.float64(low) + np.float64(high)) / 2) == high
    x = np.zeros((200, 29), dtype=np.float32)
    x[100:, 0] = high
    x[:100, 0] = low
    y = np.repeat([0, 1], 100)
    model = HistGradientBoostingClassifier(max_iter=5, early_stopping=False).fit(x, y)
    graph = gbdt_graph(model)
    nodes, constants = graph.nodes, graph.constants
    features, logit = (onnx.helper.make_tensor_value_info(name, onnx.TensorProto.DOUBLE,
                                                          [None, width])
                       for name, width in ((FEATURES64, 29), (LOGIT_NAME, 1)))
    graph = onnx.helper.make_graph(nodes, "gbdt", [features], [logit], initializer=constants)
    trees = onnx.helper.make_model(graph, opset_imports=[
        onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid(ML_DOMAIN, ML_OPSET)])
    session = ort.InferenceSession(trees.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {FEATURES64: x.astype(np.float64)})
    expected = model.decision_function(x)
    assert expected[0] < 0 < expected[-1]  # the split separates the two values
    np.testing.assert_allclose(got[:, 0], expected, rtol=0, atol=TREE_TOLERANCE)


def test_a_tree_of_one_leaf(data: dict[str, Any]) -> None:
    """A boosting iteration that finds no split (one leaf) still converts and scores."""
    x, y = data["features"]["train"], data["labels"]["train"]
    model = HistGradientBoostingClassifier(max_iter=3, min_samples_leaf=len(x),
                                           early_stopping=False).fit(x, y)
    assert all(len(predictor.nodes) == 1 for (predictor,) in model._predictors)
    (probability,) = run(peer_detector(model, data["stats"], EPS), data["raw"]["test"])
    np.testing.assert_allclose(probability[:, 0], peer_scores(model, data["features"]["test"]),
                               rtol=0, atol=TREE_TOLERANCE)


def test_bytes_are_reproducible(models: dict[str, Any], data: dict[str, Any]) -> None:
    first, second = (peer_detector(models["gbdt"], data["stats"], EPS)
                     .SerializeToString(deterministic=True) for _ in range(2))
    assert first == second


@pytest.mark.parametrize("model, output, fragment", [
    (DecisionTreeClassifier(), "probability", "no ONNX detector for a DecisionTreeClassifier"),
    ("logreg", "label", "output must be one of logit, probability"),
    ("narrow", "probability", "expected a model of 29 features, got 3"),
])
def test_refuses(model: Any, output: str, fragment: str, models: dict[str, Any],
                 data: dict[str, Any]) -> None:
    if model == "narrow":
        model = LogisticRegression().fit(np.eye(4, 3), [0, 1, 0, 1])
    elif isinstance(model, str):
        model = models[model]
    with pytest.raises(PipelineError, match=fragment):
        peer_detector(model, data["stats"], EPS, output)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["logreg", "gbdt"])
def test_a_calibrated_peer_equals_the_calibrator_on_scikit_learns_logit(
        name: str, models: dict[str, Any], data: dict[str, Any]) -> None:
    """export appends the calibrator after the peer's float64 sigmoid is taken off: the
    calibrated detector scores what the numpy calibrator makes of the model's own logit."""
    from fraud.evaluation.calibration import fit_calibrator
    from fraud.serving.calibrated import calibrated_onnx, with_logit_output

    model = models[name]
    detector = peer_detector(model, data["stats"], EPS)
    (logit,) = run(with_logit_output(detector), data["raw"]["test"])
    (direct,) = run(peer_detector(model, data["stats"], EPS, "logit"), data["raw"]["test"])
    np.testing.assert_array_equal(logit, direct)
    calibrator = fit_calibrator("platt", model.decision_function(data["features"]["val"]),
                                data["labels"]["val"])
    (got,) = run(calibrated_onnx(detector, calibrator), data["raw"]["test"])
    expected = calibrator(model.decision_function(data["features"]["test"]))
    tolerance = TREE_TOLERANCE if name == "gbdt" else LOGREG_SKLEARN_TOLERANCE
    np.testing.assert_allclose(got[:, 0], expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize("name", ["logreg", "gbdt"])
def test_evaluation_scores_a_peer_through_its_detector(name: str, models: dict[str, Any],
                                                       data: dict[str, Any],
                                                       tmp_path: Any) -> None:
    """evaluate_model's loader takes a peer's detector file as it ships: raw transactions in
    (it says so), the logit out (its sigmoid cut), scikit-learn's decision value to the
    tolerances above; the class weights are not in the file (None: the caller's params)."""
    from fraud.evaluation.choice import load_logit_scorer

    path = tmp_path / f"{name}.onnx"
    path.write_bytes(peer_detector(models[name], data["stats"], EPS).SerializeToString())
    scorer = load_logit_scorer(path, f"train_{name}", 1024)
    assert scorer.raw_input and scorer.balanced is None
    tolerance = TREE_TOLERANCE if name == "gbdt" else LOGREG_SKLEARN_TOLERANCE
    np.testing.assert_allclose(scorer.logit(data["raw"]["test"]),
                               models[name].decision_function(data["features"]["test"]),
                               rtol=0, atol=tolerance)


def test_a_detector_fed_the_scaled_features_is_refused(models: dict[str, Any],
                                                      data: dict[str, Any],
                                                      tmp_path: Any) -> None:
    """The input's name decides which contract a file is held to, not which arrays fit."""
    from fraud.serving.onnx_contract import NETWORK, claimed_contract

    content = peer_detector(models["logreg"], data["stats"], EPS).SerializeToString()
    assert claimed_contract(content) == DETECTOR
    assert claimed_contract(b"not a model") == DETECTOR
    path = tmp_path / "logreg.onnx"
    path.write_bytes(content)
    with pytest.raises(PipelineError, match="it is not a trained network"):
        load_onnx(path, "train_logreg", NETWORK)


# --- categorical columns ----------------------------------------------------------------------

CATEGORIES = (("mcc", tuple(f"m{i:02d}" for i in range(12))), ("channel", ("atm", "pos", "web")))


def categorical_data(rows: int, seed: int) -> dict[str, Any]:
    """Two numeric inputs (the last an amount) and two categorical columns whose levels move
    the fraud rate; the text includes unseen and missing values."""
    rng = np.random.default_rng(seed)
    mcc = rng.integers(0, 12, rows)
    channel = rng.integers(0, 3, rows)
    raw = np.column_stack([rng.normal(0, 1, rows), rng.lognormal(3, 1, rows)])
    logit = -4 + 2.5 * (mcc % 4 == 1) + 1.5 * (channel == 2) + raw[:, 0]
    labels = (rng.random(rows) < expit(logit)).astype(np.float32)
    text = np.array([[CATEGORIES[0][1][m], CATEGORIES[1][1][c]] for m, c in zip(mcc, channel,
                                                                               strict=True)],
                    dtype=object)
    text[::97, 0] = "m99"       # unseen
    text[::89, 1] = ""          # missing
    stats = ScalerStats(mean=np.array([0.0, 3.0]), scale=np.array([1.0, 1.0]), clip=5.0,
                        inputs=("x", "amount"), log_input="amount", categories=CATEGORIES)
    from fraud.serving.explain import Preprocess

    features = Preprocess.of(stats, EPS).features(raw, text)
    return {"raw": raw, "text": text, "labels": labels, "stats": stats, "features": features}


def codes(features: np.ndarray, stats: ScalerStats) -> np.ndarray:
    return stats.codes(features)


def test_gbdt_with_native_categorical_splits_matches_scikit_learn() -> None:
    """Native categorical splits (a set of levels to each side) become TreeEnsemble-5
    BRANCH_MEMBER nodes; unseen and missing text reaches the trees as NaN, on the side
    scikit-learn sends missing values, in both."""
    from fraud.core.params import _CHECKS
    from fraud.kinds.gbdt import fit_gbdt, parse_gbdt

    train, val = categorical_data(6000, 1), categorical_data(3000, 2)
    section = {"learning_rate": 0.1, "l2_regularization": 1.0, "max_iter": 60,
               "max_leaf_nodes": 15, "min_samples_leaf": 20, "n_iter_no_change": 10,
               "scoring": "loss"}
    params = parse_gbdt({"gbdt": section}, _CHECKS)
    fitted = fit_gbdt((codes(train["features"], train["stats"]), train["labels"]),
                      (codes(val["features"], val["stats"]), val["labels"]), params, 0,
                      categorical=2).model
    assert fitted.is_categorical_.tolist() == [False, False, True, True]
    assert any(p.nodes["is_categorical"].any() for (p,) in fitted._predictors)
    detector = peer_detector(fitted, val["stats"], EPS)
    from fraud.serving.onnx_contract import check_model_bytes

    for model in (detector, peer_detector(LogisticRegression().fit(
            train["features"], train["labels"]), val["stats"], EPS)):  # as scoring loads it
        footprint = check_model_bytes(model.SerializeToString(), "d.onnx", DETECTOR, "fix")
        assert footprint.row_bytes < 2_000
    session = ort.InferenceSession(detector.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (ours,) = session.run([OUTPUT_NAME], {INPUT_NAME: val["raw"], "category": val["text"]})
    expected = fitted.predict_proba(codes(val["features"], val["stats"]))[:, 1]
    np.testing.assert_allclose(ours[:, 0], expected, rtol=1e-12, atol=1e-15)
