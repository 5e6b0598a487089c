"""The adversarial rerun: every hostile input the test corpora hold, thrown at the commands a
user runs, each outcome classified. `python -m tools.adversarial` prints one row per class of
input and the totals; it exits 1 if anything was not a clean error or a correct acceptance.

Outcomes: *clean* (exit status 1 or 2 and exactly one `error:` line on stderr), *accepted*
(exit 0, where the case expects it: a name ending in "(accepted)", or any value of a class in
MAY_ACCEPT), *wrongly accepted* (exit 0 for an input that must be refused), *traceback* (any
other exception, or stderr that is not one `error:` line), *hang* (no answer within the case's
time), *leftover* (a temporary file left in the case's folder). Last, the repository's
git-tracked files must be as they were before the run.
The corpora are the tests' own (one home for each hostile input); the commands run in this
process, stderr captured, so that ~1,000 cases take about a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from fraud.core.files import TEMP_PREFIX
from fraud.errors import PipelineError

CASE_SECONDS = 60
# Classes whose inputs may be valid: a hostile value under one params key can be a fine one
# (`-0.0` as a dropout); the rule there is "accepted or one line".
MAY_ACCEPT = ("params value",)
Case = tuple[str, str, Callable[[Path], None]]  # (class, name, run in a scratch folder)


class Hang(BaseException):
    """The case outlived CASE_SECONDS."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(_signum: int, _frame: object) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(run: Callable[[Path], None], folder: Path) -> str:
    """Runs one case as its command would run (SystemExit = the exit status)."""
    err = io.StringIO()
    status: int | str = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                time_limit(CASE_SECONDS):
            run(folder)
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    except PipelineError as error:  # a library call: what its command prints
        err.write(f"error: {error}\n")
        status = 1
    except Hang:
        return "hang"
    except BaseException:
        return "traceback"
    lines = err.getvalue().strip().splitlines()
    if any(p.name.startswith(TEMP_PREFIX) for p in folder.rglob("*")):
        return "leftover"
    if status == 0:
        return "accepted"
    if status in (1, 2) and len(lines) == 1 and lines[0].startswith("error: "):
        return "clean"
    return "traceback"


# --- the corpora ------------------------------------------------------------------------

def params_cases() -> Iterator[Case]:
    """Every bad params file of the stage corpus, and every key with every hostile value,
    read by the download stage (every stage reads params first; it is the cheapest)."""
    from fraud.core.cli import run
    from src.stages import download as download_stage
    from tests.stages import test_bad_params as corpus

    repo_params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))

    def stage(params: Path, folder: Path) -> None:
        run(download_stage.main, ["--out", str(folder / "raw" / "creditcard.csv"),
                                  "--params", str(params)])

    for name in corpus.BAD_PARAMS:
        yield "params file", name, lambda folder, name=name: stage(
            corpus.write_case(name, folder, repo_params), folder)
    for key in corpus.leaf_keys(repo_params):
        for value in corpus.HOSTILE_VALUES:
            def case(folder: Path, key: str = key, value: Any = value) -> None:
                raw = copy.deepcopy(repo_params)
                raw["download"]["url"] = str(folder / "absent.csv")  # never the network
                corpus.edit(raw, key, value)
                path = folder / "params.yaml"
                path.write_text(yaml.safe_dump(raw, width=10 ** 9), encoding="utf-8")
                from fraud.core.params import load_params
                load_params(path)  # the parse alone: a valid file would start a download
            yield "params value", f"{key}={value!r:.30}", case


def onnx_cases() -> Iterator[Case]:
    """Hostile ONNX files scored as evaluate_model scores a network, and the exfiltrating
    model through predict."""
    import numpy as np

    from fraud.commands import predict
    from fraud.serving.onnx_contract import NETWORK
    from fraud.serving.onnx_scoring import load_onnx
    from tests.credit_card import N_FEATURES
    from tests.unit import test_onnx_contract as corpus

    models = {name: build for name, (build, _) in corpus.HOSTILE.items()}
    models |= {f"scores {name}": (lambda m=model: m)
               for name, model in corpus.SCORES_NOT_PROBABILITIES.items()}
    for name, build in models.items():
        def case(folder: Path, build: Callable[[], Any] = build) -> None:
            path = corpus.save(build(), folder / "model.onnx")
            load_onnx(path, "train_baseline", NETWORK)(np.ones((5, N_FEATURES), np.float32))
        yield "ONNX model file", name, case

    def exfiltration(folder: Path) -> None:
        secret = Path("params.yaml").read_bytes()
        model = corpus.save(corpus.exfiltrating("params.yaml", len(secret)),
                            folder / "fraud_detector.onnx")
        rows = folder / "rows.csv"
        rows.write_text(",".join([f"V{i}" for i in range(1, 29)] + ["Amount"]) + "\n"
                        + ",".join(["0"] * 29) + "\n", encoding="utf-8")
        predict.run([str(model), str(rows), "-o", str(folder / "s.csv"), "--threshold", "0.5"])
    yield "ONNX model file", "exfiltration of params.yaml", exfiltration


