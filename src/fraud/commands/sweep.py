"""Sweeps on DVC's experiment engine: seeds x a grid, queued, run by DVC's queue workers,
shared between machines through git and a DVC remote, compared over seeds.

    fraud sweep --seeds 5 --jobs 2                       # seeds 42..46, 2 workers
    fraud sweep --seed-list 1,2,3 --grid model.hidden_units=16,32,64 \\
        --set train.epochs=20                                    # 9 experiments
    fraud sweep --seeds 20 --shard 2/4 --push origin     # machine 2 of 4
    fraud sweep --seeds 20 --report-only --pull origin   # any clone: the report
    fraud sweep --folds 3 --grid gbdt.learning_rate=0.05,0.1   # prequential: 6 experiments

Each experiment is `dvc exp run --queue -n <name> -S seed=<s> [-S key=value ...]`, run by
`dvc queue start -j N` in a temporary copy of the repository (the workspace, its params and
metrics stay as they are; the experiments start from the last commit plus uncommitted
changes to tracked files). Names come from the code and the params, so a rerun of the same
command skips what already finished (an interrupted sweep resumes), waits for what is still
queued, and reruns what failed; a failed experiment is reported with its log's error line
and does not stop the others. `--shard K/N` runs every N-th experiment from the K-th, so N
machines share a sweep; `--push` sends the experiments to a git remote (`dvc exp push`:
refs to git, outputs to the DVC remote); `--pull` fetches the others' (`dvc exp pull`).
The report compares the models (every `metrics/<model>.json`) over the seeds of each grid
point, ranked on validation PR-AUC with test beside it: <out-dir>/<stem>.md and .json.

`--folds N` is prequential (walk-forward) validation, for a time split by days: the folds
replace the seeds (one seed, params.yaml's), fold k (`-S split.fold=k`) training and
validating k x split.val_days days earlier. Models and grid points are ranked on validation
averaged over the folds; the test figures are fold 0's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fraud.core.cli import OneLineParser, params_file, run
from fraud.errors import PipelineError, printable
from fraud.experiments import queue as dvc_exp
from fraud.experiments.plan import (
    FOLD_KEY,
    Point,
    check_disjoint,
    check_fold_free,
    check_overrides,
    check_prefix,
    check_size,
    code_key,
    expand,
    experiment_name,
    fold_list,
    parse_grid,
    parse_set,
    parse_shard,
    seed_list,
    shard,
)
from fraud.experiments.show import finished

LOG_TAIL = 15
# Queue workers on one machine: each runs a whole pipeline (TensorFlow and all); more than
# this is a typo, not a machine.
MAX_JOBS = 64


def _say(message: str) -> None:
    print(f"sweep: {message}", file=sys.stderr, flush=True)


class UsageError(PipelineError):
    """A bad command line, found after argparse (a seed, a key, a value): exit status 2."""


def parser(description: str = __doc__, out_dir: str = "reports/sweeps", stem: str = "sweep",
           prefix: str = "sweep") -> argparse.ArgumentParser:
    cli = OneLineParser(description=description,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    which = cli.add_mutually_exclusive_group()
    which.add_argument("--seeds", type=int, metavar="N",
                       help="N consecutive seeds from params.yaml's seed (default 5)")
    which.add_argument("--seed-list", metavar="A,B,...", help="these seeds")
    which.add_argument("--folds", type=int, metavar="N",
                       help="prequential validation instead of seeds: folds 0..N-1 "
                       "(split.fold; a time split by days) at params.yaml's one seed, ranked "
                       "on validation averaged over the folds, test from fold 0 only")
    cli.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                     help="a param to vary (every value with every seed, or fold), "
                     "repeatable")
    cli.add_argument("--set", dest="fixed", action="append", default=[], metavar="KEY=VALUE",
                     help="a param for every experiment (dvc exp run -S), repeatable")
    cli.add_argument("--jobs", "-j", type=int, default=1,
                     help="queue workers (dvc queue start -j); default 1")
    cli.add_argument("--shard", metavar="K/N", help="run share K of N (N machines)")
    cli.add_argument("--push", metavar="GIT_REMOTE", help="dvc exp push the experiments there")
    cli.add_argument("--pull", metavar="GIT_REMOTE", help="dvc exp pull HEAD's experiments "
                     "first (metrics only: --no-cache)")
    cli.add_argument("--report-only", action="store_true",
                     help="run nothing: compare the experiments found (after --pull)")
    cli.add_argument("--rev", default="HEAD", metavar="COMMIT",
                     help="with --report-only: report the sweep of that commit (default HEAD)")
    cli.add_argument("--rerun", action="store_true",
                     help="run every experiment again, stages and all (dvc exp run -f)")
    cli.add_argument("--prefix", default=prefix, help=f"experiment names' prefix ({prefix})")
    cli.add_argument("--out-dir", type=Path, default=Path(out_dir),
                     help=f"where the report and failed experiments' logs go ({out_dir})")
    cli.add_argument("--stem", default=stem, help=f"report file names (<stem>.md; {stem})")
    cli.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
    cli.add_argument("--status-every", type=float, default=dvc_exp.STATUS_EVERY,
                     help=argparse.SUPPRESS)
    cli.add_argument("--params", default="params.yaml", type=params_file,
                     help="the params file")
    return cli


def _first_seed(path: str) -> int:
    """params.yaml's seed, read directly: the sweep works on any DVC project with a `seed`."""
    import yaml

    try:
        seed = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["seed"]
        return int(seed)
    except (OSError, TypeError, KeyError, ValueError, yaml.YAMLError) as error:
        raise PipelineError(f"{path}: cannot read a whole-number `seed` "
                            f"({type(error).__name__}: {error})") from None


