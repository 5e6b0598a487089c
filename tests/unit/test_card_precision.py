"""Card Precision@k: cards, not rows; per day; the day's k best-scored cards."""

from __future__ import annotations

import numpy as np
import pytest

from fraud.evaluation.card_precision import DAY_SECONDS, card_precision, daily_card_precision


def test_a_card_counts_once_with_its_highest_score_of_the_day() -> None:
    # Day 0: card a (two frauds, scores .9 .8), b (legit .85), c (legit .1); day 1: b fraud .7,
    # d legit .95, e legit .2.
    days = np.array([0, 0, 0, 0, 1, 1, 1])
    cards = np.array(["a", "a", "b", "c", "b", "d", "e"])
    labels = np.array([1, 1, 0, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.85, 0.1, 0.7, 0.95, 0.2])
    np.testing.assert_allclose(daily_card_precision(days, cards, labels, scores, 2),
                               [0.5, 0.5])  # day 0: a, b -> 1 of 2; day 1: d, b -> 1 of 2
    np.testing.assert_allclose(daily_card_precision(days, cards, labels, scores, 1),
                               [1.0, 0.0])
    # k beyond the day's cards still divides by k: 1 find among 3 cards, 1 / 5.
    np.testing.assert_allclose(daily_card_precision(days, cards, labels, scores, 5),
                               [0.2, 0.2])


def test_the_mean_over_days_and_its_interval() -> None:
    rng = np.random.default_rng(0)
    rows = 20_000
    times = rng.uniform(0, 30 * DAY_SECONDS, rows)
    cards = rng.integers(0, 2_000, rows)
    labels = (rng.random(rows) < 0.01).astype(int)
    scores = np.clip(labels * 0.5 + rng.random(rows) * 0.6, 0, 1)
    result = card_precision(times, cards, labels, scores, k=20, resamples=500, seed=1)
    assert result["card_precision_days"] == 30
    assert result["card_precision_low"] <= result["card_precision"] \
        <= result["card_precision_high"]
    assert 0.3 < result["card_precision"] < 0.9  # frauds score higher, not always on top
    again = card_precision(times, cards, labels, scores, k=20, resamples=500, seed=1)
    assert again == result
    random = card_precision(times, cards, labels, rng.random(rows), k=20, resamples=0, seed=1)
    assert random["card_precision"] < 0.2 and "card_precision_low" not in random


@pytest.mark.parametrize("cards", [np.array([3, 3, 7]), np.array(["x", "x", "y"], dtype=object)])
def test_card_ids_may_be_numbers_or_text(cards: np.ndarray) -> None:
    result = daily_card_precision(np.zeros(3, int), cards, np.array([0, 1, 0]),
                                  np.array([0.2, 0.9, 0.5]), 1)
    np.testing.assert_allclose(result, [1.0])
