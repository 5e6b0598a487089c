"""Calibrated fraud probabilities: proper scoring rules, calibrators fitted on validation, and
the cost-optimal decision rule. (The calibrator as ONNX nodes: src/fraud/serving/calibrated.py.)

Why: class weights and oversampling change the class prior a network learns, so its scores
are not probabilities of fraud (the weighted network predicted 20× the observed fraud rate).
A fraud team that reads 0.6 as "60 % likely", or derives a threshold from the costs of a
review and of a miss, needs calibrated probabilities.

Every calibrator maps the model's LOGIT (float64) to a calibrated logit with one increasing,
piecewise-linear function, then applies the sigmoid in float64:

    calibrated logit g(z) = y0 + (min(max(z, lo), hi) - anchor) @ slopes,  p = sigmoid(g)

`none` is the identity, `prior` a shift, `platt` a line, `isotonic` a polyline through the
isotonic fit's blocks. Working on the logit keeps the sigmoid's whole range (a sigmoid fitted
on these networks' probabilities capped them below 0.5); one formula means numpy and the ONNX
nodes compute the same thing; float64 avoids the ties and exact zeros of a float32 sigmoid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.isotonic import isotonic_regression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ..core.calibrator import Calibrator, identity, linear
from ..core.params import CALIBRATION_AUTO, CALIBRATION_METHODS
from ..errors import PipelineError
from .metrics import KERAS_EPSILON

METHODS = CALIBRATION_METHODS
AUTO = CALIBRATION_AUTO
ECE_BINS = 15
BINNINGS = ("width", "mass")
AUTO_FOLDS = 5

Array = np.ndarray


# ---------------------------------------------------------------- proper scoring rules

def _pair(labels: Array, probabilities: Array) -> tuple[Array, Array]:
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(labels) != len(probabilities) or len(labels) == 0:
        raise PipelineError(f"calibration: {len(labels):,} labels but "
                            f"{len(probabilities):,} probabilities")
    return labels, probabilities


def row_log_losses(labels: Array, probabilities: Array) -> Array:
    """Each row's cross-entropy, probabilities clipped to [1e-7, 1 - 1e-7] as Keras and the
    project's other metrics do, so the figures compare."""
    labels, probabilities = _pair(labels, probabilities)
    p = np.clip(probabilities, KERAS_EPSILON, 1 - KERAS_EPSILON)
    return -(labels * np.log(p) + (1 - labels) * np.log1p(-p))


def log_loss(labels: Array, probabilities: Array) -> float:
    return float(np.mean(row_log_losses(labels, probabilities)))


def brier(labels: Array, probabilities: Array) -> float:
    labels, probabilities = _pair(labels, probabilities)
    return float(np.mean((probabilities - labels) ** 2))


def _bin_of(probabilities: Array, bins: int, binning: str) -> Array:
    """Each row's bin. `width`: 15 equal intervals of [0, 1] (the usual ECE, dominated by the
    first bin when frauds are rare). `mass`: equal row counts in order of probability (ties
    broken by row order), so every bin holds data where the scores are."""
    if binning == "width":
        return np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    if binning == "mass":
        order = np.argsort(probabilities, kind="stable")
        bin_of = np.empty(len(probabilities), dtype=np.int64)
        bin_of[order] = np.arange(len(probabilities)) * bins // len(probabilities)
        return bin_of
    raise PipelineError(f"calibration: binning must be one of {BINNINGS}, got {binning!r}")


def reliability(labels: Array, probabilities: Array, bins: int = ECE_BINS,
                binning: str = "mass") -> pd.DataFrame:
    """Reliability-curve points, one row per non-empty bin: mean predicted probability vs
    observed fraud rate (a calibrated model lies on the diagonal)."""
    labels, probabilities = _pair(labels, probabilities)
    frame = pd.DataFrame({"bin": _bin_of(probabilities, bins, binning), "p": probabilities,
                          "y": labels})
    grouped = frame.groupby("bin", sort=True)
    return pd.DataFrame({
        "bin": grouped.size().index.to_numpy(),
        "rows": grouped.size().to_numpy(),
        "lowest": grouped["p"].min().to_numpy(),
        "highest": grouped["p"].max().to_numpy(),
        "mean_predicted": grouped["p"].mean().to_numpy(),
        "observed_rate": grouped["y"].mean().to_numpy(),
        "expected_frauds": grouped["p"].sum().to_numpy(),
        "frauds": grouped["y"].sum().to_numpy().astype(np.int64),
    })


def expected_calibration_error(labels: Array, probabilities: Array, bins: int = ECE_BINS,
                               binning: str = "width") -> float:
    """Σ over bins of (rows in bin / rows) · |mean predicted - observed rate|."""
    curve = reliability(labels, probabilities, bins, binning)
    gaps = np.abs(curve["mean_predicted"] - curve["observed_rate"])
    return float(np.sum(curve["rows"] * gaps) / curve["rows"].sum())


