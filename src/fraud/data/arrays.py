"""The scaled arrays `scale` writes, loaded and checked: no TensorFlow here.

Why a module of its own: the train stages and the TensorFlow-free stages (the scikit-learn
peers, evaluation on ONNX Runtime) read the same `.npy` files with the same checks, and
importing `train.py` costs TensorFlow (~5 s, ~800 MB per process).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import PipelineError, require_file


def load_split(features_path: str | Path, labels_path: str | Path,
               n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Loads and checks a scaled split written by `scale`: float features (`n_features`
    columns, when given; else at least one), 0/1 labels."""
    arrays = []
    for path in (Path(features_path), Path(labels_path)):
        require_file(path, "scale")
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except (ValueError, OSError, EOFError) as error:
            raise PipelineError(f"{path}: not a readable .npy array ({error}); "
                                "run the scale stage again") from None
    features, labels = arrays
    fpath, lpath = Path(features_path), Path(labels_path)
    if features.ndim != 2 or features.shape[1] != (n_features or max(features.shape[1], 1)):
        raise PipelineError(f"{fpath}: expected a (rows, {n_features or 'features'}) array, "
                            f"got shape {features.shape}")
    if not np.issubdtype(features.dtype, np.floating):
        raise PipelineError(f"{fpath}: expected floating-point features, got dtype "
                            f"{features.dtype}")
    if labels.ndim != 1 or len(labels) != len(features):
        raise PipelineError(f"{lpath}: expected {len(features)} labels (one per row of "
                            f"{fpath.name}), got shape {labels.shape}")
    if len(labels) == 0:
        raise PipelineError(f"{lpath}: the split is empty")
    finite = np.isfinite(features)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise PipelineError(f"{fpath}: row {row}, column {col} is {features[row, col]}; "
                            "features must be finite")
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise PipelineError(f"{lpath}: row {row} holds label {labels[row].item()!r}; labels "
                            "must be 0 or 1")
    if int(labels.sum()) == 0:
        raise PipelineError(f"{lpath}: no positive (fraud) labels among {len(labels):,} rows; "
                            "a fraud model needs positive examples")
    return features.astype(np.float32, copy=False), labels.astype(np.float32)
