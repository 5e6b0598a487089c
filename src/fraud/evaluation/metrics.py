"""Test metrics, curves and decision thresholds, computed exactly (no TensorFlow here).

Keras' AUC metrics bin scores at 200 thresholds (a prototype read PR-AUC 0.698 in Keras
against 0.777 exactly), so reported AUCs come from scikit-learn on every score.
A transaction is flagged when its probability is >= the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import pandas as pd

from ..errors import PipelineError

# scikit-learn (with scipy, ~1 s to import) is loaded by the functions that compute curves and
# AUCs, not by importing this module: the evaluate stage reads metrics and draws, and a
# strategy switch reruns it (bench/NOTES.md).

def _sklearn_metrics() -> ModuleType:
    import sklearn.metrics

    return sklearn.metrics


KERAS_EPSILON = 1e-7  # Keras clips probabilities so the loss stays finite; do the same


def cross_entropy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, KERAS_EPSILON, 1 - KERAS_EPSILON)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def confusion(labels: np.ndarray, probabilities: np.ndarray, threshold: float
              ) -> dict[str, int]:
    flagged = probabilities >= threshold
    positive = labels == 1
    return {"tp": int(np.sum(flagged & positive)), "fp": int(np.sum(flagged & ~positive)),
            "tn": int(np.sum(~flagged & ~positive)), "fn": int(np.sum(~flagged & positive))}


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float
                   ) -> dict[str, float]:
    """The tutorial's metrics at `threshold`, with exact ROC-AUC and PR-AUC (average precision)."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    counts = confusion(labels, probabilities, threshold)
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    return {
        "loss": cross_entropy(labels, probabilities),
        **counts,
        "accuracy": (tp + tn) / len(labels),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "auc": float(_sklearn_metrics().roc_auc_score(labels, probabilities)),
        "prc": float(_sklearn_metrics().average_precision_score(labels, probabilities)),
        "brier": float(np.mean((probabilities - labels) ** 2)),
    }


def cost_at(labels: np.ndarray, probabilities: np.ndarray, threshold: float, cost_fp: float,
            cost_fn: float | str, amounts: np.ndarray | None = None) -> float:
    """cost_fp per false alarm plus cost_fn (or the fraud's own amount) per missed fraud."""
    flagged = np.asarray(probabilities).reshape(-1) >= threshold
    positive = np.asarray(labels).reshape(-1) == 1
    false_alarms = int(np.sum(flagged & ~positive))
    missed = ~flagged & positive
    if cost_fn == "amount":
        if amounts is None:
            raise PipelineError("evaluate.cost_fn = 'amount' needs transaction amounts")
        return float(cost_fp * false_alarms + np.sum(np.asarray(amounts)[missed]))
    return float(cost_fp * false_alarms + float(cost_fn) * int(missed.sum()))


def _without_straight_runs(points: np.ndarray) -> np.ndarray:
    """Row indices of `points` (rows, dims) that start, end or turn the polyline: repeated
    points and the inside of straight runs (a ROC curve's flat steps) add nothing to a line."""
    moved = np.append(True, np.any(np.diff(points, axis=0) != 0, axis=1))
    moved[-1] = True
    kept = np.flatnonzero(moved)
    if len(kept) < 3:
        return kept
    before = points[kept[1:-1]] - points[kept[:-2]]
    after = points[kept[2:]] - points[kept[1:-1]]
    dot = np.einsum("ij,ij->i", before, after)
    cross = (np.einsum("ij,ij->i", before, before) * np.einsum("ij,ij->i", after, after)
             - dot ** 2)
    straight = (dot > 0) & (cross <= 1e-12 * dot ** 2)
    return np.concatenate([kept[:1], kept[1:-1][~straight], kept[-1:]])


def thin(frame: pd.DataFrame, max_points: int, columns: Sequence[str] | None = None
         ) -> pd.DataFrame:
    """At most `max_points` rows that keep the curve's shape (plots stay light).

    The curve is the polyline through `columns` (default: all), each scaled to its range.
    Rows inside straight runs go first (they change nothing); if too many remain, the kept
    rows are evenly spaced by distance along the curve, not by row number: picking every
    n-th row keeps the crowded stretches (most scores sit near 0) and cuts the sparse ones,
    where the curve turns, into long straight segments. First and last rows stay.
    """
    if len(frame) <= 2:
        return frame.reset_index(drop=True)
    values = frame[list(columns) if columns else list(frame.columns)].to_numpy(float)
    span = values.max(axis=0) - values.min(axis=0)
    points = values / np.where(span > 0, span, 1.0)
    keep = _without_straight_runs(points)
    if len(keep) > max_points:
        steps = np.linalg.norm(np.diff(points[keep], axis=0), axis=1)
        along = np.concatenate([[0.0], np.cumsum(steps)])
        marks = np.linspace(0.0, along[-1], max_points)
        picked = np.unique(np.searchsorted(along, marks, side="left").clip(0, len(keep) - 1))
        keep = keep[np.union1d(picked, [0, len(keep) - 1])]
    return frame.iloc[keep].reset_index(drop=True)


