"""End to end: `python -m src.compare_seeds --seeds 2` in a temporary git + DVC repository
holding the project, on the same tiny synthetic data as tests/test_pipeline_e2e.py."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

try:  # `python -m pytest` (the project's command) puts the root on sys.path...
    from tests.test_pipeline_e2e import STRATEGIES, dvc, new_project, sh
except ModuleNotFoundError:  # ...plain `pytest` puts tests/ there (no tests/__init__.py)
    from test_pipeline_e2e import STRATEGIES, dvc, new_project, sh

pytestmark = pytest.mark.e2e

ROWS = [*STRATEGIES, "logistic_regression"]


def _snapshot(repo: Path) -> dict[str, object]:
    return {
        "status": sh(repo, "git", "status", "--porcelain").stdout,
        "head": sh(repo, "git", "rev-parse", "HEAD").stdout,
        "metrics": {str(p.relative_to(repo)): p.read_bytes()
                    for p in sorted((repo / "metrics").rglob("*.json"))},
        "params": (repo / "params.yaml").read_bytes(),
        "lock": (repo / "dvc.lock").read_bytes(),
    }


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict, dict]:
    """The project after `dvc repro` and a commit, then the comparison over 2 seeds."""
    repo = new_project(tmp_path_factory.mktemp("seeds"))
    dvc(repo, "repro")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "first run")
    before = _snapshot(repo)
    done = sh(repo, sys.executable, "-m", "src.compare_seeds", "--seeds", "2")
    # reports/ is the comparison's own output: leave it out of the workspace comparison.
    shutil.move(str(repo / "reports"), str(repo.parent / f"{repo.name}-reports"))
    after = _snapshot(repo)
    shutil.move(str(repo.parent / f"{repo.name}-reports"), str(repo / "reports"))
    assert after == before, "the comparison changed the workspace"
    return repo, done.stdout, json.loads((repo / "reports/seeds/seeds.json").read_text()), \
        before


def test_report_has_every_row_and_seed(compared) -> None:
    repo, stdout, report, _ = compared
    assert report["seeds"] == [42, 43]  # params.yaml's seed on
    assert set(report["per_seed"]) == set(ROWS)
    for row in ROWS:
        assert set(report["per_seed"][row]) == {"42", "43"}
        for seed in ("42", "43"):
            values = report["per_seed"][row][seed]
            assert values["tp"] + values["fn"] == 24, (row, seed)  # stratified test frauds
            assert 0 < values["prc"] <= 1 and 0 < values["auc"] <= 1
        summary = report["summary"][row]["prc"]
        assert summary["n"] == 2 and summary["low"] <= summary["mean"] <= summary["high"]
    assert len(report["paired"]) == 6 * 4
    assert report["params"]["seed"] == [42, 43]
    assert report["params"]["download"]["synthetic_rows"] == 12000
    assert report["extra_params"] == {} and report["kept"] is False
    markdown = (repo / "reports/seeds/seeds.md").read_text()
    assert markdown.strip() in stdout  # printed too
    assert "| strategy | PR-AUC | ROC-AUC | recall | precision |" in markdown
    for row in ROWS:
        assert f"\n| {row} | " in markdown
    assert re.search(r"\| weighted − oversample \| PR-AUC \| [-+]\d\.\d{3} \[", markdown)
    assert (repo / "reports/seeds/logs/seed-43.log").is_file()


def test_committed_seed_reproduces_the_workspace_metrics(compared) -> None:
    repo, _, report, _ = compared
    for strategy in STRATEGIES:
        workspace = json.loads((repo / f"metrics/{strategy}.json").read_text())
        assert report["per_seed"][strategy]["42"] == workspace, strategy
    # Another seed is another split and another model.
    assert report["per_seed"]["baseline"]["43"] != report["per_seed"]["baseline"]["42"]


def test_experiments_are_removed(compared) -> None:
    repo, _, report, _ = compared
    assert dvc(repo, "exp", "list", "--name-only").stdout.strip() == ""
    assert sh(repo, "git", "for-each-ref", "refs/exps").stdout.strip() == ""
    names = [entry["name"] for entry in report["experiments"].values()]
    assert all(re.fullmatch(r"seeds-\d{8}-\d{6}-4[23]", name) for name in names), names
