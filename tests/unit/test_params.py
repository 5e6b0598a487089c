"""params.yaml validation: types, `dvc exp run -S` strings, and a message naming every bad key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraud.core.models import AUTO, MODELS
from fraud.core.params import (
    MONITORABLE,
    SELECT_BY,
    SPLIT_METHODS,
    Params,
    load_params,
    normalise_strategy,
    parse_params,
)
from fraud.errors import PipelineError
from tests.conftest import parse_error, with_value

REPO = Path(__file__).resolve().parents[2]


# --- the valid file ---------------------------------------------------------------------------

def test_repo_params_file_loads_with_correct_types(repo_params_raw: dict[str, Any]) -> None:
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params)
    raw = repo_params_raw

    assert type(params.seed) is int and params.seed == raw["seed"]

    d = params.download
    assert isinstance(d.url, str) and d.url == raw["download"]["url"]
    assert d.sha256 is None or (isinstance(d.sha256, str) and len(d.sha256) == 64)
    assert type(d.timeout) is float and d.timeout == raw["download"]["timeout"]
    assert type(d.retries) is int and d.retries == raw["download"]["retries"]
    assert type(d.synthetic_rows) is int
    assert type(d.synthetic_fraud_rate) is float

    assert type(params.clean.eps) is float and params.clean.eps == raw["clean"]["eps"]
    assert type(params.split.test_size) is float and type(params.split.val_size) is float
    assert params.split.method == raw["split"]["method"] and params.split.method in SPLIT_METHODS
    assert type(params.split.group_duplicates) is bool
    assert type(params.scale.clip) is float and params.scale.clip == raw["scale"]["clip"]

    assert type(params.model.hidden_units) is int
    assert type(params.model.dropout) is float and type(params.model.learning_rate) is float
    assert type(params.init_bias.compare_epochs) is int

    t = params.train
    assert t.strategy in (AUTO, *MODELS)
    assert type(t.epochs) is int and type(t.batch_size) is int and type(t.patience) is int
    assert t.monitor in MONITORABLE
    assert t.oversample_steps_per_epoch is None or type(t.oversample_steps_per_epoch) is int

    e = params.evaluate
    assert isinstance(e.threshold, (float, str))
    assert type(e.target_recall) is float and type(e.cost_fp) is float
    assert isinstance(e.cost_fn, (float, str))
    assert type(e.batch_size) is int and type(e.curve_points) is int
    assert type(e.bootstrap) is int and e.select_by in SELECT_BY
    assert isinstance(e.candidates, tuple) and set(e.candidates) <= set(MODELS)


def test_parse_params_of_the_repo_dict_equals_load_params(repo_params_raw: dict[str, Any]) -> None:
    assert parse_params(repo_params_raw) == load_params(REPO / "params.yaml")


def test_every_section_is_frozen(raw_params: dict[str, Any]) -> None:
    """The parsed params are shared by every caller: no section may be changed in place."""
    params = parse_params(raw_params)
    sections = [getattr(params, field.name) for field in dataclasses.fields(params)]
    for section in [params, *(s for s in sections if dataclasses.is_dataclass(s))]:
        first = dataclasses.fields(section)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(section, first, getattr(section, first))


# --- `dvc exp run -S key=value` writes strings ------------------------------------------------

@pytest.mark.parametrize(("dotted", "text", "expected"), [
    ("clean.eps", "1e-08", 1e-08),
    ("clean.eps", "0.01", 0.01),
    ("split.test_size", "0.25", 0.25),
    ("scale.clip", "3", 3.0),
    ("model.learning_rate", "1e-4", 1e-4),
    ("model.dropout", "0", 0.0),
    ("train.epochs", "5", 5),
    ("train.batch_size", "1024", 1024),
    ("train.batch_size", 512.0, 512),
    ("train.oversample_steps_per_epoch", "20", 20),
    ("train.oversample_steps_per_epoch", "null", None),
    ("seed", "7", 7),
    ("download.timeout", "2.5", 2.5),
    ("evaluate.threshold", "0.3", 0.3),
    ("evaluate.cost_fn", "250", 250.0),
])
def test_strings_are_cast(raw_params: dict[str, Any], dotted: str, text: Any,
                          expected: Any) -> None:
    params = parse_params(with_value(raw_params, dotted, text))
    section, _, key = dotted.rpartition(".")
    value = getattr(getattr(params, section), key) if section else getattr(params, key)
    assert value == expected
    assert type(value) is type(expected)


def test_exp_run_style_file_is_cast(tmp_path: Path) -> None:
    """What `dvc exp run -S clean.eps=1e-8` leaves in params.yaml: `eps: '1e-08'`."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["clean"]["eps"] = 1e-8
    raw["split"]["group_duplicates"] = "false"
    text = yaml.safe_dump(raw).replace("eps: 1.0e-08", "eps: 1e-08")
    assert "eps: 1e-08\n" in text
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    assert yaml.safe_load(text)["clean"]["eps"] == "1e-08"  # YAML 1.1 reads it as a string
    params = load_params(path)
    assert params.clean.eps == 1e-08 and type(params.clean.eps) is float
    assert params.split.group_duplicates is False


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("false", False), ("True", True),
    ("FALSE", False),
])
def test_group_duplicates_booleans_and_strings(raw_params: dict[str, Any], value: Any,
                                               expected: bool) -> None:
    params = parse_params(with_value(raw_params, "split.group_duplicates", value))
    assert params.split.group_duplicates is expected