def skops_cases() -> Iterator[Case]:
    """Tampered peer files: trusted types, hostile values."""
    from types import SimpleNamespace

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from fraud.kinds._scikit import load_model as load_peer
    from tests.unit import test_peer as corpus

    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 29)).astype(np.float32)
    labels = (features[:, 0] + rng.normal(size=2000) > 1.5).astype(int)
    fits = {"logreg": SimpleNamespace(model=LogisticRegression().fit(features, labels)),
            "gbdt": SimpleNamespace(model=HistGradientBoostingClassifier(max_iter=5)
                                    .fit(features, labels))}
    for name, (make, _) in corpus.TAMPERED.items():
        def case(folder: Path, make: Callable[[Any], bytes] = make) -> None:
            path = folder / "peer.skops"
            path.write_bytes(make(fits))
            load_peer(path, "train_gbdt")
        yield "skops model file", name, case


def predict_cases() -> Iterator[Case]:
    """predict's output paths, cards and arguments (signals and pipes run as subprocesses
    in tests/unit/test_predict_hostile.py)."""
    import os

    from fraud.commands import predict
    from tests.unit import test_predict_hostile as corpus

    def run(folder: Path, *args: str, card: str | None = None, header: list[str] | None = None
            ) -> None:
        model = corpus.tiny_detector(folder)
        if card is not None:
            (folder / "fraud_detector.json").write_text(card)
        rows = corpus.rows_csv(folder / "in.csv", header=header)
        predict.run([str(model), str(rows), *args])

    def fifo(folder: Path) -> None:
        os.mkfifo(folder / "out.csv")
        run(folder, "-o", str(folder / "out.csv"), "--threshold", "0.5")

    def folder_out(folder: Path) -> None:
        (folder / "out.csv").mkdir()
        run(folder, "-o", str(folder / "out.csv"), "--threshold", "0.5")

    yield "predict", "-o a FIFO", fifo
    yield "predict", "-o a folder", folder_out
    yield "predict", "-o /proc", lambda f: run(f, "-o", "/proc/self/x.csv", "--threshold", "1")
    yield "predict", "--chunk-size 99999999999", lambda f: run(f, "--chunk-size", "99999999999")
    yield "predict", "--threshold -1", lambda f: run(f, "--threshold", "-1")
    yield "predict", "key column twice", lambda f: run(
        f, "--id-column", "id", "--threshold", "0.5",
        header=["id", "id", *corpus.INPUT_COLUMNS])
    for card in ("[" * 100_000, '{"threshold": 0.5, "input_columns": '
                 + "[" * 500 + "]" * 500 + "}", "{}", '{"threshold": "high"}'):
        yield "predict", f"card {card[:20]!r}", lambda f, card=card: run(f, card=card)
    yield "predict", "valid run (accepted)", lambda f: run(f, "-o", str(f / "s.csv"),
                                                           "--threshold", "0.5")
    for name, (build, _) in corpus.HOSTILE.items():  # cards of other models, -o an input
        yield "predict", name, lambda f, build=build: predict.run(build(f))


def monitor_cases() -> Iterator[Case]:
    """monitor's references, cards and outputs (full disks run as subprocesses in
    tests/unit/test_monitor.py)."""
    from fraud.commands import monitor
    from fraud.core.cli import run
    from tests.unit import test_monitor as corpus

    for name, (build, _) in corpus.HOSTILE.items():
        yield "monitor", name, lambda f, build=build: run(monitor.main, build(f))


def _download(folder: Path, url: str, **changes: Any) -> None:
    """The download stage, in this process, with `download.url` (and `changes`) set."""
    from fraud.core.cli import run
    from src.stages import download as download_stage

    raw = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    raw["download"].update(url=url, sha256=None, **changes)
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    run(download_stage.main, ["--out", str(folder / "raw" / "creditcard.csv"),
                              "--params", str(params)])


