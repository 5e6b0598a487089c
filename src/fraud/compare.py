"""Comparing the strategies over several seeds: per-seed test metrics collected from
`dvc exp show --json`, t-intervals of the mean, paired differences between strategies, and
the Markdown / JSON report. No TensorFlow and no subprocesses here (src/compare_seeds.py runs
DVC); everything is a plain function of its arguments.

Why paired: each seed changes the split (which ~100 test frauds), the weight initialisation
and the training order, and the split alone moves PR-AUC by a few hundredths. Two strategies
evaluated on the same seed share the split, so their per-seed *difference* is far less noisy
than either value; the question "is A better than B" is a one-sample t-test on those
differences (equivalently: does the 95 % t-interval of the mean difference exclude 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .errors import PipelineError
from .metrics import choose_threshold, confusion, cost_at, threshold_table
from .params import STRATEGIES, Params
from .peer import fit_logistic_peer, peer_metrics

PEER = "logistic_regression"
ROWS = (*STRATEGIES, PEER)
# (key in the metrics files, label in the report)
METRICS = (("prc", "PR-AUC"), ("auc", "ROC-AUC"), ("recall", "recall"),
           ("precision", "precision"))
LABELS = dict(METRICS)
# Threshold-free: paired differences of these are reported in the Markdown (all four in JSON).
PAIRED_IN_REPORT = ("prc", "auc")
LEVEL = 0.95
MAX_SEED = 2**32 - 1


# --------------------------------------------------------------------------- arguments


def seed_list(count: int | None, listed: str | None, first: int) -> list[int]:
    """The seeds to run: `count` consecutive seeds from `first` (the committed seed, so its
    run is reused), or the comma-separated `listed` ones. At least 2, distinct."""
    if (count is None) == (listed is None):
        raise PipelineError("give either --seeds N or --seed-list A,B,...")
    if listed is not None:
        seeds = []
        for item in listed.split(","):
            try:
                seeds.append(int(item.strip()))
            except ValueError:
                raise PipelineError(f"--seed-list: {item.strip()!r} is not a whole number") \
                    from None
        if len(set(seeds)) != len(seeds):
            raise PipelineError(f"--seed-list: repeated seeds in {listed!r}")
    else:
        seeds = [first + i for i in range(count)]  # type: ignore[arg-type]
    if len(seeds) < 2:
        raise PipelineError("at least 2 seeds are needed for an interval (5 or more is better)")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise PipelineError(f"seeds must be whole numbers from 0 to 2**32 - 1, got {bad}")
    return seeds


def parse_set(values: Iterable[str]) -> dict[str, str]:
    """`--set train.epochs=20` values as {dotted key: value}, for `dvc exp run -S`."""
    result: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise PipelineError(f"--set {value!r}: expected KEY=VALUE, e.g. train.epochs=20")
        if key == "seed":
            raise PipelineError("--set seed=...: the seed is what the comparison varies; "
                                "use --seeds or --seed-list")
        result[key] = text.strip()
    return result


# ------------------------------------------------------------------ dvc exp show --json


@dataclass(frozen=True)
class Experiment:
    """One experiment as `dvc exp show --json` describes it."""
    name: str
    rev: str
    baseline: str
    params: dict[str, Any]   # params.yaml's content
    metrics: dict[str, dict[str, Any]]  # metrics file path -> its flat content


def _file_data(section: Any) -> dict[str, dict[str, Any]]:
    """{path: {"data": {...}}} (or {"error": ...}) -> {path: {...}}, readable files only."""
    result = {}
    for path, entry in (section or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("data"), dict):
            result[path] = entry["data"]
    return result


def experiments_from_show(show: Any) -> dict[str, Experiment]:
    """Named experiments in `dvc exp show --json` output (DVC 3): a list of baseline
    commits, each with `experiments: [{name, revs: [{rev, name, data, error}]}]`; `data`
    holds `params` and `metrics` as {file: {"data": {...}}}. Queued, running and failed
    experiments (an `executor` state other than success, or an `error`) are skipped."""
    if not isinstance(show, list):
        raise PipelineError("dvc exp show --json: expected a list of commits; is this DVC 3?")
    found: dict[str, Experiment] = {}
    for commit in show:
        if not isinstance(commit, dict):
            continue
        baseline = str(commit.get("rev", ""))
        for group in commit.get("experiments") or []:
            state = (group.get("executor") or {}).get("state")
            if state not in (None, "success"):  # queued, running, failed: no results yet
                continue
            for entry in group.get("revs") or []:
                data = entry.get("data")
                name = entry.get("name") or group.get("name")
                if not name or entry.get("error") or not isinstance(data, dict):
                    continue
                params = _file_data(data.get("params")).get("params.yaml", {})
                found[name] = Experiment(name=name, rev=str(entry.get("rev") or data.get("rev")),
                                         baseline=baseline, params=params,
                                         metrics=_file_data(data.get("metrics")))
    return found


def strategy_metrics(experiment: Experiment, pattern: str) -> dict[str, dict[str, Any]]:
    """Each strategy's test metrics, from the file `pattern.format(strategy=...)`."""
    result = {}
    for strategy in STRATEGIES:
        path = pattern.format(strategy=strategy)
        if path not in experiment.metrics:
            raise PipelineError(f"experiment {experiment.name}: no metrics file {path} "
                                f"(has: {', '.join(sorted(experiment.metrics)) or 'none'})")
        values = experiment.metrics[path]
        missing = [key for key, _ in METRICS if not isinstance(values.get(key), (int, float))]
        if missing:
            raise PipelineError(f"experiment {experiment.name}: {path} lacks {missing}")
        result[strategy] = values
    return result


