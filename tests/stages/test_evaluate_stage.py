"""The evaluate_model and evaluate stages end to end, and their failures (one line, no
outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud.core.models import STRATEGIES
from fraud.core.params import load_params
from tests.credit_card import FEATURES, LABEL, TABLE_COLUMNS

MODEL_OUTPUTS = {"--metrics": "m/{model}.json", "--roc": "roc/{model}.csv",
                 "--prc": "prc/{model}.csv", "--thresholds": "thr/{model}.csv",
                 "--confusion-png": "img/cm_{model}.png", "--calibrator": "cal/{model}.json",
                 "--reliability": "rel/{model}.csv"}
CHOICE_OUTPUTS = {"--selected-metrics": "m/evaluate.json", "--roc-png": "img/roc.png",
                  "--prc-png": "img/prc.png"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scaled val/test splits, their tables, and three small (briefly trained) models: as
    `.keras` each, and as ONNX (what the pipeline's evaluate_model stages score)."""
    from fraud.serving import detector
    from fraud.training import network as keras_model

    base = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(3)
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    for split, rows in (("train", 3000), ("val", 1500), ("test", 1500)):
        labels = (rng.random(rows) < 0.05).astype(np.uint8)
        features = rng.normal(size=(rows, 29)).astype(np.float32)
        features[labels == 1, :4] += 2.0
        np.save(base / f"{split}_features.npy", features)
        np.save(base / f"{split}_labels.npy", labels)
        table = pd.DataFrame(features, columns=FEATURES)
        table[LABEL] = labels
        table["Time"] = np.arange(rows, dtype=float)
        table["Amount"] = rng.uniform(0, 500, rows).round(2)
        table[TABLE_COLUMNS].to_parquet(base / f"{split}.parquet")
    x = np.load(base / "train_features.npy")
    y = np.load(base / "train_labels.npy").astype(np.float32).reshape(-1, 1)
    (base / "data.json").write_text(json.dumps({"train_rows": len(y),
                                                "train_frauds": int(y.sum())}))
    for number, strategy in enumerate(STRATEGIES):
        keras_model.set_determinism(number)
        model = keras_model.make_model(29, params.model, output_bias=keras_model.careful_bias(y))
        model.fit(x, y, batch_size=256, epochs=8 + 2 * number, verbose=0)
        keras_model.save_model(model, base / f"{strategy}.keras")
        detector.save_onnx(detector.network_to_onnx(model, strategy), base / f"{strategy}.onnx")
    return base


# The file each strategy's evaluate_model run scores.
MODEL_FILE = {"baseline": "baseline.onnx", "weighted": "weighted.keras",
              "oversample": "oversample.onnx"}


def model_args(base: Path, out: Path, params: Path, models: dict[str, Path]) -> list[str]:
    """The evaluate_model stage's command line for `models` (name -> file)."""
    args = ["--params", str(params), "--data-summary", str(base / "data.json")]
    for name, model in models.items():
        args += ["--model", f"{name}={model}"]
    for split in ("val", "test"):
        args += [f"--{split}-features", str(base / f"{split}_features.npy"),
                 f"--{split}-labels", str(base / f"{split}_labels.npy"),
                 f"--{split}-table", str(base / f"{split}.parquet")]
    for flag, pattern in MODEL_OUTPUTS.items():
        args += [flag, str(out / pattern)]
    return args


def choice_args(out: Path, params: Path, models: tuple[str, ...] = STRATEGIES) -> list[str]:
    args = ["--params", str(params), "--models", ",".join(models)]
    for flag in ("--metrics", "--roc", "--prc"):
        args += [flag, str(out / MODEL_OUTPUTS[flag])]
    for flag, path in CHOICE_OUTPUTS.items():
        args += [flag, str(out / path)]
    return args


def model_outputs(out: Path, name: str) -> list[Path]:
    return [out / pattern.format(model=name) for pattern in MODEL_OUTPUTS.values()]


