"""Drift and label-free monitoring: the library (monitoring/) and `python -m src.monitor`.

The CLI tests score with a tiny ONNX detector built here (a logistic model on the raw
columns, within the detector contract), so they need neither TensorFlow nor a trained model.

HOSTILE (name -> (build, fragment)) is the corpus tools/adversarial.py reruns: `build(folder)`
writes its files into an empty folder and returns monitor's arguments; the one error line
must hold `fragment`, and no report may be written.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from fraud.commands.monitor import main
from fraud.core.files import file_sha256, write_json
from fraud.errors import PipelineError
from fraud.monitoring.drift import (
    EMPTY_BIN_SHARE,
    MAJOR,
    MODERATE,
    STABLE,
    band,
    psi,
    psi_noise_floor,
)
from fraud.monitoring.estimates import Tally, estimated, realised
from fraud.monitoring.profile import (
    CARD_KEY,
    build_profile,
    build_reference,
    check_reference_model,
    model_reference_json,
    read_model_reference,
    reference_from_card,
    reference_from_json,
    reference_to_json,
)
from fraud.monitoring.report import (
    DRIFT_COLUMNS,
    BatchMonitor,
    drift_rows,
    flat_metrics,
    summary,
)
from fraud.serving.contract import INPUT_NAME, OUTPUT_NAME
from tests.credit_card import INPUT_COLUMNS, LABEL, TIME

AMOUNT = INPUT_COLUMNS.index("Amount")
# The tiny detector: logit = BIAS + Σ WEIGHTS·x, so ~2 % of rows are frauds.
WEIGHTS = np.zeros(len(INPUT_COLUMNS))
WEIGHTS[:3] = (1.5, -1.0, 0.8)
BIAS = -5.0


def transactions(rows: int, seed: int, shift: dict[str, float] | None = None) -> np.ndarray:
    """Raw inputs: V columns standard normal (plus `shift` in sd), Amount log-normal cents."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, len(INPUT_COLUMNS)))
    features[:, AMOUNT] = np.round(np.exp(rng.normal(3.0, 1.2, rows)), 2)
    for name, offset in (shift or {}).items():
        features[:, INPUT_COLUMNS.index(name)] += offset
    return features


def probabilities(features: np.ndarray) -> np.ndarray:
    """What the tiny detector returns: float32 sigmoid, as float64."""
    logit = features @ WEIGHTS + BIAS
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32).astype(np.float64)


# --- PSI ----------------------------------------------------------------------------------

def test_psi_matches_its_closed_form() -> None:
    # shares (0.5, 0.5) -> (0.25, 0.75): 0.25·ln 2 + 0.25·ln 1.5 = 0.25·ln 3
    assert psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(0.25 * math.log(3))
    assert psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0, abs=1e-15)
    # symmetric in its two histograms
    assert psi(np.array([5, 1, 4]), np.array([2, 2, 6])) == \
        pytest.approx(psi(np.array([2, 2, 6]), np.array([5, 1, 4])))


def test_an_empty_bin_counts_as_the_stated_share() -> None:
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) \
        + (0.5 - EMPTY_BIN_SHARE) * math.log(0.5 / EMPTY_BIN_SHARE)
    assert psi(np.array([100, 0]), np.array([50, 50])) == pytest.approx(expected)
    assert math.isfinite(psi(np.array([3, 4]), np.array([0, 0])))


@pytest.mark.parametrize(("value", "name"), [(0.0, STABLE), (0.0999, STABLE), (0.1, MODERATE),
                                             (0.2499, MODERATE), (0.25, MAJOR), (3.0, MAJOR)])
def test_bands_are_named_at_the_usual_cuts(value: float, name: str) -> None:
    assert band(value) == name


def test_psi_of_two_samples_of_one_distribution_is_near_its_noise_floor() -> None:
    rng = np.random.default_rng(3)
    reference = build_profile(rng.normal(size=20_000))
    values = [psi(reference.counts, reference.bin_counts(rng.normal(size=2_000)))
              for _ in range(200)]
    floor = psi_noise_floor(len(reference.counts), 20_000, 2_000)
    assert np.mean(values) == pytest.approx(floor, rel=0.2)


