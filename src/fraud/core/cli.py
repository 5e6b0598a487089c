"""What every stage script shares: argument parsing conventions and error handling."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

# One thread for the numeric libraries' pools (OpenMP, OpenBLAS, MKL), set before numpy or
# scikit-learn load them (every entry point imports this module first): their results then do
# not depend on the machine's core count (a parallel reduction sums in another order), and on
# shared 2-core machines the stages ran faster without thread hand-offs (one Platt fit: 0.36
# -> 0.05 s; bench/NOTES.md). TensorFlow and ONNX Runtime fix their own pools to one thread.
# A user may still ask for more: a value already in the environment is kept.
NUMERIC_THREADS = "1"
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, NUMERIC_THREADS)

# OpenBLAS picks its kernels by CPU: the same L-BFGS fit (logreg, Platt calibration) ends a
# few ulps apart on an AVX-512 machine and on an AVX2 one, and the committed dvc.lock then
# differs from a user's run. Every x86-64 CPU with AVX2 runs the Haswell kernels: pinned to
# them, the outputs are the same bytes on both (measured: AVX-512 EPYC, default kernels ->
# logreg's val metrics moved; Haswell -> identical to the AVX2 machine's). Older CPUs
# (no AVX2) and other architectures keep OpenBLAS's own choice.
BLAS_CORETYPE = "Haswell"


def _cpu_has_avx2(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as lines:
            for line in lines:
                if line.startswith("flags"):
                    return "avx2" in line.split()
    except OSError:
        pass
    return False


if _cpu_has_avx2():
    os.environ.setdefault("OPENBLAS_CORETYPE", BLAS_CORETYPE)

from ..errors import PipelineError  # noqa: E402  (after the thread settings, on purpose)
from .params import parse_yaml  # noqa: E402

# params.yaml is a few KB; a larger file is not one (and is not read whole into memory).
MAX_PARAMS_BYTES = 1 << 20


# Exit statuses: 1 for an expected failure (PipelineError), 2 for a command line argparse
# cannot read (its own convention), 128 + N for signal N (the shell's).
USAGE_STATUS = 2


def escape_controls(text: str) -> str:
    """Control characters escaped (`\\n`, `\\x1b`), nothing else: a name or message quoted
    in an error line stays one line and cannot drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one `error:` line (argparse prints its usage, two
    lines and more, before it) and exit status 2; `--help` still shows the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # Control characters escaped, nothing else (the message may quote printable() text).
        shown = escape_controls(message[:300])
        print(f"error: {self.prog}: {shown}{'…' if len(message) > 300 else ''}; see --help",
              file=sys.stderr)
        sys.exit(USAGE_STATUS)

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        return super().parse_args(self._dash_values(sys.argv[1:] if args is None else args),
                                  namespace)

    def _dash_values(self, args: Sequence[str]) -> list[str]:
        """`--seed-list -1,2`: a word after an option that takes one value is that value,
        even when it starts with '-' (argparse reads it as an unknown option), unless it is
        an option itself."""
        options = self._option_string_actions
        result: list[str] = []
        pending: str | None = None
        for arg in args:
            if pending is not None and arg.startswith("-") and arg not in options \
                    and arg.split("=", 1)[0] not in options and arg != "--":
                result[-1] = f"{pending}={arg}"
                pending = None
                continue
            action = options.get(arg)
            takes_one = action is not None and action.nargs is None \
                and not isinstance(action, argparse._StoreConstAction | argparse._HelpAction)
            pending = arg if takes_one else None
            result.append(arg)
        return result


# Rows read at a time: a million rows of 30 columns is ~250 MB of float64 (more would defeat
# the point of reading in chunks on a 24 GB machine shared with the model's own work).
MAX_CHUNK_ROWS = 1_000_000


