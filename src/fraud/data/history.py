"""History features: what each card spent and how risky each terminal was, before a
transaction (params.yaml's `features:` section; the features stage and `fraud predict`).

Per spending entity (a card) and window of w days: the number of its transactions and their
mean amount in [t - w days, t], the transaction itself included. Per risk entity (a terminal)
and window: the number of its transactions and the share of them that were frauds in
[t - (delay + w) days, t - delay days]: a label is known `delay` days after the transaction,
so no feature reads a label newer than t - delay. Flags: weekend and night (before 6:00),
from the time in UTC.

DuckDB computes the windows over Parquet in bounded memory (`memory_mb`, spilling to a
temporary folder), sorted by entity and time, with every thread. Sums of amounts are exact
(DECIMAL), so neither the thread count nor the order of ties changes a bit of the output.
The rows come out in their input order with the input's columns first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ..core.declaration import DAY_SECONDS, HistorySpec, Layout, stem
from ..errors import PipelineError

NIGHT_END_HOUR = 6
# DuckDB's limit bounds its buffers, not the process: Python, the libraries and the
# allocator's slack took ~150 MB more at 17.7 M rows (bench.features), so it gets 80 % of
# features.memory_mb and the process stays under the bound.
DUCKDB_SHARE = 0.8
ROW = "__row"  # the input order, carried through the windows
LABEL_KNOWN = "__label_known"  # 1 where the label counts (history), 0 for rows being scored
# 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays, 5 and 6 at the weekend.
EPOCH_WEEKDAY = 3


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _window(entity: str, time: str, start_days: int, end_days: int) -> str:
    """The frame [t - start_days, t - end_days] of an entity's rows, as a DuckDB window."""
    end = "CURRENT ROW" if end_days == 0 else f"{end_days * DAY_SECONDS} PRECEDING"
    return (f"(PARTITION BY {_quote(entity)} ORDER BY {_quote(time)} "
            f"RANGE BETWEEN {start_days * DAY_SECONDS} PRECEDING AND {end})")


def feature_sql(spec: HistorySpec, layout: Layout, source: str) -> str:
    """The query adding `spec.columns()` to the rows of `source` (a table expression with
    the layout's columns, `__row` and `__label_known`)."""
    time, amount, label = _quote(layout.time or ""), layout.amount, _quote(layout.label)
    columns: list[str] = []
    for entity in spec.spending:
        for days in spec.windows:
            frame = _window(entity, layout.time or "", days, 0)
            prefix = stem(entity)
            columns.append(f"CAST(COUNT(*) OVER {frame} AS DOUBLE) "
                           f"AS {_quote(f'{prefix}_tx_count_{days}d')}")
            columns.append(f"CAST(SUM(CAST({_quote(amount or '')} AS DECIMAL(38, 6))) OVER "
                           f"{frame} AS DOUBLE) / COUNT(*) OVER {frame} "
                           f"AS {_quote(f'{prefix}_mean_amount_{days}d')}")
    for entity in spec.risk:
        for days in spec.windows:
            frame = _window(entity, layout.time or "", spec.delay + days, spec.delay)
            prefix = stem(entity)
            count = f"COUNT(*) OVER {frame}"
            frauds = (f"SUM(CASE WHEN {LABEL_KNOWN} = 1 AND {label} = 1 THEN 1 ELSE 0 END) "
                      f"OVER {frame}")
            columns.append(f"CAST({count} AS DOUBLE) "
                           f"AS {_quote(f'{prefix}_delayed_tx_count_{days}d')}")
            columns.append(f"CASE WHEN {count} = 0 THEN 0.0::DOUBLE ELSE CAST({frauds} AS "
                           f"DOUBLE) / {count} END AS {_quote(f'{prefix}_fraud_rate_{days}d')}")
    if spec.time_flags:
        day = f"FLOOR({time} / {DAY_SECONDS})"
        columns.append(f"CASE WHEN (CAST({day} AS BIGINT) + {EPOCH_WEEKDAY}) % 7 >= 5 "
                       "THEN 1.0 ELSE 0.0 END::DOUBLE AS is_weekend")
        columns.append(f"CASE WHEN {time} - {day} * {DAY_SECONDS} < "
                       f"{NIGHT_END_HOUR * 3600} THEN 1.0 ELSE 0.0 END::DOUBLE AS is_night")
    return f"SELECT {ROW}, {', '.join(columns)} FROM {source}"