# -------------------------------------------------------------------------- the peer


def evaluate_peer(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                  test: tuple[np.ndarray, np.ndarray], params: Params,
                  val_amounts: np.ndarray | None = None,
                  test_amounts: np.ndarray | None = None) -> dict[str, Any]:
    """The logistic-regression peer on one seed's scaled splits, thresholded as evaluate
    thresholds the Keras models (`evaluate.threshold` applied to validation scores), so its
    recall and precision compare with theirs. Same keys as evaluate's metrics files, plus
    `fit_seconds`."""
    p = params.evaluate
    model, seconds = fit_logistic_peer(train[0], train[1], params.seed)
    val_p = model.predict_proba(val[0])[:, 1]
    table = threshold_table(val[1], val_p, val_amounts)
    threshold = choose_threshold(p.threshold, table, p.target_recall, p.cost_fp, p.cost_fn)
    result = peer_metrics(model, test[0], test[1], threshold)
    counts = confusion(np.asarray(val[1]).reshape(-1), val_p, threshold)
    flagged = counts["tp"] + counts["fp"]
    test_p = model.predict_proba(test[0])[:, 1]
    result.update({
        "threshold": threshold,
        "val_recall": counts["tp"] / max(counts["tp"] + counts["fn"], 1),
        "val_precision": counts["tp"] / flagged if flagged else 0.0,
        "cost": cost_at(test[1], test_p, threshold, p.cost_fp, p.cost_fn, test_amounts),
        "fit_seconds": seconds,
    })
    return result


# ------------------------------------------------------------------------ statistics


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
    summary: dict[str, dict[str, Interval]]   # row -> metric -> interval
    paired: list[Paired]                      # every pair of rows, every metric


def compare(per_seed: Mapping[str, Mapping[int, Mapping[str, Any]]], seeds: Sequence[int],
            level: float = LEVEL) -> Comparison:
    """per_seed[row][seed] = that seed's metrics (row: a strategy or the peer)."""
    rows = list(per_seed)
    for row in rows:
        missing = [s for s in seeds if s not in per_seed[row]]
        if missing:
            raise PipelineError(f"{row}: no metrics for seed(s) {missing}")
    values = {row: {m: [float(per_seed[row][s][m]) for s in seeds] for m, _ in METRICS}
              for row in rows}
    summary = {row: {m: mean_interval(values[row][m], level) for m, _ in METRICS}
               for row in rows}
    paired: list[Paired] = []
    for metric, _ in METRICS:
        family = [paired_difference(values[a][metric], values[b][metric], a, b, metric, level)
                  for i, a in enumerate(rows) for b in rows[i + 1:]]
        adjusted = holm([pair.p for pair in family])
        paired += [replace(pair, p_holm=q) for pair, q in zip(family, adjusted)]
    return Comparison(seeds=list(seeds), level=level, summary=summary, paired=paired)


def verdict(pair: Paired, level: float = LEVEL) -> str:
    alpha = 1 - level
    if not pair.beyond_noise:
        return "no"
    if pair.p_holm is not None and pair.p_holm < alpha:
        return "yes"
    return "yes, uncorrected only"


# -------------------------------------------------------------------------- reports


