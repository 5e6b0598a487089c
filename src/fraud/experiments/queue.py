"""The DVC and git commands a sweep runs: queue, start workers, wait, logs, show, push, pull.

One job: talking to DVC's experiment engine through its command line (the interface DVC
keeps stable). Experiments are queued with `dvc exp run --queue` and run by DVC's own queue
workers (`dvc queue start -j N`); this module only waits for them. Queued experiments run
in temporary copies of the repository, by workers that inherit the environment of
`dvc queue start`: that is why the data mirror is made absolute and checked here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.download import MIRROR_ENV
from ..errors import PipelineError, printable
from .show import Experiment, experiments_from_show

ACTIVE = ("Queued", "Running")
# `dvc queue status` may list a name twice (a failed run and its rerun): the live one counts.
STATUS_ORDER = ("Running", "Queued", "Success", "Failed")


def absolute_mirror(environ: Mapping[str, str], cwd: Path) -> str | None:
    """FRAUD_DATA_MIRROR as an absolute path, checked now: a queued run starts in a temporary
    copy, where a relative path means something else and a missing file shows only in
    `dvc queue logs`. None when unset; URLs pass unchanged."""
    value = (environ.get(MIRROR_ENV) or "").strip()
    if not value or value.lower().startswith(("http://", "https://")):
        return value or None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else cwd / path
    if not path.is_file():
        raise PipelineError(f"{MIRROR_ENV}={value}: no such file ({path}); queued experiments "
                            "would fail in their temporary copies. Point it at the data "
                            "(.csv, .csv.gz or creditcard.zip) or unset it")
    return str(path.resolve())


def environment(mirror: str | None) -> dict[str, str]:
    """The environment of every DVC command, hence of the queue workers and the stages."""
    env = dict(os.environ)
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # DVC spawns its queue workers as `dvc ...` from PATH: make it this interpreter's DVC.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    if mirror:
        env[MIRROR_ENV] = mirror
    return env


def dvc(env: Mapping[str, str], *args: str, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True,
                          env=dict(env), check=False)
    if check and done.returncode != 0:
        # DVC ends with a footer ("Having any troubles? ..."): its ERROR line is the reason.
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines()
                 if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        reason = errors[-1] if errors else lines[-1] if lines else "no output"
        raise PipelineError(f"dvc {' '.join(args[:3])} ... failed (exit {done.returncode}): "
                            + printable(reason, 300))
    return done


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


@dataclass(frozen=True)
class Baseline:
    """The commit experiments start from, and the tracked changes they will carry."""
    commit: str
    dirty: list[str]
    diff: bytes


def _excluding(ignore: Sequence[str]) -> list[str]:
    """A pathspec of the whole tree but `ignore` (the sweep's own report files)."""
    return ["--", ".", *(f":(exclude,top){path}" for path in ignore)]


def baseline(rev: str = "HEAD", ignore: Sequence[str] = ()) -> Baseline:
    """`rev` (HEAD, or a commit whose experiments are only reported) and, for HEAD, the
    uncommitted changes but those to `ignore`: the sweep's own report, which a sweep rewrites
    and which no stage reads. Counted, it renamed every experiment of a rerun."""
    if not Path(".dvc").is_dir():
        raise PipelineError(f"{Path.cwd()}: not a DVC project (no .dvc folder); run from the "
                            "project's root")
    head = git("rev-parse", "--verify", "-q", "HEAD")
    if head.returncode != 0:
        raise PipelineError(f"{Path.cwd()}: not a git repository with a commit; dvc exp run "
                            "needs one (git init; git add -A; git commit)")
    if rev != "HEAD":
        commit = git("rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
        if commit.returncode != 0:
            raise PipelineError(f"--rev {rev}: not a commit here (git fetch?)")
        return Baseline(commit=commit.stdout.strip(), dirty=[], diff=b"")
    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no",
                                      *_excluding(ignore)).stdout.splitlines()]
    diff = subprocess.run(["git", "diff", "HEAD", "--binary", *_excluding(ignore)],
                          capture_output=True, check=False).stdout if dirty else b""
    return Baseline(commit=head.stdout.strip(), dirty=dirty, diff=diff)


def same_code(earlier: str, commit: str, ignore: Sequence[str] = ()) -> bool:
    """Whether the two commits hold the same files but `ignore` (a report committed on top
    of the commit its experiments ran from)."""
    if not re.fullmatch(r"[0-9a-f]{40}", earlier):
        return False
    return git("diff", "--quiet", earlier, commit, *_excluding(ignore)).returncode == 0


def show(env: Mapping[str, str], rev: str) -> dict[str, Experiment]:
    """The experiments of commit `rev`, by name (finished, queued, running and failed). Not
    HEAD's: a commit made while the sweep runs must not hide the sweep's experiments."""
    return experiments_from_show(json.loads(dvc(env, "exp", "show", "--json", "--rev", rev)
                                            .stdout))


