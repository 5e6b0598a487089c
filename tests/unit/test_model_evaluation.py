"""evaluate_model's calibration: the prior's beta from how each model was trained, the
expected-cost rule, both rules' costs, and metrics on calibrated probabilities."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_class_weight

from fraud.core import calibrator
from fraud.core.decision import expected_cost_flags
from fraud.core.params import load_params
from fraud.errors import PipelineError, check_logits
from fraud.evaluation import metrics, model_evaluation
from fraud.evaluation.choice import Scored
from fraud.kinds._scikit import logits as peer_logits
from fraud.kinds._scikit import scores as peer_scores
from fraud.training.balance import class_weights_for

REPO = Path(__file__).resolve().parents[2]
SUMMARY = {"train_rows": 1000, "train_frauds": 10}


@pytest.fixture(scope="module")
def params():
    loaded = load_params(REPO / "params.yaml")
    return replace(loaded, evaluate=replace(loaded.evaluate, bootstrap=200))


def split(rows: int, seed: int, shift: float = 0.0) -> model_evaluation.Logits:
    """Labels drawn from sigmoid(z); the model reports z + shift (a prior-shifted logit)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-5.0, 2.0, rows)
    labels = (rng.random(rows) < calibrator.sigmoid(z)).astype(np.uint8)
    return model_evaluation.Logits(labels, z + shift, rng.uniform(1, 300, rows))


def test_class_weights_are_scikit_learns_balanced() -> None:
    labels = np.array([0] * 990 + [1] * 10)
    expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=labels)
    assert list(class_weights_for(1000, 10).values()) == pytest.approx(list(expected))


@pytest.mark.parametrize(("name", "balanced", "beta"), [
    ("baseline", False, None), ("logreg", False, None), ("gbdt", False, None),
    ("weighted", False, 10 / 990), ("logreg", True, 10 / 990), ("oversample", False, 10 / 990)])
def test_prior_beta_follows_how_the_model_was_trained(name: str, balanced: bool,
                                                      beta: float | None) -> None:
    found = model_evaluation.prior_beta(name, SUMMARY, balanced)
    assert found == (None if beta is None else pytest.approx(beta))


@pytest.mark.parametrize("summary", [{}, {"train_rows": 10, "train_frauds": 0},
                                     {"train_rows": "many", "train_frauds": 1}])
def test_prior_beta_needs_the_split_counts(summary: dict) -> None:
    with pytest.raises(PipelineError, match="run the split stage again"):
        model_evaluation.prior_beta("weighted", summary)


def test_expected_cost_threshold_flags_what_the_rule_flags() -> None:
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.random(5000), [5 / 505, np.nextafter(5 / 505, 1)]])
    labels = (rng.random(len(p)) < p).astype(int)
    table = metrics.threshold_table(labels, p)
    threshold = metrics.choose_threshold("expected_cost", table, 0.9, 5, 500)
    np.testing.assert_array_equal(p >= threshold, expected_cost_flags(p, 5, 500))


def test_expected_cost_threshold_with_amounts_uses_the_mean_fraud_amount() -> None:
    labels = np.array([0, 1, 0, 1])
    table = metrics.threshold_table(labels, np.array([0.1, 0.2, 0.3, 0.4]),
                                    np.array([1000.0, 100.0, 1000.0, 300.0]))
    threshold = metrics.choose_threshold("expected_cost", table, 0.9, 10, "amount")
    assert threshold == pytest.approx(10 / (10 + 200))  # mean fraud amount: 200


def test_rule_costs_by_hand(params) -> None:
    p = np.array([0.001, 0.02, 0.5, 0.9, 0.005])
    labels = np.array([0, 1, 0, 1, 1])
    amounts = np.array([10.0, 1000.0, 6.0, 50.0, 100.0])
    settings = replace(params.evaluate, cost_fp=5, cost_fn="amount")
    test = Scored(labels, p, amounts)
    table = metrics.threshold_table(labels, p, amounts)  # here val = test
    costs = model_evaluation.rule_costs(test, table, replace(params, evaluate=settings))
    # expected_cost flags p·amount > (1 - p)·5: rows 2 (20 > 4.9), 3 (3 > 2.5), 4; not row 5
    # (0.5 < 4.975), a missed fraud of 100
    assert costs["flagged_rule_expected"] == 3
    assert costs["cost_rule_expected"] == 5 * 1 + 100
    # min_cost on the same rows: flagging down to 0.005 costs 5 (one false alarm, no miss)
    assert costs["cost_rule_min_cost"] == 5 and costs["flagged_rule_min_cost"] == 4


def test_none_reports_the_raw_figures_and_prior_fixes_a_shift(params) -> None:
    beta = 0.01
    val, test = split(20_000, 1, np.log(1 / beta)), split(20_000, 2, np.log(1 / beta))
    for method, better in (("none", False), ("prior", True), ("platt", True)):
        chosen = replace(params, calibrate=replace(params.calibrate, method=method))
        result = model_evaluation.evaluate_calibrated(val, test, chosen, beta).metrics
        assert result["calibration"] == method
        assert result["frauds"] == int(test.labels.sum())
        if better:
            assert result["loss"] < result["loss_raw"] and result["ece"] < result["ece_raw"]
            assert result["expected_frauds"] == pytest.approx(result["frauds"], rel=0.2)
        else:
            assert result["loss"] == pytest.approx(result["loss_raw"])
            assert result["val_ece"] == pytest.approx(result["val_ece_raw"])


def test_no_probability_is_exactly_zero(params) -> None:
    val, test = split(5000, 3), split(5000, 4)
    test = replace(test, logits=test.logits - 800.0)  # float64 sigmoid underflows below -745
    assert np.sum(calibrator.sigmoid(test.logits) == 0) > 0
    for method in ("none", "isotonic"):
        chosen = replace(params, calibrate=replace(params.calibrate, method=method))
        result = model_evaluation.evaluate_calibrated(val, test, chosen, None).metrics
        assert result["zero_probability_rows"] == 0


def test_a_peer_logit_is_what_its_probability_is_the_sigmoid_of() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + rng.normal(size=400) > 1.5).astype(int)
    model = LogisticRegression().fit(x, y)
    np.testing.assert_allclose(calibrator.sigmoid(peer_logits(model, x)),
                               peer_scores(model, x), rtol=1e-12)
    with pytest.raises(PipelineError, match="rows, 3"):
        peer_logits(model, x[:, :2])


def test_a_non_finite_logit_is_a_one_line_error() -> None:
    assert check_logits(np.array([-800.0, 40.0]), "m", "fix").tolist() == [-800.0, 40.0]
    with pytest.raises(PipelineError, match=r"row 2 \(1 of 3 in its batch not finite\); fix"):
        check_logits(np.array([0.0, np.nan, 1.0]), "m", "fix")
