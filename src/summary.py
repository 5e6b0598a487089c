"""The models side by side, in a terminal: `python -m src.summary`.

`dvc metrics show` prints every key of every metrics file (~200 columns); this prints what
users compare, one row per model: validation PR-AUC (what the choice reads), test PR-AUC,
ROC-AUC, recall and precision with their 95 % intervals, the threshold and the test cost,
and marks the model `evaluate` chose.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from src.fraud.errors import PipelineError
from src.fraud.files import read_json_file
from src.fraud.params import MODELS

HEADER = ("model", "val PR-AUC", "test PR-AUC [95 %]", "ROC-AUC [95 %]", "recall [95 %]",
          "precision [95 %]", "threshold", "cost")


def _with_interval(metrics: dict, name: str) -> str:
    return f"{metrics[name]:.3f} [{metrics[f'{name}_low']:.3f}, {metrics[f'{name}_high']:.3f}]"


def rows(folder: Path) -> list[tuple[str, ...]]:
    chosen = read_json_file(folder / "evaluate.json", "evaluate")["model"]
    table = []
    for name in MODELS:
        metrics = read_json_file(folder / f"{name}.json", f"evaluate_model@{name}")
        table.append((f"{name} *" if name == chosen else name, f"{metrics['val_prc']:.3f}",
                      *(_with_interval(metrics, key) for key in
                        ("prc", "auc", "recall", "precision")),
                      f"{metrics['threshold']:.3g}", f"{metrics['cost']:,.0f}"))
    return table


def main(argv: Sequence[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--metrics-dir", type=Path, default=Path("metrics"),
                     help="where evaluate_model and evaluate wrote their files")
    args = cli.parse_args(argv)
    try:
        table = [HEADER, *rows(args.metrics_dir)]
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    for row in table:
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
    print("* chosen by evaluate (metrics/evaluate.json)")


if __name__ == "__main__":
    main()
