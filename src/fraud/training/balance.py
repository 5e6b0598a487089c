"""How the imbalance strategies reweight the classes, without TensorFlow.

One home for two facts that training applies and calibration undoes (the prior correction's
β): the class weights of `weighted`, and the fraud fraction of `oversample`'s batches.
"""

from __future__ import annotations

import numpy as np

# `oversample` draws each row of a batch as a fraud with this probability (balanced batches).
OVERSAMPLE_BATCH_FRAUD_FRACTION = 0.5


def class_weights_for(rows: int, frauds: int) -> dict[int, float]:
    """{0: rows/(2·non-frauds), 1: rows/(2·frauds)}: both classes weigh the same in the loss
    (scikit-learn's class_weight='balanced' is the same formula)."""
    negatives = rows - frauds
    return {0: rows / (2.0 * negatives), 1: rows / (2.0 * frauds)}


def class_weights(labels: np.ndarray) -> dict[int, float]:
    return class_weights_for(len(labels), int(np.asarray(labels).sum()))
