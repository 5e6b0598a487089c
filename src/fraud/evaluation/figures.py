"""PNG figures drawn as the tutorial draws them (matplotlib / seaborn), viewable offline.
Each model has its colour from colors.py, the same as in the Vega charts.

PNGs are written without a timestamp, so the same data gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .colors import model_color

PNG_METADATA = {"Software": None}


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path, format="png", dpi=100, metadata=PNG_METADATA, bbox_inches="tight")
    plt.close(fig)


def _row_share(share: float) -> str:
    """A row share as a percentage: two decimals near 0 % and 100 % (10 false alarms among
    56,740 legitimate rows are 0.02 %, not 0.0 %), one elsewhere."""
    digits = 2 if min(share, 1 - share) < 0.01 else 1
    return f"{100 * share:.{digits}f} %"


def confusion_matrix_png(path: Path, counts: dict[str, float], strategy: str,
                         threshold: float) -> None:
    """A compact confusion matrix (~280 px square), so the five sit side by side on
    the `dvc plots show` page. Colour is each cell's share of its row, not its count: by
    count, 56,000 legitimate rows left the other three cells near-white; by row share the
    fraud row shows recall and misses at a glance. Each cell gives its count and row share."""
    matrix = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]], dtype=int)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(3.2, 2.6))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        share = float(shares[row, column])
        ax.text(column, row, f"{count:,}\n{_row_share(share)}", ha="center", va="center",
                fontsize=10, color="white" if share > 0.6 else "black")
    classes = ["legitimate", "fraud"]
    ax.set_xticks([0, 1], classes)
    ax.set_yticks([0, 1], classes, rotation=90, va="center")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"{strategy} @ {threshold:.4g} (colour: share of row)", fontsize=9)
    _save(fig, path)


def _label(name: str, chosen: str | None) -> str:
    return f"{name} (chosen)" if name == chosen else name


def roc_png(path: Path, curves: dict[str, pd.DataFrame], chosen: str | None = None) -> None:
    """The tutorial's zoomed ROC: false positives 0–20 %, true positives 80–100 %."""
    fig, ax = plt.subplots(figsize=(7, 6))
    for name, curve in curves.items():
        ax.plot(100 * curve["fpr"], 100 * curve["tpr"], label=_label(name, chosen),
                color=model_color(name), linewidth=3 if name == chosen else 1.5)
    ax.set_xlabel("False positives [%]")
    ax.set_ylabel("True positives [%]")
    ax.set_xlim(-0.5, 20)
    ax.set_ylim(80, 100.5)
    ax.grid(True)
    ax.legend(loc="lower right")
    ax.set_title("ROC on the test split")
    _save(fig, path)


def pr_png(path: Path, curves: dict[str, pd.DataFrame], chosen: str | None = None) -> None:
    fig, ax = plt.subplots(figsize=(7, 6))
    for name, curve in curves.items():
        ax.plot(curve["recall"], curve["precision"], label=_label(name, chosen),
                color=model_color(name), linewidth=3 if name == chosen else 1.5)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.grid(True)
    ax.legend(loc="lower left")
    ax.set_title("Precision-recall on the test split")
    _save(fig, path)


def separating_pair(features: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """The two features whose means differ most between frauds and legitimate rows, in
    standardised units (the scaled training split): the pair a scatter shows apart best,
    whatever the table's columns are called. Ties go to the earlier column."""
    frauds = labels == 1
    gap = np.abs(features[frauds].mean(axis=0) - features[~frauds].mean(axis=0))
    first, second = np.argsort(-gap, kind="stable")[:2]
    return int(first), int(second)


def feature_distribution_png(path: Path, features: np.ndarray, labels: np.ndarray,
                             names: list[str]) -> None:
    """The tutorial's two-feature hexbin of frauds vs legitimate rows (scaled training
    split), for the two features that separate them most (`separating_pair`; the tutorial
    drew V5 and V6 of its table)."""
    if len(names) < 2:
        ix = iy = 0
    else:
        ix, iy = separating_pair(features, labels)
    x, y = names[ix], names[iy]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharex=True, sharey=True)
    panels = (("Fraud", labels == 1), ("Legitimate", labels == 0))
    for ax, (title, mask) in zip(axes, panels, strict=True):
        ax.hexbin(features[mask, ix], features[mask, iy], gridsize=40, extent=(-5, 5, -5, 5),
                  mincnt=1, cmap="viridis", bins="log")
        ax.set_title(f"{title} ({int(mask.sum()):,} rows)")
        ax.set_xlabel(x)
    axes[0].set_ylabel(y)
    fig.suptitle(f"{x} vs {y}: the two features whose means differ most between frauds and "
                 "legitimate rows (scaled training split)")
    _save(fig, path)
