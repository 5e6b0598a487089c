"""Statistics of a comparison over seeds: t-intervals of the mean (on the logit scale for rates,
so they stay within [0, 1]), paired differences between
rows (models) over the same seeds, Holm's correction. Plain functions of numbers.

Why paired: each seed changes the split (which ~100 test frauds), the weight initialisation
and the training order, and the split alone moves PR-AUC by a few hundredths. Two models
evaluated on the same seed share the split, so their per-seed *difference* is far less noisy
than either value; the question "is A better than B" is a one-sample t-test on those
differences (equivalently: does the 95 % t-interval of the mean difference exclude 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import PipelineError

LEVEL = 0.95

def t_quantile(df: int, level: float = LEVEL) -> float:
    """The two-sided `level` quantile of Student's t with `df` degrees of freedom."""
    from scipy import stats  # a dependency of scikit-learn

    return float(stats.t.ppf(0.5 + level / 2, df))


def t_two_sided_p(t: float, df: int) -> float:
    from scipy import stats

    return float(2 * stats.t.sf(abs(t), df))


@dataclass(frozen=True)
class Interval:
    """Mean of n values with its `level` t-interval (None when n < 2)."""
    n: int
    mean: float
    sd: float | None
    low: float | None
    high: float | None


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise PipelineError(f"cannot summarise {list(values)}: need finite values")
    mean = float(x.mean())
    if x.size < 2:
        return Interval(n=1, mean=mean, sd=None, low=None, high=None)
    sd = float(x.std(ddof=1))
    half = t_quantile(x.size - 1, level) * sd / math.sqrt(x.size)
    return Interval(n=int(x.size), mean=mean, sd=sd, low=mean - half, high=mean + half)


@dataclass(frozen=True)
class Spread:
    """Mean of n values with their standard deviation (None when n < 2) and range: how much a
    figure moves from one prequential fold to the next. No interval: folds are consecutive
    periods of one table, not independent draws."""
    n: int
    mean: float
    sd: float | None
    low: float
    high: float


def spread(values: Sequence[float]) -> Spread:
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise PipelineError(f"cannot summarise {list(values)}: need finite values")
    return Spread(n=int(x.size), mean=float(x.mean()),
                  sd=float(x.std(ddof=1)) if x.size > 1 else None,
                  low=float(x.min()), high=float(x.max()))


# A rate this close to 0 or 1 counts as at the bound on the logit scale (finite logits); the
# figures come from ~100 test frauds, so 0.001 is below what they resolve.
RATE_EPS = 1e-3


