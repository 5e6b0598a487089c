"""A synthetic stand-in for the Credit Card Fraud Detection CSV (ULB/Worldline, 284,807 rows).

Why: the pipeline must run offline and the tests need data, but the real file cannot be
shipped. The stand-in is drawn from statistics of the real file (``creditcard_stats.json``,
package data next to this module), so downstream stages see the same columns, CSV dialect,
class imbalance, scales and roughly the same difficulty:

* per class, (V1..V28, log1p(Amount)) is multivariate normal with the class mean and
  covariance (the frauds are strongly correlated within class, and the class means give the
  separability a linear model reaches on the real data);
* Amount is rounded to cents, with the real fractions of zero amounts and of amounts <= 1
  (frauds test cards with tiny charges: ~36.8 % of frauds vs ~10.7 % of normal rows);
* Time is an integer number of seconds over two days, following the per-class hour-of-day
  counts, rows sorted by Time;
* a few exact duplicate rows, in the real proportion per class.

Everything comes from ``numpy.random.default_rng(seed)``: the same arguments give a
byte-identical CSV.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.declaration import CREDIT_CARD

V_COLUMNS = list(CREDIT_CARD.numeric or ())

__all__ = ["COLUMNS", "HEADER", "TIME_MAX", "generate_creditcard", "write_creditcard_csv"]

STATS_PATH = Path(__file__).with_name("creditcard_stats.json")

COLUMNS: tuple[str, ...] = ("Time", *V_COLUMNS, "Amount", "Class")
# The real file quotes every header name (and the Class values), but no number.
HEADER = ",".join(f'"{name}"' for name in COLUMNS)
# Last Time in the real file: the data covers two days (172,800 s) of transactions.
TIME_MAX = 172_792

_DAY = 86_400
_HOUR = 3_600
# Share of rows with Amount <= 1 in the real file, per class (not in the stats file). The
# Gaussian in log space gives only ~7 % / ~17 %: the rest is the real atom at 1.00.
_AMOUNT_AT_MOST_ONE = {0: 0.107, 1: 0.368}
# V values are kept to 6 decimals: the CSV stays small and round-trips exactly.
_V_DECIMALS = 6
# Rows per formatting chunk: large enough to amortise the Python call, small enough for memory.
_WRITE_CHUNK = 20_000


@functools.lru_cache(maxsize=1)
def _stats() -> dict[str, Any]:
    """The real file's statistics, read once (package data beside this module)."""
    with open(STATS_PATH, encoding="utf-8") as handle:
        return json.load(handle)


