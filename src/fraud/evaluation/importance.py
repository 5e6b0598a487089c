"""Global importance: how much each raw column moves each model's logit, on average.

The measure is the mean |contribution| per raw input column of explain.py's
attributions (exact integrated gradients for the networks, the closed form for logistic
regression, exact baseline Shapley values for gbdt; all in logit units against the same
baseline), over the test split's frauds and over all its rows. A column's share is its mean
over the sum of the model's means: the models compare on one scale although their logits
differ in size (weighted's are ~3x the baseline's).

Cost: gbdt's exact Shapley values take ~2 ms of CPU per row in numpy (~100 s for the ~57k
test rows of the real data), so "all rows" is a uniform sample of SAMPLE_ROWS test rows
drawn with `seed` (every model explains the same rows; the mean over a uniform sample
estimates the mean over all rows), while every test fraud is explained.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.declaration import CREDIT_CARD_LAYOUT, shown_columns
from ..errors import PipelineError, printable, require_file
from ..serving.explain import Explainer, explainer_from_onnx, global_importance
from ..serving.onnx_contract import DETECTOR, MAX_MODEL_BYTES, check_model_bytes

SAMPLE_ROWS = 2_000
SUBSETS = ("frauds", "all")
# What the metrics file keeps per model (`dvc exp show` stays narrow) and the card shows.
METRIC_FEATURES = 3
CARD_FEATURES = 5
TABLE_COLUMNS = ["feature", *(f"share_{s}" for s in SUBSETS),
                 *(f"mean_abs_{s}" for s in SUBSETS)]
MEASURE = ("mean |contribution| to the detector's logit per raw column (explain.py's exact "
           "attributions against the training means), over the test split's frauds and over a "
           "uniform sample of its rows; share = that mean over the sum of the model's means")


def explained_rows(labels: np.ndarray, sample_rows: int, seed: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows to explain (sorted indices: the uniform sample and every fraud) and, over
    them, which are frauds and which are in the sample."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(labels), size=min(sample_rows, len(labels)),
                                replace=False))
    frauds = np.flatnonzero(labels == 1)
    rows = np.union1d(sample, frauds)
    return rows, np.isin(rows, frauds), np.isin(rows, sample)


def model_importance(explainer: Explainer, raw: np.ndarray, is_fraud: np.ndarray,
                     in_sample: np.ndarray, columns: Sequence[str] = CREDIT_CARD_LAYOUT.inputs
                     ) -> dict[str, np.ndarray]:
    """Mean |contribution| per column (`columns`: the model's inputs, in order) for each of
    SUBSETS."""
    contributions = explainer(raw).contributions
    frauds = global_importance(contributions, is_fraud.astype(int), columns)["frauds"]
    every = global_importance(contributions[in_sample], np.zeros(int(in_sample.sum())),
                              columns)["all"]
    return {subset: np.array([means.get(name, math.nan) for name in columns])
            for subset, means in (("frauds", frauds), ("all", every))}


def shares(means: np.ndarray) -> np.ndarray:
    total = float(np.sum(means))
    return means / total if total > 0 else np.zeros_like(means)


def table_rows(importance: dict[str, np.ndarray],
               columns: Sequence[str] = CREDIT_CARD_LAYOUT.inputs) -> list[dict[str, Any]]:
    """The plots table: one row per column, its share and mean for each subset."""
    share = {subset: shares(importance[subset]) for subset in SUBSETS}
    return [{"feature": name,
             **{f"share_{s}": float(share[s][i]) for s in SUBSETS},
             **{f"mean_abs_{s}": float(importance[s][i]) for s in SUBSETS}}
            for i, name in enumerate(columns)]


def table_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def top(rows: list[dict[str, Any]], subset: str, k: int) -> list[dict[str, Any]]:
    """The k columns with the largest share of `subset`, largest first (ties: column order)."""
    ranked = sorted(rows, key=lambda row: -row[f"share_{subset}"])[:k]
    return [{"feature": row["feature"], "share": row[f"share_{subset}"],
             "mean_abs_contribution": row[f"mean_abs_{subset}"]} for row in ranked]


def metrics(tables: dict[str, list[dict[str, Any]]], frauds: int, sampled: int
            ) -> dict[str, Any]:
    """Per model, the top METRIC_FEATURES columns over the test frauds and their shares
    (the full table is in the plots): 6 keys per model, not 2 x 29."""
    result: dict[str, Any] = {"rows_frauds": frauds, "rows_sample": sampled}
    for model, rows in tables.items():
        entry: dict[str, Any] = {}
        for rank, item in enumerate(top(rows, "frauds", METRIC_FEATURES), start=1):
            entry[f"top{rank}"] = item["feature"]
            entry[f"top{rank}_share"] = item["share"]
        result[model] = entry
    return result


def load_detector_explainer(path: Path, stage_hint: str) -> Explainer:
    """A detector's explainer, after the checks load_onnx makes (missing, oversized, corrupt
    or foreign file: one line naming the stage to run)."""
    import onnx

    path = require_file(path, stage_hint, "model")
    fix = f"run the {stage_hint} stage again"
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise PipelineError(f"{path}: over {MAX_MODEL_BYTES:,} bytes; {fix}")
    content = path.read_bytes()
    check_model_bytes(content, path, DETECTOR, fix)
    return explainer_from_onnx(onnx.load_model_from_string(content), str(path))


def read_table(path: Path, stage_hint: str,
               columns: Sequence[str] = CREDIT_CARD_LAYOUT.inputs) -> list[dict[str, Any]]:
    """A table table_csv wrote: every input column (`columns`) once, in order, shares and
    means finite and >= 0."""
    path = require_file(path, stage_hint, "file")
    fix = f"run the {stage_hint} stage again"
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames != TABLE_COLUMNS:
                raise PipelineError(f"{path}: expected the columns {', '.join(TABLE_COLUMNS)}, "
                                    f"got {printable(reader.fieldnames)}; {fix}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise PipelineError(f"{path}: not a readable CSV ({error}); {fix}") from None
    if [row["feature"] for row in rows] != list(columns):
        raise PipelineError(f"{path}: expected one row per input column "
                            f"({shown_columns(columns, 40)}); {fix}")
    parsed = []
    for line, row in enumerate(rows, start=2):
        values = {}
        for key in TABLE_COLUMNS[1:]:
            try:
                value = float(row[key])
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value) or value < 0:
                raise PipelineError(f"{path}: line {line}, column {key!r}: "
                                    f"{printable(row[key])} is not a number >= 0; {fix}")
            values[key] = value
        parsed.append({"feature": row["feature"], **values})
    return parsed


def card_entry(rows: list[dict[str, Any]], source: str, k: int = CARD_FEATURES
               ) -> dict[str, Any]:
    """The card's `importance`: the measure and the model's top k columns per subset."""
    return {"measure": MEASURE, "source": source,
            "test_frauds": top(rows, "frauds", k), "test_rows": top(rows, "all", k)}