def roc_points(labels: np.ndarray, probabilities: np.ndarray, max_points: int) -> pd.DataFrame:
    fpr, tpr, thresholds = _sklearn_metrics().roc_curve(labels, probabilities)
    # The first threshold is +inf ("flag nothing"); 1.0 says the same and is plottable.
    thresholds = np.minimum(thresholds, 1.0)
    frame = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})
    return thin(frame, max_points, ("fpr", "tpr"))


def pr_points(labels: np.ndarray, probabilities: np.ndarray, max_points: int) -> pd.DataFrame:
    precision, recall, thresholds = _sklearn_metrics().precision_recall_curve(labels,
                                                                              probabilities)
    # The last point (recall 0, precision 1) has no threshold: it means "flag nothing".
    thresholds = np.append(thresholds, 1.0)
    frame = pd.DataFrame({"recall": recall, "precision": precision, "threshold": thresholds})
    return thin(frame.iloc[::-1], max_points, ("recall", "precision"))


@dataclass(frozen=True)
class ThresholdTable:
    """Every distinct candidate threshold on a split, highest first, with its outcomes."""
    threshold: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: int
    missed_amount: np.ndarray | None  # sum of missed frauds' amounts, when amounts are known

    @property
    def recall(self) -> np.ndarray:
        return self.tp / self.positives

    @property
    def precision(self) -> np.ndarray:
        flagged = self.tp + self.fp
        return np.divide(self.tp, flagged, out=np.ones_like(self.tp, dtype=float),
                         where=flagged > 0)

    def cost(self, cost_fp: float, cost_fn: float | str) -> np.ndarray:
        if cost_fn == "amount":
            if self.missed_amount is None:
                raise PipelineError("evaluate.cost_fn = 'amount' needs transaction amounts")
            return cost_fp * self.fp + self.missed_amount
        return cost_fp * self.fp + float(cost_fn) * (self.positives - self.tp)


def threshold_table(labels: np.ndarray, probabilities: np.ndarray,
                    amounts: np.ndarray | None = None) -> ThresholdTable:
    """Outcomes of flagging `p >= t` for each distinct score t, plus 'flag nothing' first."""
    labels = np.asarray(labels).reshape(-1).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    positives = int(labels.sum())
    if positives == 0:
        raise PipelineError("the validation split holds no frauds: no threshold can be chosen")
    order = np.argsort(-probabilities, kind="stable")
    scores = probabilities[order]
    tp = np.cumsum(labels[order])
    fp = np.cumsum(~labels[order])
    # A threshold flags every row scoring >= it: keep the last row of each tie group.
    last_of_ties = np.append(scores[1:] != scores[:-1], True)
    nothing = np.nextafter(max(scores[0], 1.0), np.inf)
    missed = None
    if amounts is not None:
        fraud_amounts = np.where(labels[order], np.asarray(amounts, dtype=float)[order], 0.0)
        missed_all = fraud_amounts.sum() - np.cumsum(fraud_amounts)
        missed = np.concatenate([[fraud_amounts.sum()], missed_all[last_of_ties]])
    return ThresholdTable(
        threshold=np.concatenate([[nothing], scores[last_of_ties]]),
        tp=np.concatenate([[0], tp[last_of_ties]]),
        fp=np.concatenate([[0], fp[last_of_ties]]),
        positives=positives, missed_amount=missed)


