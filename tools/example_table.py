"""A table that is not the Credit Card Fraud one, to point the pipeline at (docs/your-data.md).

    python -m tools.example_table transactions.csv [--rows 20000] [--seed 0]

Columns: `txn_id` (an id), `ts` (ISO 8601 time), `merchant` (an entity), `f0` … `f39`
(numeric inputs: 6 of them carry the signal, the rest are noise) and `label` (`fraud` or
`legit`, about 2 % fraud). No amount column. Deterministic for a seed. The data: section
that declares it is `DECLARATION`.

With `categorical=True` (`--categorical`) two text columns follow the numeric ones:
`channel` (atm, pos, web; web frauds 4x as often) and `country` (8 codes; `ZZ`, a country
that appears only in the last 5 % of the rows, the test period of a time split). They are
drawn after everything else, so the other columns stay the same. `CATEGORICAL_DECLARATION`
declares that table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = [f"f{i}" for i in range(40)]
DECLARATION = {
    "label": "label", "positive": "fraud", "negative": "legit", "time": "ts",
    "time_format": "iso8601", "ids": ["txn_id"], "entities": ["merchant"], "amount": None,
    "numeric": ["f0..f39"], "categorical": [], "drop": [],
}
CATEGORICAL = ["channel", "country"]
CATEGORICAL_DECLARATION = {**DECLARATION, "categorical": CATEGORICAL}
CHANNELS = ("atm", "pos", "web")
COUNTRIES = ("BE", "DE", "ES", "FR", "IT", "NL", "PT", "UK")
LATE_COUNTRY = "ZZ"  # only in the last 5 % of rows: unseen by training on a time split


def example_table(rows: int = 20_000, fraud_rate: float = 0.02, seed: int = 0,
                  categorical: bool = False) -> pd.DataFrame:
    """Frauds shift 6 of the 40 features and keep the rest; times span 30 days from
    2024-03-01, one row per few seconds, in order."""
    rng = np.random.default_rng(seed)
    fraud = rng.random(rows) < fraud_rate
    values = rng.normal(0.0, 1.0, (rows, len(FEATURES)))
    shift = np.zeros(len(FEATURES))
    shift[[1, 4, 9, 16, 25, 36]] = [1.6, -1.2, 1.0, 0.8, -0.9, 1.4]
    values[fraud] += shift + rng.normal(0.0, 0.6, (int(fraud.sum()), len(FEATURES)))
    start = np.datetime64("2024-03-01T00:00:00")
    seconds = np.sort(rng.integers(0, 30 * 86_400, rows))
    table = pd.DataFrame({
        "txn_id": [f"T{i:07d}" for i in range(rows)],
        "ts": np.datetime_as_string(start + seconds.astype("timedelta64[s]"), unit="s"),
        "merchant": [f"M{m:03d}" for m in rng.integers(0, 300, rows)],
    })
    for i, name in enumerate(FEATURES):
        table[name] = values[:, i].round(6)
    if categorical:
        web = rng.random(rows) < np.where(fraud, 0.6, 0.27)
        table["channel"] = np.where(web, "web", rng.choice(CHANNELS[:2], rows))
        country = rng.choice(np.array(COUNTRIES, dtype=object), rows)
        late = np.arange(rows) >= rows - rows // 20
        country[late & (rng.random(rows) < 0.5)] = LATE_COUNTRY
        table["country"] = country
    table["label"] = np.where(fraud, "fraud", "legit")
    return table


def main(argv: Sequence[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("out", type=Path, help="the CSV to write")
    cli.add_argument("--rows", type=int, default=20_000)
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("--categorical", action="store_true",
                     help="add the text columns channel and country")
    args = cli.parse_args(argv)
    example_table(args.rows, seed=args.seed, categorical=args.categorical).to_csv(
        args.out, index=False)
    print(f"{args.out}: {args.rows:,} rows")


if __name__ == "__main__":
    main()
