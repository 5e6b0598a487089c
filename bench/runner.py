"""The benchmark's orchestration: `Bench` runs every section in throw-away project copies
and assembles the result dict (bench/run.py is the command line around it)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.goals import compare_to_tutorial, goals
from bench.machine import load_averages, machine, project_info, tf_import_seconds
from bench.project import STAGES, TRAIN_STAGE, DataSource, Project, default_source
from bench.records import median, run_record, summarise_runs, without_download
from fraud.core.models import STRATEGIES

SMOKE_ROWS = 4_000
SMOKE_FRAUD_RATE = 0.02
SMOKE_EPOCHS = 2
# Tiny and quick, as the e2e test's: the whole pipeline in well under a minute.
SMOKE_PARAMS = {"train.epochs": SMOKE_EPOCHS, "train.patience": SMOKE_EPOCHS,
                "train.batch_size": 512, "init_bias.compare_epochs": SMOKE_EPOCHS,
                "evaluate.curve_points": 200}

RAW_CSV = "data/raw/creditcard.csv"  # the download stage's output, in each project copy
# What predict scores: the export stage's model (calibrated ONNX), and beside it a network's
# `.keras` detector from its train stage (uncalibrated, so given a threshold), for the cost
# of TensorFlow.
PREDICT_MODELS = {"onnx": "models/fraud_detector.onnx",
                  "keras": "models/detector/baseline.keras"}
PREDICT_FORMATS = tuple(PREDICT_MODELS)
PREDICT_EXTRA = {"onnx": (), "keras": ("--threshold", "0.5")}
SCORES = "scores.csv"  # where `python -m src.predict` writes, deleted after each run
PREDICT_OPTIONS = ("-o", SCORES, "-q")
PREDICT_COMMAND = " ".join(["python -m src.predict", PREDICT_MODELS["onnx"], RAW_CSV,
                            *PREDICT_OPTIONS])


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Background:
    """Sections run in threads while the main thread goes on (smoke runs only: their timings
    mean nothing). An error in any of them is re-raised in the main thread at the next join."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.threads: dict[str, threading.Thread] = {}

    def start(self, key: str, job: Callable[[], Any], daemon: bool = False) -> None:
        thread = threading.Thread(target=self._capture, args=(key, job), daemon=daemon)
        self.threads[key] = thread
        thread.start()

    def _capture(self, key: str, job: Callable[[], Any]) -> None:
        try:
            self.results[key] = job()
        except BaseException as error:  # re-raised in the main thread
            self.results["error"] = error

    def running(self, key: str) -> bool:
        return key in self.threads

    def join(self, key: str) -> Any:
        self.threads[key].join()
        if "error" in self.results:
            raise self.results["error"]
        return self.results[key]


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
        self.background = Background()

    def project(self, label: str, source: DataSource | None = None,
                params: dict[str, Any] | None = None) -> Project:
        with self.lock:
            self.counter += 1
            path = self.work / f"{self.counter:02d}-{label}" / "project"
        path.mkdir(parents=True)
        # --smoke measures nothing: sample memory 5× less often (the sampler's own CPU).
        return Project(path, source or self.source, {**self.base_params, **(params or {})},
                       rss_interval=0.25 if self.smoke else 0.05)

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

    def exp_run(self, project: Project, strategy: str) -> dict[str, Any]:
        """`dvc exp run -S train.strategy=STRATEGY`, --repeats times, each a real run."""
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
        return summarise_runs(runs, self.stage_names)

    def exp_runs(self, project: Project) -> dict[str, Any]:
        strategies = ["oversample"] if self.smoke else ["oversample", "weighted"]
        out: dict[str, Any] = {}
        for strategy in strategies:
            out[strategy] = self.exp_run(project, strategy)
            log(f"dvc exp run -S train.strategy={strategy}: "
                f"{out[strategy]['median_wall_s']:.2f} s")
        all_walls = [r["wall_s"] for strategy in strategies for r in out[strategy]["runs"]]
        out["median_wall_s"] = median(all_walls)
        out["max_wall_s"] = max(all_walls)
        return out

    def predict_once(self, project: Project, model: str | Path, *extra: str) -> dict[str, Any]:
        """`python -m src.predict MODEL data/raw/creditcard.csv -o scores.csv -q` in `project`,
        timed by the shim (wall time and the kernel's peak RSS of the process)."""
        run = project.run("python", "-m", "src.predict", str(model), RAW_CSV, *PREDICT_OPTIONS,
                          *extra)
        (timed,) = [stage for stage in run.stages if stage.stage == "predict"]
        (project.path / SCORES).unlink(missing_ok=True)
        return {"wall_s": timed.wall_s, "max_rss_mb": timed.max_rss_mb, "cpu_s": timed.cpu_s}

    def predict(self, project: Project) -> dict[str, Any]:
        """The exported model scoring the whole raw CSV, .onnx (onnxruntime) beside .keras."""
        out: dict[str, Any] = {"rows": self.source.rows, "command": PREDICT_COMMAND}
        for fmt in PREDICT_FORMATS:
            runs = [self.predict_once(project, PREDICT_MODELS[fmt], *PREDICT_EXTRA[fmt])
                    for _ in range(self.args.repeats)]
            out[fmt] = {"runs": runs, "median_wall_s": median([r["wall_s"] for r in runs]),
                        "max_rss_mb": max(r["max_rss_mb"] for r in runs)}
            log(f"predict .{fmt}: {out[fmt]['median_wall_s']:.2f} s, "
                f"{out[fmt]['max_rss_mb']:.0f} MB")
        return out

    def predict_scale(self, project: Project, big: Project, one: dict[str, Any]
                      ) -> dict[str, Any]:
        """The .onnx model on the 10× project's raw CSV: memory must stay flat (chunks)."""
        run = self.predict_once(big, project.path / PREDICT_MODELS["onnx"])
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
        run = fixed.python("-m", "bench.reference.tutorial", "--csv", RAW_CSV,
                           "--epochs", str(self.args.epochs),
                           "--compare-epochs", str(params["init_bias"]["compare_epochs"]),
                           "--seed", str(params["seed"]), "--out", str(out))
        result = json.loads(out.read_text(encoding="utf-8"))
        result.update({"wall_s": run.wall_s, "peak_tree_rss_mb": run.peak_tree_rss_mb,
                       "load_before": run.load_before, "load_after": run.load_after})
        log(f"  tutorial {run.wall_s:.1f} s vs pipeline {fixed_run['wall_s']:.1f} s")
        return result

    def scale_run(self, label: str, factor: int) -> tuple[Project, dict[str, Any]]:
        """`dvc repro` on the synthetic source at `factor` × the rows, fixed epochs."""
        source = DataSource("synthetic", self.source.rows * factor,
                            fraud_rate=self.source.fraud_rate)
        log(f"scale: {factor}× synthetic ({source.rows:,} rows), {self.args.epochs} epochs")
        project = self.project(label, source, self.fixed_params())
        return project, run_record(project.run("dvc", "repro"))

    def scale_big(self) -> dict[str, Any]:
        """The same pipeline on --scale-factor × the rows (synthetic source), fixed epochs."""
        self.big_project, run = self.scale_run("scale-big", self.args.scale_factor)
        log(f"  {self.args.scale_factor}×: {run['wall_s']:.1f} s, "
            f"peak {run['peak_tree_rss_mb']:.0f} MB")
        return run

    def scale_small(self) -> dict[str, Any]:
        return self.scale_run("scale-1x", 1)[1]

    def scale(self, one: dict[str, Any], many: dict[str, Any]) -> dict[str, Any]:
        factor = self.args.scale_factor
        return {"factor": factor, "rows_1x": self.source.rows,
                "rows_big": self.source.rows * factor, "epochs": self.args.epochs,
                "run_1x": one, "run_big": many,
                "time_ratio": many["wall_s"] / one["wall_s"],
                "time_ratio_without_download": without_download(many) / without_download(one),
                "peak_rss_mb": many["peak_tree_rss_mb"],
                "peak_rss_ratio": many["peak_tree_rss_mb"] / one["peak_tree_rss_mb"]}

    # --- all of it, in order ----------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        args = self.args
        return {
            "schema": 1, "mode": "smoke" if self.smoke else "full",
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(), "project": project_info(),
            "data": {"kind": self.source.kind, "rows": self.source.rows,
                     "description": self.source.describe()},
            "settings": {"repeats": args.repeats, "epochs": args.epochs,
                         "bench_epochs": args.bench_epochs,
                         "tutorial_oversample_epochs": args.tutorial_oversample_epochs,
                         "scale_factor": args.scale_factor, "skip_scale": args.skip_scale,
                         "skip_tutorial": args.skip_tutorial, "params": self.base_params},
        }

    def commands(self, result: dict[str, Any]) -> Project:
        """The clean `dvc repro`s, no-op, experiments, predict and quality; the last clean
        project (committed, outputs in place) for the sections after."""
        result["repro"], project = self.repro_clean()
        result["stages"] = self.stage_names
        result["noop"] = self.noop(project)
        result["exp_run"] = self.exp_runs(project)
        result["predict"] = self.predict(project)
        result["quality"] = self.quality(project)
        return project

    def pipeline_fixed(self, result: dict[str, Any], project: Project
                       ) -> tuple[Project, dict[str, Any]] | None:
        """A `dvc repro` with every strategy at --epochs epochs, when the tutorial or the 1×
        scale run needs one: the clean run itself when its params already say so."""
        synthetic = self.source.kind == "synthetic"
        if self.args.skip_tutorial and (self.args.skip_scale or not synthetic):
            return None
        if all(self.base_params.get(k) == v for k, v in self.fixed_params().items()):
            fixed = (project, result["repro"]["runs"][-1])
        else:
            log(f"dvc repro with every strategy fixed at {self.args.epochs} epochs")
            fixed_project = self.project("fixed-epochs", params=self.fixed_params())
            fixed = (fixed_project, run_record(fixed_project.run("dvc", "repro")))
        result["pipeline_fixed"] = fixed[1]
        return fixed

    def tutorial_section(self, result: dict[str, Any],
                         fixed: tuple[Project, dict[str, Any]]) -> None:
        if self.background.running("tutorial"):
            result["tutorial"] = self.background.join("tutorial")
        else:
            result["tutorial"] = self.tutorial(*fixed)
            # The tutorial runs for minutes while the machine's load drifts: run the
            # fixed-epoch pipeline again after it and compare with the mean of both.
            log(f"dvc repro with every strategy fixed at {self.args.epochs} epochs, again")
            again = self.project("fixed-epochs-again", params=self.fixed_params())
            result["pipeline_fixed_after"] = run_record(again.run("dvc", "repro"))
        result["tutorial"]["comparison"] = compare_to_tutorial(result)

    def scale_section(self, result: dict[str, Any], project: Project,
                      fixed: tuple[Project, dict[str, Any]] | None) -> None:
        synthetic = self.source.kind == "synthetic"
        one = fixed[1] if synthetic and fixed is not None else self.scale_small()
        many = self.background.join("big") if self.background.running("big") else self.scale_big()
        result["scale"] = self.scale(one, many)
        assert self.big_project is not None
        result["predict"]["scale"] = self.predict_scale(project, self.big_project,
                                                        result["predict"]["onnx"])

    def run(self) -> dict[str, Any]:
        started = time.time()
        result = self.header()
        log(f"data: {self.source.describe()}; load {load_averages()}")
        # Smoke timings mean nothing: one import, not four (~17 s of the test suite's CPU).
        result["machine"]["tf_import"] = (tf_import_seconds(runs=1, warm_up=False) if self.smoke
                                          else tf_import_seconds())
        log(f"yardstick: python -c 'import tensorflow' "
            f"{result['machine']['tf_import']['wall_s']:.2f} s")
        if self.smoke and not self.args.skip_scale:
            # Smoke timings mean nothing: overlap the big run with the rest to finish sooner.
            self.background.start("big", self.scale_big, daemon=True)
        project = self.commands(result)
        fixed = self.pipeline_fixed(result, project)
        if not self.args.skip_tutorial and self.smoke:
            assert fixed is not None  # smoke: overlap the tutorial with the in-process runs
            self.background.start("tutorial", lambda: self.tutorial(*fixed))
        inproc = self.inprocess(project)
        result["epochs"], result["scoring"] = inproc["epochs"], inproc["scoring"]
        result["quality"]["peer"] = inproc["peer"]
        if not self.args.skip_tutorial:
            assert fixed is not None
            self.tutorial_section(result, fixed)
        if not self.args.skip_scale:
            self.scale_section(result, project, fixed)
        result["machine"]["load_end"] = load_averages()
        result["bench_wall_s"] = time.time() - started
        result["goals"] = goals(result)
        return result
