"""Prequential (walk-forward) selection from a sweep over folds (`fraud sweep --folds N`).

One job: from each fold's metrics files to candidates (a model at a grid point), ranked on
validation averaged over the folds, with the test figures of fold 0 alone beside them. Fold
k trains and validates k x split.val_days days before fold 0 and keeps its test window: its
model is older than fold 0's, so its test figures would describe no model anyone ships, and
showing them would invite choosing on test. They are never read here. No subprocesses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .compare import RANK_BY
from .plan import Point, finished_groups
from .show import Experiment, check_params, chosen_model, model_metrics
from .stats import Spread, spread

# (key in the metrics files, label in the report), ranked on RANK_BY (validation PR-AUC, as a
# seed sweep); Card Precision@k only for tables with a card and a time.
VALIDATION = (("val_prc", "validation PR-AUC (AP)"), ("val_card_precision", "validation CP@k"))
TEST = (("prc", "test PR-AUC"), ("auc", "test ROC-AUC"), ("card_precision", "test CP@k"))
TEST_FOLD = 0  # the most recent training window: the one whose test is reported


@dataclass(frozen=True)
class Candidate:
    """A model at a grid point, over the folds."""
    model: str
    label: str                               # the grid point ("" without a grid)
    folds: list[int]
    per_fold: dict[int, dict[str, float]]    # fold -> its validation figures
    validation: dict[str, Spread]            # metric -> over the folds (metrics every fold has)
    test: dict[str, float]                   # fold 0's test figures (empty without fold 0)


@dataclass(frozen=True)
class Selection:
    """A prequential sweep's result: candidates best first on validation (or in plan order,
    `ranked` False, when some lack RANK_BY), the best grid point of each model, and what
    `evaluate` chose on each fold of each grid point."""
    folds: list[int]
    candidates: list[Candidate]
    ranked: bool
    best_per_model: list[Candidate]
    chosen: dict[str, dict[int, str]]        # grid point label -> fold -> model
    skipped: list[str]


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def candidate(model: str, label: str, by_fold: Mapping[int, Mapping[str, Any]]) -> Candidate:
    """One model at one grid point from its metrics file on each fold: validation figures
    over every fold, test figures from fold 0 only."""
    folds = sorted(by_fold)
    per_fold = {fold: {key: value for key, _ in VALIDATION
                       if (value := _number(by_fold[fold].get(key))) is not None}
                for fold in folds}
    validation = {key: spread([per_fold[fold][key] for fold in folds]) for key, _ in VALIDATION
                  if all(key in per_fold[fold] for fold in folds)}
    test = {} if TEST_FOLD not in by_fold else {
        key: value for key, _ in TEST
        if (value := _number(by_fold[TEST_FOLD].get(key))) is not None}
    return Candidate(model=model, label=label, folds=folds, per_fold=per_fold,
                     validation=validation, test=test)


SAME_AT_EVERY_POINT = "every grid point (same figures)"


def merge_unaffected(candidates: Sequence[Candidate]) -> list[Candidate]:
    """One row for a model whose figures are the same at every grid point (a grid over
    gbdt's params leaves the networks as they were): listing it once per grid point would
    make its place among them look like a choice."""
    by_model: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_model.setdefault(c.model, []).append(c)
    merged = []
    for c in candidates:
        same = by_model[c.model]
        if len(same) > 1 and all((o.per_fold, o.test) == (c.per_fold, c.test) for o in same):
            if c is same[0]:
                merged.append(replace(c, label=SAME_AT_EVERY_POINT))
        else:
            merged.append(c)
    return merged


def rank(candidates: Sequence[Candidate]) -> tuple[list[Candidate], bool]:
    """Best first on the mean of RANK_BY over the folds (ties keep plan order); in plan order,
    and False, when a candidate lacks it: falling back on test would choose on test."""
    if not candidates or any(RANK_BY not in c.validation for c in candidates):
        return list(candidates), False
    return sorted(candidates, key=lambda c: -c.validation[RANK_BY].mean), True


def best_per_model(ranked: Sequence[Candidate]) -> list[Candidate]:
    """Each model's first candidate in ranking order: its best grid point on validation."""
    seen: dict[str, Candidate] = {}
    for c in ranked:
        seen.setdefault(c.model, c)
    return list(seen.values())


def _grid_point(points: Sequence[Point], experiments: Mapping[str, Experiment],
                fixed: Mapping[str, str]) -> tuple[list[Candidate], dict[int, str], list[str]]:
    """The candidates of one grid point (models with metrics on every finished fold), what
    evaluate chose on each fold, and the models left out."""
    by_model: dict[str, dict[int, dict[str, Any]]] = {}
    chosen: dict[int, str] = {}
    for point in points:
        experiment = experiments[point.name]
        check_params(experiment, point.overrides(fixed))
        for model, values in model_metrics(experiment).items():
            by_model.setdefault(model, {})[point.repetition] = values
        choice = chosen_model(experiment)
        if choice is not None:
            chosen[point.repetition] = choice[0]
    label = points[0].label
    complete = [m for m, v in by_model.items() if len(v) == len(points)]
    left_out = [f"{m}{' at ' + label if label else ''}: metrics missing on some fold"
                for m in by_model if m not in complete]
    return [candidate(m, label, by_model[m]) for m in complete], chosen, left_out


def select(points: Sequence[Point], experiments: Mapping[str, Experiment],
           fixed: Mapping[str, str]) -> Selection:
    """Every grid point with at least 2 finished folds, its models ranked together with every
    other grid point's; `experiments` holds the finished ones (none: an empty selection)."""
    candidates: list[Candidate] = []
    chosen: dict[str, dict[int, str]] = {}
    skipped: list[str] = []
    for done in finished_groups(points, experiments, skipped, "folds",
                                "a mean over folds needs 2", "averaged over"):
        if TEST_FOLD not in {p.fold for p in done}:
            skipped.append(f"{done[0].label or 'the sweep'}: fold {TEST_FOLD} did not "
                           "finish: no test figures")
        found, choices, left_out = _grid_point(done, experiments, fixed)
        candidates += found
        chosen[done[0].label] = choices
        skipped += left_out
    # No candidate (every fold failed): an empty selection, so that the sweep still writes
    # its report and then names the failures.
    ranked, ok = rank(merge_unaffected(candidates))
    folds = sorted({p.fold for p in points if p.fold is not None})
    return Selection(folds=folds, candidates=ranked, ranked=ok,
                     best_per_model=best_per_model(ranked) if ok else [], chosen=chosen,
                     skipped=skipped)
