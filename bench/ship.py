"""Parity of the shipped (calibrated) detectors with scikit-learn / the network + calibrator,
on a finished run; writes the detectors and cards for timing `python -m src.predict`.

    python -m bench.ship --project DIR --out DIR [--method platt]

Reads, from a project that has run `dvc repro`: models/{logreg,gbdt}.skops, the networks'
models/<name>.onnx and models/detector/<name>.onnx, the scale stage's scaler.json and
arrays, the split tables (raw V1..V28, Amount), params.yaml (clean.eps, scale.clip,
evaluate.cost_fp / cost_fn). Fits each model's calibrator on the validation logits (as
evaluate_model does; `--method`), builds the calibrated detector as export does, and prints
one JSON object: per model and split, the largest |p_shipped - p_reference| (reference: the
numpy calibrator on scikit-learn's decision_function of the scaled float32 arrays, or on the
network's own ONNX logit), and the decisions that differ at 0.5, at the expected-cost
threshold cost_fp/(cost_fp+cost_fn) and under the per-row `amount` rule. `--out` receives
<model>.onnx and <model>.json (a card with the expected_cost rule) for predict timings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import yaml

from fraud.core.decision import expected_cost_flags, expected_cost_threshold
from fraud.core.files import file_sha256, write_json
from fraud.evaluation.calibration import fit_calibrator
from fraud.kinds._scikit import load_model as load_peer
from fraud.serving.calibrated import calibrated_onnx, with_logit_output
from fraud.serving.contract import read_scaler, save_onnx
from fraud.serving.onnx_contract import DETECTOR
from fraud.serving.onnx_scoring import load_onnx
from fraud.serving.peer_onnx import peer_detector
from tests.credit_card import INPUT_COLUMNS
from tests.project_files import scaled_file

SPLITS = ("val", "test")


def _network_logits(path: Path, features: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(with_logit_output(onnx.load(path)).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"features": features})[0][:, 0].astype(np.float64)


def _flips(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.sum(a != b))


def _compare(shipped: np.ndarray, reference: np.ndarray, amounts: np.ndarray,
             costs: tuple[float, float]) -> dict[str, Any]:
    cost_fp, cost_fn = costs
    cut = expected_cost_threshold(cost_fp, cost_fn)
    return {"max_abs_dp": float(np.abs(shipped - reference).max()),
            "max_rel_dp": float((np.abs(shipped - reference) / reference).max()),
            "flips_at_0.5": _flips(shipped >= 0.5, reference >= 0.5),
            f"flips_at_{cut:.4g}": _flips(shipped >= cut, reference >= cut),
            "flips_amount_rule": _flips(expected_cost_flags(shipped, cost_fp, amounts),
                                        expected_cost_flags(reference, cost_fp, amounts)),
            "closest_to_0.5": float(np.abs(reference - 0.5).min()),
            "zeros": int(np.sum(shipped == 0)), "min_p": float(shipped.min())}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--project", type=Path, default=Path("."))
    cli.add_argument("--out", type=Path, required=True)
    cli.add_argument("--method", default="platt")
    cli.add_argument("--models", default="gbdt,logreg,weighted,baseline")
    args = cli.parse_args()
    root = args.project
    params = yaml.safe_load((root / "params.yaml").read_text())
    eps, clip = float(params["clean"]["eps"]), float(params["scale"]["clip"])
    costs = (float(params["evaluate"]["cost_fp"]), float(params["evaluate"]["cost_fn"]))
    stats = read_scaler(scaled_file(root, "scaler.json"), clip)
    data = {s: {"raw": pd.read_parquet(root / f"data/split/{s}.parquet"),
                "x": np.load(scaled_file(root, f"{s}_features.npy")),
                "y": np.load(scaled_file(root, f"{s}_labels.npy"))} for s in SPLITS}
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"method": args.method, "costs": costs}
    for name in args.models.split(","):
        if name in ("logreg", "gbdt"):
            model = load_peer(root / f"models/{name}.skops", f"train_{name}")
            detector = peer_detector(model, stats, eps)
            logits = {s: np.asarray(model.decision_function(d["x"]), dtype=np.float64)
                      for s, d in data.items()}
        else:
            detector = onnx.load(root / f"models/detector/{name}.onnx")
            logits = {s: _network_logits(root / f"models/{name}.onnx", d["x"])
                      for s, d in data.items()}
        calibrator = fit_calibrator(args.method, logits["val"], data["val"]["y"])
        path = args.out / f"{name}.onnx"
        save_onnx(calibrated_onnx(detector, calibrator), path)
        write_json(path.with_suffix(".json"), {
            "model": name, "input_columns": INPUT_COLUMNS, "threshold": None,
            "files": {"onnx": {"file": path.name, "sha256": file_sha256(path)}},
            "decision": {"rule": "expected_cost", "cost_fp": costs[0], "cost_fn": "amount"}})
        shipped = load_onnx(path, "export", DETECTOR)
        report[name] = {"calibrator": calibrator.to_dict()} | {
            s: _compare(shipped(d["raw"][INPUT_COLUMNS].to_numpy(np.float64)),
                        calibrator(logits[s]), d["raw"]["Amount"].to_numpy(np.float64), costs)
            for s, d in data.items()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