# --- bins ---------------------------------------------------------------------------------

def test_continuous_values_get_ten_equal_mass_bins_with_open_ends() -> None:
    values = np.random.default_rng(0).normal(size=10_000)
    profile = build_profile(values)
    assert len(profile.cuts) == 9 and profile.counts.sum() == 10_000
    assert np.all(np.abs(profile.counts - 1_000) <= 2)
    outside = profile.bin_counts(np.array([-1e9, 1e9]))
    assert outside[0] == 1 and outside[-1] == 1
    # a value on a cut belongs to the bin above it
    assert profile.bin_counts(profile.cuts[:1])[1] == 1


def test_ties_make_fewer_bins_none_empty() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([np.zeros(5_000), np.ones(2_500), rng.uniform(2, 3, 2_500)])
    profile = build_profile(values)
    assert (profile.counts > 0).all() and profile.counts.sum() == len(values)
    # the point mass at 0 is one bin, and the one at 1 starts the next (a cut at 1)
    assert profile.counts[0] == 5_000 and profile.cuts[0] == 1.0
    assert len(profile.counts) == 4
    assert build_profile(np.full(100, 7.0)).counts.tolist() == [100]


def test_a_categorical_column_drifts_over_its_levels_and_an_unseen_bucket() -> None:
    from fraud.monitoring.profile import build_level_profile

    rng = np.random.default_rng(3)
    levels = ("atm", "pos", "web")
    train = rng.choice(levels, 20_000, p=[0.2, 0.5, 0.3]).astype(object)
    profile = build_level_profile(train, levels)
    assert profile.counts[-1] == 0 and profile.counts.sum() == 20_000
    same = rng.choice(levels, 5_000, p=[0.2, 0.5, 0.3]).astype(object)
    assert psi(profile.counts, profile.bin_counts(same)) < psi_noise_floor(4, 20_000, 5_000) * 3
    moved = np.array(["atm"] * 1_000 + ["pos"] * 1_000 + ["web"] * 1_000 + ["app"] * 1_500
                     + [None] * 500 + [""] * 1_000, dtype=object)
    counts = profile.bin_counts(moved)
    assert counts.tolist() == [1_000, 1_000, 1_000, 3_000]  # new level, None and "" unseen
    assert band(psi(profile.counts, counts)) == "major shift"


def test_a_reference_with_a_categorical_column_round_trips_and_reports_its_drift() -> None:
    from fraud.monitoring.profile import LevelProfile, column_profiles

    rng = np.random.default_rng(4)
    rows = np.empty((4_000, 2), dtype=object)
    rows[:, 0] = rng.normal(0, 1, 4_000)
    rows[:, 1] = rng.choice(["atm", "pos", "web"], 4_000, p=[0.2, 0.5, 0.3])
    scores = rng.uniform(0.001, 0.9, 4_000)
    columns = column_profiles(rows, names=["x", "channel"],
                              levels={"channel": ("atm", "pos", "web")})
    reference = build_reference(rows, scores, columns=columns, names=["x", "channel"])
    again = reference_from_json(json.loads(json.dumps(reference_to_json(reference))), "r",
                                ["x", "channel"])
    assert isinstance(again.columns["channel"], LevelProfile)
    assert again.columns["channel"].counts.tolist() == reference.columns["channel"].counts.tolist()
    batch = rows[:1_000].copy()
    batch[:500, 1] = "app"  # a level training never saw: the unseen bin
    monitor = BatchMonitor(again, 0.5)
    monitor.add(batch, scores[:1_000], np.zeros(1_000))
    report = monitor.report()
    assert report["psi_max_column"] == "channel" and report["columns"]["channel"]["psi"] > 0.25
    bad = reference_to_json(reference)
    bad["columns"]["channel"]["counts"][0] = 0
    with pytest.raises(PipelineError, match="training rows at every level"):
        reference_from_json(bad, "r", ["x", "channel"])


