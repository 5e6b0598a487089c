"""predict with what export ships: a calibrated float64 detector and the card's decision rule
(a threshold, or expected_cost with a constant cost_fn or each row's Amount). No TensorFlow:
a small logistic regression's detector with a Platt calibrator appended, as export does."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fraud.commands.predict import build_parser
from fraud.core.calibrator import linear
from fraud.core.decision import Decision, decision_from_card, expected_cost_flags
from fraud.core.files import file_sha256, write_json
from fraud.data.prepare import clean, features_and_labels, fit_scaler, scale
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from fraud.errors import PipelineError
from fraud.serving.calibrated import calibrated_onnx
from fraud.serving.contract import ScalerStats, save_onnx
from fraud.serving.onnx_contract import DETECTOR
from fraud.serving.onnx_scoring import load_onnx
from fraud.serving.peer_onnx import peer_detector
from tests.conftest import run_predict
from tests.credit_card import INPUT_COLUMNS

EPS, CLIP = 0.001, 5.0


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """fraud_detector.onnx (calibrated), its rows, and its float64 probabilities."""
    root = tmp_path_factory.mktemp("decision")
    features, labels = features_and_labels(clean(generate_creditcard(3000, 0.05, 3), EPS))
    scaler = fit_scaler(features)
    model = LogisticRegression(max_iter=1000).fit(scale(features, scaler, CLIP), labels)
    stats = ScalerStats(mean=scaler.mean_, scale=scaler.scale_, clip=CLIP)
    # a prior shift, as for a model trained on re-weighted classes
    path = root / "fraud_detector.onnx"
    save_onnx(calibrated_onnx(peer_detector(model, stats, EPS), linear("platt", 0.9, -1.5)),
              path)
    frame = generate_creditcard(2000, 0.05, 4)
    write_creditcard_csv(frame, root / "rows.csv")
    rows = frame[INPUT_COLUMNS].to_numpy(np.float64)
    return {"root": root, "model": path, "csv": root / "rows.csv", "rows": rows,
            "p": load_onnx(path, "export", DETECTOR)(rows)}


def with_model(card: dict[str, Any], model: Path) -> dict[str, Any]:
    """The card as export writes it: it names the sha256 of the model it belongs to."""
    return {**card, "files": {"onnx": {"file": model.name, "sha256": file_sha256(model)}}}


def scored(shipped: dict[str, Any], card: dict[str, Any] | None, capsys: Any,
           *extra: Any) -> pd.DataFrame:
    if card is not None:
        write_json(shipped["root"] / "fraud_detector.json", with_model(card, shipped["model"]))
    result = run_predict([shipped["model"], shipped["csv"], "-q", *extra], capsys)
    assert result.code == 0, result.stderr
    return pd.read_csv(io.StringIO(result.stdout))


def test_flagged_is_decided_on_the_float64_probability(shipped: dict[str, Any],
                                                       capsys: Any) -> None:
    """A threshold between a row's float64 probability and its float32 rounding (above
    it): the row is not flagged, though the printed float32 value is >= the threshold."""
    p = shipped["p"]
    assert p.dtype == np.float64
    row = int(np.flatnonzero(p.astype(np.float32).astype(np.float64) > p)[len(p) // 10])
    threshold = float(np.nextafter(p[row], 1.0))
    scores = scored(shipped, None, capsys, "--threshold", repr(threshold))
    assert np.float32(scores["probability"][row]) >= threshold > p[row]
    np.testing.assert_array_equal(scores["flagged"], (p >= threshold).astype(int))
    assert scores["flagged"][row] == 0
    np.testing.assert_array_equal(scores["probability"].to_numpy(np.float32),
                                  p.astype(np.float32))  # printed as before


@pytest.mark.parametrize("cost_fn", ["amount", 300.0])
def test_the_cards_expected_cost_rule(shipped: dict[str, Any], capsys: Any,
                                      cost_fn: Any) -> None:
    """p · cost_fn > (1 − p) · cost_fp, with cost_fn each row's Amount or one number."""
    card = {"threshold": None if cost_fn == "amount" else 5 / 305,
            "decision": {"rule": "expected_cost", "cost_fp": 5.0, "cost_fn": cost_fn},
            "input_columns": INPUT_COLUMNS}
    scores = scored(shipped, card, capsys)
    amounts = shipped["rows"][:, INPUT_COLUMNS.index("Amount")]
    miss = amounts if cost_fn == "amount" else cost_fn
    expected = shipped["p"] * miss > (1 - shipped["p"]) * 5.0
    assert 0 < expected.sum() < len(expected)
    np.testing.assert_array_equal(scores["flagged"], expected.astype(int))
    np.testing.assert_array_equal(expected, expected_cost_flags(shipped["p"], 5.0, miss))
    # --threshold replaces the card's rule
    overridden = scored(shipped, card, capsys, "--threshold", "0.5")
    np.testing.assert_array_equal(overridden["flagged"], (shipped["p"] >= 0.5).astype(int))


