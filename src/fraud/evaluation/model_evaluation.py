"""One model's evaluation on calibrated probabilities (the evaluate_model stage).

The model's logit is mapped to a probability by a calibrator fitted on the validation split
only (`calibrate.method`); the threshold, the test metrics, their intervals, the curves and
the costs are then computed on those probabilities, as if the model had produced them. The
uncalibrated figures (`*_raw`: the model's own sigmoid, in float64) stay beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.calibrator import Calibrator, sigmoid
from ..core.decision import expected_cost_flags
from ..core.params import Params
from ..errors import PipelineError
from ..training.balance import OVERSAMPLE_BATCH_FRAUD_FRACTION, class_weights_for
from . import calibration, choice, metrics


@dataclass(frozen=True)
class Logits:
    """A split's labels, the model's logits (float64) and the amounts when costs need them."""
    labels: np.ndarray
    logits: np.ndarray
    amounts: np.ndarray | None = None


def prior_beta(name: str, data_summary: Mapping[str, Any], balanced_peer: bool = False
               ) -> float | None:
    """β of Dal Pozzolo's prior correction, from how `name` was trained on the train split
    (its counts: metrics/data.json): class weights (`weighted`, a peer with balanced class
    weights) or the oversampled batches' fraud fraction (`oversample`). None: the model saw
    the split's own class mix, nothing to correct."""
    if name != "oversample" and name != "weighted" and not balanced_peer:
        return None
    try:
        rows, frauds = int(data_summary["train_rows"]), int(data_summary["train_frauds"])
    except (KeyError, TypeError, ValueError):
        raise PipelineError("metrics/data.json: no train_rows / train_frauds; run the split "
                            "stage again") from None
    if not 0 < frauds < rows:
        raise PipelineError(f"metrics/data.json: {frauds:,} frauds in {rows:,} training rows; "
                            "run the split stage again")
    if name == "oversample":
        return calibration.prior_beta_from_oversampling(OVERSAMPLE_BATCH_FRAUD_FRACTION,
                                                        frauds / rows)
    weights = class_weights_for(rows, frauds)
    return calibration.prior_beta_from_class_weights(weights[0], weights[1])


def calibration_metrics(labels: np.ndarray, raw: np.ndarray, calibrated: np.ndarray,
                        bins: int, prefix: str = "") -> dict[str, float]:
    """ECE (equal-width bins), expected vs observed frauds, rows of probability exactly 0,
    and the uncalibrated log loss, Brier, ECE and expected frauds (`_raw`)."""
    def ece(p: np.ndarray) -> float:
        return calibration.expected_calibration_error(labels, p, bins, "width")
    return {f"{prefix}ece": ece(calibrated),
            f"{prefix}expected_frauds": float(calibrated.sum()),
            f"{prefix}frauds": int(np.sum(labels == 1)),
            f"{prefix}zero_probability_rows": int(np.sum(calibrated == 0)),
            f"{prefix}loss_raw": calibration.log_loss(labels, raw),
            f"{prefix}brier_raw": calibration.brier(labels, raw),
            f"{prefix}ece_raw": ece(raw),
            f"{prefix}expected_frauds_raw": float(raw.sum())}


def rule_costs(test: choice.Scored, table: metrics.ThresholdTable,
               params: Params) -> dict[str, float]:
    """Test cost (and rows flagged) of both cost rules, whatever `evaluate.threshold` is:
    `min_cost` (one threshold searched on validation) and `expected_cost` (per row, no
    search; with cost_fn = amount each row's own amount)."""
    settings = params.evaluate
    threshold = metrics.choose_threshold("min_cost", table, settings.target_recall,
                                         settings.cost_fp, settings.cost_fn)
    if settings.cost_fn == "amount":
        if test.amounts is None:
            raise PipelineError("evaluate.cost_fn = 'amount' needs transaction amounts")
        miss = np.asarray(test.amounts, dtype=np.float64)
    else:
        miss = np.full(len(test.labels), float(settings.cost_fn))
    flags = expected_cost_flags(test.scores, settings.cost_fp, miss)
    fraud = np.asarray(test.labels).reshape(-1) == 1
    return {"cost_rule_min_cost": metrics.cost_at(test.labels, test.scores, threshold,
                                                  settings.cost_fp, settings.cost_fn,
                                                  test.amounts),
            "flagged_rule_min_cost": int(np.sum(test.scores >= threshold)),
            "cost_rule_expected": float(settings.cost_fp * np.sum(flags & ~fraud)
                                        + np.sum(miss[~flags & fraud])),
            "flagged_rule_expected": int(flags.sum())}


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    calibrator: Calibrator
    val: choice.Scored              # calibrated probabilities
    test: choice.Scored
    val_table: metrics.ThresholdTable


def evaluate_calibrated(val: Logits, test: Logits, params: Params, beta: float | None
                        ) -> Evaluation:
    """Fits `calibrate.method` on validation, then every metric of `choice.evaluate_scores`
    on the calibrated probabilities, plus the calibration figures and both rules' costs."""
    settings = params.calibrate
    calibrator = calibration.fit_calibrator(settings.method, val.logits, val.labels, beta=beta,
                                            folds=settings.folds, seed=params.seed)
    scored = {split: choice.Scored(data.labels, calibrator(data.logits), data.amounts)
              for split, data in (("val", val), ("test", test))}
    table = choice.validation_table(scored["val"])
    result: dict[str, Any] = choice.evaluate_scores(scored["val"], scored["test"],
                                                    params.evaluate, params.seed, table)
    result.update(val_loss=calibration.log_loss(val.labels, scored["val"].scores),
                  val_brier=calibration.brier(val.labels, scored["val"].scores))
    for prefix, data in (("", test), ("val_", val)):
        result.update(calibration_metrics(
            np.asarray(data.labels).reshape(-1), sigmoid(data.logits),
            scored["val" if prefix else "test"].scores, settings.bins, prefix))
    result.update(rule_costs(scored["test"], table, params))
    result["calibration"] = calibrator.method
    return Evaluation(result, calibrator, scored["val"], scored["test"], table)
