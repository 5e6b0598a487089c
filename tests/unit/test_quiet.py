"""Stages print what the pipeline says, not TensorFlow's start-up notices (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fraud.training.quiet import filtered_stderr, keep_line

ROOT = Path(__file__).resolve().parents[2]
ONEDNN = ("I0000 00:00:1795840956.985854    8564 port.cc:153] oneDNN custom operations are "
          "on. You may see slightly different numerical results\n")
BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
THREADPOOL = ("E0000 00:00:1795840959.702111    8564 node_def_util.cc:682] NodeDef mentions "
              "attribute use_unbounded_threadpool which is not in the op definition\n")


def test_keep_line_applies_the_level_to_absl_lines_only() -> None:
    assert not keep_line(ONEDNN, 1) and keep_line(ONEDNN, 0)
    assert not keep_line(BANNER, 1) and keep_line(BANNER, 0)
    assert keep_line(THREADPOOL, 2) and not keep_line(THREADPOOL, 3)
    assert keep_line("F0101 00:00:00.0 1 x.cc:1] fatal\n", 3)
    for other in ("Traceback (most recent call last):\n", "ImportError: no tensorflow\n",
                  "Info: not an absl line\n", "I00 short\n"):
        assert keep_line(other, 3)


def test_filtered_stderr_drops_notices_and_passes_the_rest(capfd) -> None:
    with filtered_stderr(3):
        os.write(2, (BANNER + ONEDNN + "a real problem\n" + THREADPOOL).encode())
    assert capfd.readouterr().err == "a real problem\n"


def test_filtered_stderr_writes_back_when_the_block_raises(capfd) -> None:
    try:
        with filtered_stderr(3):
            os.write(2, b"said before failing\n")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert capfd.readouterr().err == "said before failing\n"
    os.write(2, b"fd 2 is back\n")
    assert capfd.readouterr().err == "fd 2 is back\n"


# What Keras imports and training never uses stays unexecuted (deferred.py).
IMPORT_THE_MODEL_MODULE = """
import sys
import fraud.training.network
loaded = [m for m in ("IPython.core", "matplotlib.figure") if m in sys.modules]
assert not loaded, f"executed at import: {loaded}"
"""


def test_importing_the_model_module_prints_nothing() -> None:
    """The real import: no absl banner, no oneDNN notice (TF_CPP_MIN_LOG_LEVEL unset), and
    IPython and matplotlib.pyplot left unexecuted."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", IMPORT_THE_MODEL_MODULE], cwd=ROOT,
                          env=env,
                          check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def test_epoch_line_leaves_out_a_metric_the_fit_does_not_compute(caplog) -> None:
    from fraud.training.fit import EpochTimer

    timer = EpochTimer("zero bias", "val_prc")
    with caplog.at_level("INFO"):
        timer.on_epoch_begin(0)
        timer.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.25})
        timer.on_epoch_begin(1)
        timer.on_epoch_end(1, {"loss": 0.4, "val_loss": 0.2, "val_prc": 0.75})
    first, second = (record.getMessage() for record in caplog.records)
    assert "nan" not in first and "val_prc" not in first
    assert first.startswith("zero bias epoch 1: loss 0.50000 val_loss 0.25000 (")
    assert "val_prc 0.7500" in second


def test_stage_log_lines_name_the_module_not_its_package() -> None:
    import logging

    from fraud.core.cli import _ShortNames

    record = logging.LogRecord("fraud.training.fit", logging.INFO, __file__, 1,
                               "baseline epoch %d", (1,), None)
    assert _ShortNames("%(short_name)s: %(message)s").format(record) == \
        "fit: baseline epoch 1"
