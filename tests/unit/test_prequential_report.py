"""Prequential selection (src/fraud/experiments/prequential.py) and its report: candidates
ranked on validation averaged over the folds, test figures from fold 0 alone, on fabricated
metrics files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fraud.core.files import json_dumps
from fraud.experiments import prequential
from fraud.experiments import report as formats
from fraud.experiments.plan import expand
from fraud.experiments.show import Experiment

FOLDS = [0, 1, 2]
# model -> (validation PR-AUC per fold, test PR-AUC per fold): gbdt is best on validation on
# average but worst on fold 0's test; logreg's later folds' tests are the best of all, and
# must never show.
VAL = {"logreg": [0.60, 0.62, 0.58], "gbdt": [0.70, 0.66, 0.68]}
TEST = {"logreg": [0.65, 0.99, 0.98], "gbdt": [0.55, 0.97, 0.96]}


def _metrics(model: str, fold: int, shift: float = 0.0) -> dict[str, Any]:
    return {"val_prc": VAL[model][fold] + shift, "prc": TEST[model][fold] + shift,
            "auc": 0.9 - fold / 100, "val_card_precision": 0.2 + fold / 100 + shift,
            "card_precision": 0.3 + fold / 10 + shift, "card_precision_days": 7}


def _sweep(grid: dict[str, list[str]] | None = None, shift: dict[str, float] | None = None,
           shifted: tuple[str, ...] = tuple(VAL)) -> tuple[list, dict[str, Experiment]]:
    """Finished experiments as `dvc exp show` reads them, named as the sweep names them;
    `shift` adds to every figure of the `shifted` models at a grid value of
    model.hidden_units."""
    points = expand([42], grid or {}, {}, "sweep", "abcdef12", FOLDS)
    found = {}
    for point in points:
        value = dict(point.settings).get("model.hidden_units", "16")
        add = (shift or {}).get(value, 0.0)
        metrics = {f"metrics/{m}.json": _metrics(m, point.fold, add if m in shifted else 0.0)
                   for m in VAL}
        metrics["metrics/evaluate.json"] = {"model": "logreg" if point.fold else "gbdt"}
        params = {"seed": 42, "split": {"fold": point.fold},
                  "model": {"hidden_units": int(value)}}
        found[point.name] = Experiment(point.name, "f" * 40, "e" * 40, "success", params,
                                       metrics)
    return points, found


def test_validation_is_averaged_over_folds_and_test_is_fold_zeros() -> None:
    points, experiments = _sweep()
    selection = prequential.select(points, experiments, {})
    assert selection.folds == FOLDS and selection.ranked and selection.skipped == []
    assert [c.model for c in selection.candidates] == ["gbdt", "logreg"]  # on validation
    gbdt = selection.candidates[0]
    assert gbdt.validation["val_prc"].mean == pytest.approx(0.68)
    assert gbdt.validation["val_prc"].sd == pytest.approx(0.02)
    assert (gbdt.validation["val_prc"].low, gbdt.validation["val_prc"].high) == (0.66, 0.70)
    assert gbdt.validation["val_card_precision"].mean == pytest.approx(0.21)
    assert gbdt.test == {"prc": 0.55, "auc": 0.9, "card_precision": 0.3}  # fold 0's alone
    assert gbdt.per_fold[1] == pytest.approx({"val_prc": 0.66, "val_card_precision": 0.21})
    assert selection.chosen == {"": {0: "gbdt", 1: "logreg", 2: "logreg"}}


def test_the_report_says_validation_chooses_and_shows_no_later_folds_test() -> None:
    points, experiments = _sweep()
    selection = prequential.select(points, experiments, {})
    context = {"seeds": [42], "folds": FOLDS, "code": "abcdef12", "grid": {}, "fixed": {}}
    markdown = formats.prequential_markdown(selection, context)
    assert "Folds 0, 1, 2 at seed 42" in markdown
    assert "**Every choice is made on the folds' validation**" in markdown
    assert "**The test is read once**" in markdown and "fold 0's alone" in markdown
    assert ("| gbdt | 0.680 ± 0.020 [0.660, 0.700] | 0.210 ± 0.010 [0.200, 0.220] | 0.550 "
            "| 0.900 | 0.300 |") in markdown
    for later in ("0.99", "0.98", "0.97", "0.96"):  # no later fold's test figure anywhere
        assert later not in markdown
    assert "| test PR-AUC (fold 0) |" in markdown
    assert "| gbdt | 0.700 | 0.660 | 0.680 |" in markdown  # validation, fold by fold
    assert "| gbdt | logreg | logreg |" in markdown  # evaluate's choice per fold
    data = json.loads(json_dumps(formats.prequential_json(selection, context)))
    assert data["protocol"] == "prequential" and data["test_fold"] == 0
    assert data["candidates"][0]["test"] == {"prc": 0.55, "auc": 0.9, "card_precision": 0.3}
    assert data["candidates"][0]["validation"]["val_prc"]["n"] == 3
    assert "0.99" not in json_dumps(data) and "0.97" not in json_dumps(data)


def test_a_grid_is_ranked_as_one_and_each_model_keeps_its_best_point() -> None:
    grid = {"model.hidden_units": ["8", "16"]}
    points, experiments = _sweep(grid, shift={"8": 0.05})
    selection = prequential.select(points, experiments, {})
    assert [(c.model, c.label) for c in selection.candidates] == [
        ("gbdt", "model.hidden_units=8"), ("gbdt", "model.hidden_units=16"),
        ("logreg", "model.hidden_units=8"), ("logreg", "model.hidden_units=16")]
    assert [(c.model, c.label) for c in selection.best_per_model] == [
        ("gbdt", "model.hidden_units=8"), ("logreg", "model.hidden_units=8")]
    markdown = formats.prequential_markdown(selection, {"seeds": [42], "grid": grid})
    assert "## Each model at its best grid point on validation" in markdown
    assert "| gbdt | model.hidden_units=8 | 0.730 ± 0.020" in markdown


def test_a_model_the_grid_does_not_change_is_listed_once() -> None:
    grid = {"model.hidden_units": ["8", "16", "32"]}
    points, experiments = _sweep(grid, shift={"8": -0.05, "32": 0.01}, shifted=("gbdt",))
    selection = prequential.select(points, experiments, {})
    assert [(c.model, c.label) for c in selection.candidates] == [
        ("gbdt", "model.hidden_units=32"), ("gbdt", "model.hidden_units=16"),
        ("gbdt", "model.hidden_units=8"), ("logreg", prequential.SAME_AT_EVERY_POINT)]
    assert [(c.model, c.label) for c in selection.best_per_model] == [
        ("gbdt", "model.hidden_units=32"), ("logreg", prequential.SAME_AT_EVERY_POINT)]


def test_missing_folds_and_missing_validation() -> None:
    points, experiments = _sweep()
    del experiments[points[0].name]  # fold 0 did not finish: no test figures
    selection = prequential.select(points, experiments, {})
    assert selection.candidates[0].test == {} and selection.candidates[0].folds == [1, 2]
    assert selection.skipped == ["the sweep: averaged over 2 of 3 folds",
                                 "the sweep: fold 0 did not finish: no test figures"]
    del experiments[points[1].name]  # one fold left: nothing to compare, still a report
    selection = prequential.select(points, experiments, {})
    assert selection.candidates == [] and not selection.ranked
    assert "the sweep: 1 of 3 folds finished; a mean over folds needs 2" in selection.skipped
    markdown = formats.prequential_markdown(selection, {"seeds": [42], "failed": ["x: y"]})
    assert "Nothing to compare" in markdown and "## Failed experiments" in markdown
    points, experiments = _sweep()
    for experiment in experiments.values():
        for values in experiment.metrics.values():
            values.pop("val_prc", None)
    selection = prequential.select(points, experiments, {})
    assert not selection.ranked and selection.best_per_model == []
    assert "Not ranked" in formats.prequential_markdown(selection, {"seeds": [42]})


def test_an_experiment_that_ran_another_fold_is_refused() -> None:
    points, experiments = _sweep()
    experiments[points[1].name].params["split"]["fold"] = 2
    with pytest.raises(Exception, match="ran with split.fold=2"):
        prequential.select(points, experiments, {})
