"""The monitor on the real data: a random (stratified) split and an out-of-time split.

    python -m bench.monitor_study --raw creditcard.csv.gz --model models/fraud_detector.onnx \
        --stratified data/split --out /tmp/monitor-study

For each split it writes, under --out, the reference of the train part (raw inputs and the
model's scores on them) and the test part as a CSV, then runs `python -m src.monitor` on
that CSV as a user would (summary on stdout, report as JSON). The time split is made here
from the raw CSV as `split.method: time` makes it (sorted by Time, 64/16/20, duplicates
grouped), with the card's clean.eps; the stratified one is read from a finished run's
data/split tables. The model scores both: its scaler is the one its own run fitted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from src.fraud.data.prepare import clean, read_raw_csv, read_table, split
from src.fraud.files import file_sha256, write_json
from src.fraud.monitoring.profile import build_reference, reference_to_json
from src.fraud.params import SplitParams
from src.fraud.schema import INPUT_COLUMNS, LABEL, TIME
from src.fraud.serving.onnx_contract import DETECTOR
from src.fraud.serving.onnx_scoring import load_onnx

SEED = 42


def time_split(raw_csv: Path, eps: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    settings = SplitParams(method="time", group_duplicates=True, test_size=0.2, val_size=0.2)
    parts = split(clean(read_raw_csv(raw_csv), eps), settings, SEED)
    return parts.train, parts.test


def stratified_split(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_table(folder / "train.parquet", "split"), read_table(folder / "test.parquet",
                                                                     "split")


def prepare(name: str, train: pd.DataFrame, test: pd.DataFrame, model: Path, out: Path
            ) -> tuple[Path, Path]:
    """Writes <name>.reference.json (from train) and <name>-test.csv; returns their paths."""
    detector = load_onnx(model, "export", DETECTOR)
    features = train[INPUT_COLUMNS].to_numpy(dtype=np.float64)
    reference = build_reference(features, detector(features), file_sha256(model))
    reference_path, batch_path = out / f"{name}.reference.json", out / f"{name}-test.csv"
    write_json(reference_path, reference_to_json(reference), sort_keys=False)
    test[[TIME, *INPUT_COLUMNS, LABEL]].to_csv(batch_path, index=False)
    print(f"{name}: train {len(train):,} rows ({int(train[LABEL].sum())} frauds), test "
          f"{len(test):,} ({int(test[LABEL].sum())}); reference "
          f"{reference_path.stat().st_size:,} bytes", file=sys.stderr)
    return reference_path, batch_path


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--raw", type=Path, required=True, help="the raw creditcard CSV(.gz)")
    cli.add_argument("--model", type=Path, required=True, help="the ONNX detector (its card "
                                                               "beside it)")
    cli.add_argument("--stratified", type=Path, required=True,
                     help="a finished run's data/split folder")
    cli.add_argument("--out", type=Path, required=True)
    args = cli.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    eps = float(json.loads(args.model.with_suffix(".json").read_text())["eps"])
    for name, (train, test) in (("stratified", stratified_split(args.stratified)),
                                ("time", time_split(args.raw, eps))):
        reference, batch = prepare(name, train, test, args.model, args.out)
        command = [sys.executable, "-m", "src.monitor", str(args.model), str(batch),
                   "--reference", str(reference), "--json", str(args.out / f"{name}.json")]
        print(f"$ python -m src.monitor MODEL {batch.name} --reference {reference.name} "
              f"--json {name}.json", flush=True)
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
