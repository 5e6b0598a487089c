"""One row per experiment that fits a terminal: what it changed, what it shipped, how it did.

`dvc exp show` prints every param and metric as a column (112 columns of metrics alone), so
the changed params land far off-screen. Here each experiment is compared with its own
baseline commit's params, and only the shipped model's headline test figures are kept.
Pure functions of `dvc exp show --json` (DVC 3's layout, as show.py reads it).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .show import CHOICE_METRICS, _file_data, experiments_from_show

WIDTH = 100
NAME_WIDTH = 26
MISSING = "—"


@dataclass(frozen=True)
class Row:
    name: str
    state: str  # success | running | queued | failed, or baseline | workspace (not experiments)
    changed: list[tuple[str, Any]]  # (dotted param, value) that differ from the baseline
    figures: dict[str, Any]         # metrics/evaluate.json: the shipped model's figures


def flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 3}} -> {"train.epochs": 3}; lists stay values."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            result |= flat(value, f"{dotted}.")
        else:
            result[dotted] = value
    return result


def changed_params(baseline: Mapping[str, Any], params: Mapping[str, Any]
                   ) -> list[tuple[str, Any]]:
    """The params whose value differs from the baseline's (added and removed keys too), in
    params.yaml's order."""
    before, after = flat(baseline), flat(params)
    keys = list(after) + [key for key in before if key not in after]
    return [(key, after.get(key, MISSING)) for key in keys
            if before.get(key, MISSING) != after.get(key, MISSING)]


def _commits(show: Any) -> Iterator[Mapping[str, Any]]:
    for commit in show if isinstance(show, list) else []:
        if isinstance(commit, Mapping):
            yield commit


def _params_and_choice(commit: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    data = commit.get("data") if isinstance(commit.get("data"), Mapping) else {}
    return (_file_data(data.get("params")).get("params.yaml", {}),
            _file_data(data.get("metrics")).get(CHOICE_METRICS, {}))


def rows_from_show(show: Any) -> list[Row]:
    """The workspace (with what it changed from HEAD: an applied experiment, an edit), then
    each baseline commit followed by its experiments."""
    experiments = experiments_from_show(show)
    commits = list(_commits(show))
    head = next((c for c in commits if c.get("rev") != "workspace"), None)
    head_params = _params_and_choice(head)[0] if head is not None else {}
    rows: list[Row] = []
    for commit in commits:
        params, choice = _params_and_choice(commit)
        rev = str(commit.get("rev", ""))
        if rev == "workspace":
            rows.append(Row("workspace", "workspace", changed_params(head_params, params),
                            choice))
            continue
        rows.append(Row(f"{commit.get('name') or rev[:7]} ({rev[:7]})", "baseline", [],
                        choice))
        rows += [Row(experiment.name, experiment.state,
                     changed_params(params, experiment.params),
                     experiment.metrics.get(CHOICE_METRICS, {}))
                 for experiment in experiments.values() if experiment.baseline == rev]
    return rows


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else MISSING


def _interval(figures: Mapping[str, Any]) -> str:
    low, high = figures.get("prc_low"), figures.get("prc_high")
    middle = _number(figures.get("prc"), ".3f")
    if isinstance(low, int | float) and isinstance(high, int | float):
        return f"{middle} [{low:.3f}, {high:.3f}]"
    return middle


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


HEADER = (f"{'experiment':<{NAME_WIDTH}} {'model':<11} {'test PR-AUC [95 %]':<21} "
          f"{'recall':>6} {'precision':>9} {'cost':>10}")


def format_rows(rows: list[Row], width: int = WIDTH) -> str:
    """The table: a line of figures per row and, under an experiment (or a workspace that
    differs from HEAD), what it changed."""
    lines = [HEADER]
    for row in rows:
        figures = row.figures
        model = f"({row.state})" if row.state in ("running", "queued", "failed") \
            else str(figures.get("model") or MISSING)
        lines.append(f"{_short(row.name, NAME_WIDTH):<{NAME_WIDTH}} {_short(model, 11):<11} "
                     f"{_interval(figures):<21} {_number(figures.get('recall'), '.3f'):>6} "
                     f"{_number(figures.get('precision'), '.3f'):>9} "
                     f"{_number(figures.get('cost'), ',.0f'):>10}")
        if row.state == "baseline" or (row.state == "workspace" and not row.changed):
            continue
        changes = ", ".join(f"{key}={value}" for key, value in row.changed) or \
            "nothing (the baseline's params)"
        lines += textwrap.wrap(changes, width, initial_indent="  changed: ",
                               subsequent_indent=" " * 11, break_on_hyphens=False)
    return "\n".join(lines) + "\n"