def _check_arguments(rows: int, fraud_rate: float, seed: int) -> None:
    """Rejects arguments that would give an empty class or an unreproducible stream."""
    if isinstance(rows, bool) or not isinstance(rows, numbers.Integral):
        raise ValueError(f"rows must be an integer, got {rows!r}")
    if rows < 2:
        raise ValueError(f"rows must be >= 2 (one normal and one fraud row at least), got {rows}")
    if isinstance(fraud_rate, bool) or not isinstance(fraud_rate, numbers.Real):
        raise ValueError(f"fraud_rate must be a number, got {fraud_rate!r}")
    if not (math.isfinite(fraud_rate) and 0.0 < fraud_rate < 1.0):
        raise ValueError(f"fraud_rate must be strictly between 0 and 1, got {fraud_rate!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor; symmetrises and adds a growing jitter if the rounded stats are
    not quite positive definite. (Cholesky, not eigh: it is unique, so the draws do not depend
    on the LAPACK build's eigenvector signs.)"""
    sym = (cov + cov.T) / 2.0
    scale = float(np.mean(np.diag(sym)))
    jitter = 0.0
    for _ in range(10):
        try:
            return np.linalg.cholesky(sym + jitter * np.eye(sym.shape[0]))
        except np.linalg.LinAlgError:
            jitter = scale * 1e-10 if jitter == 0.0 else jitter * 10.0
    raise ValueError("creditcard_stats.json: covariance is not positive semi-definite")


def _times(rng: np.random.Generator, n: int, hour_counts: np.ndarray) -> np.ndarray:
    """Integer seconds in [0, TIME_MAX] whose hour of day follows `hour_counts`."""
    hour = rng.choice(24, size=n, p=hour_counts / hour_counts.sum())
    day = rng.integers(0, 2, size=n)
    second = rng.integers(0, _HOUR, size=n)
    time = day * _DAY + hour * _HOUR + second
    # The last 8 s of day two are past the end of the data: move them to day one (same hour).
    time[time > TIME_MAX] -= _DAY
    return time.astype(np.int64)


def _amounts(log_amount: np.ndarray, zero_frac: float, at_most_one_frac: float) -> np.ndarray:
    """Cents from log1p(Amount), with the real shares of zeros and of amounts <= 1.

    Both shares are forced on the rows with the lowest log amount, so the transform stays
    monotone and the amount keeps its correlation with the V features.
    """
    n = log_amount.size
    # Every row not forced to zero is at least one cent: zeros come only from the forced share.
    amount = np.maximum(np.round(np.maximum(np.expm1(log_amount), 0.0), 2), 0.01)
    order = np.argsort(log_amount, kind="stable")
    n_zero = min(round(n * zero_frac), n)
    n_small = min(max(round(n * at_most_one_frac), n_zero), n)
    amount[order[:n_zero]] = 0.0
    small = order[n_zero:n_small]
    amount[small] = np.minimum(amount[small], 1.0)
    return amount


def _class_block(rng: np.random.Generator, label: int, n: int, hour_counts: np.ndarray,
                 duplicate_frac: float) -> dict[str, np.ndarray]:
    """`n` rows of one class, the last few exact copies of earlier ones (sharing their Time)."""
    stats = _stats()["classes"][str(label)]
    block = stats["cov_V_logAmount"]
    if list(block["cols"]) != [*V_COLUMNS, "logAmount"]:
        raise ValueError("creditcard_stats.json: unexpected cov_V_logAmount columns")
    mean = np.asarray(block["mean"], dtype=np.float64)
    cov = np.asarray(block["cov"], dtype=np.float64)

    n_duplicates = min(round(n * duplicate_frac), n - 1)
    n_unique = n - n_duplicates
    draws = mean + rng.standard_normal((n_unique, mean.size)) @ _cholesky(cov).T
    # "+ 0.0" turns -0.0 into 0.0, so the CSV never shows "-0.0".
    features = np.round(draws[:, :-1], _V_DECIMALS) + 0.0
    amount = _amounts(draws[:, -1], float(stats["amount_zero_frac"]), _AMOUNT_AT_MOST_ONE[label])
    time = _times(rng, n_unique, hour_counts)

    source = np.concatenate([np.arange(n_unique), rng.integers(0, n_unique, size=n_duplicates)])
    return {
        "time": time[source],
        "features": features[source],
        "amount": amount[source],
        "label": np.full(n, label, dtype=np.int64),
        "source": source,
    }


def generate_creditcard(rows: int, fraud_rate: float, seed: int) -> pd.DataFrame:
    """Columns Time, V1..V28, Amount, Class (int 0/1), sorted by Time.

    Exactly round(rows * fraud_rate) frauds, but at least 1 and at most rows - 1, so both
    classes are always present (the pipeline's stratified split and metrics need both).
    Time is int64 seconds, V columns are rounded to 6 decimals and Amount to cents, so the
    frame is exactly what `write_creditcard_csv` writes. Same arguments, same frame.
    Raises ValueError on bad arguments.
    """
    _check_arguments(rows, fraud_rate, seed)
    rows = int(rows)
    stats = _stats()
    n_fraud = min(max(round(rows * fraud_rate), 1), rows - 1)
    n_normal = rows - n_fraud

    hours_all = np.asarray(stats["hour_of_day_counts_all"], dtype=np.float64)
    hours_fraud = np.asarray(stats["hour_of_day_counts_fraud"], dtype=np.float64)
    dup_fraud = stats["duplicate_fraud_rows"] / stats["n_fraud"]
    dup_normal = (stats["duplicate_rows"] - stats["duplicate_fraud_rows"]) / (
        stats["n"] - stats["n_fraud"])

    rng = np.random.default_rng(seed)
    normal = _class_block(rng, 0, n_normal, hours_all - hours_fraud, dup_normal)
    fraud = _class_block(rng, 1, n_fraud, hours_fraud, dup_fraud)

    time = np.concatenate([normal["time"], fraud["time"]])
    # One id per distinct row: a copy sorts right after its original (same Time, same id).
    group = np.concatenate([normal["source"], fraud["source"] + n_normal])
    order = np.lexsort((group, time))

    features = np.concatenate([normal["features"], fraud["features"]])[order]
    data: dict[str, np.ndarray] = {"Time": time[order]}
    data.update({name: features[:, i] for i, name in enumerate(V_COLUMNS)})
    data["Amount"] = np.concatenate([normal["amount"], fraud["amount"]])[order]
    data["Class"] = np.concatenate([normal["label"], fraud["label"]])[order]
    return pd.DataFrame(data, columns=list(COLUMNS))


def write_creditcard_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Writes the frame in the real file's CSV dialect (quoted header and Class).

    Rows: Time as integer seconds, V1..V28 as shortest round-trip floats, Amount with at most
    two decimals ("149.62", "0", "2.69"), Class as "0"/"1" in double quotes; "\\n" line ends.
    Writes `path` directly (callers wanting atomicity pass a temporary path, see files.py).
    Raises ValueError if the frame does not have the real file's columns and values.
    """
    if list(frame.columns) != list(COLUMNS):
        raise ValueError(f"frame columns must be exactly {list(COLUMNS)}, "
                         f"got {list(frame.columns)}")
    values = frame.to_numpy(dtype=np.float64, copy=True)
    if not np.isfinite(values).all():
        raise ValueError("frame has missing or infinite values")
    time, amount, label = values[:, 0], values[:, -2], values[:, -1]
    if (time < 0).any() or (time != np.round(time)).any():
        raise ValueError("Time must be non-negative whole seconds")
    if (amount < 0).any():
        raise ValueError("Amount must be >= 0")
    if not np.isin(label, (0.0, 1.0)).all():
        raise ValueError("Class must be 0 or 1")
    values[:, -2] = np.round(amount, 2)
    values += 0.0  # -0.0 -> 0.0

    # One %-format per chunk runs in C: ~10x faster than DataFrame.to_csv with per-column formats.
    # %r is Python's shortest round-trip repr; %.15g prints cents without trailing zeros.
    line = "%d," + "%r," * len(V_COLUMNS) + '%.15g,"%d"\n'
    with open(path, "w", encoding="ascii", newline="\n") as handle:
        handle.write(HEADER + "\n")
        for start in range(0, len(values), _WRITE_CHUNK):
            chunk = values[start:start + _WRITE_CHUNK]
            handle.write((line * len(chunk)) % tuple(chunk.ravel().tolist()))