def test_a_reference_round_trips_through_json() -> None:
    features = transactions(3_000, seed=0)
    reference = build_reference(features, probabilities(features), model_sha256="ab" * 32)
    text = json.dumps(reference_to_json(reference))
    again = reference_from_json(json.loads(text), "ref.json")
    assert again.rows == reference.rows and again.model_sha256 == reference.model_sha256
    for name in INPUT_COLUMNS:
        assert np.array_equal(again.columns[name].cuts, reference.columns[name].cuts)
        assert np.array_equal(again.columns[name].counts, reference.columns[name].counts)
    assert np.array_equal(again.score.cuts, reference.score.cuts)
    assert len(text) < 12_000


def _reference_json(**changes: object) -> dict:
    features = transactions(500, seed=0)
    data = reference_to_json(build_reference(features, probabilities(features)))
    data.update(changes)
    return data


@pytest.mark.parametrize(("data", "message"), [
    ([1, 2], "not a monitoring reference"),
    (_reference_json(format="other"), "not a monitoring reference"),
    (_reference_json(version=9), "version 9"),
    (_reference_json(rows=-1), "'rows' must be a whole number from 1 to"),
    (_reference_json(rows=10**40), "'rows' must be a whole number from 1 to"),
    (_reference_json(bins=10**30), "'bins' from 2 to 100"),
    (_reference_json(bins=1), "'bins' from 2 to 100"),
    ({**_reference_json(), "columns": {"V1": {}}}, "missing 'V2'"),
    ({**_reference_json(), "score": {"cuts": [0.2, 0.1], "counts": [1, 1, 498]}},
     "strictly increasing"),
    ({**_reference_json(), "score": {"cuts": [0.1], "counts": [1, 2]}}, "add up to 3"),
    ({**_reference_json(), "score": {"cuts": ["x"], "counts": [1, 499]}}, "finite numbers"),
    ({**_reference_json(), "score": {"cuts": [-10**400], "counts": [1, 499]}},
     "finite numbers"),
    ({**_reference_json(), "score": {"cuts": [], "counts": [500]}}, "expected 1 to 9 cuts"),
    ({**_reference_json(bins=3), "score": {"cuts": [0.1, 0.2, 0.3], "counts": [1, 1, 1, 497]}},
     r"expected [01] to 2 cuts \(its 'bins' is 3\)"),
    ({**_reference_json(), "score": {"cuts": [0.1, 0.2], "counts": [0, 1, 499]}},
     "bin 1 has no training rows"),
    ({**_reference_json(), "score": {"cuts": [2.0], "counts": [1, 499]}},
     r"cuts outside \(0, 1\]"),
])
def test_a_malformed_reference_is_one_line(data: object, message: str) -> None:
    with pytest.raises(PipelineError, match=message) as error:
        reference_from_json(data, "ref.json")
    assert "\n" not in str(error.value)


# --- drift on synthetic batches -------------------------------------------------------------

def _monitor(batch: np.ndarray, labels: np.ndarray | None = None, chunk: int = 0
             ) -> dict:
    features = transactions(20_000, seed=0)
    monitor = BatchMonitor(build_reference(features, probabilities(features)), 0.5)
    step = chunk or len(batch)
    for start in range(0, len(batch), step):
        part = batch[start:start + step]
        monitor.add(part, probabilities(part),
                    None if labels is None else labels[start:start + step])
    return monitor.report()


def test_a_shifted_feature_is_flagged_and_the_rest_are_not() -> None:
    report = _monitor(transactions(5_000, seed=1, shift={"V3": 0.5}))
    bands = {name: entry["band"] for name, entry in report["columns"].items()}
    assert bands.pop("V3") != STABLE and report["columns"]["V3"]["psi"] > 0.1
    assert set(bands.values()) == {STABLE}
    assert report["psi_max_column"] == "V3" and report["columns_moderate_or_more"] == 1
    assert report["score"]["psi"] > 0.01  # V3 moves the score too


