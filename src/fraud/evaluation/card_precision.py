"""Card Precision@k: what a team that checks k cards a day finds, the Fraud Detection
Handbook's card-level metric (chapter 4), written from its definition.

Each day, every card gets the highest score of its transactions that day; the k cards with
the highest scores are the ones investigators call. Card Precision@k is the share of those k
with at least one fraud that day, averaged over the days. It speaks of cards, not rows: a
card with ten fraudulent transactions is one find. The card is the table's first declared
entity (params.yaml's data.entities); a day is a calendar day of the declared time (UTC).
Its 95 % interval resamples the days (they are the unit the average is over).
"""

from __future__ import annotations

import numpy as np

DAY_SECONDS = 86_400
# Mixed into `seed` for the bootstrap over days: no other use of `seed` shares its stream.
_STREAM = 0xCA4D


def daily_card_precision(days: np.ndarray, cards: np.ndarray, labels: np.ndarray,
                         scores: np.ndarray, k: int) -> np.ndarray:
    """Per day present (in order), the share of the day's k highest-scored cards that had a
    fraud that day; a day with fewer than k cards still divides by k (fewer calls made)."""
    days, labels = np.asarray(days), np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    _, card_codes = np.unique(np.asarray(cards), return_inverse=True)
    day_values, day_codes = np.unique(days, return_inverse=True)
    width = int(card_codes.max()) + 1  # (day, card) as one integer key
    pairs, pair_of_row = np.unique(day_codes.astype(np.int64) * width + card_codes,
                                   return_inverse=True)
    card_score = np.full(len(pairs), -np.inf)
    np.maximum.at(card_score, pair_of_row, scores)
    card_fraud = np.zeros(len(pairs), dtype=np.int8)
    np.maximum.at(card_fraud, pair_of_row, (labels == 1).astype(np.int8))
    pair_day = pairs // width
    # Highest scores first within each day; ties broken by card order, the same every run.
    order = np.lexsort((-card_score, pair_day))
    pair_day, card_fraud = pair_day[order], card_fraud[order]
    starts = np.searchsorted(pair_day, np.arange(len(day_values)))
    rank = np.arange(len(pair_day)) - starts[pair_day]
    found = np.bincount(pair_day[rank < k], weights=card_fraud[rank < k],
                        minlength=len(day_values))
    return found / k


def card_precision(times: np.ndarray, cards: np.ndarray, labels: np.ndarray,
                   scores: np.ndarray, k: int, resamples: int, seed: int,
                   prefix: str = "") -> dict[str, float]:
    """`card_precision` (the mean over days) and, when `resamples`, its 95 % bootstrap
    interval over the days (`_low`, `_high`); `times` in seconds (the cleaned table's)."""
    days = np.floor(np.asarray(times, dtype=np.float64) / DAY_SECONDS).astype(np.int64)
    daily = daily_card_precision(days, cards, labels, scores, k)
    result = {f"{prefix}card_precision": float(daily.mean()) if len(daily) else float("nan"),
              f"{prefix}card_precision_days": int(len(daily))}
    if resamples and len(daily):
        rng = np.random.default_rng([seed, _STREAM])
        means = daily[rng.integers(0, len(daily), (resamples, len(daily)))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        result.update({f"{prefix}card_precision_low": float(low),
                       f"{prefix}card_precision_high": float(high)})
    return result
