"""The monitor on the real data: a random (stratified) split and an out-of-time split.

    python -m bench.monitor_study --out /tmp/monitor-study --threshold 0.5 \
        --case stratified=<run>/models/fraud_detector.onnx,<run>/data/split \
        --case time=<run>/models/fraud_detector.onnx,creditcard.csv.gz \
        --case time-trained=<time run>/models/detector/baseline.onnx,<time run>/data/split

Each case is NAME=MODEL,SPLIT: SPLIT is a finished run's data/split folder (its train and test
tables), or the raw CSV, split here as `split.method: time` splits it (sorted by Time,
64/16/20, duplicates grouped; clean.eps 0.001, seed 42). For each case it writes, under
--out, the reference of the train part (raw inputs and MODEL's scores on them) and the test
part as a CSV, then runs `python -m src.monitor` on that CSV as a user would (summary on
stdout, report as NAME.json).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fraud.core.files import file_sha256, write_json
from fraud.core.params import SplitParams
from fraud.data.prepare import clean, read_raw_csv, read_table, split
from fraud.monitoring.profile import build_reference, reference_to_json
from fraud.serving.onnx_contract import DETECTOR
from fraud.serving.onnx_scoring import load_onnx
from tests.credit_card import INPUT_COLUMNS, LABEL, TIME

SEED, EPS = 42, 0.001  # params.yaml's seed and clean.eps
TIME_SPLIT = SplitParams(method="time", group_duplicates=True, test_size=0.2, val_size=0.2)


def train_and_test(source: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if source.is_dir():
        return (read_table(source / "train.parquet", "split"),
                read_table(source / "test.parquet", "split"))
    parts = split(clean(read_raw_csv(source), EPS), TIME_SPLIT, SEED)
    return parts.train, parts.test


def prepare(name: str, model: Path, source: Path, out: Path) -> tuple[Path, Path]:
    """Writes <name>.reference.json (from train) and <name>-test.csv; returns their paths."""
    train, test = train_and_test(source)
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
    cli.add_argument("--case", action="append", required=True, metavar="NAME=MODEL,SPLIT")
    cli.add_argument("--threshold", type=float, required=True)
    cli.add_argument("--out", type=Path, required=True)
    args = cli.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for case in args.case:
        name, paths = case.split("=", 1)
        model, source = (Path(p) for p in paths.split(","))
        reference, batch = prepare(name, model, source, args.out)
        print(f"$ python -m src.monitor MODEL {batch.name} --reference {reference.name} "
              f"--threshold {args.threshold:g} --json {name}.json", flush=True)
        subprocess.run([sys.executable, "-m", "src.monitor", str(model), str(batch),
                        "--reference", str(reference), "--threshold", str(args.threshold),
                        "--json", str(args.out / f"{name}.json")], check=True)


if __name__ == "__main__":
    main()
