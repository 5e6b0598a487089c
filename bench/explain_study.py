"""Reason codes on a finished run: exactness, agreement with independent methods, cost.

    python -m bench.explain_study [--project DIR] [--permutations 300]
    python -m bench.explain_study --shap-only      # with an environment that has `shap`

Reads, from a project that has run `dvc repro`: models/detector/*.onnx (the networks),
models/{logreg,gbdt}.skops, the test split's raw table (data/split/test.parquet) and each
model's metrics/<model>.json threshold. Prints one JSON object. For every model, on the test
rows: the largest |base + sum(contributions) - logit|, the explainer's CPU seconds, and the
global importance (mean |contribution| over all rows and over the frauds: top 5). For the
networks, on the flagged test frauds: how often the top-3 set of integrated gradients equals
that of (a) baseline Shapley values estimated by permutation sampling (the same baseline,
the same logit: an independent method) and (b) plain gradient x input at the row (what the
clipping breaks). `--shap-only` compares this TreeSHAP with shap's TreeExplainer (top-3 set,
largest difference) on the gbdt's flagged test rows, path-dependent and, for the explainer
predict uses on a gbdt `.onnx`, interventional with the baseline as the one background row;
`shap` is not a project dependency.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud.kinds._scikit import load_model as load_peer
from fraud.serving.explain import (
    NetworkExplainer,
    Preprocess,
    TreeExplainer,
    global_importance,
    load_explainer,
    top_reasons,
)
from tests.credit_card import INPUT_COLUMNS, LABEL

NETWORKS = ("baseline", "weighted", "oversample")


def _threshold(project: Path, name: str) -> float:
    metrics = json.loads((project / "metrics" / f"{name}.json").read_text())
    return float(metrics.get("threshold", 0.5))


def _top3_agreement(a: np.ndarray, b: np.ndarray) -> float:
    first, _ = top_reasons(a, 3)
    second, _ = top_reasons(b, 3)
    same = [set(x) == set(y) for x, y in zip(first, second, strict=True)]
    return float(np.mean(same)) if same else float("nan")


def permutation_shapley(explainer: NetworkExplainer, u: np.ndarray, permutations: int,
                        seed: int) -> np.ndarray:
    """Baseline Shapley values (baseline: standardised 0) by sampling feature orders: each
    order switches features from the baseline to the row one at a time."""
    rng = np.random.default_rng(seed)
    n = u.shape[1]
    phi = np.zeros_like(u)
    for row in range(len(u)):
        orders = np.argsort(rng.random((permutations, n)), axis=1)
        masks = np.zeros((permutations, n + 1, n))
        for step in range(1, n + 1):
            masks[:, step] = masks[:, step - 1]
            masks[np.arange(permutations), step, orders[:, step - 1]] = 1.0
        logits = explainer.logit_of_standardised(masks * u[row])
        gains = np.diff(logits, axis=1)  # (permutations, n): the gain of the step's feature
        np.add.at(phi[row], orders.reshape(-1), gains.reshape(-1))
        phi[row] /= permutations
    return phi


def gradient_times_input(explainer: NetworkExplainer, u: np.ndarray) -> np.ndarray:
    clip = explainer.preprocess.clip
    hidden = np.clip(u, -clip, clip) @ explainer.hidden_weights + explainer.hidden_bias
    gradient = ((hidden > 0) * explainer.output_weights) @ explainer.hidden_weights.T
    return gradient * (np.abs(u) < clip) * u


def _summary(attributions: Any, labels: np.ndarray, seconds: float) -> dict[str, Any]:
    importance = global_importance(attributions.contributions, labels)
    error = np.abs(attributions.base + attributions.contributions.sum(axis=1)
                   - attributions.logit).max()
    top = {subset: dict(sorted(values.items(), key=lambda kv: -kv[1])[:5])
           for subset, values in importance.items()}
    return {"rows": len(labels), "additivity_max_error": float(error),
            "explain_cpu_seconds": round(seconds, 2), "base": attributions.base,
            "importance_top5": top}


def _timed(explainer: Any, raw: np.ndarray) -> tuple[Any, float]:
    start = time.process_time()
    attributions = explainer(raw)
    return attributions, time.process_time() - start


def networks(project: Path, raw: np.ndarray, labels: np.ndarray,
             permutations: int) -> dict[str, Any]:
    result = {}
    for name in NETWORKS:
        explainer = load_explainer(project / "models" / "detector" / f"{name}.onnx")
        attributions, seconds = _timed(explainer, raw)
        summary = _summary(attributions, labels, seconds)
        probability = 1 / (1 + np.exp(-attributions.logit))
        chosen = (probability >= _threshold(project, name)) & (labels == 1)
        u = explainer.preprocess.standardise(raw[chosen])
        ig = attributions.contributions[chosen]
        summary |= {
            "flagged_frauds": int(chosen.sum()),
            "flagged_frauds_with_a_clipped_feature": float(
                (np.abs(u) > explainer.preprocess.clip).any(axis=1).mean()),
            "top3_same_as_permutation_shapley": _top3_agreement(
                ig, permutation_shapley(explainer, u, permutations, seed=0)),
            "top3_same_as_gradient_x_input": _top3_agreement(
                ig, gradient_times_input(explainer, u))}
        result[name] = summary
    return result


def peers(project: Path, preprocess: Preprocess, raw: np.ndarray,
          labels: np.ndarray) -> dict[str, Any]:
    from fraud.serving.explain import LinearExplainer

    result = {}
    features = preprocess.features(raw)
    logreg = load_peer(project / "models" / "logreg.skops", "train_logreg")
    explainer = LinearExplainer(preprocess, logreg.coef_[0].astype(np.float64),
                                float(logreg.intercept_[0]))
    attributions, seconds = _timed(explainer, raw)
    result["logreg"] = _summary(attributions, labels, seconds) | {
        "max_error_vs_decision_function": float(np.abs(
            attributions.logit - logreg.decision_function(features)).max())}
    gbdt = load_peer(project / "models" / "gbdt.skops", "train_gbdt")
    explainer = TreeExplainer.from_hist_gbdt(gbdt, preprocess)
    attributions, seconds = _timed(explainer, raw)
    result["gbdt"] = _summary(attributions, labels, seconds) | {
        "trees": len(explainer.trees),
        "max_error_vs_decision_function": float(np.abs(
            attributions.logit - gbdt.decision_function(features)).max())}
    attributions, seconds = _timed(_gbdt_onnx_explainer(gbdt, preprocess), raw)
    result["gbdt_onnx"] = _summary(attributions, labels, seconds) | {
        "max_error_vs_decision_function": float(np.abs(
            attributions.logit - gbdt.decision_function(features)).max())}
    return result


def _gbdt_onnx_explainer(gbdt: Any, preprocess: Preprocess) -> Any:
    """What predict --explain uses for a gbdt shipped as ONNX (baseline Shapley values)."""
    from fraud.serving.contract import ScalerStats
    from fraud.serving.explain import explainer_from_onnx
    from fraud.serving.peer_onnx import peer_detector

    stats = ScalerStats(preprocess.mean, preprocess.scale, preprocess.clip)
    return explainer_from_onnx(peer_detector(gbdt, stats, preprocess.eps), "gbdt.onnx")


def shap_comparison(project: Path, preprocess: Preprocess, raw: np.ndarray) -> dict[str, Any]:
    import shap

    gbdt = load_peer(project / "models" / "gbdt.skops", "train_gbdt")
    features = preprocess.features(raw)
    flagged = gbdt.predict_proba(features)[:, 1] >= _threshold(project, "gbdt")
    ours = TreeExplainer.from_hist_gbdt(gbdt, None)(features[flagged]).contributions
    theirs = np.asarray(shap.TreeExplainer(gbdt).shap_values(features[flagged]))
    baseline_ours = _gbdt_onnx_explainer(gbdt, preprocess)(raw[flagged]).contributions
    reference = preprocess.features(preprocess.baseline_raw())
    baseline_theirs = np.asarray(shap.TreeExplainer(
        gbdt, data=reference, feature_perturbation="interventional",
        model_output="raw").shap_values(features[flagged]))
    return {"shap": shap.__version__, "gbdt_flagged_test_rows": int(flagged.sum()),
            "path_dependent_top3_same_as_shap": _top3_agreement(ours, theirs),
            "path_dependent_max_abs_difference": float(np.abs(ours - theirs).max()),
            "baseline_top3_same_as_shap_interventional": _top3_agreement(baseline_ours,
                                                                         baseline_theirs),
            "baseline_max_abs_difference": float(np.abs(baseline_ours - baseline_theirs).max())}


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--project", type=Path, default=Path("."))
    cli.add_argument("--permutations", type=int, default=300)
    cli.add_argument("--shap-only", action="store_true")
    args = cli.parse_args()
    test = pd.read_parquet(args.project / "data" / "split" / "test.parquet")
    raw = test[INPUT_COLUMNS].to_numpy(np.float64)
    labels = test[LABEL].to_numpy()
    network = load_explainer(args.project / "models" / "fraud_detector.onnx")
    preprocess = network.preprocess  # the run's scaler, from the shipped file's metadata
    if args.shap_only:
        print(json.dumps(shap_comparison(args.project, preprocess, raw), indent=1))
        return
    report = {"networks": networks(args.project, raw, labels, args.permutations),
              "peers": peers(args.project, preprocess, raw, labels)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
