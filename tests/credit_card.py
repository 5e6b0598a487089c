"""The Credit Card Fraud layout's column lists, as the tests (and benchmarks) name them.

The library names no column: it reads params.yaml's data: section (fraud/core/declaration.py).
These are that default declaration resolved, for tests that build tables and arrays of it.
"""

from __future__ import annotations

from fraud.core.declaration import CREDIT_CARD_LAYOUT as LAYOUT
from fraud.core.schema import PREPROCESS_NAME

V_COLUMNS = list(LAYOUT.numeric)
RAW_COLUMNS = LAYOUT.raw_columns      # the CSV: Time, V1 … V28, Amount, Class
INPUT_COLUMNS = LAYOUT.inputs         # the detector's: V1 … V28, Amount
FEATURES = LAYOUT.features            # the model's: V1 … V28, Log Amount
N_FEATURES = len(FEATURES)
TABLE_COLUMNS = LAYOUT.table_columns  # clean's table: Time, V1 … V28, Amount, Log Amount, Class
LABEL = LAYOUT.label
TIME = LAYOUT.time or ""
LOG_AMOUNT = LAYOUT.log_feature or ""
AMOUNT = LAYOUT.amount or ""
SCALER_SPEC = {"inputs": INPUT_COLUMNS, "log_input": AMOUNT}  # scaler.json's feature spec

__all__ = ["AMOUNT", "FEATURES", "INPUT_COLUMNS", "LABEL", "LAYOUT", "LOG_AMOUNT", "N_FEATURES",
           "PREPROCESS_NAME", "RAW_COLUMNS", "SCALER_SPEC", "STATS_SPEC", "TABLE_COLUMNS", "TIME",
           "V_COLUMNS"]
# contract.ScalerStats' feature-spec fields, for tests that build one by hand.
STATS_SPEC = {"inputs": tuple(INPUT_COLUMNS), "log_input": AMOUNT}