@pytest.fixture(scope="module")
def evaluated(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """evaluate_model run for each strategy (target_recall rule, amounts as costs): the
    pipeline's ONNX models, and one `.keras` (the stage scores that format too, with
    TensorFlow: ~5 s more)."""
    import subprocess
    import sys

    import yaml

    from tests.conftest import REPO, stage_env

    out = tmp_path_factory.mktemp("evaluated")
    (out / "inputs.json").write_text(json.dumps(str(inputs)))
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["evaluate"].update(threshold="target_recall", target_recall=0.9, cost_fn="amount",
                           bootstrap=200)
    params = out / "params.yaml"
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    models = {name: inputs / MODEL_FILE[name] for name in STRATEGIES}
    done = subprocess.run([sys.executable, "-m", "src.stages.evaluate_model",
                           *model_args(inputs, out, params, models)],
                          cwd=REPO, env=stage_env(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return out, params


def test_evaluate_model_writes_metrics_with_intervals(evaluated: tuple[Path, Path]) -> None:
    out, _ = evaluated
    for name in STRATEGIES:
        assert all(path.is_file() for path in model_outputs(out, name))
        result = json.loads((out / f"m/{name}.json").read_text())
        assert result["val_recall"] >= 0.9 and 0 < result["threshold"] < 1
        for figure in ("prc", "auc", "recall", "precision"):
            assert result[f"{figure}_low"] <= result[figure] <= result[f"{figure}_high"]
        assert result["cost"] >= 5 * result["fp"]  # 5 per false alarm + the amounts missed
        assert {"val_prc", "val_auc", "val_cost"} <= set(result)


CALIBRATION_KEYS = {f"{prefix}{key}" for prefix in ("", "val_") for key in (
    "loss", "brier", "ece", "expected_frauds", "frauds", "loss_raw", "brier_raw", "ece_raw",
    "expected_frauds_raw", "zero_probability_rows")} | {
    "calibration", "cost_rule_expected", "cost_rule_min_cost"}


def test_evaluate_model_reports_calibration(evaluated: tuple[Path, Path]) -> None:
    """Calibrated figures beside the raw ones, the calibrator for export, the reliability
    curve; auto (the repo's default) chose a method; no probability is exactly 0."""
    from fraud.core.calibrator import METHODS, Calibrator

    out, _ = evaluated
    for name in STRATEGIES:
        result = json.loads((out / f"m/{name}.json").read_text())
        assert set(result) >= CALIBRATION_KEYS
        assert result["calibration"] in METHODS
        assert result["zero_probability_rows"] == result["val_zero_probability_rows"] == 0
        assert result["frauds"] == int(np.load(evaluated_labels(out)).sum())
        assert 0 <= result["ece"] <= 1 and result["expected_frauds"] > 0
        saved = json.loads((out / f"cal/{name}.json").read_text())
        assert saved["model"] == name
        assert Calibrator.from_dict(saved).method == result["calibration"]
        curve = pd.read_csv(out / f"rel/{name}.csv")
        assert {"mean_predicted", "observed_rate", "rows"} <= set(curve.columns)
        assert curve["rows"].sum() == 1500


def evaluated_labels(out: Path) -> Path:
    return Path(json.loads((out / "inputs.json").read_text())) / "test_labels.npy"


def test_monotone_calibrations_keep_the_ranking(inputs: Path, tmp_path: Path, write_params,
                                                run_stage) -> None:
    """platt and isotonic (interpolated) are strictly increasing maps of the logit: test
    PR-AUC and ROC-AUC are those of `none` (prior, a shift, is left to the unit tests)."""
    ranking = {}
    for method in ("none", "platt", "isotonic"):
        params = write_params({"calibrate.method": method}, name=f"{method}.yaml")
        out = tmp_path / method
        done = run_stage("evaluate_model", *model_args(inputs, out, params,
                                                       {"weighted": inputs / "weighted.onnx"}))
        assert done.returncode == 0, done.stderr
        result = json.loads((out / "m/weighted.json").read_text())
        assert result["calibration"] == method
        ranking[method] = (result["prc"], result["auc"])
    assert all(value == pytest.approx(ranking["none"], abs=1e-12) for value in ranking.values())


@pytest.mark.parametrize("strategy", ["weighted", "auto"])
def test_evaluate_chooses_and_draws(evaluated: tuple[Path, Path], tmp_path: Path,
                                    write_params, run_stage, strategy: str) -> None:
    out, _ = evaluated
    params = write_params({"train.strategy": strategy})
    args = choice_args(out, params)
    args[args.index("--selected-metrics") + 1] = str(tmp_path / "evaluate.json")
    done = run_stage("evaluate", *args)
    assert done.returncode == 0, done.stderr
    selected = json.loads((tmp_path / "evaluate.json").read_text())
    per_model = {name: json.loads((out / f"m/{name}.json").read_text()) for name in STRATEGIES}
    if strategy == "auto":
        best = max(STRATEGIES, key=lambda name: per_model[name]["val_prc"])
        assert (selected["model"], selected["chosen_by"]) == (best, "validation")
    else:
        assert (selected["model"], selected["chosen_by"]) == ("weighted", "train.strategy")
    chosen = selected["model"]
    assert {k: v for k, v in selected.items()
            if k not in ("model", "strategy", "chosen_by", "select_by")} == per_model[chosen]
    assert "tensorflow" not in done.stderr.lower()


def test_evaluate_reads_metrics_without_tensorflow_or_sklearn(evaluated, tmp_path,
                                                               write_params) -> None:
    """A strategy switch reruns evaluate: it reads metrics and draws, and must not pay for
    TensorFlow or scikit-learn (and scipy) imports."""
    import subprocess
    import sys

    from tests.conftest import HEAVY_IMPORTS_PROBE, NO_HEAVY_IMPORTS, REPO, stage_env

    out, _ = evaluated
    args = choice_args(out, write_params({"train.strategy": "weighted"}))
    args[args.index("--selected-metrics") + 1] = str(tmp_path / "evaluate.json")
    done = subprocess.run([sys.executable, "-c", HEAVY_IMPORTS_PROBE, "src.stages.evaluate",
                           *args], cwd=REPO, env=stage_env(), capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == NO_HEAVY_IMPORTS


def test_missing_model_fails_in_one_line_and_leaves_nothing(inputs, tmp_path, write_params,
                                                            run_stage, stage_error) -> None:
    stale = tmp_path / "m/weighted.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    args = model_args(inputs, tmp_path, write_params(),
                      {"weighted": tmp_path / "weighted.keras"})
    line = stage_error(run_stage("evaluate_model", *args), "weighted.keras", "train_weighted",
                       only_line=False)
    assert line.startswith("error: ")
    assert not any(path.exists() for path in model_outputs(tmp_path, "weighted"))


def test_corrupt_model_is_a_clear_error(inputs, tmp_path, write_params, run_stage,
                                        stage_error) -> None:
    model = tmp_path / "baseline.keras"
    model.write_text("<html>not a model</html>")
    args = model_args(inputs, tmp_path, write_params(), {"baseline": model})
    stage_error(run_stage("evaluate_model", *args), "not a loadable Keras model",
                only_line=False)
    assert not any(path.exists() for path in model_outputs(tmp_path, "baseline"))


def test_evaluate_without_a_model_metrics_names_the_stage(tmp_path, write_params, run_stage,
                                                          stage_error) -> None:
    stage_error(run_stage("evaluate", *choice_args(tmp_path, write_params())),
                "m/baseline.json", "evaluate_model")
    assert not any((tmp_path / path).exists() for path in CHOICE_OUTPUTS.values())


@pytest.mark.parametrize(("models", "expected", "status"), [
    (["--model", "baseline"], "expected NAME=PATH", 2),
    (["--model", "baseline=a.onnx", "--model", "baseline=b.onnx"], "a model named twice", 1),
    (["--model", "forest=f.onnx"], "--model: 'forest' not among baseline", 1),
], ids=["no-path", "twice", "unknown"])
def test_bad_model_list_is_one_line(inputs, tmp_path, write_params, run_stage, models,
                                    expected, status) -> None:
    args = model_args(inputs, tmp_path, write_params(), {})
    done = run_stage("evaluate_model", *args, *models)
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not any(tmp_path.rglob("*.json")), "nothing written"
