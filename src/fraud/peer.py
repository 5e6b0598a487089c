"""A scikit-learn peer for the Keras models: class-weighted logistic regression.

Trained on the pipeline's scaled train split and scored on its scaled test split with the same
exact metrics as the Keras strategies (`metrics.binary_metrics`), so the numbers compare
directly. No TensorFlow here.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from .errors import PipelineError
from .metrics import binary_metrics


def _check(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features)
    labels = np.asarray(labels).reshape(-1)
    if features.ndim != 2:
        raise PipelineError(f"peer: features must be a 2-D array, got shape {features.shape}")
    if len(features) != len(labels):
        raise PipelineError(f"peer: {len(features):,} feature rows but {len(labels):,} labels")
    if len(labels) == 0:
        raise PipelineError("peer: no rows")
    if not np.all(np.isfinite(features)):
        raise PipelineError("peer: features hold NaN or infinite values")
    if not np.isin(labels, (0, 1)).all():
        raise PipelineError("peer: labels must be 0 or 1")
    return features, labels


def fit_logistic_peer(features: np.ndarray, labels: np.ndarray, seed: int
                      ) -> tuple[LogisticRegression, float]:
    """LogisticRegression(class_weight='balanced') fitted on (features, labels).

    Returns the fitted model and the wall-clock seconds the fit took.
    """
    features, labels = _check(features, labels)
    if len(np.unique(labels)) < 2:
        raise PipelineError("peer: the training labels hold a single class; "
                            "a classifier needs both frauds and non-frauds")
    model = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)
    start = time.perf_counter()
    model.fit(features, labels)
    return model, time.perf_counter() - start


def peer_metrics(model: LogisticRegression, features: np.ndarray, labels: np.ndarray,
                 threshold: float = 0.5) -> dict:
    """The tutorial's metrics (as evaluate reports them) of `model` on (features, labels)."""
    features, labels = _check(features, labels)
    probabilities = model.predict_proba(features)[:, 1]
    return binary_metrics(labels, probabilities, threshold)