def test_flat_metrics_are_numbers_with_the_error() -> None:
    batch = transactions(3_000, seed=6, shift={"V3": 0.5})
    labels = (np.random.default_rng(6).uniform(size=len(batch)) < probabilities(batch))
    report = _monitor(batch, labels.astype(float))
    flat = flat_metrics(report)
    assert all(isinstance(v, (int, float)) for v in flat.values())
    assert flat["psi_max"] == report["columns"]["V3"]["psi"] and "psi_V1" not in flat
    assert (flat["columns_stable"], flat["columns_moderate"] + flat["columns_major"]) == \
        (len(INPUT_COLUMNS) - 1, 1)
    assert flat["frauds_error"] == pytest.approx(report["estimated"]["frauds"]
                                                 - report["realised"]["frauds"])
    assert flat["recall_error"] == pytest.approx(flat["recall_estimated"]
                                                 - flat["recall_realised"])
    assert "recall_error" not in flat_metrics(_monitor(batch))


def test_the_drift_table_has_every_column_and_the_score_largest_first() -> None:
    report = _monitor(transactions(3_000, seed=7, shift={"V5": 0.6}))
    rows = drift_rows(report)
    assert [row["column"] for row in rows][0] == "V5"
    assert {row["column"] for row in rows} == {*INPUT_COLUMNS, "score"}
    assert [row["psi"] for row in rows] == sorted((row["psi"] for row in rows), reverse=True)
    assert set(rows[0]) == set(DRIFT_COLUMNS)


def test_an_unshifted_batch_is_stable_everywhere() -> None:
    report = _monitor(transactions(5_000, seed=2))
    assert report["columns_moderate_or_more"] == 0 and report["psi_max"] < 0.02
    assert report["score"]["band"] == STABLE


def test_chunked_equals_whole() -> None:
    batch = transactions(5_003, seed=4, shift={"V1": 0.3})
    labels = (np.random.default_rng(4).uniform(size=len(batch)) < 0.05).astype(float)
    labels[::97] = np.nan  # unlabelled rows
    whole, chunked = _monitor(batch, labels), _monitor(batch, labels, chunk=333)
    assert _close(chunked, whole)
    assert chunked["realised"]["rows"] == len(batch) - len(labels[::97])


def _close(left: object, right: object) -> bool:
    """Equal, up to float summation order."""
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_close(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_close, left, right))
    if isinstance(left, float):
        return left == pytest.approx(right, rel=1e-12, abs=1e-12)
    return left == right


# --- label-free estimates ---------------------------------------------------------------------

def test_label_free_estimates_equal_the_realised_ones_in_expectation() -> None:
    """Labels drawn from the probabilities: the mean realised count, true positives and
    precision over many draws are the estimates (within 4 standard errors), and the 95 %
    interval of the fraud count covers about 95 % of draws."""
    rng = np.random.default_rng(7)
    p = probabilities(transactions(4_000, seed=7))
    draws = 400
    tallies = []
    for _ in range(draws):
        tally = Tally()
        tally.add(p, 0.5, (rng.uniform(size=len(p)) < p).astype(float))
        tallies.append(tally)
    estimate = estimated(tallies[0])
    seen = [realised(t) for t in tallies]
    for key in ("frauds", "true_positives", "precision"):
        values = np.array([s[key] for s in seen], dtype=float)
        assert abs(values.mean() - estimate[key]) < 4 * values.std() / math.sqrt(draws), key
    recalls = np.array([s["recall"] for s in seen])
    assert recalls.mean() == pytest.approx(estimate["recall"], abs=0.01)  # a ratio: ~
    inside = [estimate["frauds_low"] <= s["frauds"] <= estimate["frauds_high"] for s in seen]
    assert 0.9 <= np.mean(inside) <= 0.99


def test_estimates_by_hand() -> None:
    tally = Tally()
    tally.add(np.array([0.9, 0.6, 0.2, 0.1]), 0.5, np.array([1.0, 0.0, 1.0, 0.0]))
    estimate, truth = estimated(tally), realised(tally)
    assert estimate["frauds"] == pytest.approx(1.8) and estimate["flagged"] == 2
    assert estimate["precision"] == pytest.approx(0.75)
    assert estimate["recall"] == pytest.approx(1.5 / 1.8)
    assert (truth["frauds"], truth["true_positives"], truth["precision"], truth["recall"]) \
        == (2, 1, 0.5, 0.5)
    none_flagged = Tally()
    none_flagged.add(np.array([0.1, 0.2]), 0.5)
    assert estimated(none_flagged)["precision"] is None