@pytest.mark.parametrize(("value", "expected"), [
    ("time", "time"), ("Stratified", "stratified"), (" random ", "random")])
def test_split_methods(raw_params: dict[str, Any], value: str, expected: str) -> None:
    assert parse_params(with_value(raw_params, "split.method", value)).split.method == expected


@pytest.mark.parametrize(("value", "expected"), [
    (["baseline", "weighted"], ("baseline", "weighted")),
    ("oversample,baseline", ("oversample", "baseline")),
    (["resampled"], ("oversample",)),
    ("gbdt,logreg,baseline", ("gbdt", "logreg", "baseline")),  # every model can ship
])
def test_candidates_list_or_comma_string(raw_params: dict[str, Any], value: Any,
                                         expected: tuple[str, ...]) -> None:
    params = parse_params(with_value(raw_params, "evaluate.candidates", value))
    assert params.evaluate.candidates == expected


def test_strategy_auto_and_named(raw_params: dict[str, Any]) -> None:
    assert parse_params(with_value(raw_params, "train.strategy", "AUTO")).train.strategy == AUTO
    assert parse_params(with_value(raw_params, "train.strategy", "resampled")
                        ).train.strategy == "oversample"
    assert parse_params(with_value(raw_params, "train.strategy", "gbdt")).train.strategy == "gbdt"


def test_val_ap_is_the_default_monitor(repo_params_raw: dict[str, Any]) -> None:
    assert parse_params(repo_params_raw).train.monitor == "val_ap"


# --- invalid values: the message names the dotted key and the value ---------------------------

INVALID = [
    ("split.test_size", 0),
    ("split.test_size", 1),
    ("split.test_size", 1.5),
    ("split.test_size", -0.2),
    ("split.val_size", 0),
    ("split.val_size", 1),
    ("clean.eps", 0),
    ("clean.eps", -1),
    ("clean.eps", "0"),
    ("clean.eps", "abc"),
    ("clean.eps", None),
    ("clean.eps", True),
    ("clean.eps", ".inf"),
    ("scale.clip", 0),
    ("scale.clip", -1),
    ("train.batch_size", 0),
    ("train.batch_size", 2.5),
    ("train.epochs", 0),
    ("train.patience", -1),
    ("train.oversample_steps_per_epoch", 0),
    ("model.dropout", 1.0),
    ("model.dropout", -0.1),
    ("model.learning_rate", 0),
    ("model.hidden_units", 0),
    ("init_bias.compare_epochs", 0),
    ("download.sha256", "abc123"),
    ("download.sha256", "z" * 64),
    ("download.sha256", "0" * 63),
    ("download.sha256", ""),
    ("download.timeout", 0),
    ("download.retries", -1),
    ("download.synthetic_rows", 10),
    ("download.synthetic_fraud_rate", 0),
    ("evaluate.threshold", 1.5),
    ("evaluate.threshold", 0),
    ("evaluate.threshold", 1),
    ("evaluate.threshold", "foo"),
    ("evaluate.target_recall", 0),
    ("evaluate.target_recall", 1.1),
    ("evaluate.cost_fp", -1),
    ("evaluate.cost_fn", -5),
    ("evaluate.cost_fn", "bogus"),
    ("evaluate.batch_size", 0),
    ("evaluate.curve_points", 5),
    ("split.group_duplicates", "maybe"),
    ("split.group_duplicates", 1),
    ("split.method", "shuffled"),
    ("split.method", 3),
    ("evaluate.candidates", []),
    ("evaluate.candidates", ["baseline", "bogus"]),
    ("evaluate.candidates", ["baseline", "baseline"]),
    ("evaluate.candidates", ["logreg", "xgboost"]),
    ("evaluate.candidates", 3),
    ("evaluate.select_by", "prc"),
    ("evaluate.select_by", "test_prc"),
    ("evaluate.bootstrap", 10),
    ("evaluate.bootstrap", "many"),
    ("evaluate.bootstrap", 1.5),
    ("train.strategy", "xgboost"),
    ("seed", -1),
    ("seed", 2**32),
    ("seed", 1.5),
]