def _params_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")  # _first_seed read it


def _validator(text: str) -> Callable[[Any], object]:
    """This pipeline's params check and typing, for the values of a sweep; on another DVC
    project (whose params are not this pipeline's) the values are taken as read."""
    from fraud.core.params import parse_params, parse_yaml

    try:
        parse_params(parse_yaml(text, "params.yaml"))
    except PipelineError:
        return lambda params: params
    return parse_params


@dataclass
class Sweep:
    """What one command does: the plan, this machine's share, and what happened to it."""
    points: list[Point]
    mine: list[Point]
    fixed: dict[str, str]
    env: dict[str, str]
    commit: str                     # experiments are read from this commit's, not HEAD's
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _report_files(args: argparse.Namespace) -> list[str]:
    """The report this command writes, relative to the project's root (the working folder):
    it is no input of any experiment, so changing it changes no experiment's name."""
    root = Path.cwd().resolve()
    files = [(args.out_dir / f"{args.stem}{suffix}").resolve() for suffix in (".md", ".json")]
    # outside the project, git tracks none of them
    return [path.relative_to(root).as_posix() for path in files if path.is_relative_to(root)]


def _repetitions(args: argparse.Namespace, first: int, text: str,
                 grid: dict[str, list[str]], fixed: dict[str, str]
                 ) -> tuple[list[int], list[int] | None]:
    """The seeds, and the folds of a prequential sweep (None otherwise), checked with the
    --grid and --set values: with --folds, the last fold's split.fold must pass the params
    check with every grid value."""
    if args.folds is None:
        seeds = seed_list(args.seeds, args.seed_list, first)
        check_size(seeds, grid)
        check_overrides(text, grid, fixed, _validator(text))
        return seeds, None
    folds = fold_list(args.folds)
    check_fold_free(grid, fixed)
    check_size(folds, grid, "folds")
    check_overrides(text, grid, fixed, _validator(text))  # the user's values, as usual
    try:  # then with the fold: only the fold can be refused now
        check_overrides(text, grid, {**fixed, FOLD_KEY: str(folds[-1])}, _validator(text))
    except PipelineError as error:
        raise PipelineError(f"--folds {args.folds} sets split.fold 0 to {folds[-1]}, which "
                            f"these params refuse: {error}") from None
    return [first], folds