def rate_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean of n rates in [0, 1] (PR-AUC, ROC-AUC, recall, precision) with a `level`
    t-interval computed on the logit scale and mapped back: it stays within (0, 1), widens
    towards the middle when the values crowd a bound, and is close to the plain t-interval
    away from the bounds. Chosen over a bootstrap, which undercovers with 5 seeds, and over
    Wilson's, which needs a count of trials that a mean over seeds does not have. A plain
    t-interval on 5 values gave precision [-0.080, 0.438]."""
    x = np.asarray(values, dtype=np.float64)
    if x.size and np.all(np.isfinite(x)) and (np.any(x < 0) or np.any(x > 1)):
        raise PipelineError(f"cannot summarise {list(values)} as rates: outside [0, 1]")
    plain = mean_interval(values, level)
    if plain.n < 2:
        return plain
    logits = np.log(np.clip(x, RATE_EPS, 1 - RATE_EPS) / (1 - np.clip(x, RATE_EPS, 1 - RATE_EPS)))
    centre = mean_interval(logits, level)
    low, high = (float(1 / (1 + np.exp(-v))) for v in (centre.low, centre.high))  # type: ignore[operator]
    return Interval(n=plain.n, mean=plain.mean, sd=plain.sd, low=min(low, plain.mean),
                    high=max(high, plain.mean))


@dataclass(frozen=True)
class Paired:
    """`first - second` over the same seeds: mean difference, its t-interval, the paired
    t-test (t is None when every difference is the same non-zero number: p is then 0)."""
    first: str
    second: str
    metric: str
    difference: Interval
    t: float | None
    p: float
    p_holm: float | None = None

    @property
    def beyond_noise(self) -> bool:
        """The interval of the mean difference excludes 0 (p < 1 - level)."""
        d = self.difference
        return d.low is not None and (d.low > 0 or d.high < 0)  # type: ignore[operator]


def paired_difference(first: Sequence[float], second: Sequence[float], first_name: str = "a",
                      second_name: str = "b", metric: str = "", level: float = LEVEL
                      ) -> Paired:
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise PipelineError(f"paired comparison needs the same seeds: {a.shape} vs {b.shape}")
    if a.size < 2:
        raise PipelineError("a paired comparison needs at least 2 seeds")
    d = a - b
    interval = mean_interval(d, level)
    assert interval.sd is not None
    if interval.sd <= 1e-12 * max(abs(interval.mean), 1.0):  # no spread (up to rounding)
        t, p = (0.0, 1.0) if abs(interval.mean) <= 1e-12 else (None, 0.0)
    else:
        t = interval.mean / (interval.sd / math.sqrt(d.size))
        p = t_two_sided_p(t, d.size - 1)
    return Paired(first=first_name, second=second_name, metric=metric, difference=interval,
                  t=t, p=p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (family-wise error), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    seeds: list[int]
    level: float
    summary: dict[str, dict[str, Interval]]   # row -> metric -> interval (metrics it has)
    paired: list[Paired]                      # pairs of rows that both have the metric


def _values(by_seed: Mapping[int, Mapping[str, Any]], seeds: Sequence[int], metric: str
            ) -> list[float] | None:
    """The metric over the seeds, or None when any seed lacks it (an older metrics file)."""
    values = [by_seed[s].get(metric) for s in seeds]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in values):
        return None
    return [float(v) for v in values]


def compare(per_seed: Mapping[str, Mapping[int, Mapping[str, Any]]], seeds: Sequence[int],
            metrics: Sequence[str], level: float = LEVEL) -> Comparison:
    """per_seed[row][seed] = that seed's metrics (row: a model; every metric a rate in [0, 1],
    summarised by `rate_interval`). A metric some seed of a row
    lacks is left out for that row, and from the pairs it is in; Holm's correction runs over
    the pairs of each metric."""
    rows = list(per_seed)
    for row in rows:
        missing = [s for s in seeds if s not in per_seed[row]]
        if missing:
            raise PipelineError(f"{row}: no metrics for seed(s) {missing}")
    values = {row: {m: _values(per_seed[row], seeds, m) for m in metrics} for row in rows}
    summary = {row: {m: rate_interval(v, level) for m, v in values[row].items() if v is not None}
               for row in rows}
    paired: list[Paired] = []
    for metric in metrics:
        family = [paired_difference(values[a][metric], values[b][metric], a, b, metric,  # type: ignore[arg-type]
                                    level)
                  for i, a in enumerate(rows) for b in rows[i + 1:]
                  if values[a][metric] is not None and values[b][metric] is not None]
        adjusted = holm([pair.p for pair in family])
        paired += [replace(pair, p_holm=q) for pair, q in zip(family, adjusted, strict=True)]
    return Comparison(seeds=list(seeds), level=level, summary=summary, paired=paired)


def rank(result: Comparison, metric: str) -> list[str] | None:
    """Rows best first by the mean of `metric`, or None when a row lacks it: no ranking then
    (falling back to a test metric would make the choice on test)."""
    if not result.summary or any(metric not in m for m in result.summary.values()):
        return None
    return sorted(result.summary, key=lambda row: -result.summary[row][metric].mean)


def verdict(pair: Paired, level: float = LEVEL) -> str:
    alpha = 1 - level
    if not pair.beyond_noise:
        return "no"
    if pair.p_holm is not None and pair.p_holm < alpha:
        return "yes"
    return "yes, uncorrected only"