def choose_threshold(rule: float | str, table: ThresholdTable, target_recall: float,
                     cost_fp: float, cost_fn: float | str) -> float:
    """The decision threshold, chosen on validation outcomes (never on test).

    - a number: itself;
    - `target_recall`: the highest threshold whose recall reaches the target;
    - `min_cost`: the threshold of least cost_fp·FP + cost_fn·FN (ties: the highest one,
      which flags the fewest transactions);
    - `expected_cost`: no search: flag p·cost_fn > (1 - p)·cost_fp, i.e. p above
      cost_fp / (cost_fp + cost_fn) (meaningful on calibrated probabilities). With
      cost_fn = amount, one threshold needs one cost: the validation frauds' mean amount
      (the per-row rule is `decision.expected_cost_flags`).
    """
    if not isinstance(rule, str):
        return float(rule)
    if rule == "target_recall":
        reached = np.nonzero(table.recall >= target_recall - 1e-12)[0]
        if len(reached) == 0:  # cannot happen for targets <= 1, but say so if it does
            raise PipelineError(f"evaluate.target_recall = {target_recall} is not reached on "
                                "the validation split at any threshold")
        return float(table.threshold[reached[0]])
    if rule == "min_cost":
        cost = table.cost(cost_fp, cost_fn)
        return float(table.threshold[int(np.argmin(cost))])
    if rule == "expected_cost":
        return expected_cost_threshold(table, cost_fp, cost_fn)
    raise PipelineError(f"unknown evaluate.threshold rule {rule!r}")


def expected_cost_threshold(table: ThresholdTable, cost_fp: float, cost_fn: float | str
                            ) -> float:
    """The least float above cost_fp / (cost_fp + cost_fn): `p >= it` is `p > break-even`."""
    if cost_fn == "amount":
        if table.missed_amount is None:
            raise PipelineError("evaluate.cost_fn = 'amount' needs transaction amounts")
        cost_fn = float(table.missed_amount[0]) / table.positives
    miss = float(cost_fn)
    if cost_fp + miss <= 0:
        raise PipelineError("evaluate.threshold = 'expected_cost' needs a cost: "
                            "evaluate.cost_fp and evaluate.cost_fn are both 0")
    return float(np.nextafter(cost_fp / (cost_fp + miss), np.inf))


def threshold_curve(table: ThresholdTable, cost_fp: float, cost_fn: float | str,
                    max_points: int) -> pd.DataFrame:
    """Precision, recall and cost against the threshold (validation), for plots."""
    frame = pd.DataFrame({
        "threshold": np.minimum(table.threshold, 1.0),
        "precision": table.precision, "recall": table.recall,
        "cost": table.cost(cost_fp, cost_fn),
    }).iloc[1:]  # drop the 'flag nothing' point (its threshold is above every score)
    return thin(frame.iloc[::-1], max_points)


# --- bootstrap intervals ---------------------------------------------------------------------

INTERVAL_LEVEL = 0.95


@dataclass(frozen=True)
class RankBins:
    """A split's rows reduced to what ROC-AUC, average precision and the counts at a
    threshold depend on, so that a resample is a vector of ~100 counts, not of 57,000.

    Scores are ranked (highest first) and grouped by ties; `positive group` k is the k-th
    group holding a fraud. A legitimate row matters only through how many positive groups
    rank above it, whether it ties one, and whether it is flagged: rows alike in those
    three share a bin. Frauds stay one by one (there are ~100).
    """
    positive_group: np.ndarray    # per fraud: its positive group
    positive_flagged: np.ndarray  # per fraud: score >= threshold
    bin_above: np.ndarray         # per legitimate bin: positive groups ranked above it
    bin_tied: np.ndarray          # per legitimate bin: it ties positive group bin_above
    bin_flagged: np.ndarray       # per legitimate bin: score >= threshold
    bin_of_negative: np.ndarray   # per legitimate row: its bin
    groups: int                   # number of positive groups

    @property
    def bin_sizes(self) -> np.ndarray:
        return np.bincount(self.bin_of_negative, minlength=len(self.bin_above))


