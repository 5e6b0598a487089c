"""Temporary copies of the project, and DVC commands run in them under measurement.

The benchmark never touches the user's workspace: each measured run works in a fresh copy
of the project's pipeline files (as tests/synthetic_project.py does), with its own git
repository and DVC cache, so "from a clean workspace" really starts from nothing (no
outputs, no run cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from fraud.core.models import STRATEGIES, TRAIN_STAGES
from fraud.data.download import MIRROR_ENV
from tests.project_files import ROOT, copy_project_files, ran_stages, set_dotted, stage_names

# The stages this benchmark was written against; dvc.yaml may hold more (they are timed too).
STAGES = stage_names(ROOT / "dvc.yaml")  # foreach items as name@key
TRAIN_STAGE = {strategy: TRAIN_STAGES[strategy] for strategy in STRATEGIES}  # the networks'
REAL_ROWS = 284_807


@dataclass(frozen=True)
class DataSource:
    """Where the pipeline's download stage gets its CSV."""
    kind: str                  # "real" or "synthetic"
    rows: int
    mirror: str | None = None  # the real file, when kind == "real"
    fraud_rate: float = 0.001727

    def describe(self) -> str:
        if self.kind == "real":
            # The mirror's path is this machine's: the results say where it came from, not where.
            return (f"real Credit Card Fraud data ({self.rows:,} rows) from a local mirror "
                    "(`FRAUD_DATA_MIRROR`)")
        return f"synthetic stand-in ({self.rows:,} rows, download.url=synthetic)"

    def params(self) -> dict[str, Any]:
        if self.kind == "real":
            return {}
        return {"download.url": "synthetic", "download.synthetic_rows": self.rows,
                "download.synthetic_fraud_rate": self.fraud_rate}


def default_source(environ: dict[str, str] | None = None) -> DataSource:
    """Real data when FRAUD_DATA_MIRROR points at a file, the synthetic stand-in otherwise."""
    env = os.environ if environ is None else environ
    mirror = (env.get(MIRROR_ENV) or "").strip()
    if mirror and Path(mirror).expanduser().is_file():
        return DataSource("real", REAL_ROWS, mirror=str(Path(mirror).expanduser()))
    return DataSource("synthetic", REAL_ROWS)


def install_shim(folder: Path) -> Path:
    """`python` / `python3` executables in `folder` that time the stage commands."""
    folder.mkdir(parents=True, exist_ok=True)
    source = (Path(__file__).with_name("shim.py")).read_text(encoding="utf-8")
    for name in ("python", "python3"):
        path = folder / name
        path.write_text(f"#!{sys.executable} -SE\n{source}", encoding="utf-8")
        path.chmod(0o755)
    return folder


@dataclass
class StageRun:
    stage: str
    wall_s: float
    max_rss_mb: float
    cpu_s: float
    returncode: int


@dataclass
class CommandRun:
    """One measured command: wall time, peak RSS of its whole process tree (sampled every
    50 ms), and the pipeline stages it ran (each timed by the shim)."""
    args: list[str]
    wall_s: float
    peak_tree_rss_mb: float
    stages: list[StageRun] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    load_before: float = 0.0
    load_after: float = 0.0

    @property
    def ran(self) -> list[str]:
        return ran_stages(self.stdout)

    @property
    def stage_seconds(self) -> float:
        return sum(s.wall_s for s in self.stages)


def stage_name(argv: list[str]) -> str:
    """dvc.yaml's stage name from a stage command line (`-m src.stages.train --strategy x`)."""
    module = argv[argv.index("-m") + 1] if "-m" in argv else " ".join(argv)
    name = module.rsplit(".", 1)[-1]
    for script, flag in (("train", "--strategy"), ("train_peer", "--model")):
        if name == script and flag in argv:
            model = argv[argv.index(flag) + 1]
            return TRAIN_STAGES[model]
    return name