def _num(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _cell(interval: Interval, sign: bool = False) -> str:
    if interval.low is None:
        return _num(interval.mean, sign=sign)
    return (f"{_num(interval.mean, sign=sign)} [{_num(interval.low, sign=sign)}, "
            f"{_num(interval.high, sign=sign)}]")


def summary_table(result: Comparison) -> str:
    head = "| strategy | " + " | ".join(label for _, label in METRICS) + " |"
    lines = [head, "| --- |" + " --- |" * len(METRICS)]
    for row, metrics in result.summary.items():
        lines.append(f"| {row} | " + " | ".join(_cell(metrics[m]) for m, _ in METRICS) + " |")
    return "\n".join(lines)


def per_seed_table(per_seed: Mapping[str, Mapping[int, Mapping[str, Any]]],
                   seeds: Sequence[int], metric: str) -> str:
    lines = ["| strategy | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "| --- |" + " --- |" * len(seeds)]
    for row, by_seed in per_seed.items():
        lines.append(f"| {row} | " + " | ".join(_num(float(by_seed[s][metric])) for s in seeds)
                     + " |")
    return "\n".join(lines)


def paired_table(result: Comparison, metrics: Sequence[str] = PAIRED_IN_REPORT) -> str:
    pct = f"{result.level:.0%}"
    lines = [f"| comparison | metric | mean difference [{pct} CI] | p | p (Holm) | "
             "beyond noise? |", "| --- | --- | --- | --- | --- | --- |"]
    for pair in result.paired:
        if pair.metric not in metrics:
            continue
        lines.append(f"| {pair.first} − {pair.second} | {LABELS[pair.metric]} | "
                     f"{_cell(pair.difference, sign=True)} | {_p(pair.p)} | "
                     f"{_p(pair.p_holm if pair.p_holm is not None else pair.p)} | "
                     f"{verdict(pair, result.level)} |")
    return "\n".join(lines)


def conclusions(result: Comparison, metrics: Sequence[str] = PAIRED_IN_REPORT) -> list[str]:
    """One sentence per metric: which differences are larger than the seed-to-seed noise."""
    sentences = []
    for metric in metrics:
        pairs = [p for p in result.paired if p.metric == metric]
        real = [p for p in pairs if p.beyond_noise]
        if not real:
            sentences.append(f"{LABELS[metric]}: no difference between any two rows is larger "
                             f"than the seed-to-seed noise ({len(result.seeds)} seeds).")
            continue
        parts = []
        for pair in real:
            better, worse = ((pair.first, pair.second) if pair.difference.mean > 0
                             else (pair.second, pair.first))
            note = "" if verdict(pair, result.level) == "yes" else \
                " (not after Holm's correction for the number of pairs)"
            parts.append(f"{better} > {worse} by {abs(pair.difference.mean):.3f}{note}")
        sentences.append(f"{LABELS[metric]}: beyond the noise: " + "; ".join(parts) +
                         f". Every other pair is within the noise.")
    return sentences


def to_markdown(result: Comparison, per_seed: Mapping[str, Mapping[int, Mapping[str, Any]]],
                context: Mapping[str, Any]) -> str:
    """The report. `context`: baseline commit, extra params, threshold rule, timings..."""
    n = len(result.seeds)
    pct = f"{result.level:.0%}"
    extra = context.get("extra_params") or {}
    lines = [
        "# Strategies over seeds",
        "",
        f"Seeds {', '.join(map(str, result.seeds))} (n = {n}); baseline commit "
        f"`{str(context.get('baseline', ''))[:10]}`"
        + (" with uncommitted changes" if context.get("dirty") else "")
        + (f"; params set: {', '.join(f'`{k}={v}`' for k, v in extra.items())}" if extra else "")
        + f"; decision threshold: `evaluate.threshold = {context.get('threshold', '?')}`.",
        "",
        "Test-split metrics, mean over seeds with the " + pct + " t-interval of the mean. Each "
        "seed changes the split, the weight initialisation and the training order. "
        f"`{PEER}` is scikit-learn's LogisticRegression(class_weight='balanced') on the same "
        "scaled splits, thresholded by the same rule on validation.",
        "",
        summary_table(result),
        "",
        "## Paired differences (same seeds, same splits)",
        "",
        f"Row minus row, mean of the per-seed differences with its {pct} t-interval; p from "
        "the paired t-test; Holm's correction over the pairs of each metric. *beyond noise*: "
        "the interval excludes 0.",
        "",
        paired_table(result),
        "",
        *[f"- {sentence}" for sentence in conclusions(result)],
        "",
        "## PR-AUC per seed",
        "",
        per_seed_table(per_seed, result.seeds, "prc"),
        "",
    ]
    if context.get("seconds") is not None:
        lines += [f"Wall time {context['seconds']:.0f} s for {n} seeds"
                  + (f" ({context['jobs']} at a time)" if context.get("jobs", 1) > 1 else "")
                  + ".", ""]
    return "\n".join(lines)


def _jsonable(interval: Interval) -> dict[str, Any]:
    return asdict(interval)


def to_json(result: Comparison, per_seed: Mapping[str, Mapping[int, Mapping[str, Any]]],
            context: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **context,
        "seeds": result.seeds,
        "level": result.level,
        "per_seed": {row: {str(s): dict(by_seed[s]) for s in result.seeds}
                     for row, by_seed in per_seed.items()},
        "summary": {row: {m: _jsonable(i) for m, i in metrics.items()}
                    for row, metrics in result.summary.items()},
        "paired": [{"first": p.first, "second": p.second, "metric": p.metric,
                    "difference": _jsonable(p.difference), "t": p.t, "p": p.p,
                    "p_holm": p.p_holm, "beyond_noise": p.beyond_noise,
                    "verdict": verdict(p, result.level)} for p in result.paired],
    }