def calibration_figures(labels: Array, probabilities: Array) -> dict[str, float]:
    """The flat calibration metrics of one model on one split."""
    labels, probabilities = _pair(labels, probabilities)
    return {
        "log_loss": log_loss(labels, probabilities),
        "brier": brier(labels, probabilities),
        "ece15_width": expected_calibration_error(labels, probabilities, ECE_BINS, "width"),
        "ece15_mass": expected_calibration_error(labels, probabilities, ECE_BINS, "mass"),
        "expected_frauds": float(probabilities.sum()),
        "observed_frauds": float(labels.sum()),
        "zero_probability_rows": int(np.sum(probabilities == 0)),
    }


# ---------------------------------------------------------------- calibrators

def prior_beta_from_class_weights(negative_weight: float, positive_weight: float) -> float:
    """β of a model trained with class weights: weighting the loss by w_neg, w_pos has the
    same optimum as keeping each negative with probability w_neg / w_pos."""
    if not (negative_weight > 0 and positive_weight > 0):
        raise PipelineError("calibration: class weights must be > 0")
    return negative_weight / positive_weight


def prior_beta_from_oversampling(batch_fraud_fraction: float, train_fraud_fraction: float
                                 ) -> float:
    """β of a model trained on batches with another fraud fraction than the training split:
    the ratio of the split's fraud odds to the batches' (1:1 batches: β = frauds/non-frauds)."""
    for name, value in (("batch", batch_fraud_fraction), ("training", train_fraud_fraction)):
        if not 0 < value < 1:
            raise PipelineError(f"calibration: the {name} fraud fraction must be in (0, 1)")
    train_odds = train_fraud_fraction / (1 - train_fraud_fraction)
    batch_odds = batch_fraud_fraction / (1 - batch_fraud_fraction)
    return train_odds / batch_odds


def prior(beta: float) -> Calibrator:
    """Dal Pozzolo et al. (2015): p = β·ps / (β·ps - ps + 1), i.e. logit(p) = logit(ps) + ln β.
    Nothing is fitted: β comes from how the model was trained."""
    if not (np.isfinite(beta) and beta > 0):
        raise PipelineError(f"calibration: prior beta must be finite and > 0, got {beta!r}")
    return linear("prior", 1.0, float(np.log(beta)), beta=float(beta))


def fit_platt(logits: Array, labels: Array) -> Calibrator:
    """Logistic regression of the label on the logit (unpenalised): slope and intercept."""
    z, y = _fit_pair(logits, labels)
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(z.reshape(-1, 1), y)
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    if slope <= 0:
        raise PipelineError(f"calibration: platt slope {slope:.3g} <= 0: the model's scores "
                            "do not rise with fraud on validation")
    return linear("platt", slope, intercept, slope=slope, intercept=intercept)


def _end_value(value: float, rows: float, neighbour: float, low_end: bool) -> float:
    """An isotonic end block of only non-frauds (0) or only frauds (1) would give an infinite
    logit: use (0.5 + count)/(rows + 1), the Jeffreys estimate, kept inside its neighbour."""
    if low_end and value <= 0:
        return min(0.5 / (rows + 1), neighbour / 2)
    if not low_end and value >= 1:
        return max(1 - 0.5 / (rows + 1), (1 + neighbour) / 2)
    return value


def fit_isotonic(logits: Array, labels: Array) -> Calibrator:
    """Isotonic regression on the logit, made strictly increasing: one knot per block (its
    weighted mean logit, its fraud rate), straight lines between knots and, beyond the end
    knots, the mean slope between them. Steps would tie every row of a block (PR-AUC fell by
    0.01 to 0.04 on this data); lines keep the model's ranking."""
    z, y = _fit_pair(logits, labels)
    unique, inverse, counts = np.unique(z, return_inverse=True, return_counts=True)
    rates = np.bincount(inverse, weights=y) / counts
    fitted = isotonic_regression(rates, sample_weight=counts, increasing=True)
    starts = np.flatnonzero(np.append(True, np.diff(fitted) != 0))
    rows = np.add.reduceat(counts, starts).astype(float)
    x = np.add.reduceat(unique * counts, starts) / rows
    p = fitted[starts].astype(float)
    if len(p) > 1:
        p[0] = _end_value(p[0], rows[0], p[1], low_end=True)
        p[-1] = _end_value(p[-1], rows[-1], p[-2], low_end=False)
    else:
        p[0] = float(np.clip(p[0], 0.5 / (rows[0] + 1), 1 - 0.5 / (rows[0] + 1)))
    g = np.log(p) - np.log1p(-p)
    slope = float((g[-1] - g[0]) / (x[-1] - x[0])) if len(x) > 1 else 1.0
    return Calibrator("isotonic", tuple(x.tolist()), tuple(g.tolist()), (slope, slope),
                      {"blocks": len(x)})