def rank_bins(labels: np.ndarray, scores: np.ndarray, threshold: float) -> RankBins:
    labels = np.asarray(labels).reshape(-1).astype(bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    ranked, positive = scores[order], labels[order]
    group = np.concatenate([[0], np.cumsum(ranked[1:] != ranked[:-1])])
    has_fraud = np.bincount(group, weights=positive) > 0
    above = (np.cumsum(has_fraud) - has_fraud)[group]  # positive groups strictly above
    tied = has_fraud[group]
    flagged = ranked >= threshold
    keys = (above * 2 + tied) * 2 + flagged
    bin_keys, bin_of_row = np.unique(keys[~positive], return_inverse=True)
    return RankBins(positive_group=above[positive], positive_flagged=flagged[positive],
                    bin_above=bin_keys // 4, bin_tied=(bin_keys // 2) % 2 == 1,
                    bin_flagged=bin_keys % 2 == 1, bin_of_negative=bin_of_row.reshape(-1),
                    groups=int(has_fraud.sum()))


def _one_hot(index: np.ndarray, width: int) -> np.ndarray:
    matrix = np.zeros((len(index), width))
    matrix[np.arange(len(index)), index] = 1.0
    return matrix


def resampled_figures(bins: RankBins, fraud_weights: np.ndarray, bin_weights: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """PR-AUC (average precision), ROC-AUC, recall and precision of each resample (a row of
    `fraud_weights`: how often each fraud was drawn; of `bin_weights`: how many legitimate
    rows of each bin), equal to scikit-learn's with `sample_weight` (tests check)."""
    per_group = fraud_weights @ _one_hot(bins.positive_group, bins.groups)
    tp_through = np.cumsum(per_group, axis=1)
    fp_through = np.cumsum(bin_weights @ _one_hot(bins.bin_above, bins.groups + 1), axis=1)
    frauds = tp_through[:, -1:]
    legitimate = bin_weights.sum(axis=1)
    flagged_at = tp_through + fp_through[:, :-1]
    precision_at = np.divide(tp_through, flagged_at, out=np.zeros_like(tp_through),
                             where=flagged_at > 0)
    ap = np.sum(per_group / frauds * precision_at, axis=1)
    tp_above = np.concatenate([np.zeros((len(per_group), 1)), tp_through], axis=1)
    tied = np.where(bins.bin_tied, 0.5, 0.0) * np.concatenate(
        [per_group, np.zeros((len(per_group), 1))], axis=1)[:, bins.bin_above]
    pairs = np.sum(bin_weights * (tp_above[:, bins.bin_above] + tied), axis=1)
    tp = fraud_weights[:, bins.positive_flagged].sum(axis=1)
    fp = bin_weights[:, bins.bin_flagged].sum(axis=1)
    return {"prc": ap, "auc": pairs / (frauds[:, 0] * legitimate),
            "recall": tp / frauds[:, 0],
            "precision": np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)}


# Mixed into `seed` for the bootstrap's own streams: no other use of `seed` shares them.
BOOTSTRAP_TAG = 0xB007


def _legitimate_draws(bins: RankBins, resamples: int, rank_rng: np.random.Generator,
                      flag_rng: np.random.Generator) -> np.ndarray:
    """How many legitimate rows of each bin every resample draws, in two steps so that the
    threshold moves precision only: first per rank position (positive groups above, tied),
    which depends on the scores alone, so PR-AUC and ROC-AUC resamples are the same for every
    threshold; then, within a position that the threshold cuts, flagged or not (binomial).
    Together the same distribution as one multinomial over the bins."""
    sizes = bins.bin_sizes.astype(np.float64)
    _, position = np.unique(bins.bin_above * 2 + bins.bin_tied, return_inverse=True)
    position = position.reshape(-1)
    at_position = np.bincount(position, weights=sizes)
    flagged_share = np.bincount(position, weights=sizes * bins.bin_flagged) / at_position
    drawn = rank_rng.multinomial(int(sizes.sum()), at_position / at_position.sum(),
                                 size=resamples)
    flagged = flag_rng.binomial(drawn, np.clip(flagged_share, 0.0, 1.0))
    return np.where(bins.bin_flagged, flagged[:, position],
                    (drawn - flagged)[:, position]).astype(np.float64)


def bootstrap_intervals(labels: np.ndarray, scores: np.ndarray, threshold: float,
                        resamples: int, seed: int, level: float = INTERVAL_LEVEL
                        ) -> dict[str, float]:
    """Percentile intervals (95 %) of PR-AUC, ROC-AUC, recall and precision at `threshold`.

    Class-stratified: each resample draws the frauds and the legitimate rows separately,
    with replacement, so every resample keeps the split's fraud count (with ~100 test frauds
    an unstratified draw would also vary the base rate). Seeded: the same `seed` gives the
    same fraud draws for every model of a split, and the same draws whatever the threshold
    (see _legitimate_draws). Drawing counts per rank bin (multinomial) is the same
    distribution as drawing rows, ~1000× less work.
    """
    bins = rank_bins(labels, scores, threshold)
    fraud_rng, rank_rng, flag_rng = (np.random.default_rng(child) for child in
                                     np.random.SeedSequence([seed, BOOTSTRAP_TAG]).spawn(3))
    frauds = len(bins.positive_group)
    fraud_weights = fraud_rng.multinomial(frauds, np.full(frauds, 1 / frauds), size=resamples)
    figures = resampled_figures(bins, fraud_weights.astype(np.float64),
                                _legitimate_draws(bins, resamples, rank_rng, flag_rng))
    tail = (1 - level) / 2
    result: dict[str, float] = {}
    for name, values in figures.items():
        low, high = np.quantile(values, [tail, 1 - tail])
        result[f"{name}_low"], result[f"{name}_high"] = float(low), float(high)
    return result
