"""End to end: the real `dvc repro`, `dvc exp run` and `dvc metrics diff` in a temporary git
repository, on small synthetic data (no network)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fraud.core.models import MODELS, STRATEGIES
from tests.project_files import ran_stages, stage_names
from tests.synthetic_project import BUILD_LOG, copy_project, dvc, env, sh

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the session's synthetic project, after its one `dvc repro`."""
    return copy_project(built_project, tmp_path_factory.mktemp("project") / "repo")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_repro_runs_every_stage_once(built_project: Path) -> None:
    first_run = (built_project.parent / BUILD_LOG).read_text(encoding="utf-8")
    ran = ran_stages(first_run)
    assert sorted(ran) == sorted(stage_names(ROOT / "dvc.yaml")), first_run
    assert len(ran) == len(set(ran))


def test_repro_writes_every_artefact(project: Path) -> None:
    data = read_json(project / "metrics/data.json")
    assert data["rows"] == 12000 and data["frauds"] == 120
    for strategy in STRATEGIES:
        metrics = read_json(project / f"metrics/{strategy}.json")
        for key in ("loss", "tp", "fp", "tn", "fn", "accuracy", "precision", "recall", "auc",
                    "prc", "brier", "threshold"):
            assert key in metrics, (strategy, key)
        assert metrics["tp"] + metrics["fn"] == data["test_frauds"]
        assert abs(data["test_frauds"] - 24) <= 2  # 20 % of 120, stratified (by group)
        assert metrics["prc_low"] <= metrics["prc"] <= metrics["prc_high"]
        assert 0.5 < metrics["auc"] <= 1
        assert (project / f"models/{strategy}.keras").is_file()
        history = (project / f"plots/history/{strategy}.csv").read_text().splitlines()
        assert history[0].startswith("epoch,") and 2 <= len(history) - 1 <= 4
        roc = (project / f"plots/roc/{strategy}.csv").read_text()
        assert "inf" not in roc and len(roc.splitlines()) - 1 <= 200
    assert data["duplicates_across_splits"] == 0
    selected = read_json(project / "metrics/evaluate.json")
    per_model = {name: read_json(project / f"metrics/{name}.json") for name in STRATEGIES}
    assert selected["model"] == max(STRATEGIES, key=lambda name: per_model[name]["val_prc"])
    assert selected["chosen_by"] == "validation"
    choice_keys = ("model", "strategy", "chosen_by", "select_by")
    assert {k: v for k, v in selected.items() if k not in choice_keys} \
        == per_model[selected["model"]]
    assert dvc(project, "status").stdout.strip().endswith("up to date.")


def test_repro_monitors_the_test_split_and_explains_every_model(project: Path) -> None:
    monitor = read_json(project / "metrics/monitor.json")
    assert monitor["rows"] == read_json(project / "metrics/data.json")["test_rows"]
    assert monitor["columns_stable"] + monitor["columns_moderate"] \
        + monitor["columns_major"] == 29
    for figure in ("frauds", "precision", "recall"):
        assert {f"{figure}_estimated", f"{figure}_realised", f"{figure}_error"} <= set(monitor)
    drift = (project / "plots/drift.csv").read_text().splitlines()
    assert drift[0] == "column,psi,band" and len(drift) == 1 + 29 + 1
    importance = read_json(project / "metrics/importance.json")
    for model in MODELS:
        assert importance[model]["top1_share"] >= importance[model]["top3_share"] > 0
        assert (project / f"plots/importance/{model}.csv").is_file()
        assert (project / f"models/reference/{model}.json").is_file()
    card = read_json(project / "models/fraud_detector.json")
    assert card["monitoring_reference"]["model_sha256"] == card["files"]["onnx"]["sha256"]
    assert card["importance"]["test_frauds"][0]["feature"] == \
        importance[card["model"]]["top1"]


def test_metrics_show_has_a_row_per_strategy(project: Path) -> None:
    shown = dvc(project, "metrics", "show").stdout
    for strategy in STRATEGIES:
        assert f"metrics/{strategy}.json" in shown
    assert "metrics/evaluate.json" in shown


