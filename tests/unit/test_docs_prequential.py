"""docs/your-data.md's prequential tables are the committed sweep reports' figures.

reports/handbook/prequential.json and prequential-grid.json are the reports of the two
`fraud sweep --folds 3` runs the section describes (its setting and command are in the
text); each table row of the section is rebuilt here from them, so a rerun that moves a
figure, or an edit of the table, fails and names the row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTION_START = "### Prequential selection"
SECTION_END = "### Scoring raw transactions"


def report(name: str) -> dict:
    return json.loads((ROOT / f"reports/handbook/{name}.json").read_text(encoding="utf-8"))


def section() -> str:
    text = (ROOT / "docs/your-data.md").read_text(encoding="utf-8")
    return text[text.index(SECTION_START):text.index(SECTION_END)]


def half_up(seconds: float) -> int:
    """Seconds as the text rounds them (1,154.5 s is "1,155 s")."""
    return int(seconds + 0.5)


def spread(stats: dict, with_range: bool = True) -> str:
    text = f"{stats['mean']:.3f} ± {stats['sd']:.3f}"
    return text + (f" [{stats['low']:.3f}, {stats['high']:.3f}]" if with_range else "")


def fold0_test_figures(candidate: dict) -> str:
    test = candidate["test"]
    return f"{test['prc']:.3f} | {test['auc']:.3f} | {test['card_precision']:.3f}"


def model_rows() -> list[str]:
    """The first table: every model over the three folds, no grid."""
    return [f"| {c['model']} | {spread(c['validation']['val_prc'])} | "
            f"{spread(c['validation']['val_card_precision'], with_range=False)} | "
            f"{fold0_test_figures(c)} |" for c in report("prequential")["candidates"]]


def grid_rows() -> list[str]:
    """The second table: gbdt at each learning rate of the grid."""
    return [f"| {c['label'].split('=')[1]} | {spread(c['validation']['val_prc'])} | "
            f"{fold0_test_figures(c)} |"
            for c in report("prequential-grid")["candidates"] if c["model"] == "gbdt"]


@pytest.mark.parametrize("row", [*model_rows(), *grid_rows()])
def test_each_row_is_the_reports(row: str) -> None:
    assert row in section(), row


def test_the_reports_are_the_runs_the_text_describes() -> None:
    plain, grid = report("prequential"), report("prequential-grid")
    assert plain["folds"] == grid["folds"] == [0, 1, 2] and plain["test_fold"] == 0
    assert plain["failed"] == grid["failed"] == []
    assert {c["label"] for c in grid["candidates"]} == {
        f"gbdt.learning_rate={rate}" for rate in ("0.025", "0.05", "0.1")}
    text = " ".join(section().split())
    assert f"{half_up(plain['seconds'])} s of wall time" in text
    assert f"{len(grid['experiments'])} experiments, {half_up(grid['seconds']):,} s" in text
    assert plain["chosen"] == {"": {"0": "gbdt", "1": "gbdt", "2": "gbdt"}}
