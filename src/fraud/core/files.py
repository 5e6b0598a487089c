"""Atomic output writing: a killed or failed stage never leaves a file that looks complete."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PipelineError, require_file

# Every temporary file starts with this: .gitignore and .dvcignore ignore the pattern, so a
# killed stage's leftovers never show in `git status` (nor get committed by `git add -A`).
TEMP_PREFIX = ".fraud-tmp."
_TEMP_SEPARATOR = "~"


def _temp_prefix(final: Path) -> str:
    """`.fraud-tmp.<final's name>~<pid>-`: the pid tells whether its writer still runs."""
    return f"{TEMP_PREFIX}{final.name}{_TEMP_SEPARATOR}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_temporaries(final: str | os.PathLike[str]) -> list[Path]:
    """Deletes the temporaries left by killed runs in `final`'s folder (their writers are
    gone), whichever output they were for.

    A stage that is killed (SIGKILL, OOM, power cut) cannot clean up. When DVC then restores
    its outputs from the run cache, it never runs again to sweep them: a folder out is
    replaced whole, but a file out's folder (metrics/, models/) keeps them. So any stage
    that writes into a folder sweeps every dead temporary there. Temporaries of a run still
    going (a live pid) are left alone.
    """
    final = Path(final)
    swept = []
    if not final.parent.is_dir():
        return swept
    for leftover in final.parent.glob(f"{TEMP_PREFIX}*{_TEMP_SEPARATOR}*"):
        pid = leftover.name.rsplit(_TEMP_SEPARATOR, 1)[1].split("-", 1)[0]
        if not pid.isdigit() or (int(pid) != os.getpid() and not _alive(int(pid))):
            leftover.unlink(missing_ok=True)
            swept.append(leftover)
    return swept


class OutputSet:
    """Collects a stage's outputs as temporary files and publishes them all at once.

    Every output is written to a temporary file beside its final path (a rename within a
    folder is atomic); only when the whole stage succeeds are they renamed into place. On
    failure the temporaries are deleted, so a failing stage leaves none of its outputs behind
    (not even the ones it finished); after a kill, the next run sweeps them. This is the one
    place that makes temporary files (TEMP_PREFIX).
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._scratch: list[Path] = []

    def _temporary(self, final: Path, suffix: str) -> Path:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            sweep_temporaries(final)
            fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(final), suffix=suffix,
                                       dir=final.parent)
        except OSError as error:  # read-only, /proc, no such device, permissions
            raise PipelineError(f"{final}: cannot be written there "
                                f"({error.strerror or error})") from None
        os.close(fd)
        os.unlink(tmp)  # writers that refuse to overwrite still work
        return Path(tmp)

    def path(self, final: str | os.PathLike[str]) -> Path:
        """A temporary path to write `final`'s content to (same folder, same suffix)."""
        final = Path(final)
        check_replaceable(final)
        # Keep the full suffix (".weights.h5", ".csv.gz"): some writers insist on it.
        tmp = self._temporary(final, "".join(final.suffixes) or ".tmp")
        self._pending.append((tmp, final))
        return tmp

    def scratch(self, final: str | os.PathLike[str], suffix: str = ".part") -> Path:
        """A temporary path for work towards `final` that is never published (a download
        before it is unpacked): deleted when the set is committed or discarded."""
        tmp = self._temporary(Path(final), suffix)
        self._scratch.append(tmp)
        return tmp

    def commit(self) -> None:
        for tmp, final in self._pending:
            if not tmp.exists():
                raise RuntimeError(f"output {final} was never written")
        for tmp, final in self._pending:
            os.replace(tmp, final)
        self._pending.clear()
        self._drop_scratch()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()
        self._drop_scratch()

    def _drop_scratch(self) -> None:
        for tmp in self._scratch:
            tmp.unlink(missing_ok=True)
        self._scratch.clear()


def check_replaceable(final: Path) -> None:
    """An output path must name a regular file, or nothing yet: publishing renames a
    temporary file over it, which would replace a device (`-o /dev/null` as root), a FIFO or
    a symlink, and fails on a folder after all the work is done."""
    try:
        mode = final.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise PipelineError(f"{final}: cannot be written ({error.strerror or error})") from None
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISLNK: "a symbolic link", stat.S_ISFIFO: "a FIFO",
             stat.S_ISCHR: "a device", stat.S_ISBLK: "a device", stat.S_ISSOCK: "a socket"}
    kind = next((name for test, name in kinds.items() if mode is not None and test(mode)),
                None)
    if kind:
        raise PipelineError(f"{final}: is {kind}; an output must be a regular file path (it is "
                            "written beside, then renamed over)")


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
    """Deletes stale outputs of an earlier run, so a failed run leaves nothing behind, and
    the temporaries a killed earlier run left beside them."""
    for path in paths:
        Path(path).unlink(missing_ok=True)
        sweep_temporaries(path)


def json_dumps(data: Any, sort_keys: bool = True) -> str:
    """Stable JSON: sorted keys (or the caller's fixed order), plain floats, trailing newline
    (diff-friendly in git)."""
    return json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"


def read_json_file(path: str | os.PathLike[str], stage_hint: str) -> dict[str, Any]:
    """A JSON object written by an earlier stage; a clear error names the stage to rerun."""
    path = require_file(path, stage_hint)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path}: not valid JSON ({error}); run the {stage_hint} stage "
                            "again") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: expected a JSON object; run the {stage_hint} stage again")
    return data


def file_sha256(path: str | os.PathLike[str], what: str = "file") -> str:
    """The sha256 of a file's bytes, read 1 MiB at a time."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: {what} not found")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any, sort_keys: bool = True) -> None:
    path.write_text(json_dumps(data, sort_keys), encoding="utf-8")


def write_npy(path: Path, array: np.ndarray) -> None:
    """`.npy`, no pickle: loads in ~0.01 s for the training split."""
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
