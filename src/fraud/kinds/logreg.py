"""Plain logistic regression, a scikit-learn peer of the networks: C chosen on the validation
split's average precision. Its logit is linear: MatMul + Add in ONNX, explained in closed form.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .base import SCIKIT, Checks, Fit, LogitGraph, ModelKind, Split, linear_graph

log = logging.getLogger(__name__)

CLASS_WEIGHTS = ("none", "balanced")
MAX_C_GRID = 100  # one fit per value
# C is the inverse of the L2 penalty; scikit-learn computes 1/C, which overflows for
# subnormal C, and a C beyond 1e8 is no penalty at all.
C_RANGE = (1e-8, 1e8)


@dataclass(frozen=True)
class LogregParams:
    c_grid: tuple[float, ...]  # inverse regularisation strengths; the best on validation wins
    class_weight: str          # "none" (plain) or "balanced"
    max_iter: int


def _c_grid(value: Any, p: Checks) -> tuple[float, ...]:
    """A list of distinct numbers > 0; a single number (`-S logreg.c_grid=1`) is a grid of one."""
    allowed = "a list of distinct numbers > 0 (values of C to try), e.g. [0.01, 0.1, 1, 10]"
    items = value if isinstance(value, list) else [value]
    if not items or len(items) > MAX_C_GRID:
        raise p.fail("logreg.c_grid", value, allowed + f", of at most {MAX_C_GRID} values")
    grid = tuple(p.as_float(f"logreg.c_grid[{i}]", item) for i, item in enumerate(items))
    p.require("logreg.c_grid", value, all(c > 0 for c in grid) and len(set(grid)) == len(grid),
              allowed)
    low, high = C_RANGE
    for index, c in enumerate(grid):
        p.require(f"logreg.c_grid[{index}]", items[index], low <= c <= high,
                  f"a value of C from {low:g} to {high:g} (1/C is the penalty: smaller "
                  "overflows, larger is no penalty)")
    return grid


def parse_logreg(raw: dict[str, Any], p: Checks) -> LogregParams:
    """Section `logreg`: plain logistic regression, C chosen on validation average precision."""
    section = p.section(raw, "logreg", LogregParams)
    weight = section["class_weight"]
    weight = p.as_choice("logreg.class_weight", "none" if weight is None else weight,
                         CLASS_WEIGHTS, lower=True)
    result = LogregParams(c_grid=_c_grid(section["c_grid"], p),
                          class_weight=weight,
                          max_iter=p.as_int("logreg.max_iter", section["max_iter"]))
    p.require("logreg.max_iter", section["max_iter"], result.max_iter >= 1,
              "a whole number >= 1")
    return result


def fit_logreg(train: Split, val: Split, params: LogregParams, seed: int) -> Fit:
    """One LogisticRegression per C of the grid, fitted on train; the best validation AP wins.

    Ties go to the smaller C (stronger regularisation). lbfgs is deterministic; `seed` is
    passed as random_state all the same.
    """
    from sklearn.linear_model import LogisticRegression

    from . import _scikit

    train, val = _scikit.check_pair(train, val)
    start = time.perf_counter()
    best: tuple[float, float, LogisticRegression] | None = None
    scores = []
    for c in sorted(params.c_grid):
        model = LogisticRegression(
            C=c, max_iter=params.max_iter, random_state=seed,
            class_weight=None if params.class_weight == "none" else params.class_weight)
        model.fit(*train)
        score = _scikit.val_ap(model, val)
        scores.append(score)
        log.info("logreg C=%g: val AP %.4f (%d lbfgs iterations)", c, score, model.n_iter_[0])
        if int(model.n_iter_[0]) >= params.max_iter:
            log.warning("logreg C=%g did not converge in logreg.max_iter = %d iterations",
                        c, params.max_iter)
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None  # the grid is never empty (parse_logreg)
    score, c, model = best
    return Fit(model, {
        "model": "logreg", "c": c, "c_grid": sorted(params.c_grid), "grid_val_ap": scores,
        "class_weight": params.class_weight, "n_iter": int(model.n_iter_[0]),
        "max_iter": params.max_iter, "val_ap": score,
        "fit_seconds": round(time.perf_counter() - start, 3)})


def _fitted_problem(model: Any) -> str | None:
    from ._scikit import finite_floats

    return (finite_floats("coef_", model.coef_, (1, model.n_features_in_))
            or finite_floats("intercept_", model.intercept_, (1,)))


def _logit_graph(model: Any, n_features: int) -> LogitGraph:
    """`decision_function`: features @ coef.T + intercept, float64, shape (rows, 1)."""
    return linear_graph("logreg", model.coef_, model.intercept_, n_features)


KINDS = (ModelKind(
    name="logreg", train_stage="train_logreg", color="#CC79A7",  # reddish purple
    order=40, family=SCIKIT, explanation="linear", section="logreg", parse=parse_logreg,
    upper_bounds={"logreg.max_iter": 100_000},
    fit=fit_logreg,
    estimator=("sklearn.linear_model._logistic", "LogisticRegression"),
    trusted=frozenset({("sklearn.linear_model._logistic", "LogisticRegression", "ObjectNode")}),
    fitted_problem=_fitted_problem, logit_graph=_logit_graph,
    balanced=lambda section: section.class_weight == "balanced"),)
