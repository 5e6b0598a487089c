"""A sweep's comparison: from finished experiments to per-seed rows and their statistics.

One job: gather, per grid point, each model's metrics over the seeds (read generically from
the experiments' `metrics/<model>.json`; peers are stages like any model), the model the
pipeline chose on each seed (`metrics/evaluate.json`), and compare the models over the same
seeds (src/fraud/experiments/stats.py). Models are ranked on validation: the choice of a
model belongs to validation, test only reports it. No subprocesses here (src/sweep.py runs DVC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PipelineError
from .plan import Point, finished_groups
from .show import Experiment, check_params, chosen_model, model_metrics
from .stats import LEVEL, Comparison, Interval, compare, rank, rate_interval

RANK_BY = "val_prc"  # exact validation average precision, in every model's metrics file
# (key in the metrics files, label in the report): validation first, test labelled as test.
METRICS = (("val_prc", "validation PR-AUC (AP)"), ("prc", "test PR-AUC"),
           ("auc", "test ROC-AUC"), ("recall", "test recall"), ("precision", "test precision"))
LABELS = dict(METRICS)
# Paired differences shown in the Markdown (every metric is in the JSON).
PAIRED_IN_REPORT = ("val_prc", "prc", "auc")
CHOSEN = "chosen"  # the row of the model metrics/evaluate.json names, seed by seed


@dataclass(frozen=True)
class GroupResult:
    """The comparison at one grid point (every experiment when there is no grid)."""
    label: str                                          # "model.hidden_units=32", or ""
    seeds: list[int]
    per_seed: dict[str, dict[int, dict[str, Any]]]      # model -> seed -> metrics
    chosen: dict[int, str]                              # seed -> model evaluate chose
    chosen_summary: dict[str, Interval]                 # metric -> interval, chosen models
    comparison: Comparison
    ranking: list[str] | None                           # best first on validation, or None
    partial: list[str]                                  # models missing on some seed


def _per_seed(points: Sequence[Point], experiments: Mapping[str, Experiment],
              fixed: Mapping[str, str]):
    per_seed: dict[str, dict[int, dict[str, Any]]] = {}
    chosen: dict[int, tuple[str, dict[str, Any]]] = {}
    for point in points:
        experiment = experiments[point.name]
        check_params(experiment, point.overrides(fixed))
        found = model_metrics(experiment)
        if not found:
            raise PipelineError(f"experiment {experiment.name}: no metrics/<model>.json file "
                                f"(has: {', '.join(sorted(experiment.metrics)) or 'none'})")
        for model, values in found.items():
            per_seed.setdefault(model, {})[point.seed] = values
        choice = chosen_model(experiment)
        if choice is not None:
            chosen[point.seed] = choice
    return per_seed, chosen


def compare_group(points: Sequence[Point], experiments: Mapping[str, Experiment],
                  fixed: Mapping[str, str], level: float = LEVEL) -> GroupResult:
    """The models compared over the seeds of one grid point; `points` are that grid point's
    experiments, every one finished (in `experiments`)."""
    seeds = [point.seed for point in points]
    per_seed, chosen = _per_seed(points, experiments, fixed)
    complete = {m: v for m, v in per_seed.items() if len(v) == len(seeds)}
    if not complete:
        raise PipelineError(f"no model has metrics on every seed ({seeds})")
    metrics = [key for key, _ in METRICS]
    result = compare(complete, seeds, metrics, level)
    chosen_summary = {}
    if len(chosen) == len(seeds):
        for key in metrics:
            values = [chosen[s][1].get(key) for s in seeds]
            if all(isinstance(v, (int, float)) for v in values):
                chosen_summary[key] = rate_interval([float(v) for v in values], level)
    return GroupResult(label=points[0].label, seeds=seeds, per_seed=complete,
                       chosen={s: name for s, (name, _) in chosen.items()},
                       chosen_summary=chosen_summary, comparison=result,
                       ranking=rank(result, RANK_BY),
                       partial=sorted(set(per_seed) - set(complete)))


def compare_sweep(points: Sequence[Point], experiments: Mapping[str, Experiment],
                  fixed: Mapping[str, str], level: float = LEVEL
                  ) -> tuple[list[GroupResult], list[str]]:
    """Every grid point with at least 2 finished seeds, and a note for each one skipped."""
    skipped: list[str] = []
    results = [compare_group(done, experiments, fixed, level)
               for done in finished_groups(points, experiments, skipped, "seeds",
                                           "an interval needs 2", "compared over")]
    return results, skipped
