"""Calibration: scoring rules, the calibrators (fitted on generated logits), their JSON and
ONNX forms, and the expected-cost rule. No real data."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud.core import calibrator as shared
from fraud.core.decision import expected_cost_flags
from fraud.errors import PipelineError
from fraud.evaluation import calibration
from fraud.evaluation.metrics import cross_entropy
from fraud.serving import calibrated

BETA = 0.01


def generated(seed: int = 0, rows: int = 20_000, fraud_rate: float = 0.01
              ) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model trained on 1:1 batches (fraud odds inflated by 1/BETA), and labels
    drawn from the true probabilities: the prior correction is exact for these."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(np.log(fraud_rate / (1 - fraud_rate)) - 2, 2.5, rows)
    labels = (rng.random(rows) < shared.sigmoid(true_logit)).astype(np.int64)
    return true_logit - np.log(BETA), labels


def fitted_all(logits: np.ndarray, labels: np.ndarray) -> dict[str, shared.Calibrator]:
    return {method: calibration.fit_calibrator(method, logits, labels, beta=BETA, seed=1)
            for method in (*calibration.METHODS, calibration.AUTO)}


def test_scoring_rules_agree_with_the_definitions() -> None:
    labels = np.array([0, 0, 1, 1, 0])
    p = np.array([0.0, 0.1, 0.7, 1.0, 0.95])
    assert calibration.log_loss(labels, p) == pytest.approx(cross_entropy(labels, p))
    assert calibration.brier(labels, p) == pytest.approx(np.mean((p - labels) ** 2))
    figures = calibration.calibration_figures(labels, p)
    assert figures["expected_frauds"] == pytest.approx(2.75)
    assert figures["observed_frauds"] == 2 and figures["zero_probability_rows"] == 1


def test_ece_equal_width_by_hand_and_equal_mass_bins_hold_equal_rows() -> None:
    labels = np.array([0, 0, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.65])
    # bins of width 0.5: {0.05, 0.05} gap 0.05; {0.95, 0.65} gap |0.8 - 1| = 0.2
    assert calibration.expected_calibration_error(labels, p, 2, "width") == pytest.approx(0.125)
    curve = calibration.reliability(np.arange(30) % 2, np.linspace(0, 1, 30), 3, "mass")
    assert curve["rows"].tolist() == [10, 10, 10]
    assert (np.diff(curve["mean_predicted"]) > 0).all()
    with pytest.raises(PipelineError, match="binning"):
        calibration.expected_calibration_error(labels, p, 2, "quantile")


def test_prior_correction_is_the_closed_form() -> None:
    ps = np.array([1e-6, 0.2, 0.5, 0.9, 1 - 1e-9])
    expected = BETA * ps / (BETA * ps - ps + 1)  # Dal Pozzolo et al. 2015, eq. 4
    logits = np.log(ps) - np.log1p(-ps)
    assert calibration.prior(BETA)(logits) == pytest.approx(expected, rel=1e-12)


def test_beta_from_class_weights_and_from_balanced_batches_agree() -> None:
    neg, pos = 9900, 100
    total = neg + pos
    weights = calibration.prior_beta_from_class_weights(total / (2 * neg), total / (2 * pos))
    batches = calibration.prior_beta_from_oversampling(0.5, pos / total)
    assert weights == pytest.approx(pos / neg) and batches == pytest.approx(pos / neg)
    with pytest.raises(PipelineError):
        calibration.prior_beta_from_oversampling(1.0, 0.01)


@pytest.mark.parametrize("method", [*calibration.METHODS, calibration.AUTO])
def test_each_calibrator_round_trips_through_json(method: str) -> None:
    logits, labels = generated()
    fitted = calibration.fit_calibrator(method, logits, labels, beta=BETA, seed=1)
    again = shared.Calibrator.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again == fitted
    assert np.array_equal(again(logits), fitted(logits))


def test_calibrators_are_strictly_increasing_and_keep_the_ranking() -> None:
    logits, labels = generated()
    grid = np.linspace(-30, 30, 200_001)
    before = (roc_auc_score(labels, logits), average_precision_score(labels, logits))
    for method, fitted in fitted_all(logits, labels).items():
        calibrated = fitted.calibrated_logit(grid)
        assert calibrated.max() < shared.LOGIT_RANGE[1], method
        assert (np.diff(calibrated) > 0).all(), method
        p = fitted(logits)
        assert len(np.unique(p)) == len(np.unique(logits)), method
        after = (roc_auc_score(labels, p), average_precision_score(labels, p))
        assert after == pytest.approx(before, abs=1e-15), method


def test_probabilities_are_never_exactly_zero_or_one() -> None:
    logits, labels = generated()
    extreme = np.array([-1e6, -800.0, -50.0, 50.0, 800.0, 1e6])
    for method, fitted in fitted_all(logits, labels).items():
        p = fitted(extreme)
        assert ((p > 0) & (p < 1)).all(), method


def test_isotonic_end_blocks_of_one_class_get_finite_logits() -> None:
    logits = np.arange(10.0)
    labels = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    fitted = calibration.fit_isotonic(logits, labels)
    p = shared.sigmoid(np.asarray(fitted.y))
    assert p.tolist() == pytest.approx([0.5 / 5, 0.5, 1 - 0.5 / 5])  # 4 rows, 2 rows, 4 rows
    assert fitted.details["blocks"] == 3


def test_calibration_brings_inflated_scores_back_to_the_fraud_count() -> None:
    logits, labels = generated()
    raw = shared.sigmoid(logits).sum()
    assert raw > 3 * labels.sum()  # the trained prior inflates the count
    for method, fitted in fitted_all(logits, labels).items():
        if method != "none":
            assert fitted(logits).sum() == pytest.approx(labels.sum(), rel=0.15), method


def test_auto_never_scores_a_row_it_was_fitted_on() -> None:
    logits, labels = generated(rows=3000)
    logits = logits + np.arange(len(logits)) * 1e-9  # every row identified by its logit
    seen: list[tuple[set[float], set[float]]] = []

    def spying_fit(z: np.ndarray, y: np.ndarray) -> shared.Calibrator:
        fitted_rows = set(z.tolist())

        def score(scored: np.ndarray) -> np.ndarray:
            seen.append((fitted_rows, set(scored.tolist())))
            return np.full(len(scored), 0.5)
        return score  # type: ignore[return-value]

    calibration.cross_fitted_probabilities(spying_fit, logits, labels, folds=4, seed=3)
    assert len(seen) == 4
    assert all(not fitted & scored for fitted, scored in seen)
    assert set().union(*(scored for _, scored in seen)) == set(logits.tolist())


def test_auto_picks_the_simplest_method_within_one_standard_error_of_the_best() -> None:
    logits, labels = generated()
    chosen = calibration.fit_calibrator("auto", logits, labels, beta=BETA, seed=1)
    losses = chosen.details["cross_fitted_log_loss"]
    errors = chosen.details["standard_error_vs_best"]
    assert set(losses) == set(calibration.METHODS)
    best = chosen.details["best"]
    assert losses[best] == min(losses.values()) and errors[best] == 0
    assert losses[chosen.method] - losses[best] <= errors[chosen.method]
    simpler = calibration.METHODS[:calibration.METHODS.index(chosen.method)]
    assert all(losses[name] - losses[best] > errors[name] for name in simpler)
    assert losses["none"] > losses["prior"] and chosen.method != "none"


def test_auto_keeps_the_model_as_is_when_it_is_calibrated_already() -> None:
    logits, labels = generated()
    honest = logits + np.log(BETA)  # the true logits: nothing to correct
    assert calibration.fit_calibrator("auto", honest, labels, seed=1).method == "none"


def test_fitting_refuses_single_class_and_bad_names() -> None:
    with pytest.raises(PipelineError, match="both classes"):
        calibration.fit_platt(np.arange(5.0), np.zeros(5))
    with pytest.raises(PipelineError, match="unknown method"):
        calibration.fit_calibrator("beta", np.arange(4.0), np.array([0, 1, 0, 1]))
    with pytest.raises(PipelineError, match="not a calibrator"):
        shared.Calibrator.from_dict({"method": "platt"})
    with pytest.raises(PipelineError, match="strictly increasing"):
        calibration.linear("platt", -1.0, 0.0)


def tiny_network(output: str) -> onnx.ModelProto:
    """features (rows, 2) float32 -> MatMul -> [Sigmoid]: the shape of the networks' files."""
    weights = onnx.numpy_helper.from_array(np.array([[3.0], [-2.0]], np.float32), "w")
    nodes = [helper.make_node("MatMul", ["features", "w"], ["logit"])]
    if output == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["logit"], ["probability"]))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["rows", 2])],
        [helper.make_tensor_value_info("probability" if output == "sigmoid" else "logit",
                                       TensorProto.FLOAT, ["rows", 1])], [weights])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, features: np.ndarray) -> np.ndarray:
    (output,) = session(model).get_outputs()
    assert output.name == model.graph.output[0].name
    return session(model).run(None, {"features": features})[0]


