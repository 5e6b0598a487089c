"""The pipeline's speed benchmark, one command:

    python -m bench.run                 # real data if FRAUD_DATA_MIRROR points at it
    python -m bench.run --smoke         # tiny synthetic data, 2 epochs, ~1-2 minutes
    python -m bench.run --repeats 5 --skip-scale --skip-tutorial

Everything runs in throw-away copies of the project (own git repository, own DVC cache)
under a temporary folder; the workspace it is started from is never touched. Prints the
results as tables and writes them to bench/results/bench-<mode>-<time>.{json,md} plus
bench/results/latest.{json,md}. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.project import (
    ROOT,
    STAGES,
    TRAIN_STAGE,
    CommandRun,
    DataSource,
    Project,
    default_source,
)
from src.fraud.params import STRATEGIES

RESULTS = ROOT / "bench" / "results"
SMOKE_ROWS = 4_000
SMOKE_FRAUD_RATE = 0.02
# Tiny and quick, as the e2e test's: the whole pipeline in well under a minute.
SMOKE_PARAMS = {"train.epochs": 2, "train.patience": 2, "train.batch_size": 512,
                "init_bias.compare_epochs": 2, "evaluate.curve_points": 200}

PREDICT_FORMATS = ("onnx", "keras")
PREDICT_COMMAND = ("python -m src.predict models/fraud_detector.{format} data/raw/creditcard.csv "
                   "-o scores.csv -q")
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


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_averages() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# What the train stage logs (src/stages/train.py, src/fraud/train.py's EpochTimer).
EPOCHS_LINE = re.compile(r"train: (\w+): (\d+) epochs in ([\d.]+) s \(([\d.]+) s/epoch after "
                         r"the first\)")
FIRST_EPOCH_LINE = re.compile(r"(\w+) epoch 1: .*\(([\d.]+) s\)")


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


def summarise_runs(runs: list[dict[str, Any]], order: list[str] | None = None
                   ) -> dict[str, Any]:
    stages: dict[str, dict[str, Any]] = {}
    order = [*(order or STAGES), *(n for r in runs for n in r["stages"])]
    names = [name for name in dict.fromkeys(order) if any(name in r["stages"] for r in runs)]
    for name in names:
        walls = [r["stages"][name]["wall_s"] for r in runs if name in r["stages"]]
        rss = [r["stages"][name]["max_rss_mb"] for r in runs if name in r["stages"]]
        stages[name] = {"median_wall_s": median(walls), "min_wall_s": min(walls),
                        "max_wall_s": max(walls), "max_rss_mb": max(rss)}
    train_epochs = {}
    for strategy in STRATEGIES:
        found = [r["train_epochs"][strategy] for r in runs if strategy in r.get("train_epochs", {})]
        if found:
            train_epochs[strategy] = {
                "median_steady_epoch_s": median([f["steady_epoch_s"] for f in found]),
                "median_first_epoch_s": median([f.get("first_epoch_s") for f in found]),
                "epochs": [f["epochs"] for f in found]}
    return {"runs": runs, "repeats": len(runs), "train_epochs": train_epochs,
            "median_wall_s": median([r["wall_s"] for r in runs]),
            "min_wall_s": min(r["wall_s"] for r in runs),
            "max_wall_s": max(r["wall_s"] for r in runs),
            "max_peak_rss_mb": max(r["peak_tree_rss_mb"] for r in runs),
            "median_dvc_overhead_s": median([r["dvc_overhead_s"] for r in runs]),
            "stages": stages}


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.smoke = args.smoke
        if self.smoke:
            self.source = DataSource("synthetic", SMOKE_ROWS, fraud_rate=SMOKE_FRAUD_RATE)
            self.base_params: dict[str, Any] = dict(SMOKE_PARAMS)
        else:
            self.source = default_source()
            self.base_params = {}
        self.counter = 0
        self.lock = threading.Lock()
        self.stage_names: list[str] = list(STAGES)
        self.big_project: Project | None = None

    def project(self, label: str, source: DataSource | None = None,
                params: dict[str, Any] | None = None) -> Project:
        with self.lock:
            self.counter += 1
            path = self.work / f"{self.counter:02d}-{label}" / "project"
        path.mkdir(parents=True)
        return Project(path, source or self.source, {**self.base_params, **(params or {})})

    def fixed_params(self) -> dict[str, Any]:
        """Every strategy runs exactly --epochs epochs (patience = epochs: never stops)."""
        return {"train.epochs": self.args.epochs, "train.patience": self.args.epochs}

    # --- sections -------------------------------------------------------------------------
    def repro_clean(self) -> tuple[dict[str, Any], Project]:
        runs, project = [], None
        for i in range(self.args.repeats):
            project = self.project("repro")
            log(f"dvc repro from a clean workspace ({i + 1}/{self.args.repeats}), "
                f"{self.source.describe()}")
            run = project.run("dvc", "repro")
            if sorted(run.ran) != sorted(project.stages()):
                raise RuntimeError(f"dvc repro ran {run.ran}, expected {project.stages()}")
            runs.append(run_record(run))
            log(f"  {run.wall_s:.1f} s, peak {run.peak_tree_rss_mb:.0f} MB")
        assert project is not None
        project.commit("first run")
        self.stage_names = project.stages()
        return summarise_runs(runs, self.stage_names), project

    def noop(self, project: Project) -> dict[str, Any]:
        runs = []
        for _ in range(self.args.repeats):
            run = project.run("dvc", "repro")
            if run.ran:
                raise RuntimeError(f"no-op dvc repro ran {run.ran}")
            runs.append(run_record(run))
        log(f"no-op dvc repro: {median([r['wall_s'] for r in runs]):.2f} s")
        return summarise_runs(runs, self.stage_names)

    def exp_runs(self, project: Project) -> dict[str, Any]:
        strategies = ["oversample"] if self.smoke else ["oversample", "weighted"]
        out: dict[str, Any] = {}
        all_walls = []
        for strategy in strategies:
            runs = []
            for _ in range(self.args.repeats):
                project.clear_run_cache()  # a real run each time, not a run-cache restore
                run = project.run("dvc", "exp", "run", "-S", f"train.strategy={strategy}")
                if "evaluate" not in run.ran or set(run.ran) & set(TRAIN_STAGE.values()):
                    raise RuntimeError(f"dvc exp run ran {run.ran}: expected evaluate (and "
                                       "what depends on train.strategy), no training")
                choice = project.read_json("metrics/evaluate.json")
                selected = choice.get("model", choice.get("strategy"))
                if selected != strategy:
                    raise RuntimeError(f"metrics/evaluate.json reports {selected!r}")
                runs.append(run_record(run))
                project.reset_to_head()
            out[strategy] = summarise_runs(runs, self.stage_names)
            all_walls += [r["wall_s"] for r in runs]
            log(f"dvc exp run -S train.strategy={strategy}: "
                f"{out[strategy]['median_wall_s']:.2f} s")
        out["median_wall_s"] = median(all_walls)
        out["max_wall_s"] = max(all_walls)
        return out

    def predict_once(self, project: Project, model: str | Path, csv: str) -> dict[str, Any]:
        """`python -m src.predict MODEL CSV -o scores.csv`, timed by the shim (wall time and
        the kernel's peak RSS of the process)."""
        run = project.run("python", "-m", "src.predict", str(model), csv, "-o", "scores.csv",
                          "-q")
        (timed,) = [stage for stage in run.stages if stage.stage == "predict"]
        (project.path / "scores.csv").unlink(missing_ok=True)
        return {"wall_s": timed.wall_s, "max_rss_mb": timed.max_rss_mb, "cpu_s": timed.cpu_s}

    def predict(self, project: Project) -> dict[str, Any]:
        """The exported model scoring the whole raw CSV, .onnx (onnxruntime) beside .keras."""
        out: dict[str, Any] = {"rows": self.source.rows, "command": PREDICT_COMMAND}
        for fmt in PREDICT_FORMATS:
            runs = [self.predict_once(project, f"models/fraud_detector.{fmt}",
                                      "data/raw/creditcard.csv")
                    for _ in range(self.args.repeats)]
            out[fmt] = {"runs": runs, "median_wall_s": median([r["wall_s"] for r in runs]),
                        "max_rss_mb": max(r["max_rss_mb"] for r in runs)}
            log(f"predict .{fmt}: {out[fmt]['median_wall_s']:.2f} s, "
                f"{out[fmt]['max_rss_mb']:.0f} MB")
        return out

    def predict_scale(self, project: Project, big: Project, one: dict[str, Any]
                      ) -> dict[str, Any]:
        """The .onnx model on the 10× project's raw CSV: memory must stay flat (chunks)."""
        run = self.predict_once(big, project.path / "models/fraud_detector.onnx",
                                "data/raw/creditcard.csv")
        log(f"predict .onnx on {self.args.scale_factor}× rows: {run['wall_s']:.2f} s, "
            f"{run['max_rss_mb']:.0f} MB")
        return {"factor": self.args.scale_factor, "rows": big.source.rows, **run,
                "rss_ratio": run["max_rss_mb"] / one["max_rss_mb"],
                "time_ratio": run["wall_s"] / one["median_wall_s"]}

    def inprocess(self, project: Project) -> dict[str, Any]:
        log("seconds per epoch (pipeline / floor / tutorial), scoring, peer")
        out = project.path.parent / "inprocess.json"
        args = ["-m", "bench.inprocess", "all", "--out", str(out),
                "--epochs", str(self.args.bench_epochs),
                "--tutorial-epochs", str(self.args.tutorial_oversample_epochs),
                "--repeats", str(max(self.args.repeats, 3) if not self.smoke else 1)]
        if self.args.skip_tutorial:
            args.append("--skip-tutorial")
        project.python(*args)
        return json.loads(out.read_text(encoding="utf-8"))

    def quality(self, project: Project) -> dict[str, Any]:
        keys = ("auc", "prc", "precision", "recall", "tp", "fp", "fn", "threshold")
        out = {}
        for strategy in STRATEGIES:
            metrics = project.read_json(f"metrics/{strategy}.json")
            val = project.read_json(f"metrics/val/{strategy}.json")
            out[strategy] = {**{k: metrics.get(k) for k in keys},
                             "epochs_run": val.get("epochs_run"),
                             "best_epoch": val.get("best_epoch")}
        return out

    def tutorial(self, fixed: Project, fixed_run: dict[str, Any]) -> dict[str, Any]:
        log(f"the tutorial's code path, {self.args.epochs} epochs per strategy")
        out = fixed.path.parent / "tutorial.json"
        params = fixed.params()
        run = fixed.python("-m", "bench.tutorial", "--csv", "data/raw/creditcard.csv",
                           "--epochs", str(self.args.epochs),
                           "--compare-epochs", str(params["init_bias"]["compare_epochs"]),
                           "--seed", str(params["seed"]), "--out", str(out))
        result = json.loads(out.read_text(encoding="utf-8"))
        result.update({"wall_s": run.wall_s, "peak_tree_rss_mb": run.peak_tree_rss_mb,
                       "load_before": run.load_before, "load_after": run.load_after})
        log(f"  tutorial {run.wall_s:.1f} s vs pipeline {fixed_run['wall_s']:.1f} s")
        return result

    def scale_big(self) -> dict[str, Any]:
        """The same pipeline on --scale-factor × the rows (synthetic source), fixed epochs."""
        big = DataSource("synthetic", self.source.rows * self.args.scale_factor,
                         fraud_rate=self.source.fraud_rate)
        log(f"scale: {self.args.scale_factor}× synthetic ({big.rows:,} rows), "
            f"{self.args.epochs} epochs")
        project = self.project("scale-big", big, self.fixed_params())
        self.big_project = project
        run = run_record(project.run("dvc", "repro"))
        log(f"  {self.args.scale_factor}×: {run['wall_s']:.1f} s, "
            f"peak {run['peak_tree_rss_mb']:.0f} MB")
        return run

    def scale_small(self) -> dict[str, Any]:
        small = DataSource("synthetic", self.source.rows, fraud_rate=self.source.fraud_rate)
        log(f"scale: 1× synthetic ({small.rows:,} rows), {self.args.epochs} epochs")
        project = self.project("scale-1x", small, self.fixed_params())
        return run_record(project.run("dvc", "repro"))

    def scale(self, one: dict[str, Any], many: dict[str, Any]) -> dict[str, Any]:
        def without_download(run: dict[str, Any]) -> float:
            return run["wall_s"] - run["stages"].get("download", {}).get("wall_s", 0.0)

        factor = self.args.scale_factor
        return {"factor": factor, "rows_1x": self.source.rows,
                "rows_big": self.source.rows * factor, "epochs": self.args.epochs,
                "run_1x": one, "run_big": many,
                "time_ratio": many["wall_s"] / one["wall_s"],
                "time_ratio_without_download": without_download(many) / without_download(one),
                "peak_rss_mb": many["peak_tree_rss_mb"],
                "peak_rss_ratio": many["peak_tree_rss_mb"] / one["peak_tree_rss_mb"]}

    # --- all of it ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.time()
        result: dict[str, Any] = {
            "schema": 1, "mode": "smoke" if self.smoke else "full",
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(), "project": project_info(),
            "data": {"kind": self.source.kind, "rows": self.source.rows,
                     "description": self.source.describe()},
            "settings": {"repeats": self.args.repeats, "epochs": self.args.epochs,
                         "bench_epochs": self.args.bench_epochs,
                         "tutorial_oversample_epochs": self.args.tutorial_oversample_epochs,
                         "scale_factor": self.args.scale_factor,
                         "skip_scale": self.args.skip_scale,
                         "skip_tutorial": self.args.skip_tutorial,
                         "params": self.base_params},
        }
        log(f"data: {self.source.describe()}; load {load_averages()}")
        background: dict[str, Any] = {}
        thread = None
        fixed_equals_main = all(self.base_params.get(k) == v
                                for k, v in self.fixed_params().items())
        if self.smoke and not self.args.skip_scale:
            # Smoke timings mean nothing: overlap the big run with the rest to finish sooner.
            thread = threading.Thread(target=self._capture,
                                      args=(background, "big", self.scale_big), daemon=True)
            thread.start()

        result["repro"], project = self.repro_clean()
        result["stages"] = self.stage_names
        result["noop"] = self.noop(project)
        result["exp_run"] = self.exp_runs(project)
        result["predict"] = self.predict(project)
        result["quality"] = self.quality(project)

        fixed = None
        synthetic = self.source.kind == "synthetic"
        if not self.args.skip_tutorial or (not self.args.skip_scale and synthetic):
            if fixed_equals_main:
                fixed = (project, result["repro"]["runs"][-1])
            else:
                log(f"dvc repro with every strategy fixed at {self.args.epochs} epochs")
                fixed_project = self.project("fixed-epochs", params=self.fixed_params())
                fixed = (fixed_project, run_record(fixed_project.run("dvc", "repro")))
            result["pipeline_fixed"] = fixed[1]
        tutorial_thread = None
        if not self.args.skip_tutorial and self.smoke:
            assert fixed is not None  # smoke: overlap the tutorial with the in-process runs
            tutorial_thread = threading.Thread(
                target=self._capture, args=(background, "tutorial",
                                            lambda: self.tutorial(*fixed)))
            tutorial_thread.start()
        inproc = self.inprocess(project)
        result["epochs"], result["scoring"] = inproc["epochs"], inproc["scoring"]
        result["quality"]["peer"] = inproc["peer"]
        if not self.args.skip_tutorial:
            assert fixed is not None
            if tutorial_thread is not None:
                tutorial_thread.join()
                if "error" in background:
                    raise background["error"]
                result["tutorial"] = background["tutorial"]
            else:
                result["tutorial"] = self.tutorial(*fixed)
                # The tutorial runs for minutes while the machine's load drifts: run the
                # fixed-epoch pipeline again after it and compare with the mean of both.
                log(f"dvc repro with every strategy fixed at {self.args.epochs} epochs, again")
                again = self.project("fixed-epochs-again", params=self.fixed_params())
                result["pipeline_fixed_after"] = run_record(again.run("dvc", "repro"))
            result["tutorial"]["comparison"] = compare_to_tutorial(result)
        if not self.args.skip_scale:
            one = fixed[1] if synthetic and fixed is not None else self.scale_small()
            if thread is not None:
                thread.join()
                if "error" in background:
                    raise background["error"]
                many = background["big"]
            else:
                many = self.scale_big()
            result["scale"] = self.scale(one, many)
            assert self.big_project is not None
            result["predict"]["scale"] = self.predict_scale(project, self.big_project,
                                                            result["predict"]["onnx"])
        result["machine"]["load_end"] = load_averages()
        result["bench_wall_s"] = time.time() - started
        result["goals"] = goals(result)
        return result

    @staticmethod
    def _capture(store: dict[str, Any], key: str, job: Callable[[], Any]) -> None:
        try:
            store[key] = job()
        except BaseException as error:  # re-raised in the main thread
            store["error"] = error


def compare_to_tutorial(result: dict[str, Any]) -> dict[str, Any]:
    """Ratios tutorial / pipeline (> 1: the pipeline is faster), per strategy and end to end."""
    tut = result["tutorial"]
    fixed = result["pipeline_fixed"]
    runs = [fixed, *([result["pipeline_fixed_after"]] if "pipeline_fixed_after" in result else [])]
    pipeline_wall = sum(r["wall_s"] for r in runs) / len(runs)
    per_strategy = {}
    for strategy in STRATEGIES:
        epochs = result["epochs"]["strategies"][strategy]
        pipe_epoch = epochs["pipeline"]["steady_epoch_s"]
        tut_epoch = epochs.get("tutorial", {}).get("steady_epoch_s")
        floor_epoch = epochs["floor"]["steady_epoch_s"]
        # The whole fit call: the oversampler fills its 100,000-row shuffle buffers before
        # the first epoch starts, outside the per-epoch times.
        tut_fit = tut["phases"].get(f"{strategy}_fit") or sum(tut["epoch_seconds"][strategy])
        stage = fixed["stages"].get(TRAIN_STAGE[strategy], {}).get("wall_s")
        # In-process fit of N epochs, from the s/epoch measurement: first + steady × (N - 1).
        n = result["settings"]["epochs"]
        pipe_fit = epochs["pipeline"]["first_epoch_s"] + pipe_epoch * (n - 1)
        per_strategy[strategy] = {
            "pipeline_s_per_epoch": pipe_epoch, "tutorial_s_per_epoch": tut_epoch,
            "floor_s_per_epoch": floor_epoch,
            "speedup_per_epoch": tut_epoch / pipe_epoch if tut_epoch and pipe_epoch else None,
            "pipeline_over_floor": pipe_epoch / floor_epoch if floor_epoch else None,
            "tutorial_fit_s": tut_fit, "pipeline_stage_s": stage,
            "speedup_stage_vs_fit": tut_fit / stage if stage else None,
            "pipeline_fit_estimate_s": pipe_fit,
            "speedup_fit": tut_fit / pipe_fit if pipe_fit else None,
        }
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


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    measured: dict[str, float | None] = {
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
        measured["predict_scale_rss_ratio"] = result["predict"]["scale"]["rss_ratio"]
    if "tutorial" in result:
        measured["tutorial_speedup_end_to_end"] = \
            result["tutorial"]["comparison"]["speedup_end_to_end"]
    if "scale" in result:
        measured["scale_time_ratio"] = result["scale"]["time_ratio"]
        measured["scale_peak_rss_mb"] = result["scale"]["peak_rss_mb"]
    out = []
    for name, (target, direction, what) in GOALS.items():
        value = measured.get(name)
        met = None if value is None else (value <= target if direction == "max"
                                          else value >= target)
        out.append({"goal": name, "what": what, "target": target, "direction": direction,
                    "measured": value, "met": met})
    return out


def machine() -> dict[str, Any]:
    import psutil

    versions = {}
    for module in ("dvc", "keras", "tensorflow", "numpy", "pandas", "sklearn"):
        try:
            from importlib.metadata import version
            versions[module] = version({"sklearn": "scikit-learn",
                                        "tensorflow": "tensorflow-cpu"}.get(module, module))
        except Exception:
            versions[module] = None
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions, "load_start": load_averages(), "uptime_start": uptime}


def project_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    status = git("status", "--porcelain", "--", "src", "dvc.yaml", "params.yaml")
    return {"root": str(ROOT), "git_head": git("rev-parse", "--short", "HEAD"),
            "pipeline_files_modified": bool(status)}


def write_results(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    markdown = report.markdown(result)
    paths = {}
    for suffix, text in (("json", json.dumps(result, indent=2) + "\n"), ("md", markdown)):
        path = out_dir / f"bench-{result['mode']}-{stamp}.{suffix}"
        path.write_text(text, encoding="utf-8")
        shutil.copyfile(path, out_dir / f"latest.{suffix}")
        paths[suffix] = path
    return paths


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    cli.add_argument("--smoke", action="store_true",
                     help=f"tiny synthetic data ({SMOKE_ROWS:,} rows), 2 epochs: checks that the "
                          "benchmark works, measures nothing meaningful")
    cli.add_argument("--repeats", type=int, default=None,
                     help="runs of each measured command (medians are reported); default 3, "
                          "1 with --smoke")
    cli.add_argument("--skip-scale", action="store_true", help="skip the 10× data run")
    cli.add_argument("--skip-tutorial", action="store_true",
                     help="skip the tutorial's code path (slow: its oversampler)")
    cli.add_argument("--epochs", type=int, default=None,
                     help="epochs per strategy for the tutorial comparison and the scale runs "
                          "(early stopping off); default 20, 2 with --smoke")
    cli.add_argument("--bench-epochs", type=int, default=None,
                     help="epochs of the in-process s/epoch measurement; default 10, 2 with "
                          "--smoke")
    cli.add_argument("--tutorial-oversample-epochs", type=int, default=None,
                     help="epochs of the tutorial's oversampler in the s/epoch measurement "
                          "(~16 s each on the real data); default 3, 1 with --smoke")
    cli.add_argument("--scale-factor", type=int, default=10)
    cli.add_argument("--out-dir", type=Path, default=RESULTS)
    cli.add_argument("--keep", action="store_true", help="keep the temporary project copies")
    args = cli.parse_args(argv)
    defaults = {"repeats": (1, 3), "epochs": (2, 20), "bench_epochs": (2, 10),
                "tutorial_oversample_epochs": (1, 3)}
    for name, (smoke, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.repeats < 1 or args.epochs < 1 or args.bench_epochs < 1:
        cli.error("--repeats, --epochs and --bench-epochs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fraud-bench-"))
    try:
        result = Bench(args, work).run()
    finally:
        if args.keep:
            log(f"project copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    paths = write_results(result, args.out_dir)
    print(report.markdown(result))
    log(f"wrote {paths['json']} and {paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
