"""The one exception type for expected failures (bad input, bad params, unreachable data),
and how its messages quote what the user gave."""

from __future__ import annotations

import reprlib
from os import PathLike
from pathlib import Path
from typing import Any

# How much of a value or a name a message echoes, and how many names it lists: a 10 MB cell,
# a header of a million fields or a YAML alias bomb must not make a huge (or endless) line.
ECHO_CHARS = 80
ECHO_NAMES = 5


class PipelineError(Exception):
    """An expected failure: the message alone tells the user what is wrong and what to do.

    Stage scripts print it as one line and exit non-zero, without a traceback.
    """


def require_file(path: str | PathLike[str], stage_hint: str, what: str = "") -> Path:
    """`path`, if it is a file; else the one-line error naming the stage that writes it.
    Stages check their inputs this way before importing anything slow (TensorFlow: ~5 s),
    so that a missing input fails at once."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: {what + ' ' if what else ''}not found; run the "
                            f"{stage_hint} stage first")
    return path


def _bounded_repr(limit: int) -> reprlib.Repr:
    shown = reprlib.Repr()
    shown.maxlevel, shown.maxlist, shown.maxtuple, shown.maxdict, shown.maxset = 3, 5, 5, 5, 5
    shown.maxstring, shown.maxother, shown.maxlong = limit, limit, limit
    return shown


def printable(value: object, limit: int = ECHO_CHARS) -> str:
    """`repr(value)` for an error message: about `limit` characters at most, control and
    binary characters escaped, nested data cut short (reprlib)."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()  # 'nan', not 'np.float64(nan)' (numpy 2 repr)
    elif type(value).__module__ == "numpy" and hasattr(value, "reshape"):
        value = value.reshape(-1)[:2 * ECHO_NAMES].tolist()  # an array: its first values
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, str):
        shown = repr(value[:limit])
        return shown + f"… ({len(value):,} characters)" if len(value) > limit else shown
    shown = _bounded_repr(limit).repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def check_probabilities(scores: Any, label: str, fix: str, first_row: int = 0) -> Any:
    """`scores` (a float array) if every one is a probability; else the one-line error with
    the first offending row. A model file can return anything: NaN, 7, -inf."""
    bad = (~((scores >= 0) & (scores <= 1))).nonzero()[0]  # NaN fails both comparisons
    if len(bad):
        raise PipelineError(f"{label}: returned {printable(scores[bad[0]])} for row "
                            f"{first_row + bad[0] + 1:,} ({len(bad):,} of {len(scores):,} in "
                            f"its batch outside [0, 1]); a fraud model returns probabilities; "
                            f"{fix}")
    return scores


def check_logits(scores: Any, label: str, fix: str, first_row: int = 0) -> Any:
    """`scores` (a float array) if every one is a finite logit; else the one-line error with
    the first offending row."""
    bad = (~(abs(scores) < float("inf"))).nonzero()[0]  # NaN fails the comparison
    if len(bad):
        raise PipelineError(f"{label}: returned the logit {printable(scores[bad[0]])} for row "
                            f"{first_row + bad[0] + 1:,} ({len(bad):,} of {len(scores):,} in "
                            f"its batch not finite); {fix}")
    return scores


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's first line, cut: libraries (Keras, ONNX Runtime) raise messages of many
    lines, with stack dumps, where ours are one."""
    text = str(error).strip().splitlines()
    return printable(text[0] if text else type(error).__name__, limit)[1:-1]


def printable_names(names: list[str], limit: int = ECHO_NAMES) -> str:
    """Names for a message: the first `limit`, each cut, and how many more."""
    shown = ", ".join(printable(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit:,} more" if len(names) > limit else "")
