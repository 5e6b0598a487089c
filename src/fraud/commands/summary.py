"""The models side by side, in a terminal: `fraud summary`.

`dvc metrics show` prints every key of every metrics file (~200 columns); this prints what
users compare, one row per model: validation PR-AUC (what the choice reads), test PR-AUC,
ROC-AUC, recall and precision with their 95 % intervals, the threshold and the test cost,
and marks the model `evaluate` chose. A second table shows each model's calibration (fitted on
validation): the method, test log loss, Brier and ECE after (before) it, the expected fraud
count (sum of probabilities) against the observed one, and the test cost of both cost rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fraud.core.cli import OneLineParser, run
from fraud.core.files import read_json_file
from fraud.core.models import MODELS
from fraud.errors import PipelineError, printable

HEADER = ("model", "val PR-AUC", "test PR-AUC [95 %]", "ROC-AUC [95 %]", "recall [95 %]",
          "precision [95 %]", "threshold", "cost")
CALIBRATION_HEADER = ("model", "calibration", "log loss (raw)", "Brier (raw)", "ECE (raw)",
                      "frauds expected (raw) / observed", "cost: expected_cost rule",
                      "min_cost rule")


class _Metrics:
    """One metrics file's numbers; a missing key or a value that is not a finite number is
    the one-line error naming the file, the key and the stage to rerun."""

    def __init__(self, path: Path, stage: str) -> None:
        self.path, self.stage = path, stage
        self.data: dict[str, Any] = read_json_file(path, stage)

    def __getitem__(self, key: str) -> float:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise PipelineError(f"{self.path}: {key!r} is {printable(value)}, not a number; "
                                f"run the {self.stage} stage again")
        return float(value)


def _with_interval(metrics: _Metrics, name: str) -> str:
    return f"{metrics[name]:.3f} [{metrics[f'{name}_low']:.3f}, {metrics[f'{name}_high']:.3f}]"


def rows(folder: Path) -> list[tuple[str, ...]]:
    chosen = read_json_file(folder / "evaluate.json", "evaluate").get("model")
    table = []
    for name in MODELS:
        metrics = _Metrics(folder / f"{name}.json", "evaluate_model")
        table.append((f"{name} *" if name == chosen else name, f"{metrics['val_prc']:.3f}",
                      *(_with_interval(metrics, key) for key in
                        ("prc", "auc", "recall", "precision")),
                      f"{metrics['threshold']:.3g}", f"{metrics['cost']:,.0f}"))
    return table


def _before_after(metrics: _Metrics, name: str, digits: int) -> str:
    return f"{metrics[name]:.{digits}f} ({metrics[name + '_raw']:.{digits}f})"


def _expected_frauds(metrics: _Metrics) -> str:
    return (f"{metrics['expected_frauds']:,.1f} ({metrics['expected_frauds_raw']:,.1f}) / "
            f"{metrics['frauds']:,.0f}")


def calibration_rows(folder: Path) -> list[tuple[str, ...]]:
    table = []
    for name in MODELS:
        metrics = _Metrics(folder / f"{name}.json", "evaluate_model")
        method = metrics.data.get("calibration")
        table.append((name, method if isinstance(method, str) else "?",
                      _before_after(metrics, "loss", 5), _before_after(metrics, "brier", 6),
                      _before_after(metrics, "ece", 5),
                      _expected_frauds(metrics),
                      f"{metrics['cost_rule_expected']:,.0f}",
                      f"{metrics['cost_rule_min_cost']:,.0f}"))
    return table


def print_table(table: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.ljust(width) for cell, width in cells).rstrip())


def main(argv: Sequence[str]) -> None:
    cli = OneLineParser(prog="fraud summary", description=__doc__.splitlines()[0])
    cli.add_argument("--metrics-dir", type=Path, default=Path("metrics"),
                     help="where evaluate_model and evaluate wrote their files")
    args = cli.parse_args(argv)
    print_table([HEADER, *rows(args.metrics_dir)])
    print("* chosen by evaluate (metrics/evaluate.json)")
    print()
    print_table([CALIBRATION_HEADER, *calibration_rows(args.metrics_dir)])
    print("Test split, on probabilities calibrated on validation (raw: the model's own "
          "sigmoid); ECE: calibrate.bins equal-width bins.")


def command(argv: Sequence[str] | None = None) -> None:
    """`fraud summary`: one line and exit 1 for an expected failure, 2 for a bad command line."""
    run(main, argv)


if __name__ == "__main__":
    command()
