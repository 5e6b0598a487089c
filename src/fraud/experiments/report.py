"""A sweep's report: the comparisons of src/fraud/experiments/compare.py (over seeds) or the
selection of src/fraud/experiments/prequential.py (over folds) as Markdown and as JSON.

One job: formatting. Models are listed best first on validation (`val_prc`); test figures
sit beside, each column labelled as test, so a reader sees which numbers made the choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from .compare import CHOSEN, LABELS, METRICS, PAIRED_IN_REPORT, RANK_BY, GroupResult
from .prequential import TEST, TEST_FOLD, VALIDATION, Candidate, Selection
from .stats import Comparison, Interval, Paired, Spread, verdict


def _num(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _cell(interval: Interval | None, sign: bool = False) -> str:
    if interval is None:
        return "n/a"
    if interval.low is None:
        return _num(interval.mean, sign=sign)
    return (f"{_num(interval.mean, sign=sign)} [{_num(interval.low, sign=sign)}, "
            f"{_num(interval.high, sign=sign)}]")


def _chosen_counts(group: GroupResult) -> str:
    counts: dict[str, int] = {}
    for model in group.chosen.values():
        counts[model] = counts.get(model, 0) + 1
    return ", ".join(f"{model} ×{n}" for model, n in counts.items())


def summary_table(group: GroupResult) -> str:
    """Models best first on validation (listed order when unranked), and the chosen row."""
    head = "| model | " + " | ".join(label for _, label in METRICS) + " |"
    lines = [head, "| --- |" + " --- |" * len(METRICS)]
    for row in group.ranking or list(group.comparison.summary):
        metrics = group.comparison.summary[row]
        lines.append(f"| {row} | " + " | ".join(_cell(metrics.get(m)) for m, _ in METRICS)
                     + " |")
    if group.chosen_summary:
        lines.append(f"| {CHOSEN} ({_chosen_counts(group)}) | " + " | ".join(
            _cell(group.chosen_summary.get(m)) for m, _ in METRICS) + " |")
    return "\n".join(lines)


def per_seed_table(group: GroupResult, metric: str) -> str:
    lines = ["| model | " + " | ".join(f"seed {s}" for s in group.seeds) + " |",
             "| --- |" + " --- |" * len(group.seeds)]
    for row, by_seed in group.per_seed.items():
        lines.append(f"| {row} | " + " | ".join(
            _num(by_seed[s][metric]) if isinstance(by_seed[s].get(metric), (int, float))
            else "n/a" for s in group.seeds) + " |")
    if group.chosen:
        lines.append(f"| {CHOSEN} | " + " | ".join(group.chosen.get(s, "n/a")
                                                     for s in group.seeds) + " |")
    return "\n".join(lines)


def paired_table(result: Comparison, metrics: Sequence[str] = PAIRED_IN_REPORT) -> str:
    pct = f"{result.level:.0%}"
    lines = [(f"| comparison | metric | mean difference [{pct} CI] | p | p (Holm) | "
              "beyond noise? |"), "| --- | --- | --- | --- | --- | --- |"]
    for pair in result.paired:
        if pair.metric in metrics:
            lines.append(f"| {pair.first} − {pair.second} | {LABELS[pair.metric]} | "
                         f"{_cell(pair.difference, sign=True)} | {_p(pair.p)} | "
                         f"{_p(pair.p_holm if pair.p_holm is not None else pair.p)} | "
                         f"{verdict(pair, result.level)} |")
    return "\n".join(lines)


def _sentence(metric: str, pairs: Sequence[Paired], result: Comparison) -> str:
    real = [p for p in pairs if p.beyond_noise]
    if not real:
        return (f"{LABELS[metric]}: no difference between any two models is larger than the "
                f"seed-to-seed noise ({len(result.seeds)} seeds).")
    parts = []
    for pair in real:
        better, worse = ((pair.first, pair.second) if pair.difference.mean > 0
                         else (pair.second, pair.first))
        note = "" if verdict(pair, result.level) == "yes" else \
            " (not after Holm's correction for the number of pairs)"
        parts.append(f"{better} > {worse} by {abs(pair.difference.mean):.3f}{note}")
    return (f"{LABELS[metric]}: beyond the noise: " + "; ".join(parts) +
            ". Every other pair is within the noise.")


def conclusions(result: Comparison, metrics: Sequence[str] = PAIRED_IN_REPORT) -> list[str]:
    """One sentence per metric: which differences are larger than the seed-to-seed noise."""
    return [_sentence(m, [p for p in result.paired if p.metric == m], result)
            for m in metrics if any(p.metric == m for p in result.paired)]


def _ranking_note(group: GroupResult) -> str:
    if group.ranking is not None:
        return (f"Best first on validation (`{RANK_BY}`, exact average precision on the "
                "validation split); the test columns report those models once and choose "
                "nothing.")
    return (f"Not ranked: the metrics files lack `{RANK_BY}` (a pipeline from before the "
            "validation choice); listed in pipeline order. Test figures are not used to rank.")


def group_section(group: GroupResult, heading: str) -> list[str]:
    pct = f"{group.comparison.level:.0%}"
    lines = [f"## {heading}", "", _ranking_note(group) + f" Means over the seeds with their "
             f"{pct} interval (a t-interval on the logit scale: rates stay within [0, 1]).", "",
             summary_table(group), ""]
    if group.partial:
        lines += [f"Left out (metrics missing on some seed): {', '.join(group.partial)}.", ""]
    lines += [
        (f"Paired differences (same seeds, same splits): mean of the per-seed differences "
         f"with its {pct} t-interval; p from the paired t-test; Holm's correction over the "
         "pairs of each metric. *beyond noise*: the interval excludes 0."), "",
        paired_table(group.comparison), "",
        *[f"- {sentence}" for sentence in conclusions(group.comparison)], "",
    ]
    if any(RANK_BY in metrics for metrics in group.comparison.summary.values()):
        lines += ["Per seed, validation PR-AUC:", "", per_seed_table(group, RANK_BY), ""]
    return lines + ["Per seed, test PR-AUC:", "", per_seed_table(group, "prc"), ""]


def overview_table(groups: Sequence[GroupResult]) -> str:
    """With a grid: the best model of each grid point on validation, its test figure."""
    lines = ["| grid point | seeds | best on validation | validation PR-AUC | test PR-AUC |",
             "| --- | --- | --- | --- | --- |"]
    for group in groups:
        best = group.ranking[0] if group.ranking else None
        summary = group.comparison.summary.get(best, {}) if best else {}
        lines.append(f"| {group.label} | {len(group.seeds)} | {best or 'n/a'} | "
                     f"{_cell(summary.get(RANK_BY))} | {_cell(summary.get('prc'))} |")
    return "\n".join(lines)


def _context_line(context: Mapping[str, Any], folds: Sequence[int] | None = None) -> str:
    grid = [f"`{key}={','.join(values)}`" for key, values in (context.get("grid") or {}).items()]
    fixed = [f"`{key}={value}`" for key, value in (context.get("fixed") or {}).items()]
    seeds = ', '.join(map(str, context.get('seeds', [])))
    return ((f"Folds {', '.join(map(str, folds))} at seed {seeds}" if folds is not None
             else f"Seeds {seeds}") + "; code "
            f"`{context.get('code', '?')}`" + (f"; grid: {', '.join(grid)}" if grid else "")
            + (f"; params set: {', '.join(fixed)}" if fixed else "") + ".")


def _footer(context: Mapping[str, Any]) -> list[str]:
    """Both reports end alike: what was skipped or failed, and the sweep's wall time."""
    lines: list[str] = []
    for title, key in (("Incomplete", "skipped"), ("Failed experiments", "failed")):
        if context.get(key):
            lines += [f"## {title}", "", *[f"- {item}" for item in context[key]], ""]
    if context.get("seconds") is not None:
        lines += [(f"Wall time {context['seconds']:.0f} s; {context.get('ran', 0)} "
                   f"experiments run here, {context.get('reused', 0)} reused, "
                   f"{context.get('jobs', 1)} queue worker(s)."), ""]
    return lines


