"""Test metrics, curves and the threshold rules (chosen on validation, applied to test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud.errors import PipelineError
from fraud.evaluation import metrics


def scored(seed: int = 0, rows: int = 2000, frauds: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.zeros(rows)
    labels[:frauds] = 1
    scores = np.clip(rng.normal(0.1, 0.1, rows) + 0.5 * labels * rng.random(rows), 0, 1)
    return labels, scores


def test_binary_metrics_are_exact_and_consistent() -> None:
    labels, scores = scored()
    result = metrics.binary_metrics(labels, scores, 0.3)
    flagged = scores >= 0.3
    assert result["tp"] == int(np.sum(flagged & (labels == 1)))
    assert result["fp"] == int(np.sum(flagged & (labels == 0)))
    assert result["tp"] + result["fp"] + result["tn"] + result["fn"] == len(labels)
    assert result["precision"] == pytest.approx(result["tp"] / (result["tp"] + result["fp"]))
    assert result["recall"] == pytest.approx(result["tp"] / 40)
    assert result["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result["prc"] == pytest.approx(average_precision_score(labels, scores))
    assert result["brier"] == pytest.approx(np.mean((scores - labels) ** 2))
    assert np.isfinite(result["loss"])  # scores of exactly 0 and 1 are clipped like Keras


def test_nothing_flagged_gives_zero_precision_not_nan() -> None:
    labels, scores = scored()
    result = metrics.binary_metrics(labels, scores * 0.5, 0.99)
    assert result["tp"] == result["fp"] == 0 and result["precision"] == 0.0


def test_curves_are_thinned_and_finite() -> None:
    labels, scores = scored(rows=20000, frauds=300)
    roc = metrics.roc_points(labels, scores, 100)
    pr = metrics.pr_points(labels, scores, 100)
    for curve in (roc, pr):
        assert len(curve) <= 100
        assert np.isfinite(curve.to_numpy()).all()
        assert curve["threshold"].max() <= 1.0
    assert roc.iloc[0][["fpr", "tpr"]].tolist() == [0.0, 0.0]
    assert roc.iloc[-1][["fpr", "tpr"]].tolist() == [1.0, 1.0]
    assert pr["recall"].is_monotonic_increasing


def test_thin_keeps_endpoints() -> None:
    frame = pd.DataFrame({"x": np.arange(10_000)})
    thinned = metrics.thin(frame, 1000)
    assert len(thinned) <= 1000 and thinned["x"].iloc[0] == 0 and thinned["x"].iloc[-1] == 9999


def _largest_gap(curve: pd.DataFrame, thinned: pd.DataFrame, x: str, y: str) -> float:
    """How far the thinned polyline strays from the full curve (x increasing)."""
    return float(np.max(np.abs(np.interp(curve[x], thinned[x], thinned[y]) - curve[y])))


def test_thin_keeps_every_turn_of_a_staircase() -> None:
    """A ROC curve is a staircase: its flat runs go, every corner stays, the shape is exact."""
    rng = np.random.default_rng(1)
    runs = rng.integers(1, 2000, 40)  # rows per flat step: 40 steps, ~40,000 rows
    fpr = np.cumsum(np.repeat(rng.random(40), runs))
    tpr = np.repeat(np.arange(40), runs).astype(float)
    curve = pd.DataFrame({"fpr": fpr / fpr[-1], "tpr": tpr / 39, "threshold": rng.random(len(fpr))})
    thinned = metrics.thin(curve, 100, ("fpr", "tpr"))
    assert len(thinned) <= 100
    assert set(thinned["tpr"]) == set(curve["tpr"])
    # Each step's first and last rows are kept: every edge is drawn where it is.
    for ends in (curve.drop_duplicates("tpr"), curve.drop_duplicates("tpr", keep="last")):
        assert ends["fpr"].isin(thinned["fpr"]).all()
    assert _largest_gap(curve, thinned, "fpr", "tpr") == 0


def test_thin_spaces_rows_by_distance_along_the_curve() -> None:
    """99 % of the rows crowd a short stretch (scores near 0): every-n-th-row thinning would
    draw the rest, where the curve turns, as one straight line."""
    x = np.concatenate([np.linspace(0, 0.001, 99_000, endpoint=False), np.linspace(0.001, 1, 1000)])
    curve = pd.DataFrame({"x": x, "y": np.sin(3 * np.pi * x)})
    thinned = metrics.thin(curve, 60)
    assert len(thinned) <= 60
    assert _largest_gap(curve, thinned, "x", "y") < 0.05
    every_nth = curve.iloc[np.linspace(0, len(curve) - 1, 60).round().astype(int)]
    assert _largest_gap(curve, every_nth, "x", "y") > 0.5  # what the old rule drew


def test_thin_measures_only_the_plotted_columns() -> None:
    """The threshold column is not drawn: its jumps must not take the points."""
    x = np.linspace(0, 1, 5000)
    curve = pd.DataFrame({"x": x, "y": x ** 2, "threshold": np.where(x < 0.5, 0.0, 1e6) * x})
    assert _largest_gap(curve, metrics.thin(curve, 40, ("x", "y")), "x", "y") < 0.002


def test_target_recall_picks_the_highest_threshold_reaching_it() -> None:
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.85, 0.6, 0.5, 0.1, 0.05, 0.3])
    table = metrics.threshold_table(labels, scores)
    assert metrics.choose_threshold("target_recall", table, 0.75, 0, 0) == 0.7
    assert metrics.choose_threshold("target_recall", table, 0.5, 0, 0) == 0.8
    # 100 % recall is always reachable: at the lowest fraud score.
    assert metrics.choose_threshold("target_recall", table, 1.0, 0, 0) == 0.2
    threshold = metrics.choose_threshold("target_recall", table, 0.74, 0, 0)
    assert metrics.confusion(labels, scores, threshold)["tp"] / 4 >= 0.74


def test_ties_flag_together() -> None:
    labels = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.5, 0.5, 0.5, 0.2, 0.1])
    table = metrics.threshold_table(labels, scores)
    # One candidate per distinct score (plus "flag nothing"): a tie is never split.
    assert table.threshold[1:].tolist() == [0.5, 0.2, 0.1]
    assert table.tp.tolist() == [0, 2, 2, 2] and table.fp.tolist() == [0, 1, 2, 3]
    assert metrics.choose_threshold("target_recall", table, 0.5, 0, 0) == 0.5


def test_min_cost_balances_false_alarms_and_misses() -> None:
    labels = np.array([1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.4, 0.8, 0.3, 0.2, 0.1])
    table = metrics.threshold_table(labels, scores)
    # A miss costs 10, a false alarm 1: catch both frauds (one false alarm), cost 1.
    assert metrics.choose_threshold("min_cost", table, 0, 1, 10) == 0.4
    # A false alarm costs more than a miss: flag only the sure one, cost 1 miss * 1.
    assert metrics.choose_threshold("min_cost", table, 0, 5, 1) == 0.9


def test_min_cost_with_zero_costs() -> None:
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.9, 0.4, 0.8, 0.3])
    table = metrics.threshold_table(labels, scores)
    # False alarms are free: the highest threshold that misses nothing.
    assert metrics.choose_threshold("min_cost", table, 0, 0, 100) == 0.4
    # Misses are free: flag nothing (a threshold above every score).
    nothing = metrics.choose_threshold("min_cost", table, 0, 100, 0)
    assert nothing > scores.max()
    assert metrics.confusion(labels, scores, nothing)["tp"] == 0


def test_cost_by_amount() -> None:
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.9, 0.4, 0.8, 0.3])
    amounts = np.array([1000.0, 2.0, 50.0, 10.0])
    table = metrics.threshold_table(labels, scores, amounts)
    # Missing the 2.00 fraud is cheaper than the false alarm (cost 5) needed to catch it.
    assert metrics.choose_threshold("min_cost", table, 0, 5, "amount") == 0.9
    assert metrics.cost_at(labels, scores, 0.9, 5, "amount", amounts) == 2.0
    assert metrics.cost_at(labels, scores, 0.4, 5, "amount", amounts) == 5.0
    assert metrics.cost_at(labels, scores, 0.95, 5, "amount", amounts) == 1002.0
    with pytest.raises(PipelineError, match="amount"):
        metrics.cost_at(labels, scores, 0.5, 5, "amount")


def test_fixed_threshold_is_used_as_is() -> None:
    labels, scores = scored()
    table = metrics.threshold_table(labels, scores)
    assert metrics.choose_threshold(0.37, table, 0.9, 1, 1) == 0.37


def test_no_fraud_in_validation_is_a_clear_error() -> None:
    with pytest.raises(PipelineError, match="no frauds"):
        metrics.threshold_table(np.zeros(10), np.linspace(0, 1, 10))


def test_threshold_curve_for_plots() -> None:
    labels, scores = scored(rows=5000, frauds=100)
    curve = metrics.threshold_curve(metrics.threshold_table(labels, scores), 5, 500, 300)
    assert len(curve) <= 300
    assert list(curve.columns) == ["threshold", "precision", "recall", "cost"]
    assert curve["threshold"].is_monotonic_increasing
    assert curve["recall"].is_monotonic_decreasing
    assert np.isfinite(curve.to_numpy()).all()