class RssSampler(threading.Thread):
    """Peak summed RSS of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop_event.wait(self.interval)

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak / 2**20


class Project:
    """A throw-away copy of the pipeline with its own git repository and DVC cache."""

    def __init__(self, path: Path, source: DataSource, params: dict[str, Any] | None = None,
                 root: Path = ROOT, rss_interval: float = 0.05) -> None:
        self.path = path
        self.rss_interval = rss_interval  # s between memory samples of a measured command
        self.source = source
        self.shim = install_shim(path.parent / f".{path.name}-bin")
        self.stage_log = path.parent / f".{path.name}-stages.jsonl"
        copy_project_files(path, root)
        self.set_params({**source.params(), **(params or {})})
        self.git("init", "-q", "-b", "main")
        self.commit("project")

    # --- environment ---------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"DVC_NO_ANALYTICS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
                    "BENCH_REAL_PYTHON": sys.executable, "BENCH_STAGE_LOG": str(self.stage_log),
                    "PYTHONDONTWRITEBYTECODE": "1"})
        env.pop("PYTHONPATH", None)
        if self.source.kind == "real":
            env[MIRROR_ENV] = self.source.mirror or ""
        else:
            env.pop(MIRROR_ENV, None)
        # `python` in dvc.yaml's commands: the timing shim, then this interpreter.
        env["PATH"] = os.pathsep.join([str(self.shim), str(Path(sys.executable).parent),
                                       env.get("PATH", "")])
        return env

    def set_params(self, overrides: dict[str, Any]) -> None:
        path = self.path / "params.yaml"
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        for dotted, value in overrides.items():
            set_dotted(raw, dotted, value)
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")

    def params(self) -> dict[str, Any]:
        return yaml.safe_load((self.path / "params.yaml").read_text(encoding="utf-8"))

    # --- commands --------------------------------------------------------------------------
    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.path, env=self.env(),
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"git {' '.join(args)} failed in {self.path}:\n{done.stderr}")
        return done.stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def run(self, *args: str, check: bool = True, timeout: float | None = None,
            env_extra: dict[str, str] | None = None) -> CommandRun:
        """Runs a command (e.g. `dvc repro`) in the project, measured."""
        argv = list(args)
        if argv[0] == "dvc":
            argv = [sys.executable, "-m", "dvc", *argv[1:]]
        self.stage_log.unlink(missing_ok=True)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=self.path, env={**self.env(), **(env_extra or {})},
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        sampler = RssSampler(proc.pid, self.rss_interval)
        sampler.start()
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            sampler.stop()
            raise
        wall = time.perf_counter() - start
        peak = sampler.stop()
        stages = []
        if self.stage_log.exists():
            for line in self.stage_log.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if not {"src.stages.", "src.predict"} & set(re.findall(
                        r"src\.stages\.|src\.predict", " ".join(record["argv"]))):
                    continue
                stages.append(StageRun(stage_name(record["argv"]), record["wall_s"],
                                       record["max_rss_mb"], record["cpu_s"],
                                       record["returncode"]))
        result = CommandRun(list(args), wall, peak, stages, stdout, stderr, load_before,
                            os.getloadavg()[0])
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}) in {self.path}:\n"
                               f"{stdout[-3000:]}\n{stderr[-5000:]}")
        return result

    def python(self, *args: str, timeout: float | None = None) -> CommandRun:
        """`python -m bench.<x> ...` in the project copy, importing the copy's `src`."""
        return self.run(sys.executable, *args, timeout=timeout,
                        env_extra={"PYTHONPATH": str(ROOT)})

    def reset_to_head(self) -> None:
        """Back to the committed workspace (after an experiment), as the e2e test does."""
        self.git("checkout", "--", ".")
        done = subprocess.run([sys.executable, "-m", "dvc", "checkout", "-q"], cwd=self.path,
                              env=self.env(), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"dvc checkout failed:\n{done.stderr}")

    def clear_run_cache(self) -> None:
        """So that `dvc exp run` really runs the stage instead of restoring a cached run."""
        shutil.rmtree(self.path / ".dvc" / "cache" / "runs", ignore_errors=True)

    def stages(self) -> list[str]:
        """The stages dvc.yaml declares, foreach items as `name@key` (as DVC prints them)."""
        return stage_names(self.path / "dvc.yaml")

    def read_json(self, relative: str) -> dict[str, Any]:
        return json.loads((self.path / relative).read_text(encoding="utf-8"))