def to_markdown(groups: Sequence[GroupResult], context: Mapping[str, Any]) -> str:
    """The report. `context`: seeds, code, grid, fixed params, skipped, failed, timings."""
    lines = ["# Models over seeds", "", _context_line(context), ""]
    if len(groups) > 1 or (groups and groups[0].label):
        lines += [overview_table(groups), ""]
    for group in groups:
        lines += group_section(group, group.label or "All experiments")
    return "\n".join(lines + _footer(context))


def group_json(group: GroupResult) -> dict[str, Any]:
    result = group.comparison
    return {
        "label": group.label, "seeds": group.seeds, "ranking": group.ranking,
        "rank_by": RANK_BY, "partial": group.partial,
        "per_seed": {row: {str(s): dict(v[s]) for s in group.seeds}
                     for row, v in group.per_seed.items()},
        "chosen": {str(s): model for s, model in group.chosen.items()},
        "chosen_summary": {m: asdict(i) for m, i in group.chosen_summary.items()},
        "summary": {row: {m: asdict(i) for m, i in metrics.items()}
                    for row, metrics in result.summary.items()},
        "paired": [{"first": p.first, "second": p.second, "metric": p.metric,
                    "difference": asdict(p.difference), "t": p.t, "p": p.p,
                    "p_holm": p.p_holm, "beyond_noise": p.beyond_noise,
                    "verdict": verdict(p, result.level)} for p in result.paired],
    }


def to_json(groups: Sequence[GroupResult], context: Mapping[str, Any]) -> dict[str, Any]:
    level = groups[0].comparison.level if groups else None
    return {**context, "level": level, "groups": [group_json(g) for g in groups]}


# A prequential sweep (`fraud sweep --folds N`): candidates ranked on validation averaged over
# the folds, the test of fold 0 beside them (src/fraud/experiments/prequential.py).

def _spread_cell(value: Spread | None) -> str:
    if value is None:
        return "n/a"
    if value.sd is None:
        return _num(value.mean)
    return f"{_num(value.mean)} ± {_num(value.sd)} [{_num(value.low)}, {_num(value.high)}]"


