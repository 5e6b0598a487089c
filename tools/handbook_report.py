"""The simulated transactions' results beside the Fraud Detection Handbook's published ones.

    python -m tools.handbook_report RUN_FOLDER [--name week] [--overrides split.train_days=7]

RUN_FOLDER is a copy of this project after `dvc repro` (or an applied experiment) with the
overrides below (`OVERRIDES`: the handbook's simulator size up to its test week, its 15
features, a 7-day delay, its split and known-fraud rule). Writes to reports/handbook a
JSON report named NAME (the run's params, data summary and each model's test AUC ROC, AP
and Card Precision@100 with their 95 % intervals) and a Markdown one (that table with the
handbook's figures beside). docs/results.md renders its tables from the JSON
(tools/render_docs.py; tests/unit/test_docs_render.py checks them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "handbook"
MODELS = ("baseline", "weighted", "oversample", "logreg", "gbdt")
# `dvc exp run --temp -S ...` with these runs the comparison (the simulator's 136 days end on
# 2018-08-14, the last day of the handbook's test week).
OVERRIDES = [
    "download.url=transactions", "transactions.days=136",
    "data.label=tx_fraud", "data.time=tx_datetime", "data.time_format=iso8601",
    "data.ids=[transaction_id]", "data.entities=[customer_id,terminal_id]",
    "data.amount=tx_amount", "data.numeric=null",
    "features.windows=[1,7,30]", "features.delay=7", "features.spending=[customer_id]",
    "features.risk=[terminal_id]", "features.time_flags=true",
    "split.method=time", "split.test_days=7", "split.val_days=7",
    "split.known_fraud_days=14",
    "evaluate.candidates=[baseline,weighted,oversample,logreg,gbdt]",
]
# Published in the handbook (chapters 3.4 and 5.3): AUC ROC, average precision, CP@100 on
# its test week, one split; and at the best validation parameters (prequential selection).
HANDBOOK = {
    "single split": {"logistic regression": (0.871, 0.606, 0.291),
                     "random forest": (0.867, 0.658, 0.287),
                     "XGBoost": (0.862, 0.639, 0.273)},
    "prequential selection": {"XGBoost": (0.869, 0.687, 0.303),
                              "random forest": (0.870, 0.678, 0.299),
                              "feed-forward network": (0.876, 0.675, 0.303)},
}
FIGURES = (("auc", "AUC ROC"), ("prc", "AP"), ("card_precision", "CP@100"))


def collect(run: Path) -> dict[str, Any]:
    params = yaml.safe_load((run / "params.yaml").read_text(encoding="utf-8"))
    models = {}
    for model in MODELS:
        metrics = json.loads((run / "metrics" / f"{model}.json").read_text(encoding="utf-8"))
        models[model] = {f"{key}{end}": metrics[f"{key}{end}"] for key, _ in FIGURES
                         for end in ("", "_low", "_high")}
        models[model]["val_prc"] = metrics["val_prc"]
    choice = json.loads((run / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    return {"params": {key: params[key] for key in ("seed", "transactions", "data", "features",
                                                    "split", "scale", "train", "evaluate")},
            "data": json.loads((run / "metrics" / "data.json").read_text(encoding="utf-8")),
            "models": models, "chosen": choice.get("model"), "overrides": OVERRIDES}


def setting(report: dict[str, Any]) -> str:
    """One paragraph: the split, its sizes and what `auto` chose."""
    data, split = report["data"], report["params"]["split"]
    train = ("all earlier days" if split["train_days"] is None
             else f"{split['train_days']} days")
    clip = report["params"].get("scale", {}).get("clip")
    return (f"Test: the last {split['test_days']} days ({data['test_rows']:,} transactions, "
            f"{data['test_frauds']} frauds; cards with a fraud in the "
            f"{split['known_fraud_days']} days before the delay left out: "
            f"{data['known_fraud_dropped']:,} rows of val and test); validation: the "
            f"{split['val_days']} days before, a {report['params']['features']['delay']}-day "
            f"gap before each; training: {train} ({data['train_rows']:,} transactions, "
            f"{data['train_frauds']:,} frauds)"
            + (f"; `scale.clip` {clip:g}" if clip is not None else "")
            + ". 95 % intervals: stratified bootstrap of the test rows (CP@100: of its "
            f"days). `train.strategy: auto` chose **{report['chosen']}** on validation.\n")


def table(report: dict[str, Any]) -> str:
    """Each model's test figures with intervals, then the handbook's."""
    lines = ["| model | AUC ROC [95 %] | AP [95 %] | CP@100 [95 %] | validation AP |",
             "| --- | --- | --- | --- | --- |"]
    for model, figures in report["models"].items():
        cells = [f"{figures[k]:.3f} [{figures[k + '_low']:.3f}, {figures[k + '_high']:.3f}]"
                 for k, _ in FIGURES]
        lines.append(f"| {model} | {' | '.join(cells)} | {figures['val_prc']:.3f} |")
    for protocol, rows in HANDBOOK.items():
        for name, (auc, ap, cp) in rows.items():
            lines.append(f"| handbook, {protocol}: {name} | {auc:.3f} | {ap:.3f} | {cp:.3f} "
                         "| |")
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    return "\n".join([
        "# Simulated transactions beside the Fraud Detection Handbook", "",
        "Generated by `python -m tools.handbook_report`. " + setting(report), table(report),
        "The run's overrides of params.yaml:", "", "```",
        "dvc exp run --temp " + " ".join(f"-S '{o}'" for o in report["overrides"]),
        "```", ""])


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m tools.handbook_report", description=__doc__)
    cli.add_argument("run", type=Path, help="the project folder after the run")
    cli.add_argument("--name", default="week", help="the report's file names (NAME.json, "
                     "NAME.md) under reports/handbook")
    cli.add_argument("--overrides", default="",
                     help="extra -S overrides of this run, comma-separated (key=value,...)")
    args = cli.parse_args(argv)
    report = collect(args.run)
    report["overrides"] += [o for o in args.overrides.split(",") if o]
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{args.name}.json").write_text(
        json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (REPORTS / f"{args.name}.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