def source_cases() -> Iterator[Case]:
    """Data sources that are not the table (secrets, devices, FIFOs, ../ paths): refused
    before a byte reaches data/raw; the message must quote none of them."""
    from tests.unit import test_download_sources as corpus

    for name, build in corpus.SECRET_SOURCES.items():
        def case(folder: Path, build: Callable[[Path], str] = build) -> None:
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err):
                    _download(folder, build(folder))
            finally:
                sys.stderr.write(err.getvalue())
                leaked = any(m in err.getvalue() for m in corpus.LEAK_MARKERS)
                if leaked or any((folder / "raw").glob("*")):
                    raise RuntimeError("the source reached data/raw or its message")
        yield "data source", name, case


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes fail (EFBIG), as on a full disk; the soft limit only, so
    that it can be lifted again."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def full_disk_cases() -> Iterator[Case]:
    """The data stages writing onto a disk that refuses their writes (a 10 KB file limit)."""
    from fraud.core.cli import run
    from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
    from src.stages import clean, scale, split
    from tests.stages.test_full_disk import _stage_args

    def case(stage: str, folder: Path) -> None:
        inputs = {"folder": folder}
        write_creditcard_csv(generate_creditcard(3_000, 0.02, 5), folder / "raw.csv")
        inputs["raw"] = folder / "raw.csv"
        for name in ("cleaned", "train", "val", "test"):  # made by the stages themselves
            inputs[name] = folder / "in" / f"{name}.parquet"
        (folder / "in").mkdir()
        raw = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
        raw["download"].update(url=str(inputs["raw"]), sha256=None)
        params = folder / "params.yaml"
        params.write_text(yaml.safe_dump(raw), encoding="utf-8")
        mains = {"clean": clean.main, "split": split.main, "scale": scale.main}
        with contextlib.redirect_stderr(io.StringIO()):  # the inputs, without the limit
            for earlier in ("clean", "split"):
                run(mains[earlier], [str(a) for a in _stage_args(
                    earlier, inputs, folder / "in", params)])
        out = folder / "out"
        out.mkdir()
        with file_size_limit(10_000):
            if stage == "download":
                _download(out, str(inputs["raw"]))
            else:
                run(mains[stage], [str(a) for a in _stage_args(stage, inputs, out, params)])

    for stage in ("download", "clean", "split", "scale"):
        yield "full disk", stage, lambda folder, stage=stage: case(stage, folder)




def sweep_cases() -> Iterator[Case]:
    """Sweep arguments refused before anything is queued (tests/unit/test_sweep_hostile.py):
    planned, not run, so that a case wrongly accepted queues nothing."""
    from fraud.commands import sweep
    from fraud.errors import printable
    from tests.unit import test_sweep_hostile as corpus

    params = Path("params.yaml").read_bytes()
    for arguments, _ in corpus.BAD_ARGUMENTS + corpus.HOSTILE_VALUES:
        def case(folder: Path, arguments: list[str] = arguments) -> None:
            (folder / "params.yaml").write_bytes(params)
            cli = sweep.parser()
            args = cli.parse_args([*arguments, "--params", str(folder / "params.yaml")])
            try:
                sweep.plan(args)
            except sweep.UsageError as error:
                cli.error(str(error))  # exit 2, one "error:" line
        yield "sweep arguments", printable(" ".join(arguments), 60), case


CORPORA = {"params": params_cases, "onnx": onnx_cases, "skops": skops_cases,
           "predict": predict_cases, "monitor": monitor_cases, "source": source_cases,
           "disk": full_disk_cases, "sweep": sweep_cases}


def git_tracked_state() -> str:
    """`git status` of the repository's tracked files: a case must change none of them."""
    import subprocess

    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                          capture_output=True, text=True, check=False).stdout


def main(argv: list[str]) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--only", choices=sorted(CORPORA), action="append",
                     help="run only these corpora (repeatable)")
    args = cli.parse_args(argv)
    table: dict[str, Counter[str]] = {}
    findings: list[str] = []
    tracked = git_tracked_state()
    for corpus in args.only or list(CORPORA):
        for kind, name, run in CORPORA[corpus]():
            with tempfile.TemporaryDirectory(prefix="adversarial-") as scratch:
                result = outcome(run, Path(scratch))
            if result == "accepted" and kind not in MAY_ACCEPT \
                    and not name.endswith("(accepted)"):
                result = "wrongly accepted"
            table.setdefault(kind, Counter())[result] += 1
            if result not in ("clean", "accepted"):
                findings.append(f"{kind}: {name}: {result}")
    columns = ("clean", "accepted", "wrongly accepted", "traceback", "hang", "leftover")
    print(f"| input class | tried | {' | '.join(columns)} |")
    print("| --- | --- | " + " | ".join("---" for _ in columns) + " |")
    total: Counter[str] = Counter()
    for kind, counts in table.items():
        total += counts
        print(f"| {kind} | {sum(counts.values())} | "
              + " | ".join(str(counts[c]) for c in columns) + " |")
    print(f"| all | {sum(total.values())} | " + " | ".join(str(total[c]) for c in columns)
          + " |")
    changed = sorted(set(git_tracked_state().splitlines()) ^ set(tracked.splitlines()))
    print(f"\ngit-tracked files changed or lost by the run: {len(changed)}")
    findings += [f"git-tracked file changed: {line}" for line in changed]
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
