"""The numbers in the docs are the numbers in the files: every `<!-- render: NAME -->` block
equals what tools/render_docs.py renders from metrics/*.json and reports/sweeps/ now, and,
where `dvc repro` has made the committed run's model, from the model itself.

When this fails after a `dvc repro` or a sweep: `python -m tools.render_docs`, reread the
prose next to the blocks that changed, commit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import render_docs

ROOT = render_docs.REPO_ROOT


def test_committed_docs_are_rendered() -> None:
    """Blocks from DVC outputs are left to the next test: a fresh clone has none."""
    skipped: list[str] = []
    stale = [str(path.relative_to(ROOT))
             for path in render_docs.stale_files(skipped=skipped, from_outputs=False)]
    assert {reason.split(":")[0] for reason in skipped} <= render_docs.FROM_OUTPUTS, skipped
    assert not stale, f"stale generated blocks in {stale}: run python -m tools.render_docs"


def test_blocks_from_the_shipped_model_are_rendered() -> None:
    """`fraud predict`'s example output and the reasons' check, rerun with the committed
    model and data (after `dvc repro`); skipped without them."""
    try:
        stale = [str(path.relative_to(ROOT)) for path in render_docs.stale_files()]
    except render_docs.NeedsOutputs as missing:
        pytest.skip(str(missing))
    assert not stale, f"stale generated blocks in {stale}: run python -m tools.render_docs"


def test_the_metrics_show_width_is_what_dvc_prints() -> None:
    """The rendered size of `dvc metrics show` is measured on the real command's output."""
    printed = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    header = printed[0].split()
    expected = (f"{len(printed) - 1} metrics files: one row per file, {len(header) - 1} "
                f"columns beside the path, {max(len(line) for line in printed):,} characters")
    assert expected in " ".join(render_docs.metrics_show_size(ROOT).split())


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


def test_a_block_without_its_dvc_outputs_is_kept_and_named(project: Path) -> None:
    """In a fresh clone (no model) the predict example is not checked, and says so."""
    shutil.copy(ROOT / "dvc.lock", project / "dvc.lock")
    block = "<!-- render: predict-output -->\nan old example\n<!-- /render -->\n"
    skipped: list[str] = []
    assert render_docs.render_text(block, project, skipped) == block
    assert skipped == ["predict-output: models/fraud_detector.onnx is missing (run dvc repro)"]
    with pytest.raises(render_docs.NeedsOutputs, match="missing"):
        render_docs.render_text(block, project)


def test_a_model_of_another_run_is_not_rendered(project: Path) -> None:
    shutil.copy(ROOT / "dvc.lock", project / "dvc.lock")
    (project / "models").mkdir()
    (project / "models/fraud_detector.onnx").write_bytes(b"another model")
    with pytest.raises(render_docs.NeedsOutputs, match="not the file dvc.lock records"):
        render_docs.committed_output(project, "models/fraud_detector.onnx")


def test_an_unknown_block_is_an_error(project: Path) -> None:
    with pytest.raises(KeyError, match="unknown block 'no-such-table'"):
        render_docs.render_text("<!-- render: no-such-table -->\n<!-- /render -->\n", project)