# --- the command --------------------------------------------------------------------------------

def tiny_detector(path: Path) -> Path:
    """The detector contract's signature around logit = BIAS + x·WEIGHTS."""
    nodes = [helper.make_node("MatMul", [INPUT_NAME, "w"], ["z0"]),
             helper.make_node("Add", ["z0", "b"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["p64"]),
             helper.make_node("Cast", ["p64"], [OUTPUT_NAME], to=TensorProto.FLOAT)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE,
                                                      ["rows", len(INPUT_COLUMNS)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["rows", 1])],
        initializer=[numpy_helper.from_array(WEIGHTS.reshape(-1, 1), "w"),
                     numpy_helper.from_array(np.array([BIAS]), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def batch_csv(path: Path, features: np.ndarray, labels: bool = True,
              drop: str | None = None) -> Path:
    frame = pd.DataFrame(features, columns=INPUT_COLUMNS)
    frame.insert(0, TIME, np.arange(len(frame), dtype=float))
    if labels:
        draws = np.random.default_rng(5).uniform(size=len(frame))
        frame[LABEL] = (draws < probabilities(features)).astype(int)
    frame.drop(columns=[drop] if drop else []).to_csv(path, index=False)
    return path


def ship(folder: Path) -> Path:
    """models/fraud_detector.onnx with its card beside it (recording the file's sha256), the
    reference inside the card (as export writes it) and, for --reference, in a file of its
    own."""
    model = tiny_detector(folder / "fraud_detector.onnx")
    features = transactions(20_000, seed=0)
    reference = build_reference(features, probabilities(features), file_sha256(model))
    write_json(folder / "fraud_detector.json", {
        "threshold": 0.5, "input_columns": INPUT_COLUMNS,
        "files": {"onnx": {"file": model.name, "sha256": file_sha256(model)}},
        CARD_KEY: reference_to_json(reference)})
    write_json(folder / "reference.json", reference_to_json(reference))
    return model


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    return ship(tmp_path)


def run_monitor(argv: list[object], capsys: pytest.CaptureFixture[str]
                ) -> tuple[int, str, str]:
    from fraud.core.cli import run

    try:
        run(main, [str(a) for a in argv])
        status = 0
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_command_reports_drift_and_estimates(shipped: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    batch = batch_csv(tmp_path / "day.csv", transactions(3_000, 9, shift={"V2": 0.8}))
    status, out, _ = run_monitor([shipped, batch, "--json", tmp_path / "r.json",
                                  "--metrics", tmp_path / "m.json"], capsys)
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert json.loads((tmp_path / "m.json").read_text()) == \
        pytest.approx(flat_metrics(report), nan_ok=False)
    assert report["rows"] == 3_000 and report["psi_max_column"] == "V2"
    assert report["columns"]["V2"]["band"] == MAJOR
    assert report["realised"]["rows"] == 3_000 and report["threshold"] == 0.5
    lines = out.splitlines()
    assert len(lines) <= 40 and lines[3].split()[:3] == ["V2", f"{report['psi_max']:.4f}",
                                                         "major"]
    assert out == summary(report, str(batch))


def test_the_command_chunked_equals_whole(shipped: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    batch = batch_csv(tmp_path / "day.csv", transactions(2_000, 9))
    for size in (2_000, 137):
        assert run_monitor([shipped, batch, "--chunk-size", size, "-q",
                            "--json", tmp_path / f"{size}.json"], capsys)[0] == 0
    assert _close(json.loads((tmp_path / "137.json").read_text()),
                  json.loads((tmp_path / "2000.json").read_text()))


def _bad_reference(folder: Path, **changes: object) -> Path:
    data = json.loads((folder / "reference.json").read_text())
    data.update(changes)
    write_json(folder / "bad.json", data)
    return folder / "bad.json"


def _card_with(folder: Path, **changes: object) -> Path:
    """The card with `changes` (None: the key removed), as another file."""
    card = json.loads((folder / "fraud_detector.json").read_text())
    card.update(changes)
    write_json(folder / "card.json", {k: v for k, v in card.items() if v is not None})
    return folder / "card.json"


@pytest.mark.parametrize(("case", "message"), [
    ("missing column", "missing column(s) 'V3'"),
    ("bad cell", "line 5, column 'V1': 'abc' is not a number"),
    ("no reference", "monitoring reference not found"),
    ("other model", "built for another model"),
    ("card of another model", "card.json: built for another model"),
    ("card without reference", "the model card has no 'monitoring_reference'"),
    ("no card", "model card not found; it holds the monitoring reference"),
    ("card without threshold", "no single threshold between 0 and 1 in the model card"),
    ("reference columns", "does not match this model's inputs"),
    ("keras", "monitor scores with the ONNX detector"),
])
def test_a_bad_batch_or_reference_is_one_line(case: str, message: str, shipped: Path,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    batch = batch_csv(tmp_path / "day.csv", transactions(50, 9),
                      drop="V3" if case == "missing column" else None)
    args: list[object] = [shipped, batch]
    if case == "bad cell":
        lines = batch.read_text().splitlines()
        cells = lines[4].split(",")
        cells[1] = "abc"
        lines[4] = ",".join(cells)
        batch.write_text("\n".join(lines) + "\n")
    elif case == "no reference":
        args += ["--reference", tmp_path / "none.json"]
    elif case == "other model":
        args += ["--reference", _bad_reference(tmp_path, model_sha256="0" * 64)]
    elif case == "card of another model":
        data = json.loads((tmp_path / "reference.json").read_text())
        args += ["--card", _card_with(tmp_path, **{CARD_KEY: {**data,
                                                              "model_sha256": "0" * 64}})]
    elif case == "card without reference":
        args += ["--card", _card_with(tmp_path, **{CARD_KEY: None})]
    elif case == "no card":
        args += ["--card", tmp_path / "none.json", "--threshold", "0.5"]
    elif case == "card without threshold":
        args += ["--card", _card_with(tmp_path, threshold=None, decision={
            "rule": "expected_cost", "cost_fp": 5.0, "cost_fn": "amount"})]
    elif case == "reference columns":
        data = json.loads((tmp_path / "reference.json").read_text())
        del data["columns"]["Amount"]
        args += ["--reference", _bad_reference(tmp_path, columns=data["columns"])]
    elif case == "keras":
        keras = tmp_path / "fraud_detector.keras"
        keras.write_bytes(b"PK")
        args = [keras, batch, "--reference", tmp_path / "reference.json",
                "--card", tmp_path / "fraud_detector.json"]
    status, out, err = run_monitor([*args, "--json", tmp_path / "r.json"], capsys)
    assert status == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "r.json").exists()


def test_a_bad_argument_exits_2_in_one_line(shipped: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_monitor([shipped, tmp_path / "x.csv", "--chunk-size", "0"], capsys)
    assert status == 2 and err.count("\n") == 1 and "--chunk-size" in err


# --- the reference in the model card -------------------------------------------------------

def test_the_reference_in_a_card_round_trips_and_names_its_model() -> None:
    features = transactions(2_000, seed=3)
    reference = build_reference(features, probabilities(features), model_sha256="ab" * 32)
    card = json.loads(json.dumps({"threshold": 0.5, CARD_KEY: reference_to_json(reference)}))
    again = reference_from_card(card, "card.json")
    assert again.model_sha256 == "ab" * 32 and again.rows == 2_000
    assert np.array_equal(again.score.counts, reference.score.counts)
    check_reference_model(again, "ab" * 32, "m.onnx", "card.json")
    with pytest.raises(PipelineError) as error:
        check_reference_model(again, "cd" * 32, "m.onnx", "card.json")
    assert str(error.value) == ("card.json: built for another model (its model_sha256 differs "
                                "from m.onnx's); pass the card or reference exported with it")


def test_a_models_reference_file_must_come_from_the_shipped_files(tmp_path: Path) -> None:
    features = transactions(1_000, seed=4)
    reference = build_reference(features, probabilities(features))
    built_from = {"detector": "1" * 64, "calibration": "2" * 64}
    write_json(tmp_path / "gbdt.json", model_reference_json(reference, built_from))
    again = read_model_reference(tmp_path / "gbdt.json", built_from, "reference")
    assert again.rows == 1_000 and again.model_sha256 is None
    with pytest.raises(PipelineError) as error:
        read_model_reference(tmp_path / "gbdt.json", {**built_from, "calibration": "3" * 64},
                             "reference")
    assert str(error.value) == (f"{tmp_path / 'gbdt.json'}: built from another calibration "
                                "than the one shipped; run the reference stage again")


# --- hostile references, outputs and cards: the corpus tools/adversarial.py reruns ---------

def _batch(folder: Path) -> Path:
    return batch_csv(folder / "day.csv", transactions(50, 9))


def _every_profile(reference: dict[str, Any]) -> list[dict[str, Any]]:
    return [*reference["columns"].values(), reference["score"]]


def _no_cuts(reference: dict[str, Any]) -> None:
    """Every column and the score in one bin: PSI 0, 'stable', whatever the batch."""
    for profile in _every_profile(reference):
        profile["cuts"], profile["counts"] = [], [reference["rows"]]


def _empty_training_bins(reference: dict[str, Any]) -> None:
    """Each profile's first bin emptied into the second: PSI 8-16 on every column."""
    for profile in _every_profile(reference):
        profile["counts"][1] += profile["counts"][0]
        profile["counts"][0] = 0


def _rows_1e40(reference: dict[str, Any]) -> None:
    """10^40 training rows, the counts consistent with it (int64 overflowed)."""
    extra = 10**40 - reference["rows"]
    reference["rows"] = 10**40
    for profile in _every_profile(reference):
        profile["counts"][-1] += extra


def _card_reference(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], list[str]]:
    """The shipped card with its reference changed by `change`, as --card."""
    def build(folder: Path) -> list[str]:
        model = ship(folder)
        card = json.loads((folder / "fraud_detector.json").read_text())
        change(card[CARD_KEY])
        (folder / "card.json").write_text(json.dumps(card))
        return [str(model), str(_batch(folder)), "--card", str(folder / "card.json")]
    return build


def _card(**changes: Any) -> Callable[[Path], list[str]]:
    """The shipped card with `changes` (None: removed), as --card; its threshold used, the
    reference read from its own file."""
    def build(folder: Path) -> list[str]:
        model = ship(folder)
        card = json.loads((folder / "fraud_detector.json").read_text()) | changes
        (folder / "card.json").write_text(json.dumps(
            {k: v for k, v in card.items() if v is not None}))
        return [str(model), str(_batch(folder)), "--card", str(folder / "card.json"),
                "--reference", str(folder / "reference.json")]
    return build


def _output(json_to: str, metrics_to: str | None = None) -> Callable[[Path], list[str]]:
    """--json (and --metrics) naming a file monitor reads: the batch, the model, the card
    (a hard link to it), the reference; or each other."""
    def build(folder: Path) -> list[str]:
        model, batch = ship(folder), _batch(folder)
        os.link(folder / "fraud_detector.json", folder / "hard.json")
        names = {"batch": batch, "model": model, "card link": folder / "hard.json",
                 "reference": folder / "reference.json", "new": folder / "r.json",
                 "full": Path("/dev/full")}
        args = [str(model), str(batch), "--reference", str(folder / "reference.json"),
                "--json", str(names[json_to])]
        return args + (["--metrics", str(names[metrics_to])] if metrics_to else [])
    return build


Build = Callable[[Path], list[str]]
# name -> (build the case in an empty folder, returning monitor's arguments; the fragment of
# the one error line). tools/adversarial.py reruns these.
HOSTILE: dict[str, tuple[Build, str]] = {
    "reference: every column in one bin": (_card_reference(_no_cuts), "expected 1 to 9 cuts"),
    "reference: bins 10^30": (
        _card_reference(lambda r: r.update(bins=10**30)), "'bins' from 2 to 100"),
    "reference: empty training bins": (
        _card_reference(_empty_training_bins), "bin 1 has no training rows"),
    "reference: rows 10^40": (_card_reference(_rows_1e40), "'rows' must be a whole number"),
    "reference: a cut of 400 digits": (
        _card_reference(lambda r: r["columns"]["V1"]["cuts"].__setitem__(0, -10**400)),
        "V1: cuts must be finite numbers"),
    "reference: score cuts outside (0, 1]": (
        _card_reference(lambda r: r["score"].update(cuts=[c + 5 for c in r["score"]["cuts"]])),
        "score: cuts outside (0, 1]"),
    "card: no sha256 of its model": (_card(files=None), "records no sha256 of its model"),
    "card: another model's": (
        _card(files={"onnx": {"sha256": "0" * 64}}), "is the card of another model"),
    "card: unknown decision rule": (
        _card(decision={"rule": "always"}), "decision rule 'always' is not one"),
    "card: decision.threshold differs": (
        _card(decision={"rule": "threshold", "threshold": 0.9}),
        "decision.threshold 0.9 differs from its threshold 0.5"),
    "--json is the batch": (_output("batch"), "is the same file as the batch"),
    "--json is the model": (_output("model"), "is the same file as the model"),
    "--json is the card (a hard link)": (_output("card link"), "is the same file as the card"),
    "--json is the reference": (_output("reference"), "is the same file as the reference"),
    "--metrics is --json": (_output("new", "new"), "is the same file as the --json output"),
    "--json /dev/full": (_output("full"), "/dev/full: is a device"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_references_cards_and_outputs_are_one_line(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build, fragment = HOSTILE[name]
    args = build(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    status, out, err = run_monitor(args, capsys)
    assert status == 1 and out == "" and err.count("\n") == 1, err
    assert err.startswith("error: ") and fragment in err and len(err) < 400, err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_card_and_the_reference_file_are_accepted_as_shipped(
        shipped: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The checks refuse only what they name: the card alone, the reference file with the
    card's threshold, and --threshold with --reference (no card needed) all run."""
    batch = _batch(tmp_path)
    for extra in ([], ["--reference", tmp_path / "reference.json"],
                  ["--reference", tmp_path / "reference.json", "--threshold", "0.3",
                   "--card", tmp_path / "none.json"]):
        status, _, err = run_monitor([shipped, batch, "-q", *extra], capsys)
        assert status == 0, (extra, err)


def monitor_process(*args: object, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    repo = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-m", "src.monitor", *map(str, args)], cwd=repo,
                          text=True, stderr=subprocess.PIPE, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(repo)}, **kwargs)


def test_the_summary_on_a_full_disk_is_one_line(shipped: Path, tmp_path: Path) -> None:
    """`monitor … > /dev/full`: one line, exit 1 (Python's own flush at exit stays quiet)."""
    with open("/dev/full", "w") as full:
        done = monitor_process(shipped, _batch(tmp_path), stdout=full)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: writing the summary failed (No space left on device)"]


def test_a_report_on_a_full_file_system_is_one_line(shipped: Path, tmp_path: Path) -> None:
    """--json on a disk that fills (a file size limit gives EFBIG, as a full disk gives
    ENOSPC): one line naming the file, neither report, no temporary."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000, 2_000))

    report, metrics = tmp_path / "out" / "r.json", tmp_path / "out" / "m.json"
    done = monitor_process(shipped, _batch(tmp_path), "--json", report, "--metrics", metrics,
                           "-q", preexec_fn=limit)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {report}: cannot be written (File too large)"]
    assert list(report.parent.iterdir()) == []


def test_a_mostly_constant_column_keeps_two_bins() -> None:
    """A fraud rate that is 0 for 95 % of the rows (every decile on it) still gets a cut at
    its tail, and a column constant in training one bin, which a reference may hold."""
    from fraud.monitoring.profile import build_profile

    mostly_zero = build_profile(np.r_[np.zeros(950), np.linspace(0.01, 0.5, 50)])
    assert list(mostly_zero.cuts) == [0.01] and list(mostly_zero.counts) == [950, 50]
    constant = build_profile(np.ones(10))
    assert len(constant.cuts) == 0 and list(constant.counts) == [10]