def _check_options(args: argparse.Namespace) -> None:
    if not 1 <= args.jobs <= MAX_JOBS:
        raise PipelineError(f"--jobs {args.jobs}: expected a whole number from 1 to "
                            f"{MAX_JOBS} (each worker runs a whole pipeline)")
    for option, seconds in (("--poll", args.poll), ("--status-every", args.status_every)):
        if not 0 < seconds <= 3600:  # also NaN
            raise PipelineError(f"{option} {seconds}: expected seconds from 0 to 3600")
    if Path(args.stem).name != args.stem or args.stem in ("", ".", ".."):
        raise PipelineError(f"--stem {printable(args.stem, 80)}: a file name, without "
                            "folders (the report goes to --out-dir)")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise PipelineError(f"--out-dir {printable(str(args.out_dir), 80)}: not a folder")
    check_prefix(args.prefix)
    if args.report_only and (args.rerun or args.push):
        raise PipelineError("--report-only runs nothing: drop --rerun and --push")
    if args.rev != "HEAD" and not args.report_only:
        raise PipelineError("--rev: experiments run from HEAD; use it with --report-only")


def plan(args: argparse.Namespace) -> tuple[Sweep, dvc_exp.Baseline, dict[str, list[str]]]:
    """Everything checked before DVC is asked to do anything; a bad argument raises
    UsageError."""
    if args.seeds is None and args.seed_list is None and args.folds is None:
        args.seeds = 5
    first = _first_seed(args.params)
    text = _params_text(args.params)
    try:
        _check_options(args)
        grid, fixed = parse_grid(args.grid), parse_set(args.fixed)
        k, n = parse_shard(args.shard)
        check_disjoint(grid, fixed)
        seeds, folds = _repetitions(args, first, text, grid, fixed)
    except PipelineError as error:
        raise UsageError(str(error)) from None
    mirror = dvc_exp.absolute_mirror(os.environ, Path.cwd())
    base = dvc_exp.baseline(args.rev, _report_files(args))
    points = expand(seeds, grid, fixed, args.prefix, code_key(base.commit, base.diff), folds)
    sweep = Sweep(points=points, mine=shard(points, k, n), fixed=fixed,
                  env=dvc_exp.environment(mirror), commit=base.commit)
    return sweep, base, grid


