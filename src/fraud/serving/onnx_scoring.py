"""Scoring with ONNX Runtime: what evaluate, export and predict use instead of TensorFlow.

Importing onnxruntime and loading a model takes ~0.1 s and ~60 MB; TensorFlow ~5 s and
~850 MB. The `.onnx` files are written by the train stages (src/fraud/serving/detector.py):
`models/<strategy>.onnx` takes the 29 scaled float32 features, the detector
`models/detector/<strategy>.onnx` (shipped as models/fraud_detector.onnx) the 29 raw float64
columns; both return the probability, shape (rows, 1).

Loading is safe for files from elsewhere too: before ONNX Runtime sees a file, it must pass
`onnx_contract.check_model_bytes` (no external data, no loops, only the operators our models
use, the expected input and a (rows, 1) output, within budgets of nodes and of memory and
work per row); no custom-operator library is registered; batches are sized so that their
values stay within BATCH_BYTES; and every score it returns must be a probability, or
scoring stops with an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..core.declaration import category_text
from ..errors import PipelineError, check_logits, check_probabilities, first_line, require_file
from .onnx_contract import MAX_MODEL_BYTES, Contract, check_model_bytes, claimed_contract

# One thread: the network is two small matrix products per row, so a second thread mostly
# adds hand-offs on these shared 2-core machines, and one setting gives the same numbers on
# every machine.
ONNX_THREADS = 1
# Rows per session call: 16,384 rows (3.8 MB of float64 in) amortise the call and stay in
# cache; on the real file it scored faster than 65,536 and kept predict's peak RSS lower.
BATCH_ROWS = 16_384
# What one session call's values may take (the checked model's bytes per row times its rows):
# the default detector (1,496 bytes per row) keeps BATCH_ROWS; a model of the largest valid
# network (34,072) scores ~7,900 rows a call, one at the row budget (128 KiB) 2,048.
BATCH_BYTES = 256 * 1024 * 1024
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxModel:
    """A loaded model: call it on a (rows, columns) array for float64 (rows,) probabilities
    (or logits, when loaded with `logit=True`)."""

    def __init__(self, session: ort.InferenceSession, label: str, fix: str,
                 logit: bool = False, batch_rows: int = BATCH_ROWS) -> None:
        self.session = session
        self.batch_rows = batch_rows
        self.label = label
        self.fix = fix
        self.check = check_logits if logit else check_probabilities
        given, *text = session.get_inputs()
        self.input_name: str = given.name
        self.input_dtype = np.dtype(_DTYPES[given.type])
        # A detector with categorical columns takes their text as a second input: callers
        # pass one (rows, numeric + categorical columns) array, the text columns last.
        self.text_name: str | None = text[0].name if text else None
        self.numeric_columns: int = int(given.shape[1])
        self.columns: int = self.numeric_columns + (int(text[0].shape[1]) if text else 0)
        self.output_name: str = session.get_outputs()[0].name
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.columns:
            raise ValueError(f"{self.label}: expected a (rows, {self.columns}) array, got "
                             f"{features.shape}")
        parts = [self._run(features[start:start + self.batch_rows], start)
                 for start in range(0, len(features), self.batch_rows)]
        return np.concatenate(parts) if parts else np.empty(0)

    def feeds(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The session's inputs from one array: numbers, then (if it takes them) text."""
        if self.text_name is None:
            return {self.input_name: np.ascontiguousarray(batch, dtype=self.input_dtype)}
        n = self.numeric_columns
        numbers = np.asarray(batch[:, :n], dtype=self.input_dtype)
        text = np.column_stack([category_text(batch[:, n + i])
                                for i in range(self.columns - n)])
        return {self.input_name: np.ascontiguousarray(numbers), self.text_name: text}

    def _run(self, batch: np.ndarray, first_row: int) -> np.ndarray:
        """One session call; its output must be one probability (or finite logit) per row."""
        try:
            (scores,) = self.session.run([self.output_name], self.feeds(batch))
        except Exception as error:  # onnxruntime's own Fail/RuntimeException types
            raise PipelineError(f"{self.label}: scoring failed ({first_line(error)}); "
                                f"{self.fix}") from None
        if np.shape(scores) != (len(batch), 1):
            raise PipelineError(f"{self.label}: returned scores of shape {np.shape(scores)} "
                                f"for {len(batch)} rows, not (rows, 1); {self.fix}")
        return self.check(np.asarray(scores, dtype=np.float64).reshape(-1), self.label,
                          self.fix, first_row)


def model_in_memory(content: bytes, label: str, fix: str) -> OnnxModel:
    """A model this process built (not read from a file: no checks), ready to score:
    the reference stage scores what export will ship before it is written."""
    return OnnxModel(ort.InferenceSession(content, sess_options=session_options(),
                                          providers=["CPUExecutionProvider"]), label, fix)


def session_options(threads: int = ONNX_THREADS) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # No memory arena: it keeps the largest batch's buffers for the process's life (~50 MB
    # of predict's peak RSS at 65,536-row batches); without it scoring was no slower.
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3  # errors only: warnings would clutter the stage logs
    return options


def load_onnx(path: str | Path, stage_hint: str, contract: Contract | None,
              logit: bool = False) -> OnnxModel:
    """Loads an `.onnx` model for scoring once it has passed the contract's checks; a
    missing, corrupt or foreign file is a one-line PipelineError that names the stage to
    (re)run. The result is a Callable[[np.ndarray], np.ndarray]. `contract` None: a trained
    network or a detector, whichever the model's input name claims (`input_name` then
    tells the caller which). `logit`: the model's final Sigmoid is cut off, so it returns
    the logit (calibration works on it, in float64)."""
    path = require_file(path, stage_hint, "model")
    fix = f"run the {stage_hint} stage again"
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise PipelineError(f"{path}: {size:,} bytes, over the {MAX_MODEL_BYTES:,} a fraud "
                            f"model may have; {fix}")
    content = path.read_bytes()
    if contract is None:
        contract = claimed_contract(content)
    row_bytes = check_model_bytes(content, path, contract, fix).row_bytes
    if logit:
        import onnx

        from .calibrated import with_logit_output

        content = with_logit_output(onnx.load_from_string(content)).SerializeToString()
    try:
        session = ort.InferenceSession(content, sess_options=session_options(),
                                       providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several types for a file that is no model
        raise PipelineError(f"{path}: not a loadable ONNX model ({first_line(error)}); "
                            f"{fix}") from None
    return OnnxModel(session, str(path), fix, logit, batch_rows_for(row_bytes))


def batch_rows_for(row_bytes: int) -> int:
    """Rows per session call: BATCH_ROWS, fewer if their values would exceed BATCH_BYTES."""
    return max(1, min(BATCH_ROWS, BATCH_BYTES // max(row_bytes, 1)))