def _fit_pair(logits: Array, labels: Array) -> tuple[Array, Array]:
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if len(z) != len(y):
        raise PipelineError(f"calibration: {len(z):,} logits but {len(y):,} labels")
    if not np.isfinite(z).all():
        raise PipelineError("calibration: the validation logits hold NaN or infinite values")
    if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
        raise PipelineError("calibration: fitting needs validation labels of both classes")
    return z, y.astype(np.float64)


Fitter = Callable[[Array, Array], Calibrator]


def fitters(beta: float | None) -> dict[str, Fitter]:
    """How each method is fitted on (logits, labels). Without β (a model trained on the
    split's own class mix: baseline, plain peers) `prior` is the identity."""
    shift = prior(1.0 if beta is None else beta)
    return {"none": lambda z, y: identity(), "prior": lambda z, y: shift,
            "platt": fit_platt, "isotonic": fit_isotonic}


def fit_calibrator(method: str, logits: Array, labels: Array, beta: float | None = None,
                   folds: int = AUTO_FOLDS, seed: int = 0) -> Calibrator:
    """The calibrator `method` (METHODS or `auto`), fitted on validation logits only."""
    if method == AUTO:
        return choose_calibrator(logits, labels, fitters(beta), folds, seed)
    table = fitters(beta)
    if method not in table:
        raise PipelineError(f"calibration: unknown method {method!r}; expected one of "
                            f"{', '.join((*METHODS, AUTO))}")
    return table[method](logits, labels)


def cross_fitted_probabilities(fit: Fitter, logits: Array, labels: Array, folds: int,
                               seed: int) -> Array:
    """Out-of-fold probabilities: each validation row is scored by a calibrator fitted on the
    other folds only (stratified, seeded), so no row is both fitted and scored."""
    z, y = _fit_pair(logits, labels)
    if folds < 2 or y.sum() < folds:
        raise PipelineError(f"calibration: auto needs >= 2 folds and at least one fraud per "
                            f"fold ({int(y.sum())} validation frauds, {folds} folds)")
    out = np.empty(len(z))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, score_rows in splitter.split(z.reshape(-1, 1), y):
        out[score_rows] = fit(z[fit_rows], y[fit_rows])(z[score_rows])
    return out


def choose_calibrator(logits: Array, labels: Array, table: dict[str, Fitter],
                      folds: int = AUTO_FOLDS, seed: int = 0,
                      order: Sequence[str] = METHODS) -> Calibrator:
    """`auto`: by cross-fitted validation log loss, the simplest method (first in `order`)
    whose loss is within one standard error of the best one's (the paired per-row difference),
    refitted on the whole validation split. With ~80 validation frauds, gains smaller than
    that are noise, and a 2-parameter line is safer out of sample than a many-knot polyline.
    Its details record every method's cross-fitted log loss and distance to the best."""
    losses: dict[str, Array] = {}
    unusable: dict[str, str] = {}
    for name in order:  # a method that cannot be fitted here (platt on scores that do not
        try:            # rise with fraud, in a fold or overall) is left out, not fatal
            losses[name] = row_log_losses(labels, cross_fitted_probabilities(
                table[name], logits, labels, folds, seed))
        except PipelineError as error:
            unusable[name] = str(error)
    usable = [name for name in order if name in losses]
    if not usable:
        raise PipelineError(f"calibration: no method could be fitted ({unusable})")
    means = {name: float(losses[name].mean()) for name in usable}
    best = min(usable, key=lambda name: means[name])
    errors = {name: float(np.std(losses[name] - losses[best], ddof=1) / np.sqrt(len(labels)))
              for name in usable}
    chosen = None
    for name in (name for name in usable if means[name] - means[best] <= errors[name]):
        try:
            chosen = table[name](logits, labels)
            break
        except PipelineError as error:  # fitted in every fold, not on the whole split
            unusable[name] = str(error)
    chosen = chosen or table[best](logits, labels)
    details = {**chosen.details, "chosen_by": "auto", "folds": folds, "seed": seed,
               "rule": "simplest within one standard error of the least log loss",
               "cross_fitted_log_loss": means, "best": best,
               "standard_error_vs_best": errors, **({"unusable": unusable} if unusable else {})}
    return Calibrator(chosen.method, chosen.x, chosen.y, chosen.outer_slopes, details)


# ---------------------------------------------------------------- decisions
# expected_cost_flags lives in src/fraud/core/decision.py (numpy only, for predict).