def _connect(memory_mb: int, spill: Path):
    import duckdb

    return duckdb.connect(config={
        "memory_limit": f"{int(memory_mb * DUCKDB_SHARE)}MB", "temp_directory": str(spill),
        "threads": max(1, os.cpu_count() or 1), "preserve_insertion_order": True})


def add_history(source: Path, out: Path, spec: HistorySpec, layout: Layout,
                memory_mb: int) -> int:
    """Writes `source`'s rows (a Parquet table with the layout's table columns but the
    history) to `out` with the history features, in `layout.table_columns`' order; returns
    the number of rows. With nothing to add, `out` is a byte copy of `source`."""
    import pyarrow.parquet as pq

    if not spec.active:
        shutil.copyfile(source, out)
        return pq.ParquetFile(out).metadata.num_rows
    import duckdb  # only with history to compute (the default table never needs it)

    with tempfile.TemporaryDirectory(prefix="duckdb-", dir=out.parent) as spill:
        connection = _connect(memory_mb, Path(spill))
        windows, ordered = Path(spill) / "windows.parquet", Path(spill) / "ordered.parquet"
        source_sql = (f"(SELECT *, file_row_number AS {ROW}, 1 AS {LABEL_KNOWN} FROM "
                      f"read_parquet('{_sql_text(source)}', file_row_number = true))")
        columns = ", ".join(f"{'w' if c in layout.history else 'g'}.{_quote(c)}"
                            for c in layout.table_columns)
        # Three passes, each within the memory bound (one query joining the windows back
        # to the rows and sorting them took 6.6 GB at 17.7 M rows with a 2 GB limit): the
        # windows, their rows put back in input order (an external sort), then the input's
        # columns and the features side by side.
        steps = [
            (f"COPY ({feature_sql(spec, layout, source_sql)}) TO '{_sql_text(windows)}' "
            "(FORMAT parquet)"),
            (f"COPY (SELECT * FROM read_parquet('{_sql_text(windows)}') ORDER BY {ROW}) TO "
            f"'{_sql_text(ordered)}' (FORMAT parquet)"),
            (f"COPY (SELECT {columns} FROM read_parquet('{_sql_text(source)}') g POSITIONAL "
            f"JOIN read_parquet('{_sql_text(ordered)}') w) TO '{_sql_text(out)}' "
            "(FORMAT parquet, COMPRESSION snappy)"),
        ]
        try:
            for step in steps:
                connection.execute(step)
        except duckdb.Error as error:
            raise PipelineError(f"{source}: computing the history features failed "
                                f"({str(error).splitlines()[0]}); with an out-of-memory "
                                "error, raise features.memory_mb") from None
        finally:
            connection.close()
    return pq.ParquetFile(out).metadata.num_rows


def history_of(rows: pd.DataFrame, history: pd.DataFrame, spec: HistorySpec, layout: Layout,
               memory_mb: int = 1024) -> pd.DataFrame:
    """The history features of `rows` (new transactions, no label needed), computed with the
    same query over `history` (earlier labelled transactions) and `rows` together: the same
    numbers the features stage gives these rows when their history is in the table. Labels of
    `rows` never count. Returns a frame aligned with `rows`."""
    known = history[[c for c in layout.raw_columns if c in history.columns]].assign(
        **{LABEL_KNOWN: 1})
    new = rows.assign(**{LABEL_KNOWN: 0})
    if layout.label not in new.columns:
        new = new.assign(**{layout.label: 0})
    together = pd.concat([new[known.columns], known], ignore_index=True)
    together[ROW] = range(len(together))
    with tempfile.TemporaryDirectory(prefix="duckdb-") as spill:
        connection = _connect(memory_mb, Path(spill))
        try:
            connection.register("together", together)
            result = connection.execute(
                f"SELECT * FROM ({feature_sql(spec, layout, 'together')}) "
                f"WHERE {ROW} < {len(new)} ORDER BY {ROW}").df()
        finally:
            connection.close()
    return result[list(layout.history)].set_axis(rows.index)


def _sql_text(path: Path | str) -> str:
    return str(path).replace("'", "''")