@pytest.mark.parametrize("output", calibrated.ONNX_OUTPUTS)
def test_onnx_calibration_equals_numpy(output: str) -> None:
    logits, labels = generated()
    rng = np.random.default_rng(5)
    features = rng.normal(0, 6, (5000, 2)).astype(np.float32)
    features[:3] = [[40, -40], [-40, 40], [0, 0]]  # far beyond the knots on both sides
    network = tiny_network(output)
    z = run(calibrated.with_logit_output(network, output), features)  # float32, as computed
    assert z.dtype == np.float32
    for method, fitted in fitted_all(logits, labels).items():
        model = calibrated.calibrated_onnx(network, fitted, output, output_name="probability")
        got = run(model, features)
        assert got.dtype == np.float64 and got.shape == (5000, 1)
        assert np.abs(got.reshape(-1) - fitted(z)).max() <= 1e-12, method
        assert ((got > 0) & (got < 1)).all()
        meta = session(model).get_modelmeta().custom_metadata_map
        assert shared.Calibrator.from_dict(json.loads(meta["calibration"])) == fitted


def test_onnx_refuses_an_output_that_is_not_a_final_sigmoid_or_not_a_column() -> None:
    with pytest.raises(PipelineError, match="final sigmoid"):
        calibrated.calibrated_onnx(tiny_network("logit"), calibration.identity(), "sigmoid")
    flat = tiny_network("logit")
    flat.graph.output[0].type.tensor_type.shape.dim.pop()
    with pytest.raises(PipelineError, match=r"\(rows, 1\)"):
        calibrated.calibrated_onnx(flat, calibration.identity(), "logit", "probability")


