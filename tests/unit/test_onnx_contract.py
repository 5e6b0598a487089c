"""Hostile ONNX files: each is refused in one line before ONNX Runtime runs it, or stopped
in one line when its scores are not probabilities. The models are built here with onnx.helper
(no TensorFlow), around a tiny valid network of the real contract."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from src.fraud.errors import PipelineError
from src.fraud.schema import N_FEATURES
from src.fraud.serving import onnx_contract
from src.fraud.serving.onnx_contract import DETECTOR, NETWORK
from src.fraud.serving.onnx_scoring import load_onnx

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
    "width 30": (lambda: network(input_shape=["rows", 30]), "shape ['rows', 30]"),
    "width 1": (lambda: network(input_shape=["rows", 1]), "shape ['rows', 1]"),
    "float64 input": (lambda: network(input_type=TensorProto.DOUBLE), "(float64, shape"),
    "other input name": (lambda: network(input_name="x"), "its input is 'x'"),
    "two outputs": (lambda: _two_outputs(network()), "1 input(s) and 2 output(s)"),
    "(rows, 2) output": (lambda: network(output_shape=["rows", 2], weights_columns=2),
                         "its output has shape ['rows', 2]"),
    "scalar output": (lambda: network(output_shape=[]), "its output has shape []"),
}


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
    assert "\n" not in message and len(message) < 400, message
    assert message.startswith(f"{path}: ") and expected in message, message
    assert message.endswith("run the train_baseline stage again")
    assert sessions == []  # refused before ONNX Runtime saw the bytes


def test_a_file_larger_than_any_fraud_model_is_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(network(), tmp_path / "model.onnx")
    monkeypatch.setattr(onnx_contract, "MAX_MODEL_BYTES", 100)
    monkeypatch.setattr("src.fraud.serving.onnx_scoring.MAX_MODEL_BYTES", 100)
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
