"""The train_peer stage script end to end, as dvc runs it: a subprocess on small arrays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud.kinds._scikit import load_model as load_peer
from fraud.kinds._scikit import scores as peer_scores
from fraud.serving.onnx_contract import DETECTOR
from fraud.serving.onnx_scoring import load_onnx
from tests.conftest import REPO, check_stage_error, save_scaled_splits, stage_env, write_scaler
from tests.credit_card import N_FEATURES

# Quick trees: small arrays, a high learning rate, a short patience.
QUICK = {"gbdt.max_iter": 60, "gbdt.learning_rate": 0.3, "gbdt.n_iter_no_change": 5}


def make_split(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features as `scale` writes them (float32, 29 columns), uint8 labels, ~5 % frauds."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    labels = (features[:, 0] + features[:, 3] + rng.normal(scale=0.7, size=rows) > 2.3)
    return features, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def arrays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scaled")
    paths = save_scaled_splits(folder, make_split, {"train": (1500, 1), "val": (500, 2)})
    paths["scaler"] = write_scaler(folder / "scaler.json", clip=5.0)
    return paths


def stage_args(model: str, arrays: dict[str, Path], out: Path, params: Path) -> list[Any]:
    return ["--model", model, "--params", params,
            "--train-features", arrays["train_features"], "--train-labels", arrays["train_labels"],
            "--val-features", arrays["val_features"], "--val-labels", arrays["val_labels"],
            "--scaler", arrays["scaler"], "--model-out", out / f"{model}.skops",
            "--detector-onnx-out", out / f"{model}.onnx", "--metrics-out", out / f"{model}.json"]


def run_peer(*args: Any) -> subprocess.CompletedProcess[str]:
    """The stage, and a check that TensorFlow never got imported (exit 3 if it did)."""
    code = ("import sys, runpy; sys.argv = ['train_peer', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('src.stages.train_peer', run_name='__main__')\n"
            "finally:\n"
            "    if 'tensorflow' in sys.modules: print('tensorflow imported', file=sys.stderr);"
            " sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                          env=stage_env(), capture_output=True, text=True, timeout=180,
                          check=False)


@pytest.mark.parametrize("model", ["logreg", "gbdt"])
def test_stage_writes_a_loadable_model_and_its_summary(model, arrays, write_params,
                                                       tmp_path) -> None:
    params = write_params(QUICK)
    result = run_peer(*stage_args(model, arrays, tmp_path, params))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / f"{model}.json").read_text(encoding="utf-8"))
    assert summary["model"] == model and 0 < summary["val_ap"] <= 1
    assert ("c" in summary) if model == "logreg" else (summary["n_iter"] <= 60)
    loaded = load_peer(tmp_path / f"{model}.skops", f"train_{model}")
    scores = peer_scores(loaded, np.load(arrays["val_features"]))
    assert scores.shape == (500,) and np.all((scores >= 0) & (scores <= 1))
    detector = load_onnx(tmp_path / f"{model}.onnx", f"train_{model}", DETECTOR)
    assert detector.metadata["strategy"] == model
    raw = np.load(arrays["val_features"]).astype(np.float64)
    raw[:, -1] = np.exp(raw[:, -1]) - 0.001  # the identity scaler: Amount is only logged
    np.testing.assert_allclose(detector(raw), scores, rtol=0, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [params.name, f"{model}.json", f"{model}.skops", f"{model}.onnx"])  # no temporaries


def test_missing_input_is_one_error_line_and_no_outputs(arrays, write_params, tmp_path) -> None:
    params = write_params(QUICK)
    out = tmp_path / "out"
    out.mkdir()
    (out / "gbdt.skops").write_bytes(b"stale")
    args = stage_args("gbdt", {**arrays, "val_labels": tmp_path / "nowhere.npy"}, out, params)
    line = check_stage_error(run_peer(*args), "nowhere.npy", "not found", "scale")
    assert line.startswith("error: ")
    assert list(out.iterdir()) == []  # the stale model went first


def test_bad_param_is_one_error_line(arrays, write_params, tmp_path) -> None:
    params = write_params({"logreg.c_grid": [0.1, -1]})
    check_stage_error(run_peer(*stage_args("logreg", arrays, tmp_path, params)),
                      "logreg.c_grid = [0.1, -1]")
    assert not (tmp_path / "logreg.skops").exists()


def test_unknown_model_is_refused(arrays, write_params, tmp_path) -> None:
    result = run_peer(*stage_args("svm", arrays, tmp_path, write_params()))
    assert result.returncode == 2 and "invalid choice: 'svm'" in result.stderr