@pytest.mark.parametrize(("dotted", "value"), INVALID,
                         ids=[f"{d}={v!r}" for d, v in INVALID])
def test_invalid_value_names_key_and_value(raw_params: dict[str, Any], dotted: str,
                                           value: Any) -> None:
    message = parse_error(with_value(raw_params, dotted, value))
    assert message.startswith("params.yaml: ")
    assert f"{dotted} = {value!r}" in message
    assert "expected" in message


def test_monitor_lists_valid_choices(raw_params: dict[str, Any]) -> None:
    message = parse_error(with_value(raw_params, "train.monitor", "val_bogus"))
    assert "train.monitor = 'val_bogus'" in message
    for name in ("val_prc", "val_auc", "val_loss", "val_recall"):
        assert name in message


def test_strategy_lists_valid_choices(raw_params: dict[str, Any]) -> None:
    message = parse_error(with_value(raw_params, "train.strategy", "bogus"))
    assert "train.strategy = 'bogus'" in message
    for name in (*MODELS, "resampled"):
        assert name in message


@pytest.mark.parametrize(("value", "expected"), [
    ("resampled", "oversample"), ("oversample", "oversample"), ("Weighted", "weighted"),
    (" baseline ", "baseline"), ("RESAMPLED", "oversample"),
])
def test_strategy_normalised(raw_params: dict[str, Any], value: str, expected: str) -> None:
    assert parse_params(with_value(raw_params, "train.strategy", value)).train.strategy == expected
    assert normalise_strategy(value) == expected


def test_normalise_strategy_names_its_key() -> None:
    with pytest.raises(PipelineError, match=r"compare\.strategy = 3"):
        normalise_strategy(3, "compare.strategy")


# --- download.sha256 ----------------------------------------------------------------------------

def test_sha256_null_accepted(raw_params: dict[str, Any]) -> None:
    assert parse_params(with_value(raw_params, "download.sha256", None)).download.sha256 is None


def test_sha256_upper_case_is_lowered(raw_params: dict[str, Any]) -> None:
    digest = "AB" * 32
    params = parse_params(with_value(raw_params, "download.sha256", f" {digest} "))
    assert params.download.sha256 == digest.lower()


# --- evaluate.threshold and costs ---------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("target_recall", "target_recall"), ("min_cost", "min_cost"), (" min_cost ", "min_cost"),
    ("expected_cost", "expected_cost"), (0.3, 0.3), ("0.3", 0.3), (0.5, 0.5),
])
def test_threshold_rules_and_numbers(raw_params: dict[str, Any], value: Any,
                                     expected: Any) -> None:
    assert parse_params(with_value(raw_params, "evaluate.threshold", value)
                        ).evaluate.threshold == expected


def test_threshold_error_lists_rules(raw_params: dict[str, Any]) -> None:
    message = parse_error(with_value(raw_params, "evaluate.threshold", "foo"))
    assert "target_recall" in message and "min_cost" in message


@pytest.mark.parametrize(("method", "expected"), [
    ("none", "none"), ("prior", "prior"), (" Platt ", "platt"), ("isotonic", "isotonic"),
    ("auto", "auto")])
def test_calibrate_methods(raw_params: dict[str, Any], method: str, expected: str) -> None:
    raw = with_value(raw_params, "calibrate.method", method)
    raw["calibrate"].update(folds="3", bins=10)
    calibrate = parse_params(raw).calibrate
    assert (calibrate.method, calibrate.folds, calibrate.bins) == (expected, 3, 10)


def test_cost_fn_amount(raw_params: dict[str, Any]) -> None:
    assert parse_params(with_value(raw_params, "evaluate.cost_fn", "amount")
                        ).evaluate.cost_fn == "amount"


def test_min_cost_needs_a_cost(raw_params: dict[str, Any]) -> None:
    raw = with_value(raw_params, "evaluate.threshold", "min_cost")
    raw["evaluate"]["cost_fp"] = 0
    raw["evaluate"]["cost_fn"] = 0
    message = parse_error(raw)
    assert "min_cost" in message and "evaluate.cost_fp" in message and "evaluate.cost_fn" in message


@pytest.mark.parametrize(("cost_fp", "cost_fn"), [(0, 5), (5, 0), (0, "amount")])
def test_min_cost_with_one_cost_is_fine(raw_params: dict[str, Any], cost_fp: Any,
                                        cost_fn: Any) -> None:
    raw = with_value(raw_params, "evaluate.threshold", "min_cost")
    raw["evaluate"]["cost_fp"] = cost_fp
    raw["evaluate"]["cost_fn"] = cost_fn
    assert parse_params(raw).evaluate.threshold == "min_cost"


