"""params.yaml's data: section: checked in one line per mistake, resolved against headers,
and compiled the same way by numpy and ONNX; and no library module names a column."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from onnx import TensorProto, helper

from fraud.core.declaration import (
    CREDIT_CARD,
    CREDIT_CARD_LAYOUT,
    codes_of_one_hot,
    learn_levels,
    level_codes,
    one_hot,
    parse_data,
    shown_columns,
)
from fraud.core.params import parse_params
from fraud.core.schema import validate_raw_frame
from fraud.errors import PipelineError
from fraud.serving.contract import CATEGORY_INPUT, INPUT_NAME, ScalerStats
from fraud.serving.explain import Preprocess
from fraud.serving.preprocess_graph import (
    OPSET,
    detector_inputs,
    preprocess_graph,
    preprocess_opsets,
)
from tools.example_table import DECLARATION, FEATURES, example_table

ROOT = Path(__file__).resolve().parents[2]
OTHER = {"label": "label", "positive": "fraud", "negative": "legit", "time": "ts",
         "ids": ["txn_id"], "numeric": ["f0..f3"]}


def params_with(data: Any, **sections: Any) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"] = data
    for dotted, value in sections.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    return raw


def test_the_committed_params_declare_the_credit_card_table() -> None:
    params = parse_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert params.data.numeric == CREDIT_CARD.numeric
    assert params.data.resolve("x", CREDIT_CARD_LAYOUT.raw_columns).inputs \
        == CREDIT_CARD_LAYOUT.inputs
    assert CREDIT_CARD_LAYOUT.features[-1] == "Log Amount"


def test_a_params_file_without_data_gets_the_default() -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw["data"]
    assert parse_params(raw).data == CREDIT_CARD


@pytest.mark.parametrize(("data", "words"), [
    ({"label": "y", "colour": 1}, "unknown key(s) 'data.colour'"),
    ({"time": "t"}, "missing key data.label"),
    ({"label": "y", "numeric": ["a", "y"]}, "column 'y' is both data.label and data.numeric"),
    ({"label": "y", "ids": ["k"], "drop": ["k"]}, "column 'k' is both data.ids and data.drop"),
    ({"label": "y", "amount": "amt", "numeric": ["Log amt"]}, "clashes with the log feature"),
    ({"label": "y", "numeric": ["f3..f1"]}, "data.numeric[0] = 'f3..f1' is invalid"),
    ({"label": "y", "numeric": ["a", "a"]}, "distinct names ('a' repeated)"),
    ({"label": "y", "numeric": ["mcc"], "categorical": ["mcc"]},
     "column 'mcc' is both data.numeric and data.categorical"),
    ({"label": "y", "categorical": ["mcc"], "drop": ["mcc"]},
     "column 'mcc' is both data.categorical and data.drop"),
    ({"label": "y", "categorical": ["mcc", "mcc"]}, "distinct names ('mcc' repeated)"),
    ({"label": "y", "max_levels": 1}, "data.max_levels = 1 is invalid: expected a whole"),
    ({"label": "y", "max_levels": "many"}, "data.max_levels = 'many' is invalid"),
    ({"label": "y", "positive": 1, "negative": 1}, "a value other than data.positive"),
    ({"label": "y", "positive": True}, "data.positive = True is invalid"),
    ({"label": " y"}, "without surrounding spaces"),
    ({"label": "y", "time_format": "unix"}, "one of auto, seconds, iso8601"),
    ("label", "section 'data' is not a mapping"),
])
def test_a_bad_declaration_is_one_line(data: Any, words: str) -> None:
    with pytest.raises(PipelineError) as error:
        parse_data(data)
    assert words in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("data", "sections", "words"), [
    (OTHER, {"download__url": "synthetic"}, "generates the Credit Card Fraud table"),
    (OTHER, {"evaluate__cost_fn": "amount"}, "needs an amount column, and data.amount is null"),
])
def test_the_declaration_is_checked_against_the_rest_of_params(data: Any, sections: Any,
                                                                words: str) -> None:
    with pytest.raises(PipelineError, match=re.escape(words)):
        parse_params(params_with(data, **sections))


def test_runs_expand_and_show_back() -> None:
    declaration = parse_data({"label": "y", "numeric": ["f0..f39", "x"]})
    assert declaration.numeric == (*FEATURES, "x")
    assert shown_columns([*FEATURES, "x"]) == "f0..f39, x"
    assert shown_columns(CREDIT_CARD_LAYOUT.inputs) == "V1..V28, Amount"


def test_auto_takes_every_column_not_named_and_not_dropped() -> None:
    declaration = parse_data({**OTHER, "numeric": "auto", "drop": ["note"]})
    layout = declaration.resolve("t.csv", ["txn_id", "a", "ts", "b", "note", "label"])
    assert layout.inputs == ["a", "b"]
    assert layout.raw_columns == ["ts", "txn_id", "a", "b", "label"]


@pytest.mark.parametrize(("header", "words"), [
    (["txn_id", "ts", "f0", "f1", "f2", "label"], "missing column(s) 'f3'"),
    (["txn_id", "ts", "f0", "f1", "f2", "f3", "extra", "label"],
     "unexpected column(s) 'extra'; expected the columns"),
    (["txn_id", "ts", "f0", "f1", "f2", "f3", "f3", "label"], "'f3' appear more than once"),
])
def test_a_header_that_does_not_match_is_one_line(header: list[str], words: str) -> None:
    with pytest.raises(PipelineError) as error:
        parse_data(OTHER).resolve("t.csv", header)
    assert words in str(error.value)
    if "unexpected" in words:
        assert "data.drop" in str(error.value)  # says how to declare it


def test_iso_times_are_parsed_and_a_bad_one_names_its_line() -> None:
    layout = parse_data(DECLARATION).resolve("t.csv", list(example_table(5).columns))
    frame = example_table(5)[layout.raw_columns]
    frame["ts"] = ["2024-03-01T00:00:00", "2024-03-01T00:00:01Z", "2024-03-01T02:00:00+02:00",
                   "2024-03-01", "2024-03-01T00:00:00.5"]
    checked = validate_raw_frame(Path("t.csv"), frame.copy(), layout=layout)
    start = pd.Timestamp("2024-03-01", tz="UTC").timestamp()
    assert list(checked["ts"] - start) == [0.0, 1.0, 0.0, 0.0, 0.5]
    assert list(checked["label"]) == list((example_table(5)["label"] == "fraud").astype(int))
    frame.loc[3, "ts"] = "yesterday"
    with pytest.raises(PipelineError, match=r"t\.csv: line 5, column 'ts': 'yesterday' is not "
                                            r"a time: expected ISO 8601"):
        validate_raw_frame(Path("t.csv"), frame.copy(), layout=layout)


def test_a_label_that_is_neither_value_names_the_values() -> None:
    layout = parse_data(DECLARATION).resolve("t.csv", list(example_table(5).columns))
    frame = example_table(5)[layout.raw_columns]
    frame.loc[2, "label"] = "maybe"
    with pytest.raises(PipelineError, match="line 4, column 'label': 'maybe' is not a valid "
                                            "label; label must be legit .normal. or fraud"):
        validate_raw_frame(Path("t.csv"), frame, layout=layout)


# --- one feature spec: numpy and ONNX compute the same features ------------------------------

def onnx_features(stats: ScalerStats, eps: float, raw: np.ndarray,
                  text: np.ndarray | None = None) -> np.ndarray:
    nodes, constants = preprocess_graph(stats, eps, "features32")
    graph = helper.make_graph(
        nodes, "preprocess", detector_inputs(stats),
        [helper.make_tensor_value_info("features32", TensorProto.FLOAT,
                                       ["rows", len(stats.features)])],
        initializer=constants)
    opsets = {"": OPSET, **preprocess_opsets(stats)}
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, version)
                                                    for domain, version in opsets.items()])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {INPUT_NAME: raw, **({CATEGORY_INPUT: text} if text is not None else {})}
    return session.run(["features32"], feeds)[0]


@pytest.mark.parametrize("logged", [True, False], ids=["amount-logged", "numeric-only"])
def test_numpy_and_onnx_preprocessing_agree_on_random_and_hostile_rows(logged: bool) -> None:
    rng = np.random.default_rng(5)
    width = 7
    inputs = tuple(f"c{i}" for i in range(width))
    stats = ScalerStats(mean=rng.normal(0, 2, width), scale=rng.uniform(0.1, 3, width), clip=4.0,
                        inputs=inputs, log_input=inputs[-1] if logged else None)
    eps = 1e-3
    random = rng.normal(0, 5, (500, width))
    random[:, -1] = np.abs(random[:, -1]) * 100
    hostile = np.array([[0.0] * width, [1e15] * width, [-1e15] * (width - 1) + [0.0],
                        [5e-324] * width, [1e-12] * width, [-0.0] * width,
                        [3.0] * (width - 1) + [2.6e4]])
    raw = np.concatenate([random, hostile])
    ours = Preprocess.of(stats, eps).features(raw).astype(np.float32)
    np.testing.assert_array_equal(onnx_features(stats, eps, raw), ours)
    assert stats.features == ([*inputs[:-1], "Log c6"] if logged else list(inputs))


HOSTILE_TEXT = ["", " ", "é", "商户", "🙂", "x" * 10_000, "a\x00b", "NaN", "None", "3.0",
                "merchant_category=food", "\n"]


def test_numpy_and_onnx_encode_categorical_columns_alike_seen_unseen_and_hostile() -> None:
    rng = np.random.default_rng(11)
    inputs = ("c0", "c1", "amount")
    categories = (("mcc", ("food", "fuel", "travel", "é", "商户")), ("channel", ("0", "1", "3")))
    stats = ScalerStats(mean=rng.normal(0, 1, 3), scale=rng.uniform(0.5, 2, 3), clip=5.0,
                        inputs=inputs, log_input="amount", categories=categories)
    seen = [[level, code] for level in categories[0][1] for code in categories[1][1]]
    hostile = [[text, other] for text, other in zip(HOSTILE_TEXT, HOSTILE_TEXT[::-1],
                                                    strict=True)]
    text = np.array(seen + hostile + [["FOOD", "1.0"], ["food ", "01"]], dtype=object)
    raw = np.abs(rng.normal(0, 3, (len(text), 3)))
    ours = Preprocess.of(stats, 1e-3).features(raw, text).astype(np.float32)
    theirs = onnx_features(stats, 1e-3, raw, text)
    np.testing.assert_array_equal(theirs, ours)
    assert theirs.shape == (len(text), 3 + 5 + 3)
    one_hot_part = theirs[:, 3:]
    assert (one_hot_part[:len(seen)].sum(axis=1) == 2).all()        # each seen pair: one + one
    assert (one_hot_part[len(seen):, :5][[0, 1, 4, 5, 6]] == 0).all()  # unseen text: none
    assert one_hot_part[len(seen) + 2, :5].tolist() == [0, 0, 0, 1, 0]  # "é", a level
    assert stats.features[3:5] == ["mcc=food", "mcc=fuel"]


def test_the_spec_keeps_the_declared_column_order_through_its_json(tmp_path: Path) -> None:
    """write_json sorts keys: the categorical columns travel as a list, in declared order
    (merchant before channel here), as do the one-hot features."""
    from sklearn.preprocessing import StandardScaler

    from fraud.core.files import write_json
    from fraud.data.prepare import scaler_to_json
    from fraud.serving.contract import detector_metadata, read_detector_metadata, read_scaler

    layout = parse_data({"label": "y", "numeric": ["x"], "categorical": ["merchant", "channel"]}
                        ).resolve("t", ["x", "merchant", "channel", "y"])
    categories = {"merchant": ("food", "fuel"), "channel": ("pos", "web")}
    scaler = StandardScaler().fit(np.array([[0.0], [2.0]]))
    write_json(tmp_path / "scaler.json", scaler_to_json(scaler, 5.0, layout, categories))
    stats = read_scaler(tmp_path / "scaler.json", 5.0)
    assert stats.categories == tuple(categories.items())
    assert stats.features == ["x", "merchant=food", "merchant=fuel", "channel=pos", "channel=web"]
    metadata = detector_metadata("logreg", stats, 1e-3, "", {})
    assert read_detector_metadata(metadata, "d.onnx", "export").categories == stats.categories


def test_levels_are_learnt_sorted_and_missing_or_unseen_is_none_of_them() -> None:
    values = np.array(["b", "a", None, "c", "a", np.nan, ""], dtype=object)
    levels = learn_levels("train.parquet", "mcc", values, 5)
    assert levels == ("a", "b", "c")  # missing (None, NaN, empty) is no level
    codes = level_codes(np.array(["c", "zz", None, "a"], dtype=object), levels)
    assert codes.tolist() == [2, -1, -1, 0]
    block = one_hot(np.array(["c", "zz", None, "a"], dtype=object), levels)
    assert block.tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0], [1, 0, 0]]
    np.testing.assert_array_equal(codes_of_one_hot(block), [2, np.nan, np.nan, 0])


def test_too_many_levels_names_the_column_its_count_the_cap_and_the_fixes() -> None:
    with pytest.raises(PipelineError) as error:
        learn_levels("data/split/train.parquet", "merchant", [f"m{i}" for i in range(60)], 50)
    message = str(error.value)
    assert message == ("data/split/train.parquet: categorical column 'merchant' has 60 levels "
                       "in the training split, over data.max_levels (50); raise "
                       "data.max_levels (at most 255), merge rare levels into one (e.g. "
                       "'other') in the file, or list the column in data.drop")
    with pytest.raises(PipelineError, match="every cell is empty"):
        learn_levels("t", "mcc", [None, ""], 50)


def test_categorical_columns_are_inputs_carried_through_the_tables() -> None:
    declaration = parse_data({"label": "y", "amount": "amt", "numeric": ["f0"],
                              "categorical": ["mcc", "channel"], "max_levels": 20})
    layout = declaration.resolve("x.csv", ["f0", "mcc", "amt", "channel", "y"])
    assert layout.inputs == ["f0", "amt"] and layout.categorical == ("mcc", "channel")
    assert layout.model_inputs == ["f0", "amt", "mcc", "channel"]
    assert layout.table_columns == ["f0", "amt", "mcc", "channel", "Log amt", "y"]
    assert declaration.max_levels == 20
    auto = parse_data({"label": "y", "categorical": ["mcc"]}).resolve("x", ["a", "mcc", "y"])
    assert auto.inputs == ["a"] and auto.categorical == ("mcc",)


# --- no column in code ------------------------------------------------------------------------

CREDIT_CARD_NAME = re.compile(r"^(Class|Time|Amount|Log Amount|V([1-9]|1[0-9]|2[0-8]))$")
ALLOWED = {ROOT / "src/fraud/core/declaration.py", ROOT / "src/fraud/data/synthetic.py"}


def _named_columns(path: Path, root: Path = ROOT) -> list[str]:
    """String constants (docstrings aside) that are a Credit Card Fraud column's name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [f"{path.relative_to(root)}:{node.lineno}: {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and CREDIT_CARD_NAME.match(node.value)]


def test_no_library_module_names_a_credit_card_column() -> None:
    found = [hit for path in sorted((ROOT / "src").rglob("*.py")) if path not in ALLOWED
             for hit in _named_columns(path)]
    assert found == []


def test_the_check_finds_a_named_column(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Reads Amount."""\nAMOUNT = "Amount"\nX = f"{1}"\n')
    hits = [hit.split(": ", 1)[1] for hit in _named_columns(module, tmp_path)]
    assert hits == ["'Amount'"]


def test_the_docs_example_errors_are_the_real_messages() -> None:
    """docs/your-data.md quotes two errors: each must be what the code says today."""
    doc = (ROOT / "docs/your-data.md").read_text(encoding="utf-8")
    header = list(example_table(5).columns)
    with pytest.raises(PipelineError) as unexpected:
        parse_data({**DECLARATION, "entities": []}).resolve("data/raw/creditcard.csv", header)
    with pytest.raises(PipelineError) as two_roles:
        parse_data({**DECLARATION, "ids": ["txn_id", "ts"]})
    for error in (unexpected, two_roles):
        assert f"\n{error.value}\n" in doc
