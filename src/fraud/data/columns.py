"""Columns of the split tables as float64 arrays, without pandas (~0.5 s to import): what
the stages that only score and count read (reference, importance, monitor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.declaration import DataDeclaration, Layout, category_text
from ..errors import PipelineError, printable_names, require_file


def table_layout(path: str | Path, stage_hint: str, declaration: DataDeclaration) -> Layout:
    """The layout of a table an earlier stage wrote (its header against the declaration)."""
    import pyarrow.parquet as pq

    path = require_file(path, stage_hint, "file")
    try:
        names = pq.read_schema(path).names
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise PipelineError(f"{path}: not a readable Parquet table ({error}); run the "
                            f"{stage_hint} stage again") from None
    try:
        return declaration.resolve(path, names, derived=True)
    except PipelineError as error:
        raise PipelineError(f"{error}; run the {stage_hint} stage again (its table does not "
                            "match params.yaml's data: section)") from None


def read_columns(path: str | Path, stage_hint: str, columns: list[str]) -> np.ndarray:
    """`columns` of a Parquet table an earlier stage wrote, as one float64 array (rows,
    columns); the other columns are not decoded. A missing file or column, or a file that
    is not Parquet, is one line naming the stage to run."""
    import pyarrow.parquet as pq

    path = require_file(path, stage_hint, "file")
    fix = f"run the {stage_hint} stage again"
    try:
        names = pq.read_schema(path).names
        missing = [name for name in columns if name not in names]
        if missing:
            raise PipelineError(f"{path}: missing column(s) {printable_names(missing)}; {fix}")
        table = pq.ParquetFile(path).read(columns=columns, use_threads=False)
        arrays = [_float64(table.column(name)) for name in columns]
    except PipelineError:
        raise
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise PipelineError(f"{path}: not a readable Parquet table ({error}); {fix}") from None
    return np.column_stack(arrays) if arrays else np.empty((table.num_rows, 0))


def read_inputs(path: str | Path, stage_hint: str, layout: Layout,
                extra: list[str] | None = None) -> np.ndarray:
    """The detector's raw inputs of a split table, then the numeric `extra` columns (the
    label): float64, or with categorical columns an object array whose text columns follow
    the numeric inputs (missing cells as empty text), as OnnxModel takes it."""
    numbers = read_columns(path, stage_hint, [*layout.inputs, *(extra or [])])
    if not layout.categorical:
        return numbers
    n = len(layout.inputs)
    rows = np.empty((len(numbers), len(layout.model_inputs) + len(extra or [])), dtype=object)
    rows[:, :n] = numbers[:, :n]
    for i, column in enumerate(layout.categorical):
        rows[:, n + i] = category_text(read_key_column(path, stage_hint, column))
    rows[:, len(layout.model_inputs):] = numbers[:, n:]
    return rows


def read_key_column(path: str | Path, stage_hint: str, column: str) -> np.ndarray:
    """One column of any type (a card or terminal id, numbers or text), as numpy values."""
    import pyarrow.parquet as pq

    path = require_file(path, stage_hint, "file")
    try:
        table = pq.ParquetFile(path).read(columns=[column], use_threads=False)
        return table.column(column).to_numpy(zero_copy_only=False)
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise PipelineError(f"{path}: cannot read column {column!r} ({error}); run the "
                            f"{stage_hint} stage again") from None


def _float64(column: Any) -> np.ndarray:
    """A pyarrow column as float64. Numbers without nulls are viewed straight from their
    buffers: pyarrow's own conversion imports pandas (~0.3 s of CPU), which the stages that
    read these columns otherwise never need."""
    import pyarrow as pa

    widths = {pa.float64(): np.float64, pa.float32(): np.float32, pa.int64(): np.int64,
              pa.int32(): np.int32, pa.int16(): np.int16, pa.int8(): np.int8}
    parts = []
    for chunk in column.chunks:
        dtype = widths.get(chunk.type)
        if dtype is None or chunk.null_count:
            parts.append(np.asarray(chunk.to_numpy(zero_copy_only=False), dtype=np.float64))
            continue
        parts.append(np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk),
                                   offset=chunk.offset * np.dtype(dtype).itemsize))
    return np.concatenate(parts).astype(np.float64) if parts else np.empty(0)