def test_zero_costs_are_fine_with_a_numeric_threshold(raw_params: dict[str, Any]) -> None:
    raw = with_value(raw_params, "evaluate.threshold", 0.5)
    raw["evaluate"]["cost_fp"] = 0
    raw["evaluate"]["cost_fn"] = 0
    assert parse_params(raw).evaluate.cost_fn == 0.0


# --- structure: unknown, missing keys -----------------------------------------------------------

def test_unknown_top_level_key(raw_params: dict[str, Any]) -> None:
    raw_params["bogus"] = 1
    message = parse_error(raw_params)
    assert "unknown key" in message and "bogus" in message


@pytest.mark.parametrize("section", ["download", "clean", "split", "scale", "model", "train",
                                     "evaluate", "init_bias"])
def test_unknown_key_inside_a_section(raw_params: dict[str, Any], section: str) -> None:
    raw_params[section]["bogus_knob"] = 1
    message = parse_error(raw_params)
    assert "unknown key" in message and f"{section}.bogus_knob" in message


@pytest.mark.parametrize("dotted", ["clean.eps", "split.method", "split.group_duplicates",
                                    "evaluate.candidates", "evaluate.select_by",
                                    "evaluate.bootstrap", "train.monitor",
                                    "download.sha256", "evaluate.cost_fn"])
def test_missing_key(raw_params: dict[str, Any], dotted: str) -> None:
    section, key = dotted.split(".")
    del raw_params[section][key]
    message = parse_error(raw_params)
    assert "missing" in message and dotted in message


def test_missing_seed(raw_params: dict[str, Any]) -> None:
    del raw_params["seed"]
    message = parse_error(raw_params)
    assert "missing" in message and "seed" in message


@pytest.mark.parametrize("section", ["clean", "scale"])
def test_missing_or_scalar_section(raw_params: dict[str, Any], section: str) -> None:
    del raw_params[section]
    assert f"'{section}'" in parse_error(raw_params)
    raw_params[section] = 3
    assert f"'{section}'" in parse_error(raw_params)


@pytest.mark.parametrize("raw", [None, [], "text", 3])
def test_top_level_not_a_mapping(raw: Any) -> None:
    with pytest.raises(PipelineError, match="mapping"):
        parse_params(raw)


# --- load_params --------------------------------------------------------------------------------

def test_load_params_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "params.yaml"
    with pytest.raises(PipelineError) as info:
        load_params(path)
    assert str(path) in str(info.value) and "not found" in str(info.value)


def test_load_params_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("seed: 42\nclean:\n  eps: [0.001\n  bad: {\n", encoding="utf-8")
    with pytest.raises(PipelineError) as info:
        load_params(path)
    message = str(info.value)
    assert str(path) in message and "not valid YAML" in message
    assert "\n" not in message  # printed as one line by the stages


def test_load_params_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(PipelineError, match="mapping"):
        load_params(path)


def test_load_params_reports_bad_key_from_file(write_params: Any) -> None:
    path = write_params({"scale.clip": -1})
    with pytest.raises(PipelineError, match=r"scale\.clip = -1"):
        load_params(path)


REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _applied(text: str, tmp_path: Path, *overrides: str) -> str:
    """params.yaml as `dvc exp run -S` leaves it (DVC's own apply_overrides)."""
    from dvc.utils.hydra import apply_overrides

    copy = tmp_path / "params.yaml"
    copy.write_text(text, encoding="utf-8")
    apply_overrides(str(copy), list(overrides))
    return copy.read_text(encoding="utf-8")


def test_params_yaml_is_in_the_form_dvc_writes(tmp_path: Path) -> None:
    """An applied experiment then changes only its own lines: before, any -S also expanded
    the flow lists, dropped a `null` and wrapped the URL, a noisy diff."""
    text = REPO_PARAMS.read_text(encoding="utf-8")
    assert _applied(text, tmp_path, "seed=42") == text
    changed = _applied(text, tmp_path, "train.strategy=oversample").splitlines()
    differ = [(a, b) for a, b in zip(text.splitlines(), changed, strict=True) if a != b]
    assert differ == [("  strategy: auto", "  strategy: oversample")]


def test_a_flow_list_is_what_dvc_would_rewrite(tmp_path: Path) -> None:
    """The check above can fail: a hand-written flow list is not DVC's form."""
    text = REPO_PARAMS.read_text(encoding="utf-8").replace(
        "  - baseline\n  - weighted\n  - oversample\n", "", 1).replace(
        "  candidates:", "  candidates: [baseline, weighted, oversample]", 1)
    assert _applied(text, tmp_path, "seed=42") != text
