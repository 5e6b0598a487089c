"""Raw card transactions, generated after the design the Fraud Detection Handbook publishes
(Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection", chapter
3.2; written here from its text, none of its code): `download.url: transactions`.

- Customers and terminals sit uniformly on a 100 x 100 grid; a customer uses the terminals
  within `radius` of home, each equally likely (a customer with none makes no transaction).
- Each customer has a mean amount drawn from U(5, 100), a standard deviation of half of it,
  and a daily rate of transactions drawn from U(0, 4): each day's count is Poisson.
- A transaction's time of day is normal around noon (standard deviation 20,000 s); times
  outside the day are dropped. Its amount is normal with the customer's mean and deviation;
  a negative draw is redrawn uniformly in [0, 2 x mean). Amounts are rounded to the cent.
- Frauds, three scenarios, later ones overriding the label's cause: (1) every amount over
  220; (2) each day, 2 random terminals are compromised for 28 days: every transaction on
  them in those days; (3) each day, 3 random customers are compromised for 14 days: a third
  of their transactions in those days (each with probability 1/3 here) have their amount
  multiplied by 5.

With `transactions.categorical` three text columns are added, drawn after everything else
(so the other columns and the labels are those of the run without them), each with fraud
rates that differ by level:

- `merchant_category` (20 codes, per terminal): a terminal ever compromised is 4x as likely
  to be in one of 4 risky categories as any other terminal;
- `country` (30 codes, per transaction): the customer's home country, but abroad for 3 % of
  transactions, and for half of the frauds on a compromised customer's card (scenario 3);
- `channel` (pos, web, atm): pos 70 %, web 25 %, atm 5 %, but 70 % web for the frauds on a
  compromised customer's card.

Vectorised with numpy (no loop over customers or transactions), deterministic for its own
`transactions.seed`: the handbook's size (5,000 customers, 10,000 terminals, 183 days) is
about 1.75 M transactions with ~0.8 % fraud. The table's layout is `DECLARATION`: the
pipeline reads it through params.yaml's data: section like any other table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.declaration import TRANSACTIONS, TRANSACTIONS_CATEGORICAL
from ..core.params import TransactionsParams

DECLARATION = TRANSACTIONS  # the layout of what `simulate` writes
CATEGORICAL_DECLARATION = TRANSACTIONS_CATEGORICAL  # ... with transactions.categorical
COLUMNS = ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount",
           "tx_fraud")  # the file's order; the categorical columns go before tx_fraud
MERCHANT_CATEGORIES = tuple(f"mcc{i:02d}" for i in range(1, 21))
RISKY_CATEGORIES, RISK_FACTOR = 4, 4.0      # the first 4 codes
COUNTRIES = tuple(f"c{i:02d}" for i in range(1, 31))
ABROAD_LEGIT, ABROAD_COMPROMISED = 0.03, 0.5
CHANNELS = ("pos", "web", "atm")
CHANNEL_LEGIT, CHANNEL_COMPROMISED = (0.70, 0.25, 0.05), (0.25, 0.70, 0.05)
GRID = 100.0
DAY_SECONDS = 86_400
TIME_SD = 20_000.0
FRAUD_AMOUNT = 220.0            # scenario 1: every amount above it
TERMINALS_PER_DAY, TERMINAL_DAYS = 2, 28    # scenario 2
CUSTOMERS_PER_DAY, CUSTOMER_DAYS = 3, 14    # scenario 3
CUSTOMER_SHARE, CUSTOMER_FACTOR = 1 / 3, 5.0
BLOCK_CUSTOMERS = 500  # customers whose terminal distances are computed at a time (~40 MB)


def _terminals_in_reach(customer_xy: np.ndarray, terminal_xy: np.ndarray, radius: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per customer, the terminals within `radius`, as CSR arrays (offsets, indices)."""
    counts, indices = [], []
    for start in range(0, len(customer_xy), BLOCK_CUSTOMERS):
        block = customer_xy[start:start + BLOCK_CUSTOMERS]
        near = ((block[:, None, :] - terminal_xy[None, :, :]) ** 2).sum(axis=2) < radius ** 2
        counts.append(near.sum(axis=1))
        indices.append(np.nonzero(near)[1])
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]) if counts \
        else np.zeros(1, dtype=np.int64)
    return offsets, (np.concatenate(indices) if indices else np.empty(0, dtype=np.int64))


def _compromised(rng: np.random.Generator, days: int, population: int, per_day: int,
                 duration: int) -> np.ndarray:
    """(days, population) bool: who is compromised on each day, each day's draw lasting
    `duration` days from that day on."""
    chosen = np.stack([rng.choice(population, size=min(per_day, population), replace=False)
                       for _ in range(days)])
    marks = np.zeros((days + duration, population), dtype=np.int32)
    np.add.at(marks, (np.repeat(np.arange(days), chosen.shape[1]), chosen.ravel()), 1)
    np.subtract.at(marks, (np.repeat(np.arange(days) + duration, chosen.shape[1]),
                           chosen.ravel()), 1)
    return np.cumsum(marks, axis=0)[:days] > 0


