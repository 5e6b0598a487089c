"""Precision, recall and fraud count at a threshold, estimated before the labels arrive.

If the scores are calibrated (of the rows scored p, a share p are frauds), each row is a
fraud with probability p, independently, and the confusion matrix has known expectations
(NannyML's confidence-based performance estimation, CBPE):

    expected frauds     E[F]  = Σ p                  over all rows
    flagged             N     = #{p ≥ threshold}     (known: no label needed)
    expected TP         E[TP] = Σ p                  over flagged rows
    expected precision  E[TP] / N                    (mean p over flagged rows)
    expected recall     E[TP] / E[F]                 (a ratio of expectations)

Their spread under the same assumption gives a 95 % interval (normal approximation; the
variance of a sum of Bernoulli(p) is Σ p(1 − p); recall's by the delta method). A realised
figure outside it says the scores are no longer calibrated on this data: drift the
estimate cannot see. With labels, the realised figures are counted on the labelled rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile


@dataclass
class Tally:
    """Sums over rows, added chunk by chunk (so a whole batch is never in memory)."""
    rows: int = 0
    flagged: int = 0
    expected_frauds: float = 0.0      # Σ p
    frauds_variance: float = 0.0      # Σ p(1 − p)
    expected_true_positives: float = 0.0  # Σ p over flagged rows
    true_positives_variance: float = 0.0  # Σ p(1 − p) over flagged rows
    frauds: int = 0                   # realised, when labels are given
    true_positives: int = 0

    def add(self, probabilities: np.ndarray, threshold: float,
            labels: np.ndarray | None = None) -> None:
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        flagged = p >= threshold
        spread = p * (1.0 - p)
        self.rows += len(p)
        self.flagged += int(flagged.sum())
        self.expected_frauds += float(p.sum())
        self.frauds_variance += float(spread.sum())
        self.expected_true_positives += float(p[flagged].sum())
        self.true_positives_variance += float(spread[flagged].sum())
        if labels is not None:
            fraud = np.asarray(labels).reshape(-1) == 1
            self.frauds += int(fraud.sum())
            self.true_positives += int((fraud & flagged).sum())


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _interval(value: float | None, variance: float, scale: float, upper: float
              ) -> tuple[float | None, float | None]:
    if value is None or scale <= 0:
        return None, None
    half = Z_95 * math.sqrt(max(variance, 0.0)) / scale
    return max(value - half, 0.0), min(value + half, upper)


def _recall_variance(tally: Tally) -> float:
    """Delta method for TP / (TP + missed), the two independent sums."""
    caught, total = tally.expected_true_positives, tally.expected_frauds
    missed = total - caught
    missed_variance = tally.frauds_variance - tally.true_positives_variance
    return (missed ** 2 * tally.true_positives_variance + caught ** 2 * missed_variance) \
        / total ** 4 if total > 0 else 0.0


def estimated(tally: Tally) -> dict[str, float | int | None]:
    """The label-free figures and their 95 % intervals (None where undefined: no flags)."""
    precision = _ratio(tally.expected_true_positives, tally.flagged)
    recall = _ratio(tally.expected_true_positives, tally.expected_frauds)
    frauds_low, frauds_high = _interval(tally.expected_frauds, tally.frauds_variance, 1.0,
                                        math.inf)
    precision_low, precision_high = _interval(precision, tally.true_positives_variance,
                                              tally.flagged, 1.0)
    recall_low, recall_high = _interval(recall, _recall_variance(tally), 1.0, 1.0)
    return {"rows": tally.rows, "flagged": tally.flagged,
            "frauds": tally.expected_frauds, "frauds_low": frauds_low,
            "frauds_high": frauds_high, "true_positives": tally.expected_true_positives,
            "precision": precision, "precision_low": precision_low,
            "precision_high": precision_high, "recall": recall, "recall_low": recall_low,
            "recall_high": recall_high}


def realised(tally: Tally) -> dict[str, float | int | None]:
    """The figures the labels give (precision None with no flag, recall with no fraud)."""
    return {"rows": tally.rows, "flagged": tally.flagged, "frauds": tally.frauds,
            "true_positives": tally.true_positives,
            "precision": _ratio(tally.true_positives, tally.flagged),
            "recall": _ratio(tally.true_positives, tally.frauds)}
