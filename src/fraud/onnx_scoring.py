"""Scoring with ONNX Runtime: what evaluate, export and predict use instead of TensorFlow.

Importing onnxruntime and loading a model takes ~0.1 s and ~60 MB; TensorFlow ~5 s and
~850 MB. The `.onnx` files are written by the train stages (src/fraud/detector.py):
`models/<strategy>.onnx` takes the 29 scaled float32 features, the detector
`models/detector/<strategy>.onnx` (shipped as models/fraud_detector.onnx) the 29 raw float64
columns; both return the probability, shape (rows, 1).

Loading is safe for files from elsewhere too: an ONNX file is a protobuf (no pickle, no
code); the session is made from the file's bytes, so it cannot pull in external data files,
and no custom-operator library is registered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from .errors import PipelineError, require_file

# One thread: the network is two small matrix products per row, so a second thread mostly
# adds hand-offs on these shared 2-core machines, and one setting gives the same numbers on
# every machine.
ONNX_THREADS = 1
# Rows per session call: 16,384 rows (3.8 MB of float64 in) amortise the call and stay in
# cache; on the real file it scored faster than 65,536 and kept predict's peak RSS lower.
BATCH_ROWS = 16_384
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxModel:
    """A loaded model: call it on a (rows, columns) array for float64 (rows,) probabilities."""

    def __init__(self, session: ort.InferenceSession, label: str) -> None:
        self.session = session
        self.label = label
        (given,) = session.get_inputs()
        self.input_name: str = given.name
        self.input_dtype = np.dtype(_DTYPES[given.type])
        self.columns: int = int(given.shape[1])
        self.output_name: str = session.get_outputs()[0].name
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.columns:
            raise ValueError(f"{self.label}: expected a (rows, {self.columns}) array, got "
                             f"{features.shape}")
        parts = [self.session.run([self.output_name], {
                     self.input_name: np.ascontiguousarray(features[start:start + BATCH_ROWS],
                                                           dtype=self.input_dtype)})[0]
                 .reshape(-1) for start in range(0, len(features), BATCH_ROWS)]
        return (np.concatenate(parts) if parts else np.empty(0)).astype(np.float64)


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


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def load_onnx(path: str | Path, stage_hint: str) -> OnnxModel:
    """Loads an `.onnx` model for scoring; a missing or corrupt file is a PipelineError that
    names the stage to (re)run. The result is a Callable[[np.ndarray], np.ndarray]."""
    path = require_file(path, stage_hint, "model")
    try:
        session = ort.InferenceSession(path.read_bytes(), sess_options=session_options(),
                                       providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several types for a file that is no model
        raise PipelineError(f"{path}: not a loadable ONNX model ({_first_line(error)}); "
                            f"run the {stage_hint} stage again") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if (len(inputs) != 1 or len(outputs) != 1 or inputs[0].type not in _DTYPES
            or len(inputs[0].shape) != 2 or not isinstance(inputs[0].shape[1], int)):
        raise PipelineError(f"{path}: expected one (rows, columns) float input and one output, "
                            f"got inputs {[(i.name, i.type, i.shape) for i in inputs]} and "
                            f"{len(outputs)} output(s); run the {stage_hint} stage again")
    return OnnxModel(session, str(path))
