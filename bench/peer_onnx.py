"""Parity and speed of the peers' ONNX detectors (src/fraud/serving/peer_onnx.py) on a finished run.

    python -m bench.peer_onnx [--project DIR] [--repeats 7]

Reads, from a project that has run `dvc repro`: models/{logreg,gbdt}.skops, the scale
stage's scaler.json, the split tables (raw V1..V28, Amount), the scaled feature arrays, each
model's metrics/<model>.json threshold, and models/fraud_detector.onnx (the network's
detector, for speed). Prints one JSON object: for each peer and split, the largest
|p_onnx - p_sklearn| and |logit_onnx - logit_sklearn| (scikit-learn scores the scaled float32
arrays, as evaluate does), the decisions that differ at the threshold, and the CPU and wall
time of each detector on the test rows with the session options and batches predict uses
(onnx_scoring).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import yaml
from scipy.special import expit

from bench.machine import load_averages
from fraud.kinds._scikit import load_model as load_peer
from fraud.kinds._scikit import scores as peer_scores
from fraud.serving.contract import read_scaler
from fraud.serving.onnx_scoring import BATCH_ROWS, session_options
from fraud.serving.peer_onnx import peer_detector
from tests.credit_card import INPUT_COLUMNS
from tests.project_files import scaled_file

PEERS = ("logreg", "gbdt")
SPLITS = ("train", "val", "test")


def _session(model_bytes: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model_bytes, sess_options=session_options(),
                                providers=["CPUExecutionProvider"])


def _score(session: ort.InferenceSession, rows: np.ndarray) -> np.ndarray:
    """As onnx_scoring.OnnxModel scores: BATCH_ROWS at a time."""
    (given,) = session.get_inputs()
    name = session.get_outputs()[0].name
    return np.concatenate([session.run([name], {given.name: rows[i:i + BATCH_ROWS]})[0]
                           .reshape(-1) for i in range(0, len(rows), BATCH_ROWS)])


def _parity(model: Any, stats: Any, eps: float, raw: np.ndarray, features: np.ndarray,
            threshold: float) -> dict[str, Any]:
    probability = _score(_session(peer_detector(model, stats, eps).SerializeToString()), raw)
    logit = _score(_session(peer_detector(model, stats, eps, "logit").SerializeToString()),
                   raw)
    sk_probability = peer_scores(model, features)
    sk_logit = np.asarray(model.decision_function(features), dtype=np.float64)
    flips = (probability >= threshold) != (sk_probability >= threshold)
    extra = {}
    if hasattr(model, "coef_"):  # logistic regression: against its decision in float64
        reference = features.astype(np.float64) @ model.coef_.astype(np.float64).ravel() \
            + float(model.intercept_[0])
        extra["max_abs_logit_vs_float64"] = float(np.abs(logit - reference).max())
    return {"rows": len(raw), "max_abs_p": float(np.abs(probability - sk_probability).max()),
            "max_abs_logit": float(np.abs(logit - sk_logit).max()),
            "identical_p_share": float(np.mean(probability == sk_probability)),
            "threshold": threshold, "flips": int(flips.sum()),
            "nearest_to_threshold": float(np.abs(sk_probability - threshold).min()),
            "probability_zero_or_one": int(np.sum((probability == 0) | (probability == 1))),
            "max_rel_p_vs_expit_of_logit": float(
                np.max(np.abs(probability - expit(logit)) / expit(logit))),
            "min_logit": float(logit.min()), **extra}


def _speed(sessions: dict[str, ort.InferenceSession], raw: np.ndarray,
           repeats: int) -> dict[str, Any]:
    """Rows per second of CPU time (this process's, so other load on a shared machine counts
    less than in wall time) and wall time; runs interleaved (A, B, C, A, ...); medians."""
    times: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []}
                                                for name in sessions}
    for session in sessions.values():  # warm-up
        _score(session, raw[:BATCH_ROWS])
    for _ in range(repeats):
        for name, session in sessions.items():
            wall, cpu = time.perf_counter(), time.process_time()
            _score(session, raw)
            times[name]["cpu"].append(time.process_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
    result: dict[str, Any] = {}
    for name, measured in times.items():
        cpu, wall = statistics.median(measured["cpu"]), statistics.median(measured["wall"])
        result[name] = {"cpu_s": cpu, "wall_s": wall, "rows_per_cpu_s": len(raw) / cpu}
    network = result["network"]["cpu_s"]
    for name in result:
        result[name]["cpu_vs_network"] = result[name]["cpu_s"] / network
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    root = args.project
    params = yaml.safe_load((root / "params.yaml").read_text())
    stats = read_scaler(scaled_file(root, "scaler.json"), float(params["scale"]["clip"]))
    eps = float(params["clean"]["eps"])
    raw = {split: pd.read_parquet(root / f"data/split/{split}.parquet")[INPUT_COLUMNS]
           .to_numpy(np.float64) for split in SPLITS}
    features = {split: np.load(scaled_file(root, f"{split}_features.npy")) for split in SPLITS}
    report: dict[str, Any] = {"load_average_start": load_averages()}
    sessions = {"network": _session((root / "models/fraud_detector.onnx").read_bytes())}
    for name in PEERS:
        model = load_peer(root / f"models/{name}.skops", f"train_{name}")
        threshold = float(json.loads((root / f"metrics/{name}.json").read_text())["threshold"])
        report[name] = {split: _parity(model, stats, eps, raw[split], features[split],
                                       threshold) for split in SPLITS}
        start = time.perf_counter()
        detector = peer_detector(model, stats, eps)
        report[name]["build_s"] = time.perf_counter() - start
        report[name]["file_bytes"] = detector.ByteSize()
        sessions[name] = _session(detector.SerializeToString())
    report["speed_test_split"] = _speed(sessions, raw["test"], args.repeats)
    report["load_average_end"] = load_averages()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
