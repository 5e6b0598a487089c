"""Quiet TensorFlow: stage output that shows only what the pipeline has to say.

Measured with tensorflow-cpu 2.21 (every stage that trains or scores printed these):

- `import tensorflow` prints, once per native library, absl's banner "WARNING: All log
  messages before absl::InitializeLog() is called are written to STDERR" and an INFO line
  "oneDNN custom operations are on ...". Both are written before TensorFlow reads
  TF_CPP_MIN_LOG_LEVEL, so no setting hides them. `TF_ENABLE_ONEDNN_OPTS=0` would, but it
  changes the trained weights and made a baseline epoch ~70 % slower (0.13 → 0.22 s): the
  notice is true and harmless. So the import runs with file descriptor 2 captured, and the
  captured lines are written back except those below TF_CPP_MIN_LOG_LEVEL (which is what
  TensorFlow itself does once its logging is up).
- The first `fit` on arrays logs "E0000 ... NodeDef mentions attribute
  use_unbounded_threadpool which is not in the op definition" (a tf.data attribute the op
  registry of this build does not know; training is unaffected). Only level 3 hides C++
  ERROR lines, so level 3 is the default here: every failure this pipeline can act on
  reaches Python as an exception, which the stage reports as one `error:` line.

`TF_CPP_MIN_LOG_LEVEL=0 dvc repro` shows everything again (an explicit setting wins).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_LEVEL = "3"  # 0 everything, 1 hides INFO, 2 also WARNING, 3 also ERROR
ABSL_BANNER = "All log messages before absl::InitializeLog() is called"
# absl's line prefix: severity letter, then MMDD (I0000 when logging is not yet set up).
ABSL_LINE = re.compile(r"^([IWEF])\d{4} ")
SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def set_log_level() -> int:
    """TF_CPP_MIN_LOG_LEVEL, defaulting to 3; set before TensorFlow is imported."""
    value = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_LEVEL)
    try:
        return int(value)
    except ValueError:  # TensorFlow treats a non-number as 0: show everything
        return 0


def keep_line(line: str, min_level: int) -> bool:
    """False for a captured absl line below `min_level` (and absl's banner, when level > 0)."""
    if min_level > 0 and ABSL_BANNER in line:
        return False
    match = ABSL_LINE.match(line)
    return not match or SEVERITY[match.group(1)] >= min_level


@contextmanager
def filtered_stderr(min_level: int) -> Iterator[None]:
    """Captures file descriptor 2 (native libraries write there, not to sys.stderr) and
    writes the captured lines back, filtered, when the block ends, also on an exception."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            sys.stderr.write("".join(line for line in text.splitlines(keepends=True)
                                     if keep_line(line, min_level)))
            sys.stderr.flush()
