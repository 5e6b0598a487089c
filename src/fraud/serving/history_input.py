"""Raw transactions to score, with their history features (`fraud predict --history`,
`fraud monitor --history`).

A model trained on history features (params.yaml's `features:`) reads, per transaction, what
its card spent and how risky its terminal was before it. To score raw transactions, predict
reads them and a history file (earlier transactions with their labels), and computes their
features with the features stage's own query (src/fraud/data/history.py) over both
together: the numbers the pipeline would have given these rows. The rows' own labels, if
any, never count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.declaration import DAY_SECONDS, HistorySpec, Layout, check_header
from ..core.schema import validate_raw_frame
from ..data.history import history_of
from ..data.rawcsv import open_csv, read_frames
from ..errors import PipelineError
from .card import card_history


def _read(source: str | Path, layout: Layout, labelled: bool) -> pd.DataFrame:
    """A raw CSV of the layout's raw columns (the label required in history, optional in
    the rows to score), validated as clean validates the training table."""
    opened = open_csv(source)
    try:
        required = [c for c in layout.raw_columns if labelled or c != layout.label]
        optional = () if labelled else (layout.label,)
        check_header(Path(opened.label), opened.columns, required, optional)
        frame = next(read_frames(opened, dtype=str, keep_default_na=False, na_values=[""]),
                     None)
    finally:
        opened.close()
    if frame is None or frame.empty:
        raise PipelineError(f"{opened.label}: has a header but no data rows")
    return validate_raw_frame(Path(opened.label), frame, require_label=labelled,
                              blank_labels=not labelled, layout=layout)


def featurise(source: str | Path, history: Path, layout: Layout, spec: HistorySpec,
              out: Path) -> int:
    """Writes `source`'s rows with their history features to the CSV `out` (time in
    seconds): what predict then scores. Returns the number of rows."""
    given = dataclasses.replace(layout, history=())
    past = _read(history, given, labelled=True)
    rows = _read(source, given, labelled=False)
    time = layout.time or ""
    reach = (max(spec.windows, default=0) + spec.delay) * DAY_SECONDS
    first = float(np.min(rows[time]))
    if float(np.min(past[time])) > first - reach:
        covered = (first - float(np.min(past[time]))) / DAY_SECONDS
        raise PipelineError(f"{history}: covers {max(covered, 0):.1f} days before the first "
                            f"row to score; the model's windows need {reach // DAY_SECONDS} "
                            f"(the longest window, {max(spec.windows, default=0)} days, plus "
                            f"the delay, {spec.delay}): give a longer history")
    features = history_of(rows, past, spec, layout)
    kept = [c for c in (time, *layout.keys, *given.inputs, *layout.categorical, layout.label)
            if c in rows.columns]
    table = pd.concat([rows[kept], features], axis=1)
    table.to_csv(out, index=False, float_format="%.17g")
    return len(table)


def with_history(source: str | Path, history: Path | None, model: Path, layout: Layout,
                 card: Mapping[str, Any], card_path: Path, folder: Path) -> str | Path:
    """The CSV to read: `source` itself, or (a model with history features) `source` with
    its features computed from `history`, written into `folder`. A model without history
    features refuses a history, one with them requires it."""
    if not layout.history:
        if history is not None:
            raise PipelineError(f"--history: {model} reads no history feature (its card "
                                f"{card_path} declares none); leave --history out")
        return source
    if history is None:
        shown = ", ".join(layout.history[:3]) + (", …" if len(layout.history) > 3 else "")
        raise PipelineError(f"{model} reads {len(layout.history)} history features "
                            f"({shown}); pass --history "
                            "CSV: earlier transactions with their labels (docs/your-data.md)")
    featured = folder / "featured.csv"
    featurise(source, history, layout, card_history(card.get("data") or {}, card_path),
              featured)
    return featured