def test_onnx_calibration_uses_only_the_contracts_operators() -> None:
    from fraud.serving.onnx_contract import ALLOWED_OPS

    model = calibrated.calibrated_onnx(tiny_network("sigmoid"), calibration.identity())
    assert {node.op_type for node in model.graph.node} <= ALLOWED_OPS[""]


def test_expected_cost_flags_by_row_amount() -> None:
    p = np.array([0.01, 0.01, 0.5, 0.001])
    amounts = np.array([100.0, 1000.0, 1.0, 10_000.0])
    # review costs 5: flag when p·amount > (1-p)·5
    assert expected_cost_flags(p, 5.0, amounts).tolist() == [False, True, False,
                                                                        True]
    # one cost per miss: flag when p > 5 / 505
    assert expected_cost_flags(p, 5.0, 500.0).tolist() == [True, True, True,
                                                                       False]
    with pytest.raises(PipelineError, match="one per row"):
        expected_cost_flags(p, 5.0, amounts[:2])


def test_auto_leaves_out_a_method_that_cannot_be_fitted() -> None:
    """Scores that fall as fraud rises (a badly trained model on tiny data): platt's slope
    would be negative; auto must still choose among the rest, and say what it left out."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=4000)
    labels = (rng.random(4000) < shared.sigmoid(-2 * logits - 3)).astype(np.int64)
    with pytest.raises(PipelineError, match="platt slope"):
        calibration.fit_calibrator("platt", logits, labels)
    chosen = calibration.fit_calibrator("auto", logits, labels, seed=1)
    assert chosen.method != "platt" and "platt" in chosen.details["unusable"]