def test_exp_run_strategy_reruns_only_evaluate(project: Path) -> None:
    chosen = read_json(project / "metrics/evaluate.json")["model"]
    other = next(name for name in ("oversample", "weighted") if name != chosen)
    done = dvc(project, "exp", "run", "-S", f"train.strategy={other}")
    ran = ran_stages(done.stdout)
    # check_params reads every param first; export ships the champion, monitor watches it
    assert ran == ["check_params", "evaluate", "export", "monitor"], done.stdout
    selected = read_json(project / "metrics/evaluate.json")
    assert selected["model"] == other and selected["chosen_by"] == "train.strategy"
    diff = dvc(project, "metrics", "diff", "--json").stdout
    changed = json.loads(diff)["metrics/evaluate.json"]
    assert "model" in changed and "prc" in changed, changed
    # The named strategy's numbers are what evaluate.json now reports.
    assert selected["prc"] == read_json(project / f"metrics/{other}.json")["prc"]
    # Back to the committed workspace for the next tests.
    sh(project, "git", "checkout", "--", ".")
    dvc(project, "checkout", "-q")


def test_exp_run_calibration_retrains_nothing(project: Path) -> None:
    """`calibrate` is read by evaluate_model only: the models stay, the method changes."""
    done = dvc(project, "exp", "run", "-S", "calibrate.method=platt")
    ran = ran_stages(done.stdout)
    # the references hold the calibrated scores; importance explains the uncalibrated logit
    assert not [name for name in ran if not name.startswith(
        ("check_params", "evaluate", "reference", "export", "monitor"))], done.stdout
    assert [name for name in ran if name == "evaluate_model"], done.stdout
    for strategy in STRATEGIES:
        assert read_json(project / f"metrics/{strategy}.json")["calibration"] == "platt"
        saved = read_json(project / f"models/calibration/{strategy}.json")
        assert (saved["method"], saved["model"]) == ("platt", strategy)
    sh(project, "git", "checkout", "--", ".")
    dvc(project, "checkout", "-q")


def test_exp_run_rejects_unknown_strategy_and_keeps_the_results(project: Path) -> None:
    """check_params fails before DVC deletes anything: the git-tracked metrics and plots of
    evaluate (which the new strategy would rerun) are still there, unchanged."""
    done = subprocess.run([sys.executable, "-m", "dvc", "exp", "run", "-S",
                           "train.strategy=bogus"], cwd=project, env=env(),
                          capture_output=True, text=True)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "train.strategy" in output and "baseline, weighted, oversample" in output
    assert ran_stages(done.stdout) == ["check_params"], done.stdout
    changed = sh(project, "git", "status", "--porcelain").stdout.splitlines()
    assert changed == [" M params.yaml"], changed  # nothing deleted, nothing rewritten
    sh(project, "git", "checkout", "--", ".")


def test_repro_single_item_skips_check_params(project: Path) -> None:
    """What docs/troubleshooting.md says of `dvc repro -s`: it skips check_params, and DVC
    deletes the stage's outputs, git-tracked ones too, before the stage's own check stops it;
    named without -s, the stage stops at check_params with nothing deleted. After that failed
    check_params (its output deleted), `-s` fails on the missing data/params.ok."""
    params = project / "params.yaml"
    params.write_text(re.sub(r"(?m)^(  select_by:) \S+", r"\1 bogus", params.read_text()))
    repro = [sys.executable, "-m", "dvc", "repro"]
    done = subprocess.run(repro + ["evaluate"], cwd=project, env=env(), capture_output=True,
                          text=True)
    assert done.returncode != 0 and ran_stages(done.stdout) == ["check_params"], done.stdout
    assert sh(project, "git", "status", "--porcelain").stdout.splitlines() == [" M params.yaml"]
    assert not (project / "data/params.ok").exists()

    done = subprocess.run(repro + ["-s", "evaluate"], cwd=project, env=env(),
                          capture_output=True, text=True)
    assert done.returncode != 0 and "params.ok" in done.stderr, done.stderr
    deleted = sorted(line[3:] for line in sh(project, "git", "status", "--porcelain")
                     .stdout.splitlines() if line.startswith(" D "))
    assert "metrics/evaluate.json" in deleted, deleted
    sh(project, "git", "checkout", "--", ".")
    dvc(project, "repro", "-q", "check_params")

    params.write_text(re.sub(r"(?m)^(  select_by:) \S+", r"\1 bogus", params.read_text()))
    done = subprocess.run(repro + ["-s", "evaluate"], cwd=project, env=env(),
                          capture_output=True, text=True)
    assert done.returncode != 0 and ran_stages(done.stdout) == ["evaluate"], done.stdout
    assert "evaluate.select_by" in done.stdout + done.stderr
    deleted = sorted(line[3:] for line in sh(project, "git", "status", "--porcelain")
                     .stdout.splitlines() if line.startswith(" D "))
    assert "metrics/evaluate.json" in deleted, deleted
    sh(project, "git", "checkout", "--", ".")
    dvc(project, "repro", "-q", "check_params")


