"""The evaluate stage: threshold rules end to end, and its failures (one line, no outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.fraud.params import STRATEGIES, load_params
from src.fraud.schema import FEATURES, LABEL

PATTERNS = {"--metrics": "m/{strategy}.json", "--roc": "roc/{strategy}.csv",
            "--prc": "prc/{strategy}.csv", "--thresholds": "thr/{strategy}.csv",
            "--confusion-png": "img/cm_{strategy}.png"}
SINGLE = {"--selected-metrics": "m/evaluate.json", "--roc-png": "img/roc.png",
          "--prc-png": "img/prc.png"}


def outputs(base: Path) -> list[Path]:
    paths = [base / p.format(strategy=s) for p in PATTERNS.values() for s in STRATEGIES]
    return paths + [base / p for p in SINGLE.values()]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scaled val/test splits, their tables, and three small (briefly trained) models."""
    from src.fraud import model as M

    base = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(3)
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    for split, rows in (("train", 3000), ("val", 1500), ("test", 1500)):
        labels = (rng.random(rows) < 0.05).astype(np.uint8)
        features = rng.normal(size=(rows, 29)).astype(np.float32)
        features[labels == 1, :4] += 2.0
        np.save(base / f"{split}_features.npy", features)
        np.save(base / f"{split}_labels.npy", labels)
        table = pd.DataFrame(features, columns=FEATURES)
        table[LABEL] = labels
        table.to_parquet(base / f"{split}.parquet")
    x = np.load(base / "train_features.npy")
    y = np.load(base / "train_labels.npy").astype(np.float32).reshape(-1, 1)
    for strategy in STRATEGIES:
        M.set_determinism(1)
        model = M.make_model(29, params.model, output_bias=M.careful_bias(y))
        model.fit(x, y, batch_size=256, epochs=2, verbose=0)
        M.save_model(model, base / f"{strategy}.keras")
    return base


def evaluate_args(base: Path, out: Path, params: Path) -> list[str]:
    args = ["--params", str(params), "--model", str(base / "{strategy}.keras")]
    for split in ("val", "test"):
        args += [f"--{split}-features", str(base / f"{split}_features.npy"),
                 f"--{split}-labels", str(base / f"{split}_labels.npy"),
                 f"--{split}-table", str(base / f"{split}.parquet")]
    for flag, pattern in {**PATTERNS, **SINGLE}.items():
        args += [flag, str(out / pattern)]
    return args


def test_target_recall_rule_reaches_the_target_on_validation(inputs, tmp_path, write_params,
                                                             run_stage) -> None:
    params = write_params({"evaluate.threshold": "target_recall",
                           "evaluate.target_recall": "0.9", "train.strategy": "weighted",
                           "evaluate.cost_fn": "amount"})
    done = run_stage("evaluate", *evaluate_args(inputs, tmp_path, params))
    assert done.returncode == 0, done.stderr
    assert all(path.is_file() for path in outputs(tmp_path))
    selected = json.loads((tmp_path / "m/evaluate.json").read_text())
    assert selected["strategy"] == "weighted"
    assert selected["val_recall"] >= 0.9
    assert 0 < selected["threshold"] < 1
    weighted = json.loads((tmp_path / "m/weighted.json").read_text())
    assert {k: v for k, v in selected.items() if k != "strategy"} == weighted
    assert selected["cost"] >= 5 * selected["fp"]  # cost_fp 5 per false alarm + amounts missed


def test_missing_model_fails_in_one_line_and_leaves_nothing(inputs, tmp_path, write_params,
                                                            run_stage) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "baseline.keras").write_bytes((inputs / "baseline.keras").read_bytes())
    stale = tmp_path / "m/evaluate.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    args = evaluate_args(inputs, tmp_path, write_params())
    args[args.index("--model") + 1] = str(models / "{strategy}.keras")
    done = run_stage("evaluate", *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "weighted.keras" in lines[-1]
    assert "train_weighted" in lines[-1] and "Traceback" not in done.stderr
    assert not any(path.exists() for path in outputs(tmp_path))


def test_corrupt_model_is_a_clear_error(inputs, tmp_path, write_params, run_stage) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for strategy in STRATEGIES:
        (models / f"{strategy}.keras").write_text("<html>not a model</html>")
    args = evaluate_args(inputs, tmp_path, write_params())
    args[args.index("--model") + 1] = str(models / "{strategy}.keras")
    done = run_stage("evaluate", *args)
    assert done.returncode == 1
    assert "not a loadable Keras model" in done.stderr and "Traceback" not in done.stderr
    assert not any(path.exists() for path in outputs(tmp_path))
