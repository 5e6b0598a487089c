"""A batch against the reference, accumulated chunk by chunk: drift and label-free estimates.

`BatchMonitor.add` takes one chunk (raw inputs, scores, labels or None) and keeps only bin
counts and sums, so memory does not grow with the batch; `report` turns them into a JSON
report and `summary` into one screen of text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PipelineError, printable
from .drift import EMPTY_BIN_SHARE, MAJOR_PSI, MODERATE_PSI, band, psi, psi_noise_floor
from .estimates import Tally, estimated, realised
from .profile import SCORE, Reference


class BatchMonitor:
    """Bin counts per input column and for the score, and label-free tallies, so far."""

    def __init__(self, reference: Reference, threshold: float) -> None:
        self.reference = reference
        self.threshold = threshold
        self.counts = {name: np.zeros_like(p.counts) for name, p in reference.columns.items()}
        self.score_counts = np.zeros_like(reference.score.counts)
        self.all_rows = Tally()
        self.labelled_rows: Tally | None = None  # None: the batch has no Class column

    def add(self, features: np.ndarray, scores: np.ndarray,
            labels: np.ndarray | None = None) -> None:
        """One chunk: `features` (rows, the reference's columns) raw, `scores` the model's
        probabilities, `labels` 0/1 with NaN for a blank (unlabelled) row, or None."""
        for i, name in enumerate(self.reference.columns):
            self.counts[name] += self.reference.columns[name].bin_counts(features[:, i])
        self.score_counts += self.reference.score.bin_counts(scores)
        self.all_rows.add(scores, self.threshold)
        if labels is not None:
            labels = np.asarray(labels, dtype=np.float64).reshape(-1)
            known = ~np.isnan(labels)
            self.labelled_rows = self.labelled_rows or Tally()
            self.labelled_rows.add(np.asarray(scores)[known], self.threshold, labels[known])

    def report(self) -> dict[str, Any]:
        """The JSON report: PSI and band per column (and the batch's shares per bin), the
        score's, and estimated (and realised) figures at the threshold."""
        rows = self.all_rows.rows
        columns = {name: _drift(self.reference.columns[name].counts, counts)
                   for name, counts in self.counts.items()}
        psis = {name: entry["psi"] for name, entry in columns.items()}
        result: dict[str, Any] = {
            "rows": rows, "reference_rows": self.reference.rows, "threshold": self.threshold,
            "bands": {"moderate_from": MODERATE_PSI, "major_from": MAJOR_PSI,
                      "empty_bin_share": EMPTY_BIN_SHARE},
            "psi_noise_floor": psi_noise_floor(self.reference.bins, self.reference.rows,
                                               rows),
            "psi_max": max(psis.values()), "psi_max_column": max(psis, key=psis.__getitem__),
            "columns_moderate_or_more": sum(v >= MODERATE_PSI for v in psis.values()),
            "columns_major": sum(v >= MAJOR_PSI for v in psis.values()),
            "columns": columns, SCORE: _drift(self.reference.score.counts, self.score_counts),
            "estimated": estimated(self.all_rows)}
        if self.labelled_rows is not None:
            result["realised"] = realised(self.labelled_rows)
            # The estimate on exactly the rows the realised figures count.
            result["estimated_on_labelled"] = estimated(self.labelled_rows)
        return result


# The figures compared with the labels, and what flat_metrics calls them.
ESTIMATED_FIGURES = ("frauds", "precision", "recall")
# The columns of the drift table (the Drift chart's rows).
DRIFT_COLUMNS = ("column", "psi", "band")


def flat_metrics(report: dict[str, Any]) -> dict[str, float | int | None]:
    """The report's headline numbers as one flat object, for `dvc metrics show/diff`: the
    score's PSI, the largest column PSI, the columns per band, and each estimated figure
    beside the realised one with the error (estimated − realised, on the same rows).
    PSI per column stays in the report and the drift table: 29 more columns would crowd
    `dvc exp show`."""
    moderate_or_more, major = report["columns_moderate_or_more"], report["columns_major"]
    result: dict[str, float | int | None] = {
        "rows": report["rows"], "threshold": report["threshold"],
        "psi_score": report[SCORE]["psi"], "psi_max": report["psi_max"],
        "columns_stable": len(report["columns"]) - moderate_or_more,
        "columns_moderate": moderate_or_more - major, "columns_major": major}
    compared = report.get("estimated_on_labelled", report["estimated"])
    result["flagged"] = compared["flagged"]  # counted, not estimated: no label needed
    for key in ESTIMATED_FIGURES:
        result[f"{key}_estimated"] = compared[key]
        if "realised" in report:
            truth = report["realised"][key]
            result[f"{key}_realised"] = truth
            result[f"{key}_error"] = None if compared[key] is None or truth is None \
                else compared[key] - truth
    return result


def drift_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per input column and one for the score (named SCORE), largest PSI first:
    the table behind the Drift chart."""
    entries = [(SCORE, report[SCORE]), *report["columns"].items()]
    entries.sort(key=lambda item: -item[1]["psi"])
    return [{"column": name, "psi": entry["psi"], "band": entry["band"]}
            for name, entry in entries]


def card_threshold(card: dict[str, Any] | None, label: str, fix: str) -> float:
    """The card's single threshold: the estimates count the rows flagged at it. A card whose
    rule flags per row (expected_cost with cost_fn `amount`) has none."""
    threshold = (card or {}).get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
            or not 0 <= threshold <= 1:
        raise PipelineError(f"{label}: no single threshold between 0 and 1 in the model card "
                            f"(threshold {printable(threshold)}); the label-free estimates "
                            f"need one: {fix}")
    return float(threshold)


def _drift(reference_counts: np.ndarray, batch_counts: np.ndarray) -> dict[str, Any]:
    value = psi(reference_counts, batch_counts)
    total = int(batch_counts.sum())
    return {"psi": value, "band": band(value),
            "batch_shares": [int(c) / total if total else 0.0 for c in batch_counts],
            "reference_shares": [int(c) / int(reference_counts.sum())
                                 for c in reference_counts]}


def _number(value: float | int | None, digits: int) -> str:
    if value is None:
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def _interval(entry: dict[str, Any], key: str, digits: int) -> str:
    low, high = entry.get(f"{key}_low"), entry.get(f"{key}_high")
    if low is None or high is None:
        return ""
    return f"[{_number(low, digits)}, {_number(high, digits)}]"


def _estimate_lines(report: dict[str, Any]) -> list[str]:
    labelled = report.get("realised")
    estimate = report["estimated_on_labelled"] if labelled else report["estimated"]
    where = "" if not labelled or labelled["rows"] == report["rows"] else \
        f" (on the {labelled['rows']:,} labelled rows)"
    lines = [(f"Label-free estimates at threshold {report['threshold']:g}{where}, from the "
              "calibrated probabilities alone:"),
             f"  {'':10} {'estimated':>10}  {'95 % interval':<22}"
             + (f" {'realised':>9}" if labelled else "")]
    for key, digits in (("frauds", 1), ("flagged", 0), ("precision", 3), ("recall", 3)):
        value = estimate[key]
        line = (f"  {key:10} {_number(value, digits):>10}  "
                f"{_interval(estimate, key, digits):<22}")
        if labelled:
            line += f" {_number(labelled[key], 3 if digits == 3 else 0):>9}"
        lines.append(line.rstrip())
    return lines


def summary(report: dict[str, Any], batch: str) -> str:
    """One screen: the score's and every column's PSI (largest first, bands named), then the
    estimated figures beside the realised ones."""
    lines = [(f"{batch}: {report['rows']:,} rows against a reference of "
              f"{report['reference_rows']:,} training rows"),
             (f"Drift (PSI over the training data's quantile bins; < {MODERATE_PSI:g} "
              f"stable, {MODERATE_PSI:g}–{MAJOR_PSI:g} moderate shift, ≥ {MAJOR_PSI:g} major "
              f"shift; sampling noise alone ~{report['psi_noise_floor']:.4f}):"),
             f"  {SCORE:8} {report[SCORE]['psi']:8.4f}  {report[SCORE]['band']}"]
    ranked = sorted(report["columns"].items(), key=lambda item: -item[1]["psi"])
    lines += [f"  {name:8} {entry['psi']:8.4f}  {entry['band']}" for name, entry in ranked]
    lines.append(f"  {len(ranked)} columns: {report['columns_major']} major shift, "
                 f"{report['columns_moderate_or_more'] - report['columns_major']} moderate "
                 f"shift, {len(ranked) - report['columns_moderate_or_more']} stable")
    return "\n".join([*lines, *_estimate_lines(report)]) + "\n"