def whole_number(largest: int, largest_text: str | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to `largest` (digits may be grouped with _ or
    ,); `largest_text` says what the bound is, when it is not the number itself."""
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not 1 <= value <= largest:
            raise argparse.ArgumentTypeError(f"expected a whole number from 1 to "
                                             f"{largest_text or f'{largest:,}'}, got {text!r}")
        return value
    return parse


# An argparse type: rows read at a time (predict, monitor), 1 to MAX_CHUNK_ROWS.
chunk_rows = whole_number(MAX_CHUNK_ROWS)


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1] (a threshold)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


class Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C (KeyboardInterrupt), so that every
    `outputs()` block deletes its temporaries on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def stop_cleanly() -> Iterator[None]:
    """Inside: SIGTERM and SIGHUP raise Stopped (Python's default for them is to die at once,
    leaving temporaries behind); one line and exit 128 + N for them and for Ctrl-C."""
    previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM,
                                                                     signal.SIGHUP)}
    try:
        yield
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except Stopped as stopped:
        print(f"error: stopped by {stopped}", file=sys.stderr)
        sys.exit(128 + stopped.signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def parser(description: str) -> argparse.ArgumentParser:
    result = OneLineParser(description=description)
    result.add_argument("--params", default="params.yaml", type=params_file,
                        help="the params file")
    return result


def add_split_arguments(cli: argparse.ArgumentParser, *splits: str) -> None:
    """`--<split>-features` and `--<split>-labels` (the scale stage's .npy files) per split."""
    for split in splits:
        cli.add_argument(f"--{split}-features", required=True, type=Path)
        cli.add_argument(f"--{split}-labels", required=True, type=Path)


def params_file(value: str) -> str:
    """An argparse type: a params file that exists must be a small UTF-8 text file (YAML and
    the meaning of its keys are load_params' to check; so is a missing file)."""
    path = Path(value)
    if not path.exists():
        return value
    try:
        if not path.is_file():
            raise PipelineError(f"{value}: not a file; expected the params file (YAML)")
        with open(path, "rb") as handle:
            data = handle.read(MAX_PARAMS_BYTES + 1)
    except OSError as error:
        raise PipelineError(f"{value}: cannot be read ({error.strerror or error})") from None
    if len(data) > MAX_PARAMS_BYTES:
        raise PipelineError(f"{value}: larger than {MAX_PARAMS_BYTES:,} bytes; not a params "
                            "file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise PipelineError(f"{value}: line {line}: not UTF-8 text (byte "
                            f"0x{data[error.start]:02x}); save it as UTF-8") from None
    parse_yaml(text, value)
    return value


def model_pattern(value: str) -> str:
    """An argparse type: a path with `{model}` in it, one file per model."""
    if "{model}" not in value:
        raise argparse.ArgumentTypeError(f"{value!r} must contain {{model}}")
    return value


class _ShortNames(logging.Formatter):
    """`fit: baseline epoch 1: …`, not `src.fraud.training.fit: …`: the module name is enough."""

    def format(self, record: logging.LogRecord) -> str:
        record.short_name = record.name.rsplit(".", 1)[-1]
        return super().format(record)


# A write that the disk refused: the disk's state, not a bug or bad input (pyarrow and numpy
# raise these with no file name; a file-size limit, `ulimit -f`, gives EFBIG).
DISK_FULL = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
             errno.EFBIG: "a file-size limit was hit", errno.EROFS: "the disk is read-only"}


def os_error_line(error: OSError) -> str:
    """One line for an operating-system error: what failed, where (when known), what to do."""
    where = f" ({escape_controls(str(error.filename)[:300])})" if error.filename else ""
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno in DISK_FULL or is_short_write(error):
        why = DISK_FULL.get(error.errno or 0, "the disk is full or a file-size limit was hit")
        return (f"writing failed{where}: {reason}; {why}: free space (or raise the limit) "
                "and run again; no output was left half-written")
    return f"{reason}{where}"


def is_short_write(error: OSError) -> bool:
    """numpy's `.npy` writer reports a short write as "N requested and M written", no errno."""
    return error.errno is None and " requested and " in str(error) and \
        str(error).endswith(" written")



def _stdout_gone() -> None:
    """stdout failed (a full disk behind `> file`, /dev/full): send what is left of it to
    /dev/null, so that Python's own flush at exit prints no second error."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run(main: Callable[[Sequence[str]], None], argv: Sequence[str] | None = None) -> None:
    """Runs a stage: an expected failure prints one line and exits 1, with no traceback.

    A disk that refuses a write (full, over quota, read-only) is one of them: outputs are
    written to temporaries first, so nothing half-written is left (files.outputs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ShortNames("%(short_name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        with stop_cleanly():
            main(sys.argv[1:] if argv is None else argv)
            sys.stdout.flush()  # inside: a full disk behind stdout is reported here
    except OSError as error:
        if isinstance(error, BrokenPipeError):  # the reader left (`| head`): not an error
            _stdout_gone()
            sys.exit(1)
        if error.errno in DISK_FULL or is_short_write(error):
            _stdout_gone()
        print(f"error: {os_error_line(error)}", file=sys.stderr)
        sys.exit(1)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except UnicodeDecodeError as error:  # a text file that is not UTF-8, missed by a check
        print(f"error: a file is not UTF-8 text (byte 0x{error.object[error.start]:02x} at "
              f"offset {error.start:,}); save it as UTF-8", file=sys.stderr)
        sys.exit(1)
