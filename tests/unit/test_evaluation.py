"""Bootstrap intervals, one model's evaluation and the choice on validation (no TensorFlow)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud.core.models import AUTO
from fraud.core.params import load_params
from fraud.errors import PipelineError
from fraud.evaluation import metrics
from fraud.evaluation.choice import Scored, choose_model, evaluate_scores

REPO = Path(__file__).resolve().parents[2]
INTERVAL_KEYS = {f"{name}_{end}" for name in ("prc", "auc", "recall", "precision")
                 for end in ("low", "high")}


def scores_for(rows: int, rate: float, skill: float, seed: int, decimals: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < rate).astype(np.uint8)
    scores = 1 / (1 + np.exp(-(rng.normal(size=rows) + skill * labels - 4)))
    return labels, (np.round(scores, decimals) if decimals else scores)


@pytest.mark.parametrize("decimals", [None, 2])  # 2: many ties, frauds among them
def test_resampled_figures_equal_scikit_learn_with_weights(decimals: int | None) -> None:
    labels, scores = scores_for(5000, 0.02, 3.0, 1, decimals)
    threshold = 0.3
    bins = metrics.rank_bins(labels, scores, threshold)
    order = np.argsort(-scores, kind="stable")
    positive = labels[order] == 1
    rng = np.random.default_rng(2)
    for _ in range(4):
        weights = rng.integers(0, 3, size=len(labels)).astype(float)
        ranked = weights[order]
        figures = metrics.resampled_figures(
            bins, ranked[positive][None, :],
            np.bincount(bins.bin_of_negative, weights=ranked[~positive],
                        minlength=len(bins.bin_above))[None, :])
        flagged = scores >= threshold
        tp = np.sum(weights * (labels == 1) * flagged)
        fp = np.sum(weights * (labels == 0) * flagged)
        assert figures["auc"][0] == pytest.approx(roc_auc_score(labels, scores,
                                                                sample_weight=weights), abs=1e-12)
        assert figures["prc"][0] == pytest.approx(
            average_precision_score(labels, scores, sample_weight=weights), abs=1e-12)
        assert figures["recall"][0] == pytest.approx(tp / np.sum(weights * labels))
        assert figures["precision"][0] == pytest.approx(tp / (tp + fp))


def test_bootstrap_is_deterministic_and_contains_the_point_estimate() -> None:
    labels, scores = scores_for(20_000, 0.005, 3.0, 3)
    first = metrics.bootstrap_intervals(labels, scores, 0.5, 500, seed=42)
    assert first == metrics.bootstrap_intervals(labels, scores, 0.5, 500, seed=42)
    assert first != metrics.bootstrap_intervals(labels, scores, 0.5, 500, seed=43)
    point = metrics.binary_metrics(labels, scores, 0.5)
    for name in ("prc", "auc", "recall", "precision"):
        assert first[f"{name}_low"] <= point[name] <= first[f"{name}_high"], name
        assert first[f"{name}_low"] < first[f"{name}_high"], name


def test_bootstrap_intervals_narrow_with_more_frauds() -> None:
    few = metrics.bootstrap_intervals(*scores_for(20_000, 0.002, 3.0, 4), 0.5, 500, seed=1)
    many = metrics.bootstrap_intervals(*scores_for(20_000, 0.05, 3.0, 4), 0.5, 500, seed=1)
    assert many["prc_high"] - many["prc_low"] < few["prc_high"] - few["prc_low"]


def test_bootstrap_resamples_keep_the_fraud_count() -> None:
    """Stratified: every resample holds as many frauds as the split (recall's denominator)."""
    labels, scores = scores_for(3000, 0.01, 2.0, 5)
    frauds = int(labels.sum())
    bins = metrics.rank_bins(labels, scores, 0.5)
    rng = np.random.default_rng(0)
    fraud_weights = rng.multinomial(frauds, np.full(frauds, 1 / frauds), size=50)
    assert (fraud_weights.sum(axis=1) == frauds).all()
    recall = metrics.resampled_figures(bins, fraud_weights.astype(float),
                                       np.tile(bins.bin_sizes, (50, 1)).astype(float))["recall"]
    assert np.allclose(recall * frauds, np.round(recall * frauds))


@pytest.fixture(scope="module")
def settings():
    return load_params(REPO / "params.yaml").evaluate


def test_evaluate_scores_has_every_key(settings) -> None:
    val, test = (Scored(*scores_for(4000, 0.02, 3.0, seed)) for seed in (6, 7))
    result = evaluate_scores(val, test, replace(settings, bootstrap=200), seed=0)
    assert set(result) >= INTERVAL_KEYS
    assert {"val_prc", "val_auc", "val_recall", "val_precision", "val_cost", "cost",
            "threshold", "prc", "auc", "recall", "precision", "tp", "fp", "fn", "tn"} <= set(result)
    assert result["val_prc"] == pytest.approx(average_precision_score(val.labels, val.scores))
    assert result["prc"] == pytest.approx(average_precision_score(test.labels, test.scores))


def per_model_results(settings, test_labels_seed: int) -> dict[str, dict[str, float]]:
    """Three models of different skill; the test labels come from `test_labels_seed`."""
    results = {}
    for name, skill in (("baseline", 2.0), ("weighted", 3.5), ("oversample", 2.5)):
        val = Scored(*scores_for(4000, 0.03, skill, 10))
        labels, scores = scores_for(4000, 0.03, skill, 11)
        if test_labels_seed:  # other test labels: the test ranking changes
            labels = np.random.default_rng(test_labels_seed).permutation(labels)
        results[name] = evaluate_scores(val, Scored(labels, scores),
                                        replace(settings, bootstrap=100), seed=0)
    return results


def test_auto_choice_does_not_depend_on_the_test_split(settings) -> None:
    before = per_model_results(settings, 0)
    after = per_model_results(settings, 99)
    assert any(before[m]["prc"] != after[m]["prc"] for m in before)  # test metrics changed
    choices = [choose_model(results, AUTO, ("baseline", "weighted", "oversample"), "val_prc")
               for results in (before, after)]
    assert choices[0] == choices[1] == {"model": "weighted", "chosen_by": "validation",
                                        "select_by": "val_prc"}
    # ...and a choice on test would have moved: the test winner differs between the two
    test_best = [max(r, key=lambda m: r[m]["prc"]) for r in (before, after)]
    assert test_best[0] != test_best[1] or test_best[1] != "weighted"


@pytest.mark.parametrize(("select_by", "values", "expected"), [
    ("val_prc", {"baseline": 0.8, "weighted": 0.7, "oversample": 0.8}, "baseline"),  # tie: first
    ("val_auc", {"baseline": 0.9, "weighted": 0.95, "oversample": 0.8}, "weighted"),
    ("val_cost", {"baseline": 900.0, "weighted": 700.0, "oversample": 800.0}, "weighted"),
])
def test_choose_model_by_each_figure(select_by: str, values: dict[str, float],
                                     expected: str) -> None:
    per_model = {name: {select_by: value} for name, value in values.items()}
    chosen = choose_model(per_model, AUTO, ("baseline", "weighted", "oversample"), select_by)
    assert chosen["model"] == expected


def test_choose_model_among_candidates_only_and_named_strategy() -> None:
    per_model = {"baseline": {"val_prc": 0.5}, "weighted": {"val_prc": 0.9},
                 "logreg": {"val_prc": 0.99}}
    assert choose_model(per_model, AUTO, ("baseline", "weighted"), "val_prc")["model"] == "weighted"
    named = choose_model(per_model, "baseline", ("baseline", "weighted"), "val_prc")
    assert named == {"model": "baseline", "chosen_by": "train.strategy", "select_by": "val_prc"}
    with pytest.raises(PipelineError, match="oversample"):
        choose_model(per_model, AUTO, ("baseline", "oversample"), "val_prc")
