"""What one measured command leaves in the results (`run_record`), the medians over repeats
(`summarise_runs`), and the small arithmetic the goals and the report share."""

from __future__ import annotations

import re
import statistics
from typing import Any

from bench.project import STAGES, CommandRun
from fraud.core.models import STRATEGIES

# What the train stage logs (src/stages/train.py, src/fraud/training/fit.py's EpochTimer).
EPOCHS_LINE = re.compile(r"train: (\w+): (\d+) epochs in ([\d.]+) s \(([\d.]+) s/epoch after "
                         r"the first\)")
FIRST_EPOCH_LINE = re.compile(r"(\w+) epoch 1: .*\(([\d.]+) s\)")


def median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing (or b is 0)."""
    return a / b if a is not None and b else None


def without_download(run: dict[str, Any]) -> float:
    """A `dvc repro`'s wall time less its download stage (generating synthetic data)."""
    return run["wall_s"] - run["stages"].get("download", {}).get("wall_s", 0.0)


def epochs_from_log(stderr: str) -> dict[str, dict[str, float]]:
    """Each train stage's own epoch timing, as it logged it during `dvc repro`."""
    out: dict[str, dict[str, float]] = {}
    for strategy, epochs, total, steady in EPOCHS_LINE.findall(stderr):
        out[strategy] = {"epochs": int(epochs), "total_s": float(total),
                         "steady_epoch_s": float(steady)}
    for strategy, first in FIRST_EPOCH_LINE.findall(stderr):
        if strategy in out:
            out[strategy]["first_epoch_s"] = float(first)
    return out


def run_record(run: CommandRun) -> dict[str, Any]:
    stages = {s.stage: {"wall_s": s.wall_s, "max_rss_mb": s.max_rss_mb, "cpu_s": s.cpu_s}
              for s in run.stages}
    return {"wall_s": run.wall_s, "peak_tree_rss_mb": run.peak_tree_rss_mb,
            "stage_seconds": run.stage_seconds, "dvc_overhead_s": run.wall_s - run.stage_seconds,
            "max_stage_rss_mb": max((s.max_rss_mb for s in run.stages), default=None),
            "ran": run.ran, "stages": stages, "load_before": run.load_before,
            "load_after": run.load_after, "train_epochs": epochs_from_log(run.stderr)}


def _stage_summary(runs: list[dict[str, Any]], order: list[str] | None
                   ) -> dict[str, dict[str, Any]]:
    stages: dict[str, dict[str, Any]] = {}
    order = [*(order or STAGES), *(n for r in runs for n in r["stages"])]
    names = [name for name in dict.fromkeys(order) if any(name in r["stages"] for r in runs)]
    for name in names:
        walls = [r["stages"][name]["wall_s"] for r in runs if name in r["stages"]]
        rss = [r["stages"][name]["max_rss_mb"] for r in runs if name in r["stages"]]
        stages[name] = {"median_wall_s": median(walls), "min_wall_s": min(walls),
                        "max_wall_s": max(walls), "max_rss_mb": max(rss)}
    return stages


def _train_epochs_summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    train_epochs = {}
    for strategy in STRATEGIES:
        found = [r["train_epochs"][strategy] for r in runs if strategy in r.get("train_epochs", {})]
        if found:
            train_epochs[strategy] = {
                "median_steady_epoch_s": median([f["steady_epoch_s"] for f in found]),
                "median_first_epoch_s": median([f.get("first_epoch_s") for f in found]),
                "epochs": [f["epochs"] for f in found]}
    return train_epochs


def summarise_runs(runs: list[dict[str, Any]], order: list[str] | None = None
                   ) -> dict[str, Any]:
    """Medians (and extremes) over repeated runs of one command, overall and per stage."""
    stages = _stage_summary(runs, order)
    return {"runs": runs, "repeats": len(runs), "train_epochs": _train_epochs_summary(runs),
            "median_wall_s": median([r["wall_s"] for r in runs]),
            "min_wall_s": min(r["wall_s"] for r in runs),
            "max_wall_s": max(r["wall_s"] for r in runs),
            "max_peak_rss_mb": max(r["peak_tree_rss_mb"] for r in runs),
            "median_dvc_overhead_s": median([r["dvc_overhead_s"] for r in runs]),
            "stages": stages}
