"""Hostile ONNX files: each is refused in one line before ONNX Runtime runs it, or stopped
in one line when its scores are not probabilities. The models are built here with onnx.helper
(no TensorFlow), around a tiny valid network of the real contract."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from fraud.errors import PipelineError
from fraud.serving import onnx_contract, onnx_scoring
from fraud.serving.onnx_contract import DETECTOR, NETWORK
from fraud.serving.onnx_scoring import BATCH_ROWS, load_onnx
from tests.credit_card import N_FEATURES

REPO = Path(__file__).resolve().parents[2]
F32 = TensorProto.FLOAT


def network(*, extra_nodes: list[onnx.NodeProto] = (), output: str = "probability",
            input_shape: list = ("rows", N_FEATURES), input_type: int = F32,
            output_shape: list = ("rows", 1), input_name: str = "features",
            initializers: list[onnx.TensorProto] = (), weights_columns: int = 1,
            domains: list[tuple[str, int]] = ()) -> onnx.ModelProto:
    """features → MatMul → Add → Sigmoid ("score"), then `extra_nodes` ending in `output`."""
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(
        rng.normal(size=(input_shape[1] if isinstance(input_shape[1], int) else N_FEATURES,
                         weights_columns)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(weights_columns, np.float32), "b")
    nodes = [helper.make_node("MatMul", [input_name, "w"], ["logit0"], name="matmul"),
             helper.make_node("Add", ["logit0", "b"], ["logit"], name="add"),
             helper.make_node("Sigmoid", ["logit"],
                              ["probability" if not extra_nodes else "score"], name="sigmoid"),
             *extra_nodes]
    graph = helper.make_graph(
        nodes, "hostile", [helper.make_tensor_value_info(input_name, input_type,
                                                         list(input_shape))],
        [helper.make_tensor_value_info(output, F32, list(output_shape))],
        initializer=[weights, bias, *initializers])
    opsets = [helper.make_opsetid("", 17), *(helper.make_opsetid(d, v) for d, v in domains)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def exfiltrating(secret_name: str, length: int) -> onnx.ModelProto:
    """The attack: an initializer stored as external data `secret_name`, scored out as
    probabilities (byte / 255), one per row of a `length`-row batch."""
    secret = TensorProto(name="secret", data_type=TensorProto.UINT8, dims=[length, 1],
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", secret_name), ("offset", "0"), ("length", str(length))):
        secret.external_data.add(key=key, value=value)
    scale = numpy_helper.from_array(np.array(1 / 255, np.float32), "scale")
    nodes = [helper.make_node("Cast", ["secret"], ["secret_f"], to=F32, name="cast"),
             helper.make_node("Mul", ["secret_f", "scale"], ["byte"], name="mul"),
             helper.make_node("Sub", ["score", "score"], ["zero"], name="zero"),
             helper.make_node("Add", ["zero", "byte"], ["probability"], name="leak")]
    return network(extra_nodes=nodes, initializers=[secret, scale])


def test_the_exfiltration_attack_is_real_without_the_check_and_refused_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = b"download:\n  url: https://internal.example/creditcard.csv\n"
    (tmp_path / "params.yaml").write_bytes(secret)
    model = save(exfiltrating("params.yaml", len(secret)), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    # Unchecked, ONNX Runtime reads params.yaml (relative to the working directory) and the
    # "scores" spell it out: the reason for the check.
    session = ort.InferenceSession(model.read_bytes(), providers=["CPUExecutionProvider"])
    leaked = session.run(None, {"features": np.zeros((len(secret), N_FEATURES), np.float32)})[0]
    assert bytes(np.rint(leaked.reshape(-1) * 255).astype(np.uint8)) == secret
    with pytest.raises(PipelineError) as error:
        load_onnx(model, "train_baseline", NETWORK)
    message = str(error.value)
    assert "\n" not in message and "stored outside the file" in message
    assert "'params.yaml'" in message and message.endswith("run the train_baseline stage again")


def loop_node() -> onnx.NodeProto:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])])
    return helper.make_node("Loop", ["trips", "cond"], [], body=body, name="forever")


HOSTILE: dict[str, tuple[Callable[[], onnx.ModelProto], str]] = {
    "loop of 10^12 trips": (lambda: network(extra_nodes=[
        loop_node(), helper.make_node("Identity", ["score"], ["probability"])], initializers=[
        numpy_helper.from_array(np.array(10**12, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "cond")]), "operator 'Loop'"),
    "constant of shape": (lambda: network(extra_nodes=[
        helper.make_node("ConstantOfShape", ["shape"], ["big"]),
        helper.make_node("Identity", ["score"], ["probability"])], initializers=[
        numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "shape")]),
        "operator 'ConstantOfShape'"),
    "custom domain": (lambda: network(extra_nodes=[
        helper.make_node("Steal", ["score"], ["probability"], domain="evil.ops")],
        domains=[("evil.ops", 1)]), "custom operators ['evil.ops']"),
    "huge declared tensor": (lambda: network(initializers=[
        TensorProto(name="huge", data_type=F32, dims=[1 << 40], raw_data=b"\0" * 8)]),
        "declares shape [1099511627776] but stores 2 elements"),
    "too many weights": (lambda: network(initializers=[numpy_helper.from_array(
        np.zeros(onnx_contract.MAX_TENSOR_ELEMENTS + 1, np.uint8), "big")]),
        "weights hold over"),
    "external data in a tree's attribute": (lambda: network(extra_nodes=[
        _tree_reading("params.yaml"), helper.make_node("Identity", ["score"], ["probability"])],
        domains=[("ai.onnx.ml", 5)]), "tensor 'trees.leaf_weights' is stored outside the file"),
    "sparse initializer": (lambda: _with_sparse(network()), "sparse initializers"),
    "fixed batch of 1": (lambda: network(input_shape=[1, N_FEATURES]),
                         "its input is 'features' (float32, shape [1, 29])"),
    "width 0": (lambda: network(input_shape=["rows", 0]), "shape ['rows', 0]"),
    "width 1,001": (lambda: network(input_shape=["rows", 1001]), "shape ['rows', 1001]"),
    "float64 input": (lambda: network(input_type=TensorProto.DOUBLE), "(float64, shape"),
    "other input name": (lambda: network(input_name="x"), "its input is 'x'"),
    "two outputs": (lambda: _two_outputs(network()), "1 input(s) and 2 output(s)"),
    "(rows, 2) output": (lambda: network(output_shape=["rows", 2], weights_columns=2),
                         "its output has shape ['rows', 2]"),
    "scalar output": (lambda: network(output_shape=[]), "its output has shape []"),
    # Allowed operators that bomb (issue 32): refused by the shapes onnx infers.
    "eleven chained Concats": (lambda: _doubled("features", 11, axis=1),
                               "474,924 bytes per row (largest: 'c10' ['rows', 59392])"),
    "eleven Concats along the batch": (lambda: _doubled("score", 11, axis=0),
                                       "'c0' (node 'c0', shape ['?', 1]) cannot be bounded"),
    "100,000 chained MatMuls": (lambda: _matmuls(100_000, 1),
                                "100,006 operators, over the 1,000 allowed"),
    "eight 1024x1024 MatMuls per row": (lambda: _matmuls(8, 1024),
                                        "8,418,337 multiply-adds per row, over the 1,000,000"),
    "27 Concats folded at load": (lambda: _doubled("stored", 27, axis=0),
                                  "from its weights alone take 1,073,741,820 bytes"),
    "wide weight declared (1, rows)": (lambda: _wide_weight_as_input(),
                                       "240,016 bytes per row (largest: 'sum' ['rows', 60000])"),
    "output computes (rows, 2)": (lambda: network(weights_columns=2),
                                  "declares shape (rows, 1) but computes ['rows', 2]"),
}


def _doubled(start: str, times: int, axis: int) -> onnx.ModelProto:
    """`start` concatenated with itself `times` times along `axis`, one column of it sliced
    off and added to the score: a few hundred bytes that double a value at each node. From
    "stored" (a stored 1x1 value), ONNX Runtime computes the chain while loading."""
    nodes = [helper.make_node("Concat", [start if i == 0 else f"c{i - 1}"] * 2, [f"c{i}"],
                              axis=axis, name=f"c{i}") for i in range(times)]
    nodes += [helper.make_node("Slice", [f"c{times - 1}", "zero", "one", "axis"], ["first"],
                               name="first"),
              helper.make_node("Add", ["score", "first"], ["probability"], name="sum")]
    stored = [numpy_helper.from_array(np.array(value, np.int64), name)
              for name, value in (("zero", [0]), ("one", [1]), ("axis", [axis]))]
    stored.append(numpy_helper.from_array(np.zeros((1, 1), np.float32), "stored"))
    return network(extra_nodes=nodes, initializers=stored)


def _wide_weight_as_input() -> onnx.ModelProto:
    """A (1, 60,000) weight also listed as a graph input declared (1, rows), so that shapes
    taken from the declarations would make the row-wide sum look as wide as the batch."""
    model = network(extra_nodes=[
        helper.make_node("Add", ["score", "wide"], ["sum"], name="sum"),
        helper.make_node("Slice", ["sum", "zero", "one", "one"], ["probability"], name="first")],
        initializers=[numpy_helper.from_array(np.zeros((1, 60_000), np.float32), "wide"),
                      numpy_helper.from_array(np.array([0], np.int64), "zero"),
                      numpy_helper.from_array(np.array([1], np.int64), "one")])
    model.graph.input.append(helper.make_tensor_value_info("wide", F32, [1, "rows"]))
    return model


def _matmuls(count: int, width: int) -> onnx.ModelProto:
    """features → (rows, width) → `count` MatMuls by one stored (width, width) matrix → one
    column added to the score: few weights, much work per row (or many nodes)."""
    rng = np.random.default_rng(1)
    stored = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
              for name, shape in (("spread", (N_FEATURES, width)), ("square", (width, width)))]
    stored += [numpy_helper.from_array(np.array(value, np.int64), name)
               for name, value in (("zero", [0]), ("one", [1]))]
    nodes = [helper.make_node("MatMul", ["features", "spread"], ["m0"], name="spread")]
    nodes += [helper.make_node("MatMul", [f"m{i}", "square"], [f"m{i + 1}"], name=f"m{i + 1}")
              for i in range(count)]
    nodes += [helper.make_node("Slice", [f"m{count}", "zero", "one", "one"], ["first"],
                               name="first"),
              helper.make_node("Add", ["score", "first"], ["probability"], name="sum")]
    return network(extra_nodes=nodes, initializers=stored)


def _tree_reading(location: str) -> onnx.NodeProto:
    """A TreeEnsemble whose leaf weights (a tensor attribute) live in another file."""
    weights = TensorProto(name="leaf_weights", data_type=TensorProto.DOUBLE, dims=[64],
                          data_location=TensorProto.EXTERNAL)
    weights.external_data.add(key="location", value=location)
    return helper.make_node("TreeEnsemble", ["features"], ["tree_out"], domain="ai.onnx.ml",
                            name="trees", leaf_weights=weights)


def _with_sparse(model: onnx.ModelProto) -> onnx.ModelProto:
    values = numpy_helper.from_array(np.array([1.0], np.float32), "sparse")
    indices = numpy_helper.from_array(np.array([0], np.int64), "sparse_indices")
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    return model


def _two_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.output.append(helper.make_tensor_value_info("logit", F32, ["rows", 1]))
    return model


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_model_is_refused_in_one_line_before_a_session(
        case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build, expected = HOSTILE[case]
    path = save(build(), tmp_path / "model.onnx")
    sessions: list[object] = []
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: sessions.append(a))
    with pytest.raises(PipelineError) as error:
        load_onnx(path, "train_baseline", NETWORK)
    message = str(error.value)
    # Short, whatever the length of the temporary folder's path that starts it.
    assert "\n" not in message and len(message) - len(str(path)) < 340, message
    assert message.startswith(f"{path}: ") and expected in message, message
    assert message.endswith("run the train_baseline stage again")
    assert sessions == []  # refused before ONNX Runtime saw the bytes


def test_the_inferred_shapes_are_what_onnx_runtime_computes() -> None:
    """The budgets rest on onnx's inference: ONNX Runtime, run unchecked on a few rows,
    makes the eleven-Concat bomb's last value 59,392 wide per row, as inferred (2,000 rows
    of it: 475 MB)."""
    model = _doubled("features", 11, axis=1)
    model.graph.output.append(helper.make_tensor_value_info("c10", F32, ["rows", None]))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    last = session.run(["c10"], {"features": np.ones((3, N_FEATURES), np.float32)})[0]
    assert last.shape == (3, N_FEATURES * 2 ** 11) == (3, 59_392)
    assert len(_doubled("features", 11, axis=1).SerializeToString()) < 1_000


def test_100000_matmuls_are_refused_without_being_loaded(tmp_path: Path) -> None:
    """ONNX Runtime took 6 to 12 s to load them; the node budget refuses them after a parse
    (~50 ms)."""
    path = save(_matmuls(100_000, 1), tmp_path / "model.onnx")
    started = time.perf_counter()
    with pytest.raises(PipelineError, match="100,006 operators, over the 1,000 allowed"):
        load_onnx(path, "train_baseline", NETWORK)
    assert time.perf_counter() - started < 2.0


def test_a_value_sized_by_the_batch_twice_cannot_be_bounded() -> None:
    """(rows, rows) grows with the square of the batch: refused by `footprint` itself
    (Transpose is not allowed, so no checked file reaches it this way)."""
    nodes = [helper.make_node("Transpose", ["score"], ["across"], name="across"),
             helper.make_node("MatMul", ["score", "across"], ["square"], name="square"),
             helper.make_node("Slice", ["square", "zero", "one", "one"], ["probability"],
                              name="first")]
    model = network(extra_nodes=nodes, initializers=[
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one")])
    with pytest.raises(PipelineError, match=r"'square' \(node 'square', shape \['rows', "
                                            r"'rows'\]\) cannot be bounded"):
        onnx_contract.footprint(model, Path("m.onnx"), "fix")


def _widest_network(hidden: int) -> onnx.ModelProto:
    """features → hidden units (Relu) → one sigmoid unit: the network of the largest
    model.hidden_units params allow, written as tf2onnx writes it, without TensorFlow."""
    rng = np.random.default_rng(2)
    stored = [numpy_helper.from_array(rng.normal(size=shape).astype(np.float32) / 100, name)
              for name, shape in (("w1", (N_FEATURES, hidden)), ("b1", (hidden,)),
                                  ("w2", (hidden, 1)), ("b2", (1,)))]
    steps = [("MatMul", ["features", "w1"]), ("Add", ["h0", "b1"]), ("Relu", ["h1"]),
             ("MatMul", ["h2", "w2"]), ("Add", ["h3", "b2"]), ("Sigmoid", ["h4"])]
    nodes = [helper.make_node(op, inputs, [f"h{i}" if i < 5 else "probability"], name=f"n{i}")
             for i, (op, inputs) in enumerate(steps)]
    graph = helper.make_graph(nodes, "widest", [helper.make_tensor_value_info(
        "features", F32, ["rows", N_FEATURES])], [helper.make_tensor_value_info(
            "probability", F32, ["rows", 1])], initializer=stored)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_the_largest_valid_network_with_a_1000_knot_calibrator_loads(tmp_path: Path) -> None:
    """The budgets' margin: model.hidden_units at its cap (4,096) and a calibrator of 1,000
    knots, appended as export appends it, load and score in batches within BATCH_BYTES."""
    from fraud.core.calibrator import Calibrator
    from fraud.core.params import UPPER_BOUNDS
    from fraud.serving.calibrated import calibrated_onnx

    knots = tuple(np.linspace(-20.0, 20.0, 1_000).tolist())
    calibrated = calibrated_onnx(_widest_network(int(UPPER_BOUNDS["model.hidden_units"])),
                                 Calibrator("isotonic", knots, knots, (1.0, 1.0)))
    found = onnx_contract.footprint(calibrated, Path("m.onnx"), "fix")
    assert found.row_bytes * 1.5 < onnx_contract.MAX_ROW_BYTES, found
    assert found.row_work * 5 < onnx_contract.MAX_ROW_WORK, found
    model = load_onnx(save(calibrated, tmp_path / "m.onnx"), "export", NETWORK)
    assert model.batch_rows == onnx_scoring.BATCH_BYTES // found.row_bytes < BATCH_ROWS
    assert model(np.zeros((3, N_FEATURES), np.float32)).shape == (3,)


def test_batches_are_sized_by_the_bytes_a_row_takes(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(network(), tmp_path / "model.onnx")
    row_bytes = onnx_contract.footprint(network(), path, "fix").row_bytes
    assert row_bytes == 12  # MatMul, Add, Sigmoid: one float32 each
    monkeypatch.setattr(onnx_scoring, "BATCH_BYTES", 1_000)
    model = load_onnx(path, "train_baseline", NETWORK)
    assert model.batch_rows == 83
    rows = np.random.default_rng(3).normal(size=(200, N_FEATURES)).astype(np.float32)
    calls: list[int] = []
    run = model.session.run
    monkeypatch.setattr(model.session, "run", lambda names, feed: calls.append(
        len(feed["features"])) or run(names, feed), raising=False)
    scores = model(rows)
    assert calls == [83, 83, 34]
    np.testing.assert_array_equal(scores, run(None, {"features": rows})[0].reshape(-1))


def test_a_file_larger_than_any_fraud_model_is_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(network(), tmp_path / "model.onnx")
    monkeypatch.setattr(onnx_contract, "MAX_MODEL_BYTES", 100)
    monkeypatch.setattr("fraud.serving.onnx_scoring.MAX_MODEL_BYTES", 100)
    with pytest.raises(PipelineError, match=r"bytes, over the 100 a fraud model may have"):
        load_onnx(path, "export", DETECTOR)


def test_the_valid_tiny_network_loads_and_scores(tmp_path: Path) -> None:
    model = load_onnx(save(network(), tmp_path / "model.onnx"), "train_baseline", NETWORK)
    scores = model(np.zeros((3, N_FEATURES), np.float32))
    np.testing.assert_array_equal(scores, [0.5, 0.5, 0.5])


def _scoring(extra: list[onnx.NodeProto], inits: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    return network(extra_nodes=extra, initializers=list(inits))


SCORES_NOT_PROBABILITIES = {
    "NaN": _scoring([helper.make_node("Sub", ["score", "score"], ["zero"]),
                     helper.make_node("Div", ["zero", "zero"], ["probability"])]),
    "above 1": _scoring([helper.make_node("Add", ["score", "two"], ["probability"])],
                        [numpy_helper.from_array(np.array(2, np.float32), "two")]),
    "negative": _scoring([helper.make_node("Neg", ["score"], ["probability"])]),
    "infinite": _scoring([helper.make_node("Sub", ["score", "score"], ["zero"]),
                          helper.make_node("Div", ["score", "zero"], ["probability"])]),
}


@pytest.mark.parametrize("case", sorted(SCORES_NOT_PROBABILITIES))
def test_scores_outside_0_1_stop_scoring_in_one_line(case: str, tmp_path: Path) -> None:
    model = load_onnx(save(SCORES_NOT_PROBABILITIES[case], tmp_path / "m.onnx"), "export",
                      NETWORK)
    with pytest.raises(PipelineError) as error:
        model(np.ones((5, N_FEATURES), np.float32))
    message = str(error.value)
    assert "\n" not in message and "for row 1 (5 of 5 in its batch outside [0, 1])" in message
    assert "a fraud model returns probabilities" in message


def test_a_model_whose_output_lies_about_its_shape_is_stopped(tmp_path: Path) -> None:
    # Declared (rows, 1), computes (rows, 2): caught at load (shape inference) or at scoring.
    path = save(network(weights_columns=2), tmp_path / "m.onnx")
    with pytest.raises(PipelineError) as error:
        load_onnx(path, "export", NETWORK)(np.ones((4, N_FEATURES), np.float32))
    assert "\n" not in str(error.value)


def test_predict_refuses_the_exfiltrating_model_as_a_user_runs_it(tmp_path: Path) -> None:
    """The reported attack, end to end: `predict` with a model that reads params.yaml."""
    secret = (REPO / "params.yaml").read_bytes()
    model = save(exfiltrating("params.yaml", len(secret)), tmp_path / "fraud_detector.onnx")
    rows = tmp_path / "rows.csv"
    header = ",".join([f"V{i}" for i in range(1, 29)] + ["Amount"])
    rows.write_text(header + "\n" + ",".join(["0"] * 29) + "\n", encoding="utf-8")
    out = tmp_path / "scores.csv"
    result = subprocess.run(
        [sys.executable, "-m", "src.predict", str(model), str(rows), "-o", str(out),
         "--threshold", "0.5"], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "stored outside the file (external data 'params.yaml')" \
        in lines[0], result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == \
        ["fraud_detector.onnx", "rows.csv"]