def _columns(selection: Selection) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The validation and test figures some candidate has (CP@k only with a card)."""
    validation = [(key, label) for key, label in VALIDATION
                  if any(key in c.validation for c in selection.candidates)]
    test = [(key, label) for key, label in TEST
            if any(key in c.test for c in selection.candidates)]
    return validation, test


def candidates_table(selection: Selection, rows: Sequence[Candidate], grid: bool) -> str:
    """One row per candidate: validation over the folds, then fold 0's test."""
    validation, test = _columns(selection)
    head = ["model", *(["grid point"] if grid else []),
            *(f"{label}, mean ± sd [min, max] over folds" for _, label in validation),
            *(f"{label} (fold {TEST_FOLD})" for _, label in test)]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " --- |" * (len(head) - 1)]
    for c in rows:
        cells = [c.model, *([c.label or "n/a"] if grid else []),
                 *(_spread_cell(c.validation.get(key)) for key, _ in validation),
                 *(_num(c.test.get(key)) for key, _ in test)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_fold_table(selection: Selection, grid: bool) -> str:
    """Validation PR-AUC of each candidate on each fold."""
    head = ["model", *(["grid point"] if grid else []),
            *(f"fold {f}" for f in selection.folds)]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " --- |" * (len(head) - 1)]
    for c in selection.candidates:
        cells = [c.model, *([c.label or "n/a"] if grid else []),
                 *(_num(c.per_fold.get(f, {}).get(RANK_BY)) for f in selection.folds)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chosen_per_fold(selection: Selection, grid: bool) -> str:
    """What `evaluate` chose on each fold's validation (train.strategy: auto or the model
    named), per grid point."""
    head = [*(["grid point"] if grid else []), *(f"fold {f}" for f in selection.folds)]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " --- |" * (len(head) - 1)]
    for label, by_fold in selection.chosen.items():
        lines.append("| " + " | ".join([*([label or "n/a"] if grid else []),
                                        *(by_fold.get(f, "n/a") for f in selection.folds)])
                     + " |")
    return "\n".join(lines)


def _protocol(selection: Selection) -> str:
    folds = len(selection.folds)
    return (f"Prequential validation over {folds} folds (`split.fold` 0 to {folds - 1}): fold "
            "k trains and validates k × `split.val_days` days before fold 0, with the same "
            "delay gaps and rules, and the test window is the same for every fold. **Every "
            "choice is made on the folds' validation**: models and grid points are ranked on "
            f"validation PR-AUC averaged over the folds (`{RANK_BY}`; the spread is the "
            "standard deviation and the range over the folds). **The test is read once**: "
            f"the test columns are fold {TEST_FOLD}'s alone (the most recent training "
            "window), reported beside the choice and never used to make it; the other "
            "folds' models are older, and their test figures are not reported.")


def prequential_markdown(selection: Selection, context: Mapping[str, Any]) -> str:
    """The report of a sweep over folds. `context` as for `to_markdown`, with `folds`."""
    grid = bool(context.get("grid"))
    lines = ["# Prequential selection", "", _context_line(context, selection.folds), "",
             _protocol(selection), ""]
    if not selection.candidates:
        lines += ["Nothing to compare: no grid point has a model with metrics on 2 folds.", ""]
    elif not selection.ranked:
        lines += [(f"Not ranked: some metrics files lack `{RANK_BY}`; listed in plan order. "
                   "Test figures are not used to rank."), ""]
    if grid and selection.ranked:
        lines += ["## Each model at its best grid point on validation", "",
                  candidates_table(selection, selection.best_per_model, grid), ""]
    if selection.candidates:
        lines += [("## Every model and grid point, best first on validation"
                   if selection.ranked else "## Every model and grid point"), "",
                  candidates_table(selection, selection.candidates, grid), "",
                  "## Validation PR-AUC on each fold", "", per_fold_table(selection, grid), ""]
    if any(selection.chosen.values()):
        lines += ["## The model `evaluate` chose on each fold's validation", "",
                  chosen_per_fold(selection, grid), ""]
    return "\n".join(lines + _footer(context))


def _candidate_json(c: Candidate) -> dict[str, Any]:
    return {"model": c.model, "label": c.label, "folds": c.folds,
            "per_fold": {str(f): v for f, v in c.per_fold.items()},
            "validation": {m: asdict(s) for m, s in c.validation.items()},
            "test": c.test, "test_fold": TEST_FOLD}


def prequential_json(selection: Selection, context: Mapping[str, Any]) -> dict[str, Any]:
    return {**context, "protocol": "prequential", "rank_by": RANK_BY, "test_fold": TEST_FOLD,
            "ranked": selection.ranked,
            "candidates": [_candidate_json(c) for c in selection.candidates],
            "best_per_model": [{"model": c.model, "label": c.label}
                               for c in selection.best_per_model],
            "chosen": {label: {str(f): m for f, m in by_fold.items()}
                       for label, by_fold in selection.chosen.items()}}
