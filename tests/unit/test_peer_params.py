"""Params sections `logreg` and `gbdt` (the peers): types, `-S` strings, one-line errors."""

from __future__ import annotations

from typing import Any

import pytest

from fraud.core.models import MODELS, PEERS, STRATEGIES
from fraud.core.params import parse_params
from fraud.kinds.gbdt import SCORINGS as GBDT_SCORINGS
from fraud.kinds.gbdt import GbdtParams
from fraud.kinds.logreg import CLASS_WEIGHTS as LOGREG_CLASS_WEIGHTS
from fraud.kinds.logreg import LogregParams
from tests.conftest import parse_error, with_value


def test_model_names() -> None:
    assert PEERS == ("logreg", "gbdt")
    assert MODELS == STRATEGIES + PEERS == ("baseline", "weighted", "oversample", "logreg",
                                             "gbdt")


def test_repo_values(raw_params: dict[str, Any]) -> None:
    params = parse_params(raw_params)
    assert params.logreg == LogregParams(c_grid=(0.01, 0.1, 1.0, 10.0), class_weight="none",
                                         max_iter=1000)
    g = params.gbdt
    assert isinstance(g, GbdtParams) and g.scoring in GBDT_SCORINGS
    assert type(g.learning_rate) is float and type(g.l2_regularization) is float
    assert g.l2_regularization > 0  # without it the trees collapse on this data
    for name in ("max_iter", "max_leaf_nodes", "min_samples_leaf", "n_iter_no_change"):
        assert type(getattr(g, name)) is int


@pytest.mark.parametrize(("dotted", "value", "expected"), [
    ("logreg.c_grid", ["0.5", "1e-2"], (0.5, 0.01)),   # what `dvc exp run -S` may write
    ("logreg.c_grid", "2", (2.0,)),                   # a single value is a grid of one
    ("logreg.c_grid", 3, (3.0,)),
    ("logreg.class_weight", "balanced", "balanced"),
    ("logreg.class_weight", " Balanced ", "balanced"),
    ("logreg.class_weight", None, "none"),            # YAML null
    ("logreg.class_weight", "none", "none"),
    ("logreg.max_iter", "200", 200),
    ("gbdt.learning_rate", "1e-1", 0.1),
    ("gbdt.l2_regularization", "0", 0.0),
    ("gbdt.max_iter", "50", 50),
    ("gbdt.max_leaf_nodes", 2.0, 2),
    ("gbdt.min_samples_leaf", "5", 5),
    ("gbdt.n_iter_no_change", "3", 3),
    ("gbdt.scoring", "loss", "loss"),
])
def test_strings_are_cast(raw_params: dict[str, Any], dotted: str, value: Any,
                          expected: Any) -> None:
    section, key = dotted.split(".")
    parsed = getattr(getattr(parse_params(with_value(raw_params, dotted, value)), section), key)
    assert parsed == expected and type(parsed) is type(expected)


INVALID = [
    # (dotted key, bad value, the name the message must carry, words of what is allowed)
    ("logreg.c_grid", [], "logreg.c_grid", "distinct numbers > 0"),
    ("logreg.c_grid", [0.1, 0], "logreg.c_grid", "distinct numbers > 0"),
    ("logreg.c_grid", [-1], "logreg.c_grid", "distinct numbers > 0"),
    ("logreg.c_grid", [1, 1.0], "logreg.c_grid", "distinct numbers > 0"),
    ("logreg.c_grid", [0.1, "abc"], "logreg.c_grid[1]", "a number"),
    ("logreg.c_grid", [0.1, float("inf")], "logreg.c_grid[1]", "finite"),
    ("logreg.c_grid", True, "logreg.c_grid[0]", "a number"),
    ("logreg.c_grid", None, "logreg.c_grid[0]", "a number"),
    ("logreg.class_weight", "auto", "logreg.class_weight", ", ".join(LOGREG_CLASS_WEIGHTS)),
    ("logreg.class_weight", 1, "logreg.class_weight", ", ".join(LOGREG_CLASS_WEIGHTS)),
    ("logreg.max_iter", 0, "logreg.max_iter", ">= 1"),
    ("logreg.max_iter", 2.5, "logreg.max_iter", "whole number"),
    ("gbdt.learning_rate", 0, "gbdt.learning_rate", "(0, 1]"),
    ("gbdt.learning_rate", 1.5, "gbdt.learning_rate", "(0, 1]"),
    ("gbdt.learning_rate", "fast", "gbdt.learning_rate", "a number"),
    ("gbdt.l2_regularization", -1, "gbdt.l2_regularization", ">= 0"),
    ("gbdt.l2_regularization", None, "gbdt.l2_regularization", "a number"),
    ("gbdt.max_iter", 0, "gbdt.max_iter", ">= 1"),
    ("gbdt.max_leaf_nodes", 1, "gbdt.max_leaf_nodes", ">= 2"),
    ("gbdt.max_leaf_nodes", None, "gbdt.max_leaf_nodes", "a number"),
    ("gbdt.min_samples_leaf", 0, "gbdt.min_samples_leaf", ">= 1"),
    ("gbdt.n_iter_no_change", 0, "gbdt.n_iter_no_change", ">= 1"),
    ("gbdt.n_iter_no_change", 1.5, "gbdt.n_iter_no_change", "whole number"),
    ("gbdt.scoring", "roc_auc", "gbdt.scoring", ", ".join(GBDT_SCORINGS)),
    ("gbdt.scoring", None, "gbdt.scoring", ", ".join(GBDT_SCORINGS)),
]


@pytest.mark.parametrize(("dotted", "value", "name", "allowed"), INVALID,
                         ids=[f"{d}={v!r}" for d, v, _, _ in INVALID])
def test_bad_values_fail_with_one_line(raw_params: dict[str, Any], dotted: str, value: Any,
                                       name: str, allowed: str) -> None:
    message = parse_error(with_value(raw_params, dotted, value))
    assert f"{name} = " in message and "expected" in message and allowed in message
    # An element of the grid is named by its index, with its own value.
    element = name.endswith("]") and isinstance(value, list)
    assert repr(value[int(name[-2])] if element else value) in message


@pytest.mark.parametrize("section", ["logreg", "gbdt"])
def test_unknown_and_missing_keys_and_sections(raw_params: dict[str, Any], section: str) -> None:
    raw_params[section]["bogus_knob"] = 1
    assert f"{section}.bogus_knob" in parse_error(raw_params)
    del raw_params[section]["bogus_knob"]
    first = min(raw_params[section])
    del raw_params[section][first]
    assert "missing" in parse_error(raw_params)
    del raw_params[section]
    assert f"'{section}'" in parse_error(raw_params)
