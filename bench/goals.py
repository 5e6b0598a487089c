"""The benchmark's goals, checked against a finished result, and the tutorial / pipeline
ratios they and the report use. Pure functions of the result dict."""

from __future__ import annotations

from typing import Any

from bench.project import TRAIN_STAGE
from bench.records import ratio
from src.fraud.models import STRATEGIES

# Pipeline stages the tutorial has no counterpart for (reported beside the end-to-end ratio).
EXTRA_STAGES = ("export",)
GOALS = {  # name: (target, direction, what)
    "repro_clean_s": (60.0, "max", "whole `dvc repro` from a clean workspace, s"),
    "repro_peak_rss_mb": (2048.0, "max", "peak RSS of `dvc repro` (process tree), MB"),
    "tutorial_speedup_end_to_end": (5.0, "min", ("tutorial time / pipeline time, end to end, "
                                                "same epochs")),
    "baseline_s_per_epoch": (0.2, "max", "baseline s/epoch incl. validation"),
    "oversample_s_per_epoch": (0.4, "max", "oversampling s/epoch incl. validation"),
    "exp_run_s": (6.0, "max", "`dvc exp run -S train.strategy=…` after a commit, s"),
    "noop_repro_s": (2.0, "max", "no-op `dvc repro`, s"),
    "predict_onnx_s": (2.5, "max", "`python -m src.predict` with the .onnx model, all rows, s"),
    "predict_onnx_rss_mb": (300.0, "max", ("`python -m src.predict` with the .onnx model, peak "
                                          "RSS, MB")),
    "predict_scale_rss_ratio": (1.25, "max", ("`python -m src.predict` .onnx on 10× the rows: "
                                             "peak RSS / peak RSS at 1×")),
    "scale_time_ratio": (10.0, "max", "10× data: time / time at 1× (same epochs)"),
    "scale_peak_rss_mb": (4096.0, "max", "10× data: peak RSS, MB"),
}


def _strategy_comparison(result: dict[str, Any], strategy: str) -> dict[str, Any]:
    tut = result["tutorial"]
    epochs = result["epochs"]["strategies"][strategy]
    pipe_epoch = epochs["pipeline"]["steady_epoch_s"]
    tut_epoch = epochs.get("tutorial", {}).get("steady_epoch_s")
    floor_epoch = epochs["floor"]["steady_epoch_s"]
    # The whole fit call: the oversampler fills its 100,000-row shuffle buffers before
    # the first epoch starts, outside the per-epoch times.
    tut_fit = tut["phases"].get(f"{strategy}_fit") or sum(tut["epoch_seconds"][strategy])
    stage = result["pipeline_fixed"]["stages"].get(TRAIN_STAGE[strategy], {}).get("wall_s")
    # In-process fit of N epochs, from the s/epoch measurement: first + steady × (N - 1).
    n = result["settings"]["epochs"]
    pipe_fit = epochs["pipeline"]["first_epoch_s"] + pipe_epoch * (n - 1)
    return {
        "pipeline_s_per_epoch": pipe_epoch, "tutorial_s_per_epoch": tut_epoch,
        "floor_s_per_epoch": floor_epoch,
        "speedup_per_epoch": ratio(tut_epoch, pipe_epoch),
        "pipeline_over_floor": ratio(pipe_epoch, floor_epoch),
        "tutorial_fit_s": tut_fit, "pipeline_stage_s": stage,
        "speedup_stage_vs_fit": ratio(tut_fit, stage),
        "pipeline_fit_estimate_s": pipe_fit,
        "speedup_fit": ratio(tut_fit, pipe_fit),
    }


def compare_to_tutorial(result: dict[str, Any]) -> dict[str, Any]:
    """Ratios tutorial / pipeline (> 1: the pipeline is faster), per strategy and end to end."""
    tut = result["tutorial"]
    fixed = result["pipeline_fixed"]
    runs = [fixed, *([result["pipeline_fixed_after"]] if "pipeline_fixed_after" in result else [])]
    pipeline_wall = sum(r["wall_s"] for r in runs) / len(runs)
    per_strategy = {strategy: _strategy_comparison(result, strategy) for strategy in STRATEGIES}
    # Stages with no counterpart in the notebook (it exports no model).
    extra = sum(r["stages"].get(name, {}).get("wall_s", 0.0)
                for r in runs for name in EXTRA_STAGES) / len(runs)
    return {"per_strategy": per_strategy, "tutorial_wall_s": tut["wall_s"],
            "pipeline_wall_s": pipeline_wall,
            "pipeline_runs_s": [r["wall_s"] for r in runs],
            "speedup_end_to_end": tut["wall_s"] / pipeline_wall,
            "pipeline_wall_without_extra_s": pipeline_wall - extra,
            "extra_stages": [name for name in EXTRA_STAGES if name in fixed["stages"]],
            "speedup_end_to_end_without_extra": tut["wall_s"] / (pipeline_wall - extra),
            "epochs": result["settings"]["epochs"]}


def epoch_seconds(result: dict[str, Any], strategy: str) -> float | None:
    """s/epoch after the first as the train stage logged it in the clean `dvc repro`s (every
    epoch it ran, median over the repeats); the in-process measurement when not logged."""
    logged = result["repro"].get("train_epochs", {}).get(strategy)
    if logged and logged["median_steady_epoch_s"] is not None:
        return logged["median_steady_epoch_s"]
    return result["epochs"]["strategies"][strategy]["pipeline"]["steady_epoch_s"]


def measured(result: dict[str, Any]) -> dict[str, float | None]:
    """Each goal's measured value, for the goals the result has a value for."""
    out: dict[str, float | None] = {
        "repro_clean_s": result["repro"]["median_wall_s"],
        "repro_peak_rss_mb": result["repro"]["max_peak_rss_mb"],
        "baseline_s_per_epoch": epoch_seconds(result, "baseline"),
        "oversample_s_per_epoch": epoch_seconds(result, "oversample"),
        "exp_run_s": result["exp_run"]["median_wall_s"],
        "noop_repro_s": result["noop"]["median_wall_s"],
        "predict_onnx_s": result["predict"]["onnx"]["median_wall_s"],
        "predict_onnx_rss_mb": result["predict"]["onnx"]["max_rss_mb"],
    }
    if "scale" in result["predict"]:
        out["predict_scale_rss_ratio"] = result["predict"]["scale"]["rss_ratio"]
    if "tutorial" in result:
        out["tutorial_speedup_end_to_end"] = result["tutorial"]["comparison"]["speedup_end_to_end"]
    if "scale" in result:
        out["scale_time_ratio"] = result["scale"]["time_ratio"]
        out["scale_peak_rss_mb"] = result["scale"]["peak_rss_mb"]
    return out


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of GOALS, in order: target, measured value, met (None: not measured)."""
    values = measured(result)
    out = []
    for name, (target, direction, what) in GOALS.items():
        value = values.get(name)
        met = None if value is None else (value <= target if direction == "max"
                                          else value >= target)
        out.append({"goal": name, "what": what, "target": target, "direction": direction,
                    "measured": value, "met": met})
    return out
