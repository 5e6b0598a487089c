"""Compare the strategies over several seeds, as DVC experiments.

    python -m src.compare_seeds --seeds 5                 # seeds 42..46 (params.yaml's seed on)
    python -m src.compare_seeds --seed-list 1,2,3 --set train.epochs=20 --keep

For each seed, `dvc exp run --temp -S seed=<s> [-S KEY=VALUE ...]` runs the pipeline in a
temporary copy of the repository (the workspace, its params and metrics stay as they are;
the baseline is the last commit plus any uncommitted changes to tracked files). Then the
three strategies' test metrics come from `dvc exp show --json`, the logistic-regression peer
is fitted on each experiment's own scaled splits (read from the DVC cache), and the report
(mean and 95 % t-interval per strategy, paired differences between strategies) is written
to <out-dir>/seeds.md and seeds.json, and printed. The experiments are removed at the end
unless --keep (they are named seeds-<time>-<seed>). Logs: <out-dir>/logs/.

A seed changes the split, so every stage from `split` on reruns (~105 s a seed on the real
data, 2 busy cores; params.yaml's own seed is free when its run is committed); `download`
lists `seed` too (for synthetic data), so it reruns as well: set FRAUD_DATA_MIRROR to a local
copy to avoid downloading the data once per seed. --jobs 2 gave no speed-up on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from src.fraud.errors import PipelineError
from src.stages._cli import run

# Paths the pipeline writes (declared in dvc.yaml; tests/test_compare.py checks they still are).
METRICS_PATTERN = "metrics/{strategy}.json"
SCALED = "data/scaled/{split}_{kind}.npy"   # split: train | val | test; kind: features | labels
SPLIT_TABLE = "data/split/{split}.parquet"  # for transaction amounts when cost_fn = amount


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _say(message: str) -> None:
    print(f"compare_seeds: {message}", file=sys.stderr, flush=True)


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, env=_env())
    if done.returncode != 0:
        raise PipelineError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _dvc(*args: str, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dvc", *args]
    if log is None:
        return subprocess.run(command, capture_output=True, text=True, env=_env())
    with open(log, "w", encoding="utf-8") as handle:
        handle.write("$ dvc " + " ".join(args) + "\n")
        handle.flush()
        return subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, text=True,
                              env=_env())


def _last_error(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()
             if line.strip()]
    errors = [line for line in lines if line.startswith(("ERROR", "error:"))]
    return (errors or lines or ["(no output)"])[-1]


def _baseline() -> tuple[str, list[str]]:
    """The commit experiments start from, and the tracked files changed since."""
    if not Path(".dvc").is_dir():
        raise PipelineError(f"{Path.cwd()}: not a DVC project (no .dvc folder); run from the "
                            "project's root")
    done = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise PipelineError(f"{Path.cwd()}: not a git repository with a commit; dvc exp run "
                            "needs one (git init; git add -A; git commit)")
    dirty = [line[3:] for line in _git("status", "--porcelain", "--untracked-files=no")
             .splitlines()]
    return done.stdout.strip(), dirty


def _run_seed(seed: int, name: str, extra: dict[str, str], log: Path) -> float:
    args = ["exp", "run", "--temp", "-n", name, "-S", f"seed={seed}"]
    for key, value in extra.items():
        args += ["-S", f"{key}={value}"]
    start = time.perf_counter()
    done = _dvc(*args, log=log)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise PipelineError(f"seed {seed}: dvc exp run failed (exit {done.returncode}) after "
                            f"{seconds:.0f} s: {_last_error(log)} (full log: {log})")
    return seconds


def _read_npy(rev: str, path: str):
    import dvc.api
    import numpy as np

    try:
        data = dvc.api.read(path, rev=rev, mode="rb")
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as error:  # dvc raises many types (missing cache, unknown path)
        raise PipelineError(f"{path} at experiment commit {rev[:10]}: cannot read it "
                            f"({type(error).__name__}: {error})") from None


def _amounts(rev: str, split: str, eps: float):
    import dvc.api
    import numpy as np
    import pandas as pd

    path = SPLIT_TABLE.format(split=split)
    try:
        table = pd.read_parquet(io.BytesIO(dvc.api.read(path, rev=rev, mode="rb")))
    except Exception as error:
        raise PipelineError(f"{path} at experiment commit {rev[:10]}: cannot read it "
                            f"({type(error).__name__}: {error})") from None
    return np.exp(table["Log Amount"].to_numpy()) - eps


def _peer(rev: str, params) -> dict[str, Any]:
    from src.fraud.compare import evaluate_peer

    arrays = {split: (_read_npy(rev, SCALED.format(split=split, kind="features")),
                      _read_npy(rev, SCALED.format(split=split, kind="labels")))
              for split in ("train", "val", "test")}
    amounts = {"val": None, "test": None}
    if params.evaluate.cost_fn == "amount":
        amounts = {split: _amounts(rev, split, params.clean.eps) for split in amounts}
    return evaluate_peer(arrays["train"], arrays["val"], arrays["test"], params,
                         amounts["val"], amounts["test"])


def main(argv: Sequence[str]) -> None:
    cli = argparse.ArgumentParser(description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    which = cli.add_mutually_exclusive_group()
    which.add_argument("--seeds", type=int, metavar="N",
                       help="N consecutive seeds from params.yaml's seed (default 5)")
    which.add_argument("--seed-list", metavar="A,B,...", help="these seeds")
    cli.add_argument("--out-dir", type=Path, default=Path("reports/seeds"))
    cli.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                     help="another param for every run (dvc exp run -S), repeatable")
    cli.add_argument("--jobs", type=int, default=1,
                     help="experiments at a time (default 1; the TF stages use every core)")
    cli.add_argument("--keep", action="store_true", help="keep the experiments (dvc exp show)")
    cli.add_argument("--params", default="params.yaml", help="the params file")
    args = cli.parse_args(argv)

    from src.fraud import compare as C
    from src.fraud.files import json_dumps, outputs
    from src.fraud.params import load_params, parse_params

    if args.seeds is None and args.seed_list is None:
        args.seeds = 5
    if args.seeds is not None and args.seeds < 2:
        raise PipelineError(f"--seeds {args.seeds}: at least 2 seeds are needed for an interval")
    if args.jobs < 1:
        raise PipelineError(f"--jobs {args.jobs}: expected a whole number >= 1")
    base = load_params(args.params)
    seeds = C.seed_list(args.seeds, args.seed_list, base.seed)
    extra = C.parse_set(args.extra)
    baseline, dirty = _baseline()
    if dirty:
        _say("uncommitted changes in " + ", ".join(dirty) + " are part of every experiment")

    started = time.perf_counter()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    names = {seed: f"seeds-{stamp}-{seed}" for seed in seeds}
    logs = args.out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    seconds: dict[int, float] = {}

    def one(seed: int) -> None:
        _say(f"seed {seed}: dvc exp run --temp -n {names[seed]} -S seed={seed}"
             + "".join(f" -S {k}={v}" for k, v in extra.items()))
        seconds[seed] = _run_seed(seed, names[seed], extra, logs / f"seed-{seed}.log")
        created.append(names[seed])
        _say(f"seed {seed}: done in {seconds[seed]:.0f} s ({len(created)}/{len(seeds)})")

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(one, seed) for seed in seeds]
            failures = []
            for future in futures:
                try:
                    future.result()
                except PipelineError as error:
                    failures.append(str(error))
                    for pending in futures:
                        pending.cancel()
            if failures:
                raise PipelineError("; ".join(failures))

        shown = _dvc("exp", "show", "--json", "--rev", baseline)
        if shown.returncode != 0:
            raise PipelineError(f"dvc exp show --json failed: {shown.stderr.strip()[-500:]}")
        experiments = C.experiments_from_show(json.loads(shown.stdout))
        per_seed: dict[str, dict[int, dict[str, Any]]] = {row: {} for row in C.ROWS}
        params_used: dict[str, Any] | None = None
        for seed in seeds:
            experiment = experiments.get(names[seed])
            if experiment is None:
                raise PipelineError(f"experiment {names[seed]} (seed {seed}) is not in "
                                    f"dvc exp show --json --rev {baseline[:10]}")
            params = parse_params(experiment.params)
            if params.seed != seed:
                raise PipelineError(f"experiment {experiment.name} ran with seed {params.seed}, "
                                    f"not {seed}")
            without_seed = {k: v for k, v in experiment.params.items() if k != "seed"}
            if params_used is None:
                params_used = without_seed
            elif without_seed != params_used:
                raise PipelineError(f"experiment {experiment.name}: params differ from the "
                                    "other seeds' beyond the seed")
            for strategy, values in C.strategy_metrics(experiment, METRICS_PATTERN).items():
                per_seed[strategy][seed] = values
            _say(f"seed {seed}: fitting the logistic-regression peer")
            per_seed[C.PEER][seed] = _peer(experiment.rev, params)

        result = C.compare(per_seed, seeds)
        total = time.perf_counter() - started
        context = {
            "command": "python -m src.compare_seeds " + " ".join(argv),
            "baseline": baseline,
            "dirty": dirty,
            "extra_params": extra,
            "threshold": base.evaluate.threshold if "evaluate.threshold" not in extra
            else extra["evaluate.threshold"],
            "params": {**(params_used or {}), "seed": seeds},
            "experiments": {str(s): {"name": names[s], "rev": experiments[names[s]].rev,
                                     "seconds": round(seconds[s], 1)} for s in seeds},
            "kept": bool(args.keep),
            "jobs": args.jobs,
            "seconds": round(total, 1),
        }
        markdown = C.to_markdown(result, per_seed, context)
        with outputs() as out:
            out.path(args.out_dir / "seeds.md").write_text(markdown, encoding="utf-8")
            out.path(args.out_dir / "seeds.json").write_text(
                json_dumps(C.to_json(result, per_seed, context)), encoding="utf-8")
        print(markdown)
        _say(f"wrote {args.out_dir / 'seeds.md'} and {args.out_dir / 'seeds.json'} "
             f"in {total:.0f} s")
    finally:
        if created and not args.keep:
            removed = _dvc("exp", "remove", *created)
            if removed.returncode != 0:
                _say(f"could not remove experiments {', '.join(created)}: "
                     f"{removed.stderr.strip()[-300:]}")
        elif created:
            _say("kept experiments: " + ", ".join(created) + " (dvc exp show; dvc exp remove)")


if __name__ == "__main__":
    run(main)