def simulate(settings: TransactionsParams) -> pd.DataFrame:
    """The transactions, in time order, with their fraud labels (columns COLUMNS)."""
    rng = np.random.default_rng(settings.seed)
    n_c, n_t, days = settings.customers, settings.terminals, settings.days
    customer_xy = rng.uniform(0, GRID, (n_c, 2))
    mean_amount = rng.uniform(5, 100, n_c)
    rate = rng.uniform(0, 4, n_c)
    terminal_xy = rng.uniform(0, GRID, (n_t, 2))
    offsets, reach = _terminals_in_reach(customer_xy, terminal_xy, settings.radius)
    reachable = np.diff(offsets)

    per_day = rng.poisson(rate[:, None], (n_c, days))
    per_day[reachable == 0] = 0
    cell = np.repeat(np.arange(n_c * days), per_day.ravel())
    customer, day = cell // days, cell % days
    seconds = rng.normal(DAY_SECONDS / 2, TIME_SD, len(cell))
    amount = rng.normal(mean_amount[customer], mean_amount[customer] / 2)
    redraw = rng.uniform(0, 2 * mean_amount[customer])
    amount = np.round(np.where(amount < 0, redraw, amount), 2)
    pick = offsets[customer] + (rng.random(len(cell)) * reachable[customer]).astype(np.int64)
    terminal = reach[pick]
    inside = (seconds >= 0) & (seconds < DAY_SECONDS)
    customer, day, terminal, amount = customer[inside], day[inside], terminal[inside], \
        amount[inside]
    seconds = seconds[inside].astype(np.int64)
    order = np.lexsort((customer, seconds, day))
    customer, day, terminal, amount, seconds = (a[order] for a in
                                                 (customer, day, terminal, amount, seconds))

    fraud = amount > FRAUD_AMOUNT
    bad_terminals = _compromised(rng, days, n_t, TERMINALS_PER_DAY, TERMINAL_DAYS)
    fraud |= bad_terminals[day, terminal]
    bad_customers = _compromised(rng, days, n_c, CUSTOMERS_PER_DAY, CUSTOMER_DAYS)
    drawn = rng.random(len(day)) < CUSTOMER_SHARE
    taken = bad_customers[day, customer] & drawn
    amount = np.where(taken, np.round(amount * CUSTOMER_FACTOR, 2), amount)
    fraud |= taken

    stamps = np.datetime64(settings.start, "s") + (day * DAY_SECONDS + seconds).astype(
        "timedelta64[s]")
    table = pd.DataFrame({
        "transaction_id": np.arange(len(day)),
        "tx_datetime": np.datetime_as_string(stamps, unit="s"),
        "customer_id": customer, "terminal_id": terminal, "tx_amount": amount})
    if settings.categorical:  # drawn last: nothing above depends on the switch
        table = table.assign(**_categorical_columns(
            rng, n_c, bad_terminals.any(axis=0), customer, terminal, taken))
    return table.assign(tx_fraud=fraud.astype(np.int8))


def _categorical_columns(rng: np.random.Generator, n_customers: int, ever_bad: np.ndarray,
                         customer: np.ndarray, terminal: np.ndarray,
                         stolen: np.ndarray
                         ) -> dict[str, np.ndarray]:
    """merchant_category per terminal, country and channel per transaction (docstring)."""
    weights = np.ones((2, len(MERCHANT_CATEGORIES)))
    weights[1, :RISKY_CATEGORIES] = RISK_FACTOR
    weights /= weights.sum(axis=1, keepdims=True)
    draws = rng.random(len(ever_bad))
    category = np.where(ever_bad,
                        np.searchsorted(np.cumsum(weights[1]), draws, side="right"),
                        np.searchsorted(np.cumsum(weights[0]), draws, side="right"))
    home = rng.integers(0, len(COUNTRIES), n_customers)[customer]
    abroad = rng.random(len(customer)) < np.where(stolen, ABROAD_COMPROMISED,
                                                  ABROAD_LEGIT)
    elsewhere = (home + rng.integers(1, len(COUNTRIES), len(customer))) % len(COUNTRIES)
    country = np.where(abroad, elsewhere, home)
    draws = rng.random(len(customer))
    channel = np.where(stolen,
                       np.searchsorted(np.cumsum(CHANNEL_COMPROMISED), draws, side="right"),
                       np.searchsorted(np.cumsum(CHANNEL_LEGIT), draws, side="right"))
    channel = np.minimum(channel, len(CHANNELS) - 1)
    return {"merchant_category": np.asarray(MERCHANT_CATEGORIES)[
                np.minimum(category, len(MERCHANT_CATEGORIES) - 1)][terminal],
            "country": np.asarray(COUNTRIES)[country],
            "channel": np.asarray(CHANNELS)[channel]}


def write_transactions(settings: TransactionsParams, out: Path) -> int:
    """Writes the simulated table as CSV; returns its rows."""
    table = simulate(settings)
    table.to_csv(out, index=False, float_format="%.2f")
    return len(table)
