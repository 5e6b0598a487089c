"""Do `predict --explain`'s reasons name what made a row flagged? A counterfactual check.

    python -m bench.explain_check [--project DIR] [--k 3] [--draws 20] [--seed 42]

Reads, from a project that has run `dvc repro`: the shipped model and its card
(models/fraud_detector.onnx, .json) and the raw train and test tables (data/split/). For every
test row the card's rule flags, it replaces the row's k reasons (the explainer `predict
--explain k` uses, largest contribution first) with the training split's median of each
column, scores the row again and counts the rows no longer flagged; then the same with k
other columns drawn at random (`--draws` draws per row, seeded), and with the training means
(the explainer's own baseline) in place of the medians. Prints one JSON object: how many
flagged rows each change unflags (for the random draws, the mean, least and most of the
draws). Deterministic: the same run, model and seed give the same numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from fraud.core.decision import decision_from_card
from fraud.serving.explain import load_explainer, top_reasons


def _replaced(rows: np.ndarray, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each row with its listed columns (one list per row) set to `values` of those columns."""
    result = rows.copy()
    picked = np.arange(len(rows))[:, None]
    result[picked, columns] = values[columns]
    return result


def check(project: Path, k: int, draws: int, seed: int) -> dict[str, object]:
    card = json.loads((project / "models/fraud_detector.json").read_text(encoding="utf-8"))
    inputs = card["input_columns"]
    decision = decision_from_card(card["decision"], card["threshold"], "card")
    session = ort.InferenceSession(str(project / "models/fraud_detector.onnx"),
                                   providers=["CPUExecutionProvider"])

    def flagged(rows: np.ndarray) -> np.ndarray:
        probability = session.run([card["output_name"]], {card["input_name"]: rows})[0]
        return decision.flags(probability, rows)

    train = pd.read_parquet(project / "data/split/train.parquet")[inputs].to_numpy(np.float64)
    test = pd.read_parquet(project / "data/split/test.parquet")[inputs].to_numpy(np.float64)
    rows = test[flagged(test)]
    reasons, _ = top_reasons(load_explainer(project / "models/fraud_detector.onnx")(rows)
                             .contributions, k)
    medians, means = np.median(train, axis=0), train.mean(axis=0)
    random = np.random.default_rng(seed)
    others = [np.stack([random.choice(np.setdiff1d(np.arange(len(inputs)), row), k,
                                      replace=False) for row in reasons]) for _ in range(draws)]
    unflagged_random = [int(np.sum(~flagged(_replaced(rows, columns, medians))))
                        for columns in others]
    return {
        "model": card["model"], "rule": decision.describe(), "test_rows": len(test),
        "flagged": len(rows), "k": k, "seed": seed, "draws": draws,
        "unflagged_reasons_to_medians": int(np.sum(~flagged(_replaced(rows, reasons, medians)))),
        "unflagged_reasons_to_means": int(np.sum(~flagged(_replaced(rows, reasons, means)))),
        "unflagged_random_to_medians": {"mean": float(np.mean(unflagged_random)),
                                        "min": min(unflagged_random),
                                        "max": max(unflagged_random)},
    }


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--project", type=Path, default=Path("."))
    cli.add_argument("--k", type=int, default=3, help="reasons per row (predict --explain K)")
    cli.add_argument("--draws", type=int, default=20, help="random column sets per row")
    cli.add_argument("--seed", type=int, default=42)
    args = cli.parse_args(argv)
    print(json.dumps(check(args.project, args.k, args.draws, args.seed), indent=2))


if __name__ == "__main__":
    main()
