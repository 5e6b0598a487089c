"""Watching a shipped model on new data before its labels arrive.

- `profile`: the reference of the training data (per-column quantile bins and the score's),
  built from arrays and kept as a few KB of JSON;
- `drift`: the population stability index (PSI) of a batch against it, with its bands;
- `estimates`: precision, recall and fraud count at a threshold estimated from the
  calibrated probabilities alone (CBPE), and the realised ones when labels exist;
- `report`: all three accumulated chunk by chunk (flat memory), as JSON and as text.
"""
