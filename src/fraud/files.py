"""Atomic output writing: a killed or failed stage never leaves a file that looks complete."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PipelineError


class OutputSet:
    """Collects a stage's outputs as temporary files and publishes them all at once.

    Every output is written to a temporary file beside its final path; only when the whole
    stage succeeds are they renamed into place. On failure the temporaries are deleted, so a
    failing stage leaves none of its outputs behind (not even the ones it finished).
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def path(self, final: str | os.PathLike[str]) -> Path:
        """A temporary path to write `final`'s content to (same folder, same suffix)."""
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Keep the full suffix (".weights.h5", ".csv.gz"): some writers insist on it.
        suffix = "".join(final.suffixes) or ".tmp"
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name.split('.')[0]}.", suffix=suffix,
                                   dir=final.parent)
        os.close(fd)
        os.unlink(tmp)  # writers that refuse to overwrite still work
        self._pending.append((Path(tmp), final))
        return Path(tmp)

    def commit(self) -> None:
        for tmp, final in self._pending:
            if not tmp.exists():
                raise RuntimeError(f"output {final} was never written")
        for tmp, final in self._pending:
            os.replace(tmp, final)
        self._pending.clear()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()


@contextmanager
def outputs() -> Iterator[OutputSet]:
    """`with outputs() as out: np.save(out.path(p), a)` — all outputs appear together or none."""
    out = OutputSet()
    try:
        yield out
    except BaseException:
        out.discard()
        raise
    out.commit()


def remove_outputs(*paths: str | os.PathLike[str]) -> None:
    """Deletes stale outputs of an earlier run, so a failed run leaves nothing behind."""
    for path in paths:
        Path(path).unlink(missing_ok=True)


def json_dumps(data: Any) -> str:
    """Stable JSON: sorted keys, plain floats, trailing newline (diff-friendly in git)."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def read_json_file(path: str | os.PathLike[str], stage_hint: str) -> dict[str, Any]:
    """A JSON object written by an earlier stage; a clear error names the stage to rerun."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run the {stage_hint} stage first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path}: not valid JSON ({error}); run the {stage_hint} stage "
                            "again") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: expected a JSON object; run the {stage_hint} stage again")
    return data


def write_json(path: Path, data: Any) -> None:
    path.write_text(json_dumps(data), encoding="utf-8")


def write_npy(path: Path, array: np.ndarray) -> None:
    """`.npy`, no pickle: loads in ~0.01 s for the training split."""
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