def start(env: Mapping[str, str], jobs: int) -> int:
    """`dvc queue start -j N`; returns how many workers it started (running ones are kept,
    with the environment of whoever started them). Its output goes to a file, not a pipe:
    the workers it spawns inherit the descriptors, and a pipe would stay open until they
    exit."""
    path = Path(".dvc/tmp/sweep-queue-start.log")
    with open(path, "w", encoding="utf-8") as log:
        done = subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)],
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=dict(env), check=False)
    if done.returncode != 0:
        raise PipelineError(f"dvc queue start -j {jobs} failed (exit {done.returncode}); see "
                            f"{path}")
    started = re.search(r"Started '(\d+)'", path.read_text(encoding="utf-8"))
    return int(started.group(1)) if started else jobs


def queue(env: Mapping[str, str], name: str, overrides: Mapping[str, str],
          force: bool = False) -> None:
    args = ["exp", "run", "--queue", "-n", name]
    for key, value in overrides.items():
        args += ["-S", f"{key}={value}"]
    dvc(env, *args, *(["-f"] if force else []))


def queue_status(env: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """{name: Queued | Running | Success | Failed} from `dvc queue status`, and the number
    of live workers. Names are ours (no spaces), so the text table parses by position."""
    out = dvc(env, "queue", "status").stdout
    states: dict[str, str] = {}
    workers = 0
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Worker status:"):
            workers = sum(int(w) for w in words if w.isdigit())
        elif len(words) >= 3 and words[-1] in STATUS_ORDER and words[0] != "Task":
            known = states.get(words[1])
            if known is None or STATUS_ORDER.index(words[-1]) < STATUS_ORDER.index(known):
                states[words[1]] = words[-1]
    return states, workers


# Seconds between two `dvc queue status` calls while waiting (each costs ~0.5 s of CPU): how
# soon a failed experiment, which writes no ref, is noticed.
STATUS_EVERY = 15.0


def experiment_refs() -> dict[str, str]:
    """{experiment name: commit} of every experiment ref (`refs/exps/<baseline>/<name>`):
    one cheap git call, where `dvc queue status` costs a DVC process (~0.5 s of CPU)."""
    out = git("for-each-ref", "--format=%(objectname) %(refname)", "refs/exps").stdout
    return {ref.rsplit("/", 1)[1]: sha for sha, ref in
            (line.split() for line in out.splitlines() if line.strip())}


def _check_queue(env: Mapping[str, str], pending: Sequence[str], reported: dict[str, str],
                 say: Callable[[str], None]) -> tuple[list[str], int]:
    """Reports state changes; returns the pending names still queued or running, and the
    number of live workers."""
    states, workers = queue_status(env)
    for name in pending:
        if states.get(name) is not None and states[name] != reported.get(name):
            reported[name] = states[name]
            say(f"{name}: {states[name].lower()}")
    return [name for name in pending if states.get(name) in ACTIVE], workers


def wait(env: Mapping[str, str], names: Sequence[str], jobs: int, poll: float,
         say: Callable[[str], None], before: Mapping[str, str] | None = None,
         status_every: float = STATUS_EVERY) -> None:
    """Until none of `names` is queued or running. An experiment is done when its ref is
    (re)written (checked every `poll` s, cheaply); the queue itself is asked every
    `status_every` s, at least every poll (what failed, what runs). DVC's workers stop after
    ~10 s idle; if ours are gone while our experiments still wait (a worker was killed),
    start them again."""
    before = dict(before if before is not None else experiment_refs())
    reported: dict[str, str] = {}
    next_status, idle = 0.0, 0
    while True:
        refs = experiment_refs()
        for name in names:
            if refs.get(name) != before.get(name) and reported.get(name) != "done":
                reported[name] = "done"
                say(f"{name}: done")
        pending = [name for name in names if reported.get(name) != "done"]
        if not pending:
            return
        if time.monotonic() >= next_status:
            active, workers = _check_queue(env, pending, reported, say)
            if not active:
                return
            idle = idle + 1 if workers == 0 else 0
            if idle >= 2:
                say(f"no queue worker alive with {len(active)} experiment(s) waiting: "
                    f"dvc queue start -j {jobs}")
                start(env, jobs)
                idle = 0
            next_status = time.monotonic() + max(poll, status_every)
        time.sleep(poll)


def log_of(env: Mapping[str, str], name: str) -> str:
    """`dvc queue logs <name>`: the output of the failed run (DVC keeps it)."""
    done = dvc(env, "queue", "logs", name, check=False)
    return done.stdout if done.returncode == 0 else (done.stderr or done.stdout)


def error_line(log: str) -> str:
    """The line that says what went wrong: the stage's own `error:` line if any (one line,
    by the pipeline's convention), else DVC's last ERROR, else the last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for prefix in ("error:", "ERROR"):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1] if prefix == "ERROR" else found[0]
    return lines[-1] if lines else "(no output)"


def push(env: Mapping[str, str], remote: str, names: Sequence[str]) -> None:
    """Experiment refs to the git remote, their outputs to the default DVC remote."""
    if names:
        dvc(env, "exp", "push", remote, *names)


def pull(env: Mapping[str, str], remote: str, rev: str) -> None:
    """Every experiment of commit `rev` from the git remote; metrics travel in git, so the
    cached outputs (models, splits) stay behind: `dvc exp pull <remote> <name>` brings them."""
    dvc(env, "exp", "pull", "--no-cache", "--rev", rev, remote)
