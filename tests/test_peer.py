"""The scikit-learn peer: class-weighted logistic regression on the pipeline's scaled splits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from src.fraud.data import clean, features_and_labels, fit_scaler, scale, split
from src.fraud.errors import PipelineError
from src.fraud.metrics import binary_metrics
from src.fraud.peer import fit_logistic_peer, peer_metrics
from src.fraud.synthetic import generate_creditcard


@pytest.fixture(scope="module")
def splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Synthetic data of the real shape, through the pipeline's own clean/split/scale."""
    parts = split(clean(generate_creditcard(6000, 0.02, 3), 0.001), 0.2, 0.2, True, 3)
    tables = {name: features_and_labels(getattr(parts, name)) for name in ("train", "val", "test")}
    scaler = fit_scaler(tables["train"][0])
    return {name: (scale(x, scaler, 5.0), y) for name, (x, y) in tables.items()}


@pytest.fixture(scope="module")
def fitted(splits) -> tuple[LogisticRegression, float]:
    return fit_logistic_peer(*splits["train"], seed=7)


def test_fit_is_the_documented_estimator(fitted) -> None:
    model, seconds = fitted
    assert isinstance(model, LogisticRegression)
    settings = model.get_params()
    assert settings["class_weight"] == "balanced"
    assert settings["max_iter"] == 1000
    assert settings["random_state"] == 7
    assert isinstance(seconds, float) and 0 <= seconds < 60
    assert model.n_iter_[0] < 1000  # converged


def test_metrics_are_binary_metrics_of_the_fraud_probability(fitted, splits) -> None:
    model, _ = fitted
    features, labels = splits["test"]
    for threshold in (0.5, 0.9):
        expected = binary_metrics(labels, model.predict_proba(features)[:, 1], threshold)
        assert peer_metrics(model, features, labels, threshold) == expected
    assert peer_metrics(model, features, labels) == peer_metrics(model, features, labels, 0.5)


def test_peer_separates_frauds_on_synthetic_data(fitted, splits) -> None:
    result = peer_metrics(fitted[0], *splits["test"])
    assert result["tp"] + result["fn"] == int(splits["test"][1].sum())
    assert result["auc"] > 0.85 and result["prc"] > 0.3, result
    # Balanced class weights flag far more than the 2 % base rate at 0.5: high recall.
    assert result["recall"] > 0.7, result
    higher = peer_metrics(fitted[0], *splits["test"], threshold=0.99)
    assert higher["tp"] + higher["fp"] <= result["tp"] + result["fp"]


def test_fit_is_deterministic(splits) -> None:
    first, _ = fit_logistic_peer(*splits["train"], seed=1)
    second, _ = fit_logistic_peer(*splits["train"], seed=1)
    np.testing.assert_array_equal(first.coef_, second.coef_)
    np.testing.assert_array_equal(first.intercept_, second.intercept_)


@pytest.mark.parametrize("features, labels, fragment", [
    (np.zeros((10, 3)), np.zeros(10), "single class"),
    (np.zeros((10, 3)), np.array([0, 1] * 4), "10 feature rows but 8 labels"),
    (np.full((4, 2), np.nan), np.array([0, 1, 0, 1]), "NaN"),
    (np.zeros((4, 2)), np.array([0, 2, 0, 1]), "0 or 1"),
    (np.zeros(4), np.array([0, 1, 0, 1]), "2-D"),
])
def test_bad_input_is_a_pipeline_error(features, labels, fragment) -> None:
    with pytest.raises(PipelineError, match=fragment):
        fit_logistic_peer(features, labels, seed=0)
