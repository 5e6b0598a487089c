"""The confusion-matrix PNG: small enough that the five sit side by side on the
`dvc plots show` page (issue 31: each took a full-width row), its cells' row shares readable."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from fraud.evaluation.figures import _row_share, confusion_matrix_png

COUNTS = {"tn": 56730, "fp": 10, "fn": 28, "tp": 72}


def test_confusion_png_is_compact_and_the_same_bytes_twice(tmp_path: Path) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for path in (first, second):
        confusion_matrix_png(path, COUNTS, "baseline", 0.5)
    width, height = Image.open(first).size
    assert width <= 320 and height <= 320, (width, height)  # five fit a 1,600 px row
    assert first.read_bytes() == second.read_bytes()


def test_confusion_png_draws_an_empty_row(tmp_path: Path) -> None:
    """A split with no fraud: shares of an empty row are 0, not a division error."""
    confusion_matrix_png(tmp_path / "cm.png", {"tn": 5, "fp": 0, "fn": 0, "tp": 0}, "x", 0.5)
    assert (tmp_path / "cm.png").stat().st_size > 0


def test_row_share_keeps_small_shares_visible() -> None:
    assert _row_share(10 / 56740) == "0.02 %"
    assert _row_share(56730 / 56740) == "99.98 %"
    assert _row_share(0.72) == "72.0 %"
    assert _row_share(0.0) == "0.00 %"