def test_plots_show_writes_an_offline_page(project: Path) -> None:
    dvc(project, "plots", "show", "-o", "page")
    page = (project / "page" / "index.html").read_text()
    assert not re.search(r"<script[^>]+src=[\"']https?:", page)
    specs = {plot_id: spec for spec, plot_id in
             re.findall(r"var spec = (.*?);\s*vegaEmbed\('#([\w-]+)'", page, re.S)}
    for plot_id in ("ROC", "Precision-Recall", "Loss", "Metrics", "Threshold", "Cost"):
        assert plot_id in specs, (plot_id, sorted(specs))
        for strategy in STRATEGIES:  # each compares the three strategies
            assert f"{strategy}.csv" in specs[plot_id], (plot_id, strategy)
    assert "careful_bias_loss" in specs["Bias-Init"]
    assert "psi" in specs["Drift"] and "major shift" in specs["Drift"]
    for model in MODELS:  # one colour per model, the five of them
        assert f'"{model}.csv"' in specs["Importance"], model
    for image in ("roc", "prc", "feature_pair", *(f"confusion_{s}" for s in STRATEGIES)):
        assert f"plots_images_{image}_png" in page, image


def test_repro_exports_the_champion_model(project: Path) -> None:
    card = read_json(project / "models/fraud_detector.json")
    chosen = read_json(project / "metrics/evaluate.json")["model"]
    assert card["model"] == chosen
    # One file: the chosen model's detector with its calibrator appended (test_export.py
    # checks the numbers); the card names what it was built from.
    assert not (project / "models/fraud_detector.keras").exists()
    assert set(card["files"]) == {"onnx"} and card["output_dtype"] == "float64"
    built_from = card["files"]["onnx"]["built_from"]
    for name, source in (("detector", f"models/detector/{chosen}.onnx"),
                         ("calibration", f"models/calibration/{chosen}.json")):
        assert built_from[name]["sha256"] == hashlib.sha256(
            (project / source).read_bytes()).hexdigest(), name
    calibrator = read_json(project / f"models/calibration/{chosen}.json")
    assert card["calibration"]["method"] == calibrator["method"]
    assert card["threshold"] == read_json(project / f"metrics/{chosen}.json")["threshold"]


def test_the_detector_is_fetched_by_its_artifact_name(built_project: Path,
                                                      tmp_path: Path) -> None:
    """dvc.yaml's `artifacts: fraud-detector`, from a git remote and a folder DVC remote,
    outside any repository (no pipeline run). `dvc artifacts get` finds an artifact through
    an annotated version tag (GTO's `<name>@v<semver>`); without one it fails."""
    repo, bare, store = tmp_path / "repo", tmp_path / "origin.git", tmp_path / "dvc-store"
    copy_project(built_project, repo)
    dvc(repo, "remote", "add", "-d", "shared", str(store))
    dvc(repo, "push", "models/fraud_detector.onnx")
    sh(repo, "git", "commit", "-q", "-am", "a DVC remote")
    sh(repo, "git", "tag", "-a", "fraud-detector@v0.1.0", "-m", "fraud-detector v0.1.0")
    sh(tmp_path, "git", "clone", "-q", "--bare", str(repo), str(bare))
    fetched = tmp_path / "fetched" / "fraud_detector.onnx"
    fetched.parent.mkdir()
    dvc(fetched.parent, "artifacts", "get", str(bare), "fraud-detector", "-o", str(fetched))
    assert fetched.read_bytes() == (repo / "models/fraud_detector.onnx").read_bytes()
