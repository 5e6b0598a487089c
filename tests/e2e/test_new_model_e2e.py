"""Adding a model is one module, its params section and a few lines of dvc.yaml: a toy kind
(scikit-learn's LinearDiscriminantAnalysis, not among the five) is added to a temporary copy
of the project, with no edit to any library module, and runs through training, evaluate,
explanations and export; `fraud predict` scores with the shipped detector."""

from __future__ import annotations

import csv
import difflib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.synthetic_project import dvc, fraud_predict, new_project, sh

pytestmark = pytest.mark.e2e

# The whole of the new kind: the module lda.py of the temporary project's kinds package.
LDA_MODULE = '''"""Linear discriminant analysis: a linear logit, so MatMul + Add in ONNX
and the closed-form explanation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import SCIKIT, Checks, Fit, LogitGraph, ModelKind, Split, linear_graph


@dataclass(frozen=True)
class LdaParams:
    tol: float


def parse(raw: dict[str, Any], p: Checks) -> LdaParams:
    section = p.section(raw, "lda", LdaParams)
    result = LdaParams(tol=p.as_float("lda.tol", section["tol"]))
    p.require("lda.tol", section["tol"], result.tol > 0, "a number > 0")
    return result


def fit(train: Split, val: Split, params: LdaParams, seed: int) -> Fit:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    from . import _scikit

    train, val = _scikit.check_pair(train, val)
    model = LinearDiscriminantAnalysis(tol=params.tol).fit(*train)
    return Fit(model, {"model": "lda", "val_ap": _scikit.val_ap(model, val)})


def fitted_problem(model: Any) -> str | None:
    from ._scikit import finite_floats

    return (finite_floats("coef_", model.coef_, (1, model.n_features_in_))
            or finite_floats("intercept_", model.intercept_, (1,)))


def logit_graph(model: Any, n_features: int) -> LogitGraph:
    return linear_graph("lda", model.coef_, model.intercept_, n_features)


KINDS = (ModelKind(
    name="lda", train_stage="train_lda", color="#56B4E9", order=60, family=SCIKIT,
    explanation="linear", section="lda", parse=parse, fit=fit,
    estimator=("sklearn.discriminant_analysis", "LinearDiscriminantAnalysis"),
    trusted=frozenset({("sklearn.discriminant_analysis", "LinearDiscriminantAnalysis",
                        "ObjectNode")}),
    fitted_problem=fitted_problem, logit_graph=logit_graph),)
'''

LDA = "models/detector/lda.onnx"
TRAIN_STAGE = """
  train_lda:
    <<: *peer_train
    vars:
      - peer: lda
"""


def add_lda(dvc_yaml: str) -> tuple[str, int]:
    """dvc.yaml with the lda stage and lda in every model list; and how many lines changed."""
    before = dvc_yaml.splitlines()
    text = dvc_yaml.replace("oversample,logreg,gbdt", "oversample,logreg,gbdt,lda")
    gbdt = "models/detector/gbdt.onnx"
    text = text.replace(f"--model gbdt={gbdt}", f"--model gbdt={gbdt} --model lda={LDA}")
    text = text.replace(f"      - {gbdt}\n", f"      - {gbdt}\n      - {LDA}\n")
    text = text.replace("\n  evaluate_model:", TRAIN_STAGE + "\n  evaluate_model:", 1)
    added = [line for line in difflib.unified_diff(before, text.splitlines(), lineterm="", n=0)
             if line.startswith("+") and not line.startswith("+++")]
    return text, len(added)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("new-model") / "repo"
    repo.mkdir()
    new_project(repo)
    (repo / "src/fraud/kinds/lda.py").write_text(LDA_MODULE)
    text, changed = add_lda((repo / "dvc.yaml").read_text())
    assert changed <= 15, changed  # the stage, and lda in the lists: a few lines
    (repo / "dvc.yaml").write_text(text)
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["lda"] = {"tol": 1e-4}
    params["train"]["strategy"] = "lda"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "a sixth model: lda")
    dvc(repo, "repro")
    return repo


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_no_library_module_but_the_new_one_changed(project: Path) -> None:
    changed = sh(project, "git", "diff", "--name-only", "HEAD~1", "HEAD").stdout.split()
    assert sorted(changed) == ["dvc.yaml", "params.yaml", "src/fraud/kinds/lda.py"]


def test_evaluate_chose_it_and_export_shipped_it(project: Path) -> None:
    assert read_json(project / "metrics/evaluate.json")["model"] == "lda"
    assert read_json(project / "metrics/val/lda.json")["model"] == "lda"
    assert read_json(project / "models/fraud_detector.json")["model"] == "lda"
    importance = read_json(project / "metrics/importance.json")
    assert "lda" in importance


def test_predict_scores_with_it(project: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(project / "data/raw/creditcard.csv", nrows=300)
    source = tmp_path / "new.csv"
    raw.drop(columns=["Class"]).to_csv(source, index=False)
    scores = tmp_path / "scores.csv"
    done = fraud_predict(project, str(source), "-o", str(scores))
    assert done.returncode == 0, done.stderr
    with open(scores, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300
    assert all(0.0 <= float(row["probability"]) <= 1.0 for row in rows)