def test_the_summary_names_the_rule(shipped: dict[str, Any], capsys: Any) -> None:
    write_json(shipped["root"] / "fraud_detector.json", with_model({
        "decision": {"rule": "expected_cost", "cost_fp": 5, "cost_fn": "amount"}},
        shipped["model"]))
    result = run_predict([shipped["model"], shipped["csv"], "-o",
                          shipped["root"] / "out.csv"], capsys)
    assert result.code == 0, result.stderr
    assert "where probability x amount > (1 - probability) x 5" in result.stderr


@pytest.mark.parametrize(("decision", "threshold", "fragment"), [
    ({"rule": "expected_cost", "cost_fp": -1, "cost_fn": 500}, None, "cost_fp >= 0"),
    ({"rule": "expected_cost", "cost_fp": 5, "cost_fn": "per row"}, None, "'per row'"),
    ({"rule": "expected_cost", "cost_fp": 0, "cost_fn": 0}, None, "not both 0"),
    (None, 1.5, "no valid 'threshold'"),
    ({"rule": "threshold"}, None, "no valid 'threshold'"),
])
def test_a_bad_rule_in_the_card_is_one_line(decision: Any, threshold: Any,
                                            fragment: str) -> None:
    with pytest.raises(PipelineError, match="card") as error:
        decision_from_card(decision, threshold, "fraud_detector.json")
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_decision_rules_by_hand() -> None:
    features = np.zeros((3, len(INPUT_COLUMNS)))
    features[:, INPUT_COLUMNS.index("Amount")] = [1000.0, 10.0, 0.0]
    p = np.array([0.01, 0.5, 0.9])
    by_amount = Decision(rule="expected_cost", cost_fp=5.0, cost_fn="amount")
    # 0.01 x 1000 > 0.99 x 5; 0.5 x 10 > 0.5 x 5; 0.9 x 0 is not > 0.1 x 5
    assert by_amount.flags(p, features).tolist() == [True, True, False]
    assert Decision(threshold=0.2).flags(p, features).tolist() == [False, True, True]


def test_help_says_a_keras_detector_is_uncalibrated() -> None:
    text = build_parser().format_help()
    assert "models/fraud_detector.onnx" in text and "uncalibrated" in text
    assert "fraud_detector.keras" not in text


def test_no_path_in_this_file_names_the_dropped_keras_export() -> None:
    """export ships the ONNX only; the docs and the code name no fraud_detector.keras."""
    root = Path(__file__).resolve().parents[2]
    patterns = ("src/**/*.py", "*.md", "docs/*.md", "dvc.yaml")
    named = [str(path.relative_to(root)) for pattern in patterns for path in root.glob(pattern)
             if "fraud_detector.keras" in path.read_text(encoding="utf-8")]
    assert named == []
