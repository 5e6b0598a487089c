"""The numbers in the docs are the numbers in the files: every `<!-- render: NAME -->` block
equals what tools/render_docs.py renders from metrics/*.json and reports/sweeps/ now.

When this fails after a `dvc repro` or a sweep: `python -m tools.render_docs`, reread the
prose next to the blocks that changed, commit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools import render_docs

ROOT = render_docs.REPO_ROOT


def test_committed_docs_are_rendered() -> None:
    stale = [str(path.relative_to(ROOT)) for path in render_docs.stale_files()]
    assert not stale, f"stale generated blocks in {stale}: run python -m tools.render_docs"


def test_every_renderer_is_used() -> None:
    """A block name that no doc uses is a table that silently left the docs."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in render_docs.doc_files())
    used = {match.group("name") for match in render_docs.BLOCK.finditer(text)}
    assert used == set(render_docs.RENDERERS), sorted(set(render_docs.RENDERERS) ^ used)


# The check itself, on a copy whose metrics moved.

@pytest.fixture
def project(tmp_path: Path) -> Path:
    for relative in ("params.yaml", "metrics", "reports/sweeps"):
        source, target = ROOT / relative, tmp_path / relative
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/results.md").write_text(
        "Before.\n<!-- render: committed-run-table -->\nold numbers\n<!-- /render -->\nAfter.\n",
        encoding="utf-8")
    return tmp_path


def test_a_changed_metric_makes_the_docs_stale(project: Path) -> None:
    doc = project / "docs/results.md"
    assert render_docs.stale_files(project) == [doc]
    doc.write_text(render_docs.render_text(doc.read_text(encoding="utf-8"), project),
                   encoding="utf-8")
    assert render_docs.stale_files(project) == []
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("Before.\n") and text.endswith("<!-- /render -->\nAfter.\n")
    gbdt = project / "metrics/gbdt.json"
    metrics = json.loads(gbdt.read_text(encoding="utf-8"))
    assert f"| gbdt | {metrics['val_prc']:.3f} |" in text

    gbdt.write_text(json.dumps({**metrics, "val_prc": 0.5}), encoding="utf-8")
    assert render_docs.stale_files(project) == [doc]


def test_an_unknown_block_is_an_error(project: Path) -> None:
    with pytest.raises(KeyError, match="unknown block 'no-such-table'"):
        render_docs.render_text("<!-- render: no-such-table -->\n<!-- /render -->\n", project)