def earlier_sweep(sweep: Sweep, base: dvc_exp.Baseline, args: argparse.Namespace
                  ) -> tuple[Sweep, dvc_exp.Baseline] | None:
    """The same sweep at the commit the report in --out-dir ran from, when HEAD differs from
    that commit only in the report (it was committed since) and every experiment finished
    there: a rerun reuses them under their names and rewrites nothing. None otherwise (the
    sweep then runs from HEAD, under HEAD's names)."""
    try:
        earlier = json.loads((args.out_dir / f"{args.stem}.json").read_text(encoding="utf-8")
                             )["baseline"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if args.rev != "HEAD" or not isinstance(earlier, str) or earlier == base.commit or \
            not dvc_exp.same_code(earlier, base.commit, _report_files(args)):
        return None
    code = code_key(earlier, base.diff)
    points = [replace(p, name=experiment_name(args.prefix, code, p.seed, p.settings,
                                              sweep.fixed, p.fold)) for p in sweep.points]
    known = dvc_exp.show(sweep.env, earlier)
    if not all(finished(known.get(p.name)) for p in points):
        return None
    k, n = parse_shard(args.shard)
    return (replace(sweep, points=points, mine=shard(points, k, n), commit=earlier),
            replace(base, commit=earlier))


def _report_failure(sweep: Sweep, point: Point, logs: Path) -> None:
    log = dvc_exp.log_of(sweep.env, point.name)
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{point.name}.log").write_text(log, encoding="utf-8")
    tail = "\n".join("    " + line for line in log.rstrip().splitlines()[-LOG_TAIL:])
    _say(f"FAILED {point.name} ({point.repetition_label}"
         + (f", {point.label}" if point.label else "") + f"): {dvc_exp.error_line(log)}\n"
         f"  last lines of dvc queue logs {point.name} (all: {logs / (point.name + '.log')}):\n"
         + tail)
    sweep.failed.append(f"{point.name} ({point.repetition_label}): "
                        f"{dvc_exp.error_line(log)}")


def run_share(sweep: Sweep, jobs: int, rerun: bool, poll: float, logs: Path,
              status_every: float = dvc_exp.STATUS_EVERY) -> None:
    """Queue this machine's experiments that have no result yet, run them on DVC's workers,
    wait, and report each failure with its log."""
    known = dvc_exp.show(sweep.env, sweep.commit)
    states, _ = dvc_exp.queue_status(sweep.env)
    refs = dvc_exp.experiment_refs()  # a rerun rewrites its ref: that is how wait sees it
    waiting: list[Point] = []
    queued: list[str] = []
    try:
        for point in sweep.mine:
            if not rerun and finished(known.get(point.name)):
                sweep.reused.append(point.name)
            elif states.get(point.name) in dvc_exp.ACTIVE:
                waiting.append(point)  # queued by an earlier, interrupted sweep
            else:
                if states.get(point.name) == "Failed":
                    dvc_exp.dvc(sweep.env, "queue", "remove", point.name, check=False)
                stale = point.name in known and known[point.name].state == "success"
                force = rerun or stale  # -f replaces an experiment ref of that name
                dvc_exp.queue(sweep.env, point.name, point.overrides(sweep.fixed),
                              force=force)
                queued.append(point.name)
                waiting.append(point)
    except BaseException:  # a refused queue call, Ctrl-C: leave no half-queued sweep
        if queued:
            dvc_exp.dvc(sweep.env, "queue", "remove", *queued, check=False)
        raise
    _say(f"{len(sweep.reused)} experiment(s) reused, {len(waiting)} to run on "
         f"{jobs} queue worker(s)")
    if not waiting:
        return
    started = dvc_exp.start(sweep.env, jobs)
    if started < jobs:
        _say(f"{jobs - started} queue worker(s) of this repository were already running: they "
             "keep the environment of the shell that started them (FRAUD_DATA_MIRROR too); "
             "`dvc queue stop` first to use this one")
    dvc_exp.wait(sweep.env, [p.name for p in waiting], jobs, poll, _say, refs, status_every)
    done = dvc_exp.show(sweep.env, sweep.commit)
    states, _ = dvc_exp.queue_status(sweep.env)
    for point in waiting:
        if finished(done.get(point.name)):
            sweep.ran.append(point.name)
        elif states.get(point.name) == "Success":  # ran, yet no metrics under our commit
            sweep.failed.append(f"{point.name}: the queue says Success but dvc exp show --rev "
                                f"{sweep.commit[:10]} has no metrics for it")
            _say("FAILED " + sweep.failed[-1])
        else:
            _report_failure(sweep, point, logs)


def _missing(sweep: Sweep, experiments: dict[str, Any], shards: int) -> list[str]:
    index = {p.name: i for i, p in enumerate(sweep.points)}
    return [f"{p.name} ({p.repetition_label}{', ' + p.label if p.label else ''}"
            + (f"; share {index[p.name] % shards + 1}/{shards})" if shards > 1 else ")")
            for p in sweep.points if not finished(experiments.get(p.name))]


# How a report was made, not what it found: a rerun that reuses every experiment differs from
# the run that computed them only in these, and must leave a committed report byte-identical.
RUN_CIRCUMSTANCES = ("command", "seconds", "ran", "reused", "jobs")


def _same_report(path: Path, data: str) -> bool:
    """Whether the report at `path` says what `data` says, the run's circumstances aside."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    new = json.loads(data)
    if not isinstance(old, dict):
        return False
    for key in RUN_CIRCUMSTANCES:
        old.pop(key, None)
        new.pop(key, None)
    return bool(old == new)


def _findings(sweep: Sweep, experiments: dict[str, Any], context: dict[str, Any]
              ) -> tuple[str, dict[str, Any]]:
    """The report as Markdown and as JSON: the models over the seeds, or, in a sweep over
    folds, the prequential selection (validation over the folds, fold 0's test)."""
    from fraud.experiments import report as formats

    if any(p.fold is not None for p in sweep.points):
        from fraud.experiments.prequential import select

        selection = select(sweep.points, experiments, sweep.fixed)
        context["skipped"] = selection.skipped
        return (formats.prequential_markdown(selection, context),
                formats.prequential_json(selection, context))
    from fraud.experiments.compare import compare_sweep

    groups, context["skipped"] = compare_sweep(sweep.points, experiments, sweep.fixed)
    return formats.to_markdown(groups, context), formats.to_json(groups, context)


def report(sweep: Sweep, args: argparse.Namespace, base: dvc_exp.Baseline,
           grid: dict[str, list[str]], seconds: Callable[[], float]) -> None:
    from fraud.core.files import json_dumps, outputs

    shown = dvc_exp.show(sweep.env, sweep.commit)
    experiments = {name: e for name, e in shown.items() if finished(e)}
    missing = _missing(sweep, experiments, parse_shard(args.shard)[1])
    if missing and args.report_only:
        raise PipelineError(f"{len(missing)} of {len(sweep.points)} experiments are not here: "
                            + "; ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                            + ". Run their shares and --push them, then --pull here")
    folds = sorted({p.fold for p in sweep.points if p.fold is not None})
    context = {
        "command": getattr(args, "command_line", "fraud sweep"),
        "code": code_key(base.commit, base.diff), "baseline": base.commit, "dirty": base.dirty,
        "seeds": sorted({p.seed for p in sweep.points}), **({"folds": folds} if folds else {}),
        "grid": grid, "fixed": sweep.fixed,
        "experiments": {p.name: {"seed": p.seed, **({} if p.fold is None else {"fold": p.fold}),
                                 "settings": dict(p.settings), "rev": experiments[p.name].rev}
                        for p in sweep.points if p.name in experiments},
        "ran": len(sweep.ran), "reused": len(sweep.reused), "failed": sweep.failed,
        "skipped": [], "jobs": args.jobs, "seconds": round(seconds(), 1),
    }
    markdown, findings = _findings(sweep, experiments, context)
    data = json_dumps(findings)
    print(markdown)
    if _same_report(args.out_dir / f"{args.stem}.json", data) and \
            (args.out_dir / f"{args.stem}.md").is_file():
        _say(f"{args.out_dir / (args.stem + '.md')} and .json left as they are: same "
             "experiments, same results (only the run's timing and counts differ)")
        return
    with outputs() as out:
        out.path(args.out_dir / f"{args.stem}.md").write_text(markdown, encoding="utf-8")
        out.path(args.out_dir / f"{args.stem}.json").write_text(data, encoding="utf-8")
    _say(f"wrote {args.out_dir / (args.stem + '.md')} and .json")


def main(argv: Sequence[str], cli: argparse.ArgumentParser | None = None) -> None:
    cli = cli or parser()
    args = cli.parse_args(argv)
    # The report's command line: these arguments, however the command was started (`fraud
    # sweep`'s own sys.argv holds "sweep" too).
    args.command_line = "fraud sweep " + " ".join(argv)
    started = time.perf_counter()
    try:
        sweep, base, grid = plan(args)
    except UsageError as error:
        cli.error(str(error))
    if base.dirty:
        _say("uncommitted changes in " + ", ".join(base.dirty) + " are part of every "
             "experiment (and of their names); other clones cannot share them: commit first")
    if args.pull:
        dvc_exp.pull(sweep.env, args.pull, sweep.commit)
    earlier = earlier_sweep(sweep, base, args)
    if earlier:
        sweep, base = earlier
        _say(f"HEAD differs from {base.commit[:10]}, where this sweep ran, only in its report: "
             "its experiments are reused")
    if not args.report_only:
        run_share(sweep, args.jobs, args.rerun, args.poll, args.out_dir / "logs",
                  args.status_every)
    if args.push:
        names = [p.name for p in sweep.mine if p.name in sweep.ran or p.name in sweep.reused]
        dvc_exp.push(sweep.env, args.push, names)
        _say(f"pushed {len(names)} experiment(s) to {args.push}")
    if args.shard and parse_shard(args.shard)[1] > 1 and not args.report_only:
        _say(f"share {args.shard} done; once every share is pushed, any clone reports with "
             "the same arguments and --report-only --pull <remote> instead of --shard")
    else:
        report(sweep, args, base, grid, lambda: time.perf_counter() - started)
    if sweep.failed:
        raise PipelineError(f"{len(sweep.failed)} experiment(s) failed: "
                            + "; ".join(sweep.failed))


def command(argv: Sequence[str] | None = None) -> None:
    """`fraud sweep`: one line and exit 1 for an expected failure, 2 for a bad command line."""
    run(main, argv)


if __name__ == "__main__":
    command()
