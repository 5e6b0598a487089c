"""The adversarial rerun: every hostile input the test corpora hold, thrown at the commands a
user runs, each outcome classified. `python -m tools.adversarial` prints one row per class of
input and the totals; it exits 1 if anything was not a clean error or a correct acceptance.

Outcomes: *clean* (exit status 1 or 2 and exactly one `error:` line on stderr), *accepted*
(exit 0), *traceback* (any other exception, or stderr that is not one `error:` line), *hang*
(no answer within the case's time), *leftover* (a temporary file left in the case's folder).
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

from src.fraud.errors import PipelineError
from src.fraud.files import TEMP_PREFIX

CASE_SECONDS = 60
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
    from src.fraud.cli import run
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
                from src.fraud.params import load_params
                load_params(path)  # the parse alone: a valid file would start a download
            yield "params value", f"{key}={value!r:.30}", case


def onnx_cases() -> Iterator[Case]:
    """Hostile ONNX files scored as evaluate_model scores a network, and the exfiltrating
    model through predict."""
    import numpy as np

    from src import predict
    from src.fraud.schema import N_FEATURES
    from src.fraud.serving.onnx_contract import NETWORK
    from src.fraud.serving.onnx_scoring import load_onnx
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

    from src.fraud.training.peers import load_peer
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

    from src import predict
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


CORPORA = {"params": params_cases, "onnx": onnx_cases, "skops": skops_cases,
           "predict": predict_cases}


def main(argv: list[str]) -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--only", choices=sorted(CORPORA), action="append",
                     help="run only these corpora (repeatable)")
    args = cli.parse_args(argv)
    table: dict[str, Counter[str]] = {}
    findings: list[str] = []
    for corpus in args.only or list(CORPORA):
        for kind, name, run in CORPORA[corpus]():
            with tempfile.TemporaryDirectory(prefix="adversarial-") as scratch:
                result = outcome(run, Path(scratch))
            table.setdefault(kind, Counter())[result] += 1
            if result not in ("clean", "accepted"):
                findings.append(f"{kind}: {name}: {result}")
    columns = ("clean", "accepted", "traceback", "hang", "leftover")
    print(f"| input class | tried | {' | '.join(columns)} |")
    print("| --- | --- | " + " | ".join("---" for _ in columns) + " |")
    total: Counter[str] = Counter()
    for kind, counts in table.items():
        total += counts
        print(f"| {kind} | {sum(counts.values())} | "
              + " | ".join(str(counts[c]) for c in columns) + " |")
    print(f"| all | {sum(total.values())} | " + " | ".join(str(total[c]) for c in columns)
          + " |")
    for finding in findings:
        print(finding, file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
